"""The VAE example: presets, flags -> config, bad flags, and end-to-end runs through
``train_and_evaluate`` on synthetic data (and once on real MNIST, the README's main job)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from examples.vae import configs, main
from examples.vae import flags as vae_flags
from examples.vae.train import summary, train_and_evaluate
from models.training import ConfigError


def config_from(flags: list[str]) -> configs.Config:
    _, args = main.parse_args(flags)
    return vae_flags.build_config(args)


def test_presets():
    burda, flax_example, fast = configs.burda(), configs.flax(), configs.burda_fast()
    for preset in (burda, fast):
        assert preset.model.hidden == (200, 200) and preset.model.latent_dim == 50
        assert preset.model.activation == "tanh" and preset.train.binarization == "dynamic"
        assert preset.model.output_bias_init
    assert burda.train.batch_size == 20 and burda.optimizer.schedule == "burda"
    assert burda.optimizer.eps == 1e-4 and burda.train.epochs == 3280
    assert fast.train.batch_size == 1000 and fast.optimizer.schedule == "constant"
    assert flax_example.model.hidden == (500,) and flax_example.model.latent_dim == 20
    assert flax_example.model.activation == "relu"
    assert (flax_example.train.batch_size, flax_example.train.learning_rate) == (128, 1e-3)
    with pytest.raises(ConfigError, match="preset"):
        configs.get_config("kingma")
    logistic = configs.get_config("mnist-8bit-logistic")
    gaussian = configs.get_config("mnist-8bit-dequantized-gaussian")
    assert logistic.model.likelihood == "logistic-mixture"
    assert dict(logistic.model.likelihood_options) == {"components": 3}
    assert gaussian.model.likelihood == "dequantized-gaussian"
    assert logistic.train.binarization == gaussian.train.binarization == "8bit"
    assert logistic.model.hidden == gaussian.model.hidden


def test_flags_override_the_preset_and_only_given_flags_count():
    config = config_from([])
    assert config == configs.flax()
    config = config_from(["--architecture", "conv", "--conv-channels", "16"])
    assert config.model.architecture == "conv" and config.model.conv_channels == (16,)
    assert config.model.hidden == configs.flax().model.hidden
    config = config_from(["--preset", "burda", "--batch-size", "100", "--seed", "0"])
    assert config.train.batch_size == 100 and config.optimizer.schedule == "burda"
    config = config_from(["--likelihood", "gaussian", "--fixed-variance", "0.1"])
    assert config.train.binarization == "grey"
    assert dict(config.model.likelihood_options) == {"fixed_variance": 0.1}
    # The 8-bit likelihoods pick the 8-bit data by themselves; their options have flags.
    config = config_from(["--likelihood", "logistic-mixture", "--components", "2"])
    assert config.train.binarization == "8bit"
    assert dict(config.model.likelihood_options) == {"components": 2}
    config = config_from(["--likelihood", "dequantized-gaussian", "--min-scale", "0.002"])
    assert config.train.binarization == "8bit"
    assert dict(config.model.likelihood_options) == {"min_scale": 0.002}
    config = config_from(
        ["--preset", "mnist-8bit-logistic", "--likelihood", "dequantized-gaussian"]
    )
    assert config.model.likelihood_options == () and config.train.binarization == "8bit"
    config = config_from(
        ["--kl-warmup-epochs", "5", "--free-bits", "0.25", "--no-output-bias-init"]
    )
    assert config.objective.kl_warmup_epochs == 5 and config.objective.free_bits == 0.25
    assert not config.model.output_bias_init


FIXED_VARIANCE = ["--likelihood", "gaussian", "--fixed-variance", "0.1"]


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--epochs", "0"], "--epochs"),
        (["--latent-dim", "-3"], "--latent-dim"),
        (["--latent-dim", "0"], "--latent-dim"),
        (["--hidden", "0"], "--hidden"),
        (["--conv-channels", "4", "8", "16"], "--conv-channels"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--num-samples", "0"], "--num-samples"),
        (["--eval-samples", "0"], "--eval-samples"),
        (["--train-examples", "0"], "--train-examples"),
        (["--test-examples", "10"], "--test-examples"),
        (["--probe-steps", "0"], "--probe-steps"),
        (["--eval-every", "-1"], "--eval-every"),
        (["--nll-every", "-1"], "--nll-every"),
        (["--kl-warmup-epochs", "-2"], "--kl-warmup-epochs"),
        (["--free-bits", "-1"], "--free-bits"),
        (["--objective", "iwae", "--free-bits", "1"], "--objective"),
        (["--fixed-variance", "0.1"], "--fixed-variance"),
        (["--likelihood", "gaussian", "--fixed-variance", "-1"], "--fixed-variance"),
        (["--likelihood", "gaussian", "--binarization", "dynamic"], "--binarization"),
        (["--likelihood", "bernoulli", "--binarization", "grey"], "--binarization"),
        (["--epochs", "two"], "--epochs"),
        (["--likelihood", "logistic-mixture", "--components", "0"], "--components"),
        (["--components", "3"], "--components"),
        (["--likelihood", "dequantized-gaussian", "--min-scale", "0"], "--min-scale"),
        (["--likelihood", "logistic-mixture", "--binarization", "grey"], "--binarization"),
        (["--preset", "mnist-8bit-logistic", "--binarization", "dynamic"], "--binarization"),
        (["--preset", "kingma"], "--preset"),
        (["--free-bits", "1", "--top-latent-dim", "5"], "--free-bits"),
        # Flags that would change nothing are refused rather than recorded.
        (["--architecture", "conv", "--hidden", "200"], "--hidden"),
        (["--conv-channels", "16"], "--conv-channels"),
        (["--top-hidden", "50"], "--top-hidden"),
        (["--likelihood", "gaussian", "--fixed-variance", "0.1", "--scale", "global"], "--scale"),
        (
            ["--likelihood", "gaussian", "--fixed-variance", "0.1", "--min-scale", "0.1"],
            "--min-scale",
        ),
        (["--binarization", "threshold", "--eval-seed", "3"], "--eval-seed"),
        (["--conditional", "--probe-steps", "7"], "--probe-steps"),
        # The grey Gaussian's learned scale starts at 1, above its bound.
        (["--likelihood", "gaussian", "--min-scale", "1"], "--min-scale"),
        (["--likelihood", "gaussian", "--fixed-variance", "inf"], "--fixed-variance"),
    ],
)
def test_bad_flags_are_one_usage_error_naming_the_flag(flags, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("usage:") is False


def test_missing_data_folder_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["vae", "--data-dir", str(tmp_path / "none"), "--epochs", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main.run()
    assert "does not exist" in str(exit_info.value.code)


@pytest.mark.parametrize(
    ("changes", "pictures"),
    [
        (
            {"model": {"latent_dim": 2}},
            {"samples", "reconstructions", "manifold", "training_curve"},
        ),
        (
            {
                "model": {
                    "conditional": True,
                    "likelihood": "gaussian",
                    "likelihood_options": {"fixed_variance": 0.1},
                    "hidden": (64, 32),
                },
                "objective": {"kind": "iwae", "num_samples": 3},
                "train": {"binarization": "grey"},
            },
            {"samples", "reconstructions", "training_curve"},
        ),
    ],
    ids=["bernoulli-2d", "conditional-gaussian-iwae"],
)
def test_train_and_evaluate_end_to_end(synthetic_mnist, tmp_path, changes, pictures):
    base = configs.flax()
    changes = {"train": {}, **changes}
    changes["train"] = {**changes["train"], "epochs": 2}
    parts = {
        name: dataclasses.replace(getattr(base, name), **fields) for name, fields in changes.items()
    }
    config = dataclasses.replace(
        base,
        **parts,
        eval_samples=8,
        nll_every=2,
        curve_samples=4,
        probe_steps=20,
    )
    workdir = tmp_path / "run"
    metrics = train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    stored = json.loads((workdir / "metrics.json").read_text())
    assert stored["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    for key in (
        "test_nll_nats",
        "test_nll_stderr_nats",
        "test_bits_per_dim",
        "test_neg_elbo_nats",
        "test_reconstruction_nats",
        "test_kl_nats",
        "wall_time_s",
        "train_seconds_per_epoch",
    ):
        assert np.isfinite(stored[key]), key
    if config.model.conditional:
        # The encoder is given the label: features built from it would report it back.
        assert stored["active_units"] is None and stored["probe_test_accuracy"] is None
        assert "given the label" in stored["probe_note"]
    else:
        assert 0 <= stored["active_units"] <= config.model.latent_dim
        assert 0 <= stored["probe_test_accuracy"] <= 1
    assert summary(metrics).startswith("test -ELBO")  # the terminal line, either way
    assert stored["eval_samples"] == 8 and stored["seed"] == 0 and stored["device"]
    assert len(stored["history"]) == 2 and "test_neg_elbo" in stored["history"][0]
    assert "test_nll_k4" in stored["history"][1] and "test_nll_k4" not in stored["history"][0]
    assert stored["binarization"] == config.train.binarization
    for name in pictures:
        assert (workdir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (workdir / "train_log.csv").exists()
    # A rerun resumes: nothing left to train, same parameters, same test bound.
    again = train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    assert again["epochs_run_now"] == 0
    assert again["test_neg_elbo_nats"] == pytest.approx(metrics["test_neg_elbo_nats"])


@pytest.mark.parametrize(
    ("likelihood", "options"),
    [("logistic-mixture", {"components": 2}), ("dequantized-gaussian", {})],
)
def test_train_and_evaluate_on_8bit_data(synthetic_mnist, tmp_path, likelihood, options):
    base = configs.mnist_8bit_logistic()
    config = dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model,
            likelihood=likelihood,
            likelihood_options=options,
            hidden=(32,),
            latent_dim=4,
        ),
        train=dataclasses.replace(base.train, epochs=2),
        eval_samples=8,
        probe_steps=20,
    )
    workdir = tmp_path / "run"
    metrics = train_and_evaluate(config, workdir, data=synthetic_mnist, progress=False)
    stored = json.loads((workdir / "metrics.json").read_text())
    assert stored["binarization"] == "8bit" and stored["is_samples"] == 8
    # One definition of bits/dim: -log2 P(x) / 784 of the bound in nats.
    to_bits = 1.0 / (784 * np.log(2.0))
    assert stored["test_bits_per_dim_elbo"] == pytest.approx(stored["test_neg_elbo_nats"] * to_bits)
    assert stored["test_bits_per_dim_is"] == pytest.approx(stored["test_nll_nats"] * to_bits)
    assert stored["test_bits_per_dim_is"] == pytest.approx(stored["test_bits_per_dim"])
    # Lower bounds on log P(x) of 8-bit images: positive bits/dim, the IS one the tighter
    # here (K = 8 against one sample; within noise, as both are estimates).
    assert 0.0 < stored["test_bits_per_dim_is"] < stored["test_bits_per_dim_elbo"] + 0.05
    assert stored["history"][1]["neg_elbo"] < stored["history"][0]["neg_elbo"]  # it learns
    assert "8-bit" in stored["likelihood_note"] and "8-bit" in stored["bits_per_dim_note"]
    assert ("dequantised" in stored["bits_per_dim_note"]) == (likelihood != "logistic-mixture")
    for name in ("samples", "pixel_samples", "reconstructions", "training_curve"):
        assert (workdir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert metrics["test_bits_per_dim_elbo"] == stored["test_bits_per_dim_elbo"]


@pytest.mark.slow
def test_main_job_on_real_mnist(mnist, mnist_dir, tfds_dir, tmp_path, monkeypatch):
    """The README's main job, shortened: real MNIST through tfds and the CLI."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    metrics = main.main(
        [
            "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "1",
            "--train-examples", "6000", "--test-examples", "1000", "--eval-samples", "10",
            "--probe-steps", "50", "--no-progress",
        ]
    )  # fmt: skip
    assert metrics["test_neg_elbo_nats"] < 200.0  # beats the factorized model's 205.8
    assert metrics["evaluation_set"] == "first 1000 test images, fixed_binarization(seed=0)"
    assert (workdir / "samples.png").exists()
