"""The shared trainer and evaluation helper on synthetic data: the one train step, resume,
the NaN guard, optimiser schedules, and batched evaluation that compiles once."""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from models import evaluation, mnist, vae
from models.training import (
    Batch,
    ConfigError,
    NonFiniteLossError,
    OptimizerConfig,
    TrainConfig,
    Trainer,
    burda_learning_rate,
    differing_fields,
    make_optimizer,
    make_train_step,
    training_settings,
)

LOSS = vae.make_loss_fn(vae.Objective())


def small_vae(seed: int = 0) -> vae.VAE:
    config = vae.VAEConfig(latent_dim=4, hidden=(32,))
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(seed)))


def params_of(trainer: Trainer) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))]


# -------------------------------------------------------------------------- train step


def test_train_step_is_the_optax_update_of_the_loss_gradient():
    model = small_vae()
    tx = optax.sgd(0.1)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    x = (jax.random.uniform(jax.random.key(1), (8, 28, 28)) > 0.5).astype(jnp.float32)
    batch, key = Batch(x, jnp.zeros(8, jnp.int32)), jax.random.key(2)
    new_state, metrics, finite = jax.jit(make_train_step(graphdef, LOSS))(state, batch, key)
    assert bool(finite) and set(metrics) == {"loss", "neg_elbo", "reconstruction", "kl"}
    # By hand: one SGD step on the same loss and key.
    grads = nnx.grad(lambda m: LOSS(m, batch, key, 0)[0])(small_vae())
    expected = jax.tree.map(
        lambda p, g: p - 0.1 * g, nnx.state(small_vae(), nnx.Param), nnx.state(grads, nnx.Param)
    )
    trained, _ = nnx.merge(graphdef, new_state)
    for a, b in zip(
        jax.tree.leaves(nnx.state(trained, nnx.Param)), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- checkpoints and NaN guard


def test_resume_from_checkpoint_gives_the_same_parameters(synthetic_mnist, tmp_path):
    images, labels = synthetic_mnist.train_images[:512], synthetic_mnist.train_labels[:512]
    straight = Trainer(
        small_vae(), optax.adam(1e-3), LOSS, TrainConfig(epochs=2), workdir=tmp_path / "straight"
    )
    straight.fit(images, labels, progress=False)

    first = Trainer(
        small_vae(), optax.adam(1e-3), LOSS, TrainConfig(epochs=1), workdir=tmp_path / "resumed"
    )
    first.fit(images, labels, progress=False)
    # A fresh process would start from other parameters; resuming must overwrite them.
    resumed = Trainer(
        small_vae(seed=7),
        optax.adam(1e-3),
        LOSS,
        TrainConfig(epochs=2),
        workdir=tmp_path / "resumed",
    )
    assert resumed.restore_latest() and resumed.epochs_done == 1
    for a, b in zip(params_of(first), params_of(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    resumed.fit(images, labels, progress=False)
    assert resumed.epochs_done == 2
    for a, b in zip(params_of(straight), params_of(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_a_checkpoint_saved_under_other_settings(synthetic_mnist, tmp_path, caplog):
    images, labels = synthetic_mnist.train_images[:256], synthetic_mnist.train_labels[:256]
    settings = {"seed": 0, "train": {"binarization": "dynamic", "learning_rate": 1e-3}}

    def trainer(settings, workdir="run"):
        return Trainer(
            small_vae(),
            optax.adam(1e-3),
            LOSS,
            TrainConfig(epochs=1),
            workdir=tmp_path / workdir,
            settings=settings,
        )

    trainer(settings).fit(images, labels, progress=False)
    assert trainer(dict(settings)).restore_latest()
    other = {"seed": 3, "train": {"binarization": "threshold", "learning_rate": 1e-3}}
    with pytest.raises(ConfigError, match=r"differing: seed, train\.binarization\)") as error:
        trainer(other).restore_latest()
    assert error.value.field == "workdir"
    # A trainer told nothing, or a checkpoint saved without settings, is not checked.
    assert trainer(None).restore_latest()
    trainer(None, "bare").fit(images, labels, progress=False)
    with caplog.at_level(logging.WARNING, logger="models.training"):
        assert trainer(other, "bare").restore_latest()
    assert "without a settings check" in caplog.text
    # A run that has trained more epochs than asked for is not reported as the shorter one.
    longer = Trainer(
        small_vae(), optax.adam(1e-3), LOSS, TrainConfig(epochs=2), workdir=tmp_path / "long"
    )
    longer.fit(images, labels, progress=False)
    shorter = Trainer(
        small_vae(), optax.adam(1e-3), LOSS, TrainConfig(epochs=1), workdir=tmp_path / "long"
    )
    with pytest.raises(ConfigError, match="has trained 2") as error:
        shorter.restore_latest()
    assert error.value.field == "epochs"


def test_training_settings_leave_out_evaluation_and_unshaping_fields():
    @dataclasses.dataclass(frozen=True)
    class Config:
        train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=3))
        hidden: tuple = (8, 4)
        eval_seed: int = 0

    settings = training_settings(
        Config(), num_train=500, ignore=("eval_seed",), epochs_shape_schedule=False
    )
    assert settings == {
        "train": {"batch_size": 128, "learning_rate": 1e-3, "seed": 0, "binarization": "dynamic"},
        "hidden": [8, 4],
        "num_train": 500,
    }
    with_epochs = training_settings(Config(), num_train=500, epochs_shape_schedule=True)
    assert with_epochs["train"]["epochs"] == 3 and with_epochs["eval_seed"] == 0
    # NumPy scalars, which the configs accept, are recorded as numbers.
    numpy_epochs = Config(train=TrainConfig(epochs=np.int64(3)))
    assert training_settings(numpy_epochs, num_train=500, epochs_shape_schedule=True) == with_epochs
    with pytest.raises(KeyError, match=r"no field 'train\.nothing'"):
        training_settings(
            Config(), num_train=500, ignore=("train.nothing",), epochs_shape_schedule=True
        )


def test_differing_fields_name_keys_present_on_one_side_only():
    assert differing_fields({"a": 1, "b": {"c": None}}, {"a": 1, "b": {}}) == ["b.c"]
    assert differing_fields({"a": [1, 2]}, {"a": [1, 2]}) == []


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(synthetic_mnist, tmp_path):
    def poisoned_loss(model, batch, key, step):
        loss, metrics = LOSS(model, batch, key, step)
        # Label 10 does not exist: a batch carrying it makes the loss NaN.
        return loss + jnp.where(jnp.any(batch.labels == 10), jnp.nan, 0.0), metrics

    images, labels = synthetic_mnist.train_images[:512], synthetic_mnist.train_labels[:512]
    trainer = Trainer(
        small_vae(), optax.adam(1e-3), poisoned_loss, TrainConfig(epochs=1), workdir=tmp_path
    )
    trainer.fit(images, labels, progress=False)
    good = params_of(trainer)

    trainer = Trainer(
        small_vae(), optax.adam(1e-3), poisoned_loss, TrainConfig(epochs=2), workdir=tmp_path
    )
    # 4 steps per epoch: the first step of epoch 2 is step 4.
    with pytest.raises(NonFiniteLossError, match=r"at step 4 \(epoch 2, step 0 of 4\)"):
        trainer.fit(images, np.full_like(labels, 10), progress=False)
    # The in-memory state is the last good one too.
    for a, b in zip(good, params_of(trainer), strict=True):
        np.testing.assert_array_equal(a, b)
    restored = Trainer(small_vae(), optax.adam(1e-3), LOSS, TrainConfig(epochs=2), workdir=tmp_path)
    assert restored.restore_latest() and restored.epochs_done == 1
    for a, b in zip(good, params_of(restored), strict=True):
        np.testing.assert_array_equal(a, b)
    # Diverging in the first epoch leaves nothing saved, and the message says so.
    fresh = Trainer(
        small_vae(), optax.adam(1e-3), poisoned_loss, TrainConfig(epochs=1), workdir=tmp_path / "b"
    )
    with pytest.raises(NonFiniteLossError, match="No epoch had completed") as error:
        fresh.fit(images, np.full_like(labels, 10), progress=False)
    assert "checkpoint" not in str(error.value)
    assert not fresh.restore_latest()


# ------------------------------------------------------------------------- optimisers


def test_burda_schedule_and_optimizer_configs():
    schedule = burda_learning_rate(steps_per_epoch=10)
    for step, stage in [(0, 0), (9, 0), (10, 1), (39, 1), (40, 2), (32_800, 7)]:
        np.testing.assert_allclose(schedule(step), 1e-3 * 10 ** (-stage / 7), rtol=1e-6)
    train = TrainConfig(epochs=2, learning_rate=1e-2)
    for name in ("constant", "cosine", "burda"):
        tx = make_optimizer(OptimizerConfig(schedule=name), train, steps_per_epoch=5)
        params = {"w": jnp.ones(3)}
        updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
        # Adam's first step moves every weight by the learning rate (times the sign).
        np.testing.assert_allclose(updates["w"], -1e-2, rtol=1e-3)
    with pytest.raises(ConfigError, match="schedule"):
        OptimizerConfig(schedule="step")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": 1e5}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"binarization": "otsu"}, "binarization"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_train_config_rejects_bad_values(overrides, field):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**overrides)
    assert error.value.field == field
    if field == "learning_rate":  # the message states the whole rule
        assert "positive number below 1000" in str(error.value)


# ----------------------------------------------------------------- batched evaluation


def _row_sums(model, x, *, key):
    del key
    return jnp.sum(model(x), axis=-1)


def test_map_batches_pads_and_trims():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (7, 3))
    out = evaluation.map_batches(_row_sums, model, x, batch_size=3)
    np.testing.assert_allclose(out, jnp.sum(model(x), -1), rtol=1e-6)
    with pytest.raises(ValueError, match="leading"):
        evaluation.map_batches(_row_sums, model, x, jnp.zeros(6), batch_size=3)
    with pytest.raises(ValueError, match="batch_size"):
        evaluation.map_batches(_row_sums, model, x, batch_size=0)


def test_second_evaluation_compiles_nothing(caplog):
    model = small_vae()
    x = mnist.fixed_binarization(
        np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8), seed=0
    )
    key = jax.random.key(0)

    def evaluate():
        vae.evaluate_elbo(model, x, None, key, batch_size=128)
        vae.iwae_per_example(model, x, None, key, num_samples=4, batch_size=128)
        vae.encoder_means(model, x, batch_size=128)

    evaluate()  # compiles
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        caplog.clear()
        evaluate()
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [m for m in compiled if "_map_batches" in m], compiled


# --------------------------------------------------------------------- binarisation


def test_bernoulli_pixels_match_their_probabilities():
    levels = np.arange(256, dtype=np.uint8)
    images = np.tile(levels, (4000, 1))
    draws = np.asarray(mnist.bernoulli_pixels(jax.random.key(1), images))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert np.all(draws[:, 0] == 0) and np.all(draws[:, 255] == 1)
    # Each level's frequency within 5 standard errors of pixel / 255 (plus the 8e-6 bound).
    p = levels / 255.0
    se = np.sqrt(p * (1 - p) / images.shape[0])
    assert np.all(np.abs(draws.mean(0) - p) <= 5 * se + 8e-6)
    # The exact probability of each level, from the thresholds, is within 2^-17 of p.
    thresholds = (levels.astype(np.int64) * 65536 + 127) // 255
    assert np.max(np.abs(thresholds / 65536 - p)) <= 2.0**-17


def test_bernoulli_pixels_shapes_keys_and_jit():
    key = jax.random.key(3)
    for shape in [(5,), (4, 28, 28), (3, 7)]:
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        eager = mnist.bernoulli_pixels(key, images)
        assert eager.shape == shape and eager.dtype == jnp.float32
        np.testing.assert_array_equal(eager, jax.jit(mnist.bernoulli_pixels)(key, images))
    images = np.full((2, 28, 28), 128, np.uint8)
    assert np.any(
        mnist.bernoulli_pixels(jax.random.key(1), images)
        != mnist.bernoulli_pixels(jax.random.key(2), images)
    )
    with pytest.raises(TypeError, match="uint8"):
        mnist.bernoulli_pixels(key, np.zeros((2, 3), np.float32))
