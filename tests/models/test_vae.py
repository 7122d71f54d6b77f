"""The VAE: its bounds on real MNIST, training, checkpoints, the NaN guard and variants."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genmath import latent
from models import vae
from models.mnist import fixed_binarization
from models.probe import fit_linear_probe, probe_accuracy
from models.training import NonFiniteLossError, TrainConfig, Trainer

# The factorized (pixel-independent) Bernoulli model's test NLL: the bar a VAE must clear.
FACTORIZED_NLL = 205.8


def tol(dtype) -> float:
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


def params_of(trainer: Trainer) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))]


def small_vae(**overrides) -> vae.VAE:
    config = vae.VAEConfig(**{"latent_dim": 4, "hidden": (32,), **overrides})
    return vae.VAE(config, rngs=nnx.Rngs(params=jax.random.key(0)))


# ---------------------------------------------------------------- trained on real MNIST


@pytest.fixture(scope="module")
def trained(mnist):
    """The Flax-example VAE after one epoch of 40,000 images (312 steps of 128)."""
    model = vae.VAE(vae.preset("flax").model, rngs=nnx.Rngs(params=jax.random.key(0)))
    trainer = Trainer(model, optax.adam(1e-3), vae.loss_fn, TrainConfig(epochs=1, seed=0))
    history = trainer.fit(mnist.train_images[:40_000], mnist.train_labels[:40_000],
                          progress=False)
    x_test = fixed_binarization(mnist.test_images[:2000], seed=0)
    return trainer.model, history, x_test, jnp.asarray(mnist.test_labels[:2000])


def test_a_few_hundred_steps_beat_the_factorized_model(trained):
    model, history, x_test, y_test = trained
    terms = vae.evaluate_elbo(model, x_test, y_test, jax.random.key(1))
    neg_elbo = -terms["elbo"]
    assert neg_elbo < 160.0 < FACTORIZED_NLL, terms
    assert history[0]["neg_elbo"] < FACTORIZED_NLL
    # The two terms are reported separately and add up to the bound.
    assert terms["kl"] > 0.0
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-5)


def test_iwae_bound_is_at_least_the_mean_log_weight_on_the_same_samples(trained):
    model, _, x_test, y_test = trained
    log_w = jax.jit(vae.log_weights, static_argnums=4)(
        model, x_test[:200], y_test[:200], jax.random.key(2), 50
    )
    assert log_w.shape == (50, 200)
    bound = latent.iwae_bound(log_w, axis=0)
    # log-mean-exp >= mean (Jensen), example by example.
    assert np.all(np.asarray(bound) >= np.asarray(jnp.mean(log_w, axis=0)) - 1e-4)


def test_iwae_bound_grows_with_k_and_exceeds_the_elbo(trained):
    model, _, x_test, y_test = trained
    x, y = x_test[:500], y_test[:500]
    key = jax.random.key(3)
    bounds = {k: np.asarray(vae.iwae_per_example(model, x, y, key, num_samples=k))
              for k in (1, 10, 100)}
    elbo = np.asarray(vae.elbo(model, x, y, jax.random.key(4)).elbo)

    def non_decreasing_within_mc_error(lower, upper):
        diff = upper - lower
        return diff.mean() >= -3.0 * diff.std() / math.sqrt(diff.size)

    assert non_decreasing_within_mc_error(bounds[1], bounds[10])
    assert non_decreasing_within_mc_error(bounds[10], bounds[100])
    assert non_decreasing_within_mc_error(elbo, bounds[100])
    # The gain from 1 to 100 samples is real, not only within noise.
    assert bounds[100].mean() > bounds[1].mean()
    nll = vae.evaluate_log_likelihood(model, x, y, key, num_samples=100)
    np.testing.assert_allclose(nll["nll_nats"], -bounds[100].mean(), rtol=1e-5)
    np.testing.assert_allclose(nll["bits_per_dim"], nll["nll_nats"] / (784 * math.log(2)),
                               rtol=1e-5)


def test_iwae_chunking_does_not_change_the_bound(trained):
    model, _, x_test, y_test = trained
    x, y, key = x_test[:64], y_test[:64], jax.random.key(5)
    one_chunk = vae.iwae_per_example(model, x, y, key, num_samples=20, batch_size=64)
    # Smaller chunks draw other samples, so compare within MC error; padding must not matter.
    chunked = vae.iwae_per_example(model, x, y, key, num_samples=20, batch_size=50, max_chunk=4)
    assert one_chunk.shape == chunked.shape == (64,)
    assert abs(float(jnp.mean(one_chunk - chunked))) < 1.0


def test_linear_probe_on_encoder_means(trained, mnist):
    model, _, x_test, y_test = trained
    x_train = fixed_binarization(mnist.train_images[:10_000], seed=1)
    y_train = jnp.asarray(mnist.train_labels[:10_000])
    train_features = vae.encoder_means(model, x_train, y_train)
    test_features = vae.encoder_means(model, x_test, y_test)
    assert train_features.shape == (10_000, 20)
    probe = fit_linear_probe(train_features, y_train, steps=300)
    accuracy = probe_accuracy(probe, test_features, y_test)
    assert accuracy > 0.8, accuracy


# ------------------------------------------------------------- checkpoints and NaN guard


def test_resume_from_checkpoint_gives_the_same_parameters(mnist, tmp_path):
    images, labels = mnist.train_images[:512], mnist.train_labels[:512]
    straight = Trainer(small_vae(), optax.adam(1e-3), vae.loss_fn, TrainConfig(epochs=2),
                       workdir=tmp_path / "straight")
    straight.fit(images, labels, progress=False)

    first = Trainer(small_vae(), optax.adam(1e-3), vae.loss_fn, TrainConfig(epochs=1),
                    workdir=tmp_path / "resumed")
    first.fit(images, labels, progress=False)
    # A fresh process would start from other parameters; resuming must overwrite them.
    other_init = vae.VAE(small_vae().config, rngs=nnx.Rngs(params=jax.random.key(7)))
    resumed = Trainer(other_init, optax.adam(1e-3), vae.loss_fn, TrainConfig(epochs=2),
                      workdir=tmp_path / "resumed")
    assert resumed.restore_latest() and resumed.epochs_done == 1
    for a, b in zip(params_of(first), params_of(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    resumed.fit(images, labels, progress=False)
    assert resumed.epochs_done == 2
    for a, b in zip(params_of(straight), params_of(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(mnist, tmp_path):
    def poisoned_loss(model, x, labels, key):
        loss, metrics = vae.loss_fn(model, x, labels, key)
        # Label 10 does not exist: a batch carrying it makes the loss NaN.
        return loss + jnp.where(jnp.any(labels == 10), jnp.nan, 0.0), metrics

    images, labels = mnist.train_images[:512], mnist.train_labels[:512]
    trainer = Trainer(small_vae(), optax.adam(1e-3), poisoned_loss, TrainConfig(epochs=1),
                      workdir=tmp_path)
    trainer.fit(images, labels, progress=False)
    good = params_of(trainer)

    trainer = Trainer(small_vae(), optax.adam(1e-3), poisoned_loss, TrainConfig(epochs=2),
                      workdir=tmp_path)
    # 4 steps per epoch: the first step of epoch 2 is step 4.
    with pytest.raises(NonFiniteLossError, match=r"at step 4 \(epoch 2, step 0 of 4\)"):
        trainer.fit(images, np.full_like(labels, 10), progress=False)
    # The in-memory state is the last good one too.
    for a, b in zip(good, params_of(trainer), strict=True):
        np.testing.assert_array_equal(a, b)
    restored = Trainer(small_vae(), optax.adam(1e-3), vae.loss_fn, TrainConfig(epochs=2),
                       workdir=tmp_path)
    assert restored.restore_latest() and restored.epochs_done == 1
    for a, b in zip(good, params_of(restored), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ likelihoods, variants


@pytest.mark.parametrize("variance", [1.0, 0.1])
def test_fixed_variance_gaussian_loss_is_a_scaled_mse(variance):
    model = small_vae(likelihood="gaussian", fixed_variance=variance)
    keys = jax.random.split(jax.random.key(8), 2)
    x = jax.random.uniform(keys[0], (6, 784))
    loc = jax.random.uniform(keys[1], (6, 784))
    nll = -jax.jit(lambda x, loc: model.log_likelihood(x, loc))(x, loc)
    mse = jnp.mean((x - loc) ** 2, axis=-1)
    constant = 0.5 * 784 * math.log(2 * math.pi * variance)
    np.testing.assert_allclose(nll, constant + 784 / (2 * variance) * mse,
                               rtol=10 * tol(nll.dtype))
    # Only the MSE depends on the decoder mean: minimising one minimises the other.
    assert np.argmin(nll) == np.argmin(mse)


@pytest.mark.parametrize(("scale", "shape"), [("pixel", (784,)), ("global", ())])
def test_learned_gaussian_scale(scale, shape):
    model = small_vae(likelihood="gaussian", scale=scale)
    log_scale = model.decoder_log_scale()
    assert log_scale.shape == shape
    np.testing.assert_allclose(log_scale, 0.0, atol=1e-6)  # starts at unit scale
    x = jnp.full((3, 28, 28), 0.5)
    loss, metrics = vae.loss_fn(model, x, jnp.zeros(3, jnp.int32), jax.random.key(0))
    assert np.isfinite(loss) and set(metrics) == {"neg_elbo", "reconstruction", "kl"}


def test_conditional_decoder_draws_the_chosen_digit():
    model = small_vae(conditional=True)
    images = model.generate(jax.random.key(0), 10, jnp.arange(10))
    assert images.shape == (10, 28, 28)
    assert np.all((np.asarray(images) >= 0) & (np.asarray(images) <= 1))
    z = jnp.zeros((2, 4))
    three, seven = model.decode(z, jnp.array([3, 3])), model.decode(z, jnp.array([7, 7]))
    assert not np.allclose(three, seven)  # the label steers the decoder
    np.testing.assert_array_equal(three[0], three[1])
    loc_3, _ = model.encode(jnp.zeros((1, 784)), jnp.array([3]))
    loc_7, _ = model.encode(jnp.zeros((1, 784)), jnp.array([7]))
    assert not np.allclose(loc_3, loc_7)  # and the encoder sees it too
    with pytest.raises(ValueError, match="labels"):
        model.generate(jax.random.key(0), 10)


def test_iwae_objective_reports_both_bounds():
    model = small_vae(objective="iwae", num_samples=5)
    x = (jax.random.uniform(jax.random.key(1), (8, 28, 28)) > 0.5).astype(jnp.float32)
    loss, metrics = jax.jit(vae.loss_fn)(model, x, jnp.zeros(8, jnp.int32), jax.random.key(2))
    assert loss == metrics["neg_iwae"]
    assert set(metrics) == {"neg_elbo", "reconstruction", "kl", "neg_iwae"}


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_conv_vae_shapes_with_leading_dimensions(conditional):
    model = small_vae(architecture="conv", conv_channels=(4, 8), conditional=conditional)
    assert isinstance(model.encoder, vae.ConvEncoder)
    assert isinstance(model.decoder, vae.ConvDecoder)
    key = jax.random.key(9)
    for shape in [(5, 28, 28), (2, 3, 784)]:
        batch = shape[:-2] if shape[-1] == 28 else shape[:-1]
        x = jax.random.uniform(key, shape)
        labels = jnp.arange(math.prod(batch)).reshape(batch) % 10 if conditional else None
        loc, log_scale = model.encode(x, labels)
        assert loc.shape == log_scale.shape == (*batch, 4)
        # K samples of z in front of the batch, as in the bounds.
        out = model.decode(jnp.stack([loc, loc, loc]), labels)
        assert out.shape == (3, *batch, 784)
        np.testing.assert_allclose(out[0], model.decode(loc, labels), rtol=1e-5, atol=1e-5)
        assert model.reconstruct(x, labels).shape == (*batch, 28, 28)
    # One example flattened with its batch gives the same code as on its own.
    x = jax.random.uniform(key, (5, 28, 28))
    labels = jnp.arange(5) if conditional else None
    loc, _ = model.encode(x, labels)
    loc_0, _ = model.encode(x[0], labels[0] if conditional else None)
    np.testing.assert_allclose(loc_0, loc[0], rtol=1e-5, atol=1e-5)
    if conditional:
        z = jnp.zeros((1, 4))
        assert not np.allclose(model.decode(z, jnp.array([3])), model.decode(z, jnp.array([7])))
        assert not np.allclose(model.encode(x[:1], jnp.array([3]))[0],
                               model.encode(x[:1], jnp.array([7]))[0])


def test_conv_vae_training_lowers_the_negative_elbo(mnist):
    model = small_vae(architecture="conv", conv_channels=(4, 8), conditional=True)
    images, labels = mnist.train_images[:256], mnist.train_labels[:256]
    x, y, key = fixed_binarization(images, seed=0), jnp.asarray(labels), jax.random.key(10)
    neg_elbo = jax.jit(lambda model: -jnp.mean(vae.elbo(model, x, y, key).elbo))
    before = float(neg_elbo(model))
    # 4 epochs of 8 jit-compiled Adam steps on batches of 32.
    trainer = Trainer(model, optax.adam(3e-3), vae.loss_fn,
                      TrainConfig(epochs=4, batch_size=32, seed=0))
    history = trainer.fit(images, labels, progress=False)
    after = float(neg_elbo(trainer.model))
    assert np.isfinite(before) and np.isfinite(after)
    assert after < before - 50.0, (before, after)
    assert history[-1]["neg_elbo"] < history[0]["neg_elbo"]


def test_latent_grid_covers_the_prior_quantiles():
    grid = vae.latent_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(jnp.sort(jnp.unique(grid[:, 0])),
                               jax.scipy.stats.norm.ppf(jnp.array([1, 3, 5, 7]) / 8), rtol=1e-5)


# --------------------------------------------------------------------- configs and errors


def test_presets():
    burda, flax_example = vae.preset("burda"), vae.preset("flax")
    assert burda.model.hidden == (200, 200) and burda.model.latent_dim == 50
    assert burda.model.activation == "tanh" and burda.train.binarization == "dynamic"
    assert flax_example.model.hidden == (500,) and flax_example.model.latent_dim == 20
    assert flax_example.model.activation == "relu"
    assert (flax_example.train.batch_size, flax_example.train.learning_rate) == (128, 1e-3)
    schedule = vae.burda_learning_rate(steps_per_epoch=10)
    for step, stage in [(0, 0), (9, 0), (10, 1), (39, 1), (40, 2), (32_800, 7)]:
        np.testing.assert_allclose(schedule(step), 1e-3 * 10 ** (-stage / 7), rtol=1e-6)
    with pytest.raises(ValueError, match="name"):
        vae.preset("kingma")


@pytest.mark.parametrize(
    ("overrides", "name"),
    [({"likelihood": "poisson"}, "likelihood"), ({"latent_dim": 0}, "latent_dim"),
     ({"fixed_variance": 1.0}, "fixed_variance"), ({"activation": "sin"}, "activation"),
     ({"likelihood": "gaussian", "fixed_variance": -1.0}, "fixed_variance"),
     ({"objective": "vi"}, "objective"), ({"hidden": (0,)}, "hidden"),
     ({"architecture": "foo"}, "architecture"), ({"conv_channels": (0, 8)}, "conv_channels"),
     ({"conv_channels": ()}, "conv_channels"), ({"conv_channels": (4, 8, 16)}, "conv_channels")],
)
def test_bad_config_names_the_field(overrides, name):
    with pytest.raises(ValueError, match=name):
        vae.VAEConfig(**overrides)


def test_bad_inputs_name_the_argument():
    model = small_vae()
    with pytest.raises(ValueError, match="`x`"):
        model.encode(jnp.zeros((2, 27, 28)))
    with pytest.raises(ValueError, match="`labels`"):
        vae.evaluate_elbo(model, jnp.zeros((4, 784)), jnp.zeros(3, jnp.int32), jax.random.key(0))
    with pytest.raises(ValueError, match="`num_samples`"):
        vae.iwae_per_example(model, jnp.zeros((4, 784)), None, jax.random.key(0), num_samples=0)


# ------------------------------------------------------------------------ the example


def test_example_flags_override_the_architecture():
    from examples import vae as example

    model_config, _, _ = example.build_configs(example.parse_args([]))
    assert model_config.architecture == "mlp" and model_config.conv_channels == (32, 64)
    model_config, _, _ = example.build_configs(
        example.parse_args(["--architecture", "conv", "--conv-channels", "16"])
    )
    assert model_config.architecture == "conv" and model_config.conv_channels == (16,)
    assert model_config.hidden == vae.preset("flax").model.hidden


@pytest.mark.parametrize(
    ("flags", "pictures"),
    [
        (["--latent-dim", "2"], {"samples", "reconstructions", "manifold", "training_curve"}),
        (["--conditional", "--likelihood", "gaussian", "--fixed-variance", "0.1",
          "--objective", "iwae", "--num-samples", "3", "--hidden", "64", "32"],
         {"samples", "reconstructions", "training_curve"}),
    ],
    ids=["bernoulli-2d", "conditional-gaussian-iwae"],
)
def test_example_runs_end_to_end(mnist, mnist_dir, tfds_dir, tmp_path, monkeypatch, flags,
                                 pictures):
    from examples import vae as example

    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    workdir = tmp_path / "run"
    metrics = example.main([
        "--data-dir", str(mnist_dir), "--workdir", str(workdir), "--epochs", "1",
        "--train-examples", "1024", "--test-examples", "300", "--eval-samples", "8",
        "--probe-steps", "20", "--no-progress", *flags,
    ])
    stored = json.loads((workdir / "metrics.json").read_text())
    assert stored["test_nll_nats"] == pytest.approx(metrics["test_nll_nats"])
    for key in ("test_nll_nats", "test_bits_per_dim", "test_neg_elbo_nats",
                "test_reconstruction_nats", "test_kl_nats", "probe_test_accuracy",
                "wall_time_s", "train_seconds_per_epoch"):
        assert np.isfinite(stored[key]), key
    assert stored["eval_samples"] == 8 and stored["seed"] == 0 and stored["device"]
    assert len(stored["history"]) == 1 and "test_neg_elbo" in stored["history"][0]
    assert stored["binarization"] == ("grey" if "gaussian" in flags else "dynamic")
    for name in pictures:
        assert (workdir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (workdir / "train_log.csv").exists()
