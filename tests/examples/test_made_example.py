"""The MADE example: presets, flags -> config, bad values and flags, end-to-end runs through
``train_and_evaluate`` on synthetic data, and one short run on real MNIST (slow)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from examples.made import configs, main
from examples.made import train as example
from models import mnist as mnist_data  # `mnist` is the fixture with the arrays
from models.made import MADEConfig
from models.training import ConfigError, OptimizerConfig, TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"


def config_from(flags: list[str]) -> configs.Config:
    _, args = main.parse_args(flags)
    return main.build_config(args)


def quick(conditional: bool = False, **changes) -> configs.Config:
    """A seconds-long run: a small network, two masks, two epochs."""
    return dataclasses.replace(
        configs.get_config(),
        model=MADEConfig(hidden=(32,), num_masks=2, conditional=conditional),
        train=TrainConfig(epochs=2, batch_size=100),
        **changes,
    )


def test_presets():
    small, germain = configs.small(), configs.germain()
    assert small == configs.Config() == configs.get_config()
    assert small.model.hidden == (500,) and small.model.num_masks == 8
    assert small.model.order_agnostic and small.model.direct and small.ensemble_size == 8
    assert (small.train.batch_size, small.train.learning_rate, small.train.epochs) == (
        100,
        1e-3,
        10,
    )
    assert small.train.binarization == "dynamic" and small.optimizer.schedule == "cosine"
    assert germain.model.hidden == (8000,) and germain.model.num_masks == 32
    assert germain.ensemble_size == 32 and germain.train.batch_size == 100
    assert germain.preset == "germain" and germain.model.activation == "relu"
    ordered = configs.get_config("ordered")
    assert ordered.model.hidden == (8000,) and ordered.ensemble_size == 1
    assert not ordered.model.order_agnostic and ordered.model.direct
    assert (ordered.train.epochs, ordered.train.batch_size, ordered.eval_every) == (60, 100, 5)
    with pytest.raises(ConfigError, match="preset"):
        configs.get_config("larochelle")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"eval_masks": 9}, "eval_masks"),  # more than the 8 masks of the default
        ({"eval_masks": 0}, "eval_masks"),
        ({"eval_every": -1}, "eval_every"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"eval_seed": "0"}, "eval_seed"),
        ({"train_examples": 0}, "train_examples"),
        ({"test_examples": -3}, "test_examples"),
        ({"train": TrainConfig(binarization="grey")}, "binarization"),
        ({"model": MADEConfig(num_dims=10)}, "num_dims"),
    ],
)
def test_bad_config_values_raise_config_error_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=f"`{field}`") as error:
        dataclasses.replace(configs.get_config(), **changes)
    assert error.value.field == field


def test_flags_override_the_preset_and_only_given_flags_count():
    assert config_from([]) == configs.small()
    config = config_from(["--preset", "germain", "--epochs", "1", "--eval-masks", "4"])
    assert config.model.hidden == (8000,) and config.train.epochs == 1
    assert config.train.batch_size == 100 and config.ensemble_size == 4
    config = config_from(
        "--hidden 64 32 --num-masks 3 --natural-order --no-direct --condition-on-mask "
        "--conditional --mask-seed 7 --no-output-bias-init --activation tanh "
        "--binarization threshold --schedule constant --eval-every 0".split()
    )
    model = config.model
    assert model.hidden == (64, 32) and model.num_masks == 3 and model.mask_seed == 7
    assert not model.order_agnostic and not model.direct and not model.output_bias_init
    assert model.condition_on_mask and model.conditional and model.activation == "tanh"
    assert config.train.binarization == "threshold" and config.optimizer.schedule == "constant"
    assert config.eval_every == 0 and config.preset == "small"


@pytest.fixture
def fake_load(monkeypatch, synthetic_mnist):
    """``load_mnist`` returns the synthetic arrays, so the command line runs without MNIST."""
    monkeypatch.setattr(mnist_data, "load_mnist", lambda data_dir=None, **kwargs: synthetic_mnist)


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--hidden", "0"], "--hidden"),
        (["--hidden", "64", "-1"], "--hidden"),
        (["--num-masks", "0"], "--num-masks"),
        (["--mask-seed", "-1"], "--mask-seed"),
        (["--eval-masks", "9"], "--eval-masks"),
        (["--num-masks", "2", "--eval-masks", "3"], "--eval-masks"),
        (["--eval-every", "-1"], "--eval-every"),
        (["--eval-batch-size", "0"], "--eval-batch-size"),
        (["--train-examples", "0"], "--train-examples"),
        (["--binarization", "grey"], "--binarization"),
        (["--activation", "swish"], "--activation"),
        (["--preset", "larochelle"], "--preset"),
        (["--epochs", "two"], "--epochs"),
        # Checked against the data (synthetic: fewer than a million images).
        (["--train-examples", "1000000"], "--train-examples"),
        (["--test-examples", "1000000"], "--test-examples"),
        # Mask 0 is in the natural order: with one mask the flag would change nothing.
        (["--num-masks", "1", "--natural-order"], "--natural-order"),
        (["--preset", "ordered", "--natural-order"], "--natural-order"),
        (["--preset", "ordered", "--num-masks", "4", "--natural-order"], "--natural-order"),
    ],
)
def test_bad_flags_are_one_usage_error_naming_the_flag(flags, flag, fake_load, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main([*flags, "--workdir", str(tmp_path / "run"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("python -m examples.made: error:")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_data_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["made", "--data-dir", str(tmp_path / "none"), "--epochs", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main.run()
    assert "does not exist" in str(exit_info.value.code)


def test_train_and_evaluate_end_to_end(synthetic_mnist, tmp_path):
    workdir = tmp_path / "run"
    config = quick()
    metrics = example.train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    stored = json.loads((workdir / "metrics.json").read_text())
    assert stored["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    for key in (
        "test_nll_nats",
        "test_bits_per_dim",
        "test_nll_mean_single_mask_nats",
        "wall_time_s",
        "train_seconds",
        "train_seconds_per_epoch",
        "test_eval_seconds",
        "sample_seconds",
    ):
        assert math.isfinite(stored[key]), key
    assert stored["test_bits_per_dim"] == pytest.approx(
        stored["test_nll_nats"] / (784 * math.log(2))
    )
    assert stored["model"] == "made" and stored["eval_masks"] == 2
    assert len(stored["test_nll_per_mask_nats"]) == 2
    # The ensemble is at least as good as its average member (Jensen).
    assert stored["test_nll_nats"] <= stored["test_nll_mean_single_mask_nats"] + 1e-6
    assert stored["device"] and stored["seed"] == 0 and stored["binarization"] == "dynamic"
    assert stored["evaluation_set"] == "first 500 test images, fixed_binarization(seed=0)"
    assert stored["config"]["model"]["num_masks"] == 2 and stored["num_parameters"] > 0
    assert [r["epoch"] for r in stored["history"]] == [1, 2]
    assert all("test_nll_mask0" in r and "nll" in r for r in stored["history"])
    assert stored["history"][-1]["nll"] < stored["history"][0]["nll"]
    assert stored["pictures"] == ["samples.png", "training_curve.png"]
    for name in stored["pictures"]:
        assert (workdir / name).read_bytes()[:8] == PNG, name
    assert (workdir / "checkpoints").is_dir() and (workdir / "train_log.csv").exists()
    # A rerun resumes: nothing left to train, same parameters, same test NLL.
    again = example.train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    assert again["epochs_run_now"] == 0 and again["train_seconds_per_epoch"] is None
    assert again["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"], rel=1e-6)
    # A third epoch of a cosine decay over two is another schedule: refused, not appended.
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=3))
    with pytest.raises(ConfigError, match=r"differing: train\.epochs\)"):
        example.train_and_evaluate(longer, workdir, data=synthetic_mnist, progress=False)
    # With a constant rate the run extends: asking for a third epoch trains only that one.
    constant = dataclasses.replace(config, optimizer=OptimizerConfig(schedule="constant"))
    constant_dir = tmp_path / "constant"
    example.train_and_evaluate(constant, constant_dir, data=synthetic_mnist, progress=False)
    longer = dataclasses.replace(constant, train=longer.train)
    more = example.train_and_evaluate(longer, constant_dir, data=synthetic_mnist, progress=False)
    assert more["epochs_run_now"] == 1 and len(more["history"]) == 3


def test_conditional_end_to_end(synthetic_mnist, tmp_path):
    workdir = tmp_path / "run"
    config = quick(conditional=True, eval_every=0)
    metrics = example.train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    assert metrics["model"] == "made_conditional"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    # The references are those of the committed naive Bayes run.
    run = json.loads((example.REFERENCE_RUN / "metrics.json").read_text())
    assert metrics["reference_test_accuracy"] == {
        "naive_bayes": run["test_accuracy"],
        "logistic_regression": run["logistic_regression_test_accuracy"],
    }
    # -log p(x) <= -log p(x, y): knowing the class cannot make x less likely jointly.
    assert metrics["test_nll_nats"] <= metrics["test_nll_joint_nats"] + 1e-6
    assert math.isfinite(metrics["test_nll_conditional_nats"])
    assert all("test_nll_mask0" not in r for r in metrics["history"])
    assert (workdir / "samples.png").read_bytes()[:8] == PNG
    assert "Bayes-rule test accuracy" in example.summary(metrics)


def test_cli_end_to_end(fake_load, tmp_path, capsys):
    workdir = tmp_path / "run"
    flags = "--hidden 16 --num-masks 2 --epochs 1 --test-examples 100 --no-progress".split()
    metrics = main.main(["--workdir", str(workdir), *flags])
    assert metrics["config"]["train"]["learning_rate"] == 1e-3  # not given: the default
    assert metrics["evaluation_set"].startswith("first 100 test images")
    assert "exact test NLL" in capsys.readouterr().out
    # --no-resume deletes the checkpoints and trains afresh, to the same result.
    again = main.main(["--workdir", str(workdir), *flags, "--no-resume"])
    assert again["epochs_run_now"] == 1
    assert again["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"], rel=1e-6)


@pytest.mark.slow
def test_short_training_on_real_mnist_beats_the_factorized_model(
    mnist, mnist_dir, tfds_dir, tmp_path, monkeypatch
):
    """One epoch on a third of MNIST, through the CLI: exact test NLL far below the 205.8
    nats of the factorized Bernoulli model (pixels independent)."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    metrics = main.main(
        [
            "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "1",
            "--train-examples", "20000", "--test-examples", "1000", "--eval-masks", "2",
            "--no-progress",
        ]
    )  # fmt: skip
    assert metrics["test_nll_nats"] < 180.0, metrics["test_nll_nats"]
    assert metrics["evaluation_set"] == "first 1000 test images, fixed_binarization(seed=0)"
    assert (workdir / "samples.png").exists()
