"""The factorized categorical example end to end on synthetic data: metrics, pictures,
resuming, the command line and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from examples import _cli
from examples.factorized_categorical import configs
from examples.factorized_categorical import main as cli
from examples.factorized_categorical import train as example
from models import factorized_categorical as fc
from models import mnist as mnist_data
from models.training import ConfigError, TrainConfig


def small_config(**train) -> configs.Config:
    train = {"epochs": 1, "learning_rate": 0.1, "binarization": "8bit", **train}
    return configs.Config(train=TrainConfig(**train))


def test_config_checks_every_field():
    assert configs.get_config() == configs.Config()
    default = configs.get_config()
    assert default.train.epochs == 5 and default.train.binarization == "8bit"
    assert default.pseudo_count == fc.PSEUDO_COUNT == 1.0
    for field, value in [
        ("pseudo_count", 0.0),
        ("pseudo_count", float("inf")),
        ("pseudo_count", True),
        ("train_examples", 0),
        ("test_examples", -3),
        ("num_samples", 0),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`") as error:
            configs.Config(**{field: value})
        assert error.value.field == field
    # A binary binarisation has no 256 levels.
    with pytest.raises(ConfigError, match="`binarization` must be one of") as error:
        configs.Config(train=TrainConfig(binarization="dynamic"))
    assert error.value.field == "binarization"


def test_example_end_to_end(synthetic_mnist, tmp_path):
    workdir = tmp_path / "run"
    metrics = example.train_and_evaluate(
        small_config(), workdir, data=synthetic_mnist, progress=False
    )
    written = json.loads((workdir / "metrics.json").read_text())
    assert written["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    keys = """test_bits_per_dim closed_form_test_nll_nats closed_form_test_bits_per_dim
        trained_minus_closed_form_nats trained_minus_closed_form_bits_per_dim
        max_abs_log_prob_difference pseudo_count evaluation_set bits_per_dim device
        train_examples epochs batch_size learning_rate optimizer train_seconds
        closed_form_seconds wall_time_s load_average_1min history config"""
    for key in keys.split():
        assert key in written, key
    assert written["model"] == "factorized_categorical" and written["binarization"] == "8bit"
    assert written["train_examples"] == 2000 and written["epochs_run_now"] == 1
    assert written["evaluation_set"] == "first 500 test images, 8bit"
    # bits/dim is the NLL over 784 ln 2, for both models, and their difference adds up.
    for prefix in ("", "closed_form_"):
        nll = written[f"{prefix}test_nll_nats"]
        bits = written[f"{prefix}test_bits_per_dim"]
        assert bits == pytest.approx(nll / (784 * np.log(2.0)), rel=1e-6)
    assert written["trained_minus_closed_form_bits_per_dim"] == pytest.approx(
        written["test_bits_per_dim"] - written["closed_form_test_bits_per_dim"]
    )
    # 15 Adam steps from uniform levels (8 bits/dim): a clear improvement already.
    assert written["test_bits_per_dim"] < 8.0 - 1.0
    # The closed form is the numpy smoothed frequency of the 8-bit training pixels.
    log_probs = np.log(fc.closed_form_probs(synthetic_mnist.train_images))
    levels = synthetic_mnist.test_images.reshape(500, 784).astype(np.int64)
    want = -log_probs[np.arange(784), levels].sum(-1).mean()
    assert written["closed_form_test_nll_nats"] == pytest.approx(want, rel=1e-5)
    assert written["pictures"] == ["samples.png", "mean.png", "training_curve.png"]
    for picture in written["pictures"]:
        assert (workdir / picture).stat().st_size > 0
    assert (workdir / "checkpoints").is_dir() and (workdir / "train_log.csv").is_file()


def test_sample_grid_holds_grey_levels(synthetic_mnist, tmp_path):
    from PIL import Image

    example.train_and_evaluate(
        small_config(), tmp_path, data=synthetic_mnist, progress=False, resume=False
    )
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    # 64 tiles of 28 x 28 in an 8 x 8 grid with 2-pixel gaps.
    assert grid.shape == (8 * 28 + 7 * 2, 8 * 28 + 7 * 2)
    assert len(np.unique(grid)) > 100  # grey levels, not a binary picture


def test_example_resumes_and_is_deterministic(synthetic_mnist, tmp_path):
    config = small_config(epochs=2, seed=1)
    run = lambda **kw: example.train_and_evaluate(
        config, tmp_path / "a", data=synthetic_mnist, progress=False, **kw
    )
    first = run()
    assert first["epochs_run_now"] == 2 and len(first["history"]) == 2
    resumed = run()
    assert resumed["epochs_run_now"] == 0
    assert resumed["history"] == first["history"]
    assert resumed["test_nll_nats"] == first["test_nll_nats"]
    again = run(resume=False)
    assert again["epochs_run_now"] == 2
    assert again["test_nll_nats"] == first["test_nll_nats"]


def test_example_rejects_missing_data_dir(tmp_path):
    missing = tmp_path / "no-such-mnist"
    argv = ["--data-dir", str(missing), "--workdir", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(FileNotFoundError, match=r"no-such-mnist.*does not exist"):
        cli.main(argv)
    with pytest.raises(SystemExit, match=r"error: MNIST data folder .*no-such-mnist"):
        _cli.run_or_exit(cli.main, argv)


@pytest.fixture
def fake_load(monkeypatch, synthetic_mnist):
    """``load_mnist`` returns the synthetic arrays, so the command line runs without MNIST."""
    monkeypatch.setattr(mnist_data, "load_mnist", lambda data_dir=None, **kwargs: synthetic_mnist)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--pseudo-count", "0"], "--pseudo-count"),
        (["--pseudo-count", "nan"], "--pseudo-count"),
        (["--num-samples", "0"], "--num-samples"),
        # Checked against the data: 500 synthetic test images.
        (["--test-examples", "501"], "--test-examples"),
    ],
)
def test_cli_rejects_bad_flag_values(argv, flag, fake_load, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--workdir", str(tmp_path / "run"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_rejects_binary_binarization(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--binarization", "dynamic"])
    assert "invalid choice: 'dynamic'" in capsys.readouterr().err


def test_cli_end_to_end(fake_load, tmp_path, capsys):
    """Only the flags given override the configuration; the rest keep its defaults."""
    workdir = tmp_path / "run"
    flags = "--epochs 1 --batch-size 250 --test-examples 100 --pseudo-count 0.5"
    metrics = cli.main(
        ["--workdir", str(workdir), *flags.split(), "--num-samples", "16", "--no-progress"]
    )
    config = metrics["config"]
    assert config["train"]["epochs"] == 1 and config["train"]["batch_size"] == 250
    assert config["train"]["learning_rate"] == 0.1 and config["pseudo_count"] == 0.5
    assert metrics["evaluation_set"] == "first 100 test images, 8bit"
    out = capsys.readouterr().out
    assert "bits/dim; closed form" in out and str(workdir) in out
    assert (workdir / "metrics.json").is_file()
