"""Pretrained weights: export a run, load it back bit for bit, evaluate it with no training;
and the shipped model reproduces its recorded test NLL within its Monte Carlo error."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from examples.pretrained import main as pretrained_main
from examples.pretrained import run
from examples.vae import configs
from examples.vae.train import build, train_and_evaluate
from models import mnist, pretrained, vae


def params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_export_load_and_evaluate_round_trip(synthetic_mnist, tmp_path):
    config = dataclasses.replace(
        configs.flax(),
        model=dataclasses.replace(configs.flax().model, latent_dim=3, hidden=(16,)),
        train=dataclasses.replace(configs.flax().train, epochs=1),
        eval_samples=4,
        probe_steps=5,
    )
    train_and_evaluate(config, tmp_path / "run", data=synthetic_mnist, progress=False)
    record = run.export(
        tmp_path / "run", config, "tiny", eval_samples=4, data=synthetic_mnist,
        directory=tmp_path / "weights",
    )  # fmt: skip
    assert pretrained.available(tmp_path / "weights") == ["tiny"]
    assert record["epochs"] == 1 and record["test"]["eval_samples"] == 4
    assert np.isfinite(record["check"]["nll_nats"]) and record["check"]["mc_stderr_nats"] > 0
    model, stored = pretrained.load_pretrained("tiny", directory=tmp_path / "weights")
    assert stored["model_config"]["latent_dim"] == 3 and model.latent_dim == 3
    trainer_model = build(config, synthetic_mnist.train_images, workdir=tmp_path / "run")
    assert trainer_model.restore_latest()
    for a, b in zip(params(trainer_model.model), params(model), strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = run.evaluate(
        "tiny", tmp_path / "eval", eval_samples=4, data=synthetic_mnist,
        directory=tmp_path / "weights",
    )  # fmt: skip
    # Same weights, same test set and keys: the recorded figures come back.
    assert metrics["test_nll_nats"] == pytest.approx(record["test"]["test_nll_nats"], rel=1e-6)
    assert (tmp_path / "eval" / "samples.png").exists()
    assert (tmp_path / "eval" / "reconstructions.png").exists()
    # Exporting with another configuration than the run's is refused, naming the field.
    other = dataclasses.replace(config, eval_seed=3)
    with pytest.raises(ValueError, match="differing fields: eval_seed"):
        run.export(tmp_path / "run", other, "tiny2", data=synthetic_mnist, directory=tmp_path)
    with pytest.raises(ValueError, match="name"):
        pretrained.load_pretrained("nope", directory=tmp_path / "weights")


def test_a_model_is_measured_on_its_own_binarisation(synthetic_mnist):
    """A grey-level (or 8-bit) model's record says so, and evaluation follows its record."""
    assert run.evaluation_settings(None) == ("dynamic", 0)
    grey = configs.get_config("flax")
    grey = dataclasses.replace(
        grey, train=dataclasses.replace(grey.train, binarization="threshold"), eval_seed=2
    )
    assert run.evaluation_settings(dataclasses.asdict(grey)) == ("threshold", 2)
    model = build(grey, synthetic_mnist.train_images).model
    check = run.reproducibility_check(model, synthetic_mnist, binarization="threshold")
    assert check["binarization"] == "threshold" and check["eval_seed"] == 0
    measured = run.measure(
        model, synthetic_mnist, eval_samples=2, test_examples=64, binarization="threshold"
    )
    assert "threshold" in measured["evaluation_set"]


def test_bad_flags(capsys):
    for flags, flag in [
        (["--eval-samples", "0"], "--eval-samples"),
        (["--name", "nope"], "--name"),
        (["--export-from", "somewhere"], "--preset"),
        (["--export-from", "run", "--preset", "flax", "--test-examples", "5"], "--test-examples"),
        (["--export-from", "run", "--preset", "flax", "--workdir", "out"], "--workdir"),
        (["--preset", "flax"], "--preset"),
        (["--test-examples", "20000"], "--test-examples"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            pretrained_main.main(flags)
        assert exit_info.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", pretrained.available())
def test_shipped_weights_reproduce_their_recorded_nll(name, mnist):
    model, record = pretrained.load_pretrained(name)
    check = record["check"]
    x = mnist_data_images(mnist, check)
    bound = vae.iwae_per_example(
        model, x, None, jax.random.key(check["seed"] + 7), num_samples=check["num_samples"]
    )
    nll = -float(np.mean(np.asarray(bound, np.float64)))
    # Another key: within 4 Monte Carlo standard errors of the recorded estimate.
    assert abs(nll - check["nll_nats"]) < 4 * check["mc_stderr_nats"], (nll, check)


def mnist_data_images(data, check):
    # Records from before the check stored its binarisation: dynamic, seed 0.
    return mnist.evaluation_images(
        data.test_images[: check["test_examples"]],
        binarization=check.get("binarization", "dynamic"),
        seed=check.get("eval_seed", 0),
    )


def test_a_conditional_model_is_checked_with_its_labels(synthetic_mnist):
    config = configs.get_config("flax")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, conditional=True))
    model = build(config, synthetic_mnist.train_images).model
    check = run.reproducibility_check(model, synthetic_mnist)
    # The check's estimate is log p(x | y) with each image's own label, not label 0.
    images = synthetic_mnist.test_images[: run.CHECK_EXAMPLES]
    x = mnist.evaluation_images(images, binarization="dynamic", seed=0)
    y = synthetic_mnist.test_labels[: run.CHECK_EXAMPLES]
    own = vae.iwae_per_example(model, x, y, jax.random.key(0), num_samples=run.CHECK_SAMPLES)
    assert check["nll_nats"] == pytest.approx(-float(np.mean(own)), rel=1e-6)
    measured = run.measure(model, synthetic_mnist, eval_samples=2, test_examples=64)
    assert measured["active_units"] is None  # the encoder is given the label
