"""The VAE's parts and bounds on synthetic data: likelihoods, networks, conditioning, the
training recipe (output bias, KL warm-up, free bits), active units and the config checks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from genmath import bernoulli, latent, normal
from models import likelihoods, networks, vae
from models.mnist import fixed_binarization
from models.training import Batch, ConfigError, TrainConfig, Trainer


def tol(dtype) -> float:
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


def small_vae(pixel_means=None, **overrides) -> vae.VAE:
    config = vae.VAEConfig(**{"latent_dim": 4, "hidden": (32,), **overrides})
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)), pixel_means=pixel_means)


def binary_batch(n: int = 8, seed: int = 1) -> Batch:
    x = (jax.random.uniform(jax.random.key(seed), (n, 28, 28)) > 0.5).astype(jnp.float32)
    return Batch(x, jnp.arange(n, dtype=jnp.int32) % 10)


# ------------------------------------------------------------------------------ bounds


def test_elbo_is_reconstruction_minus_analytic_kl():
    model, batch = small_vae(), binary_batch()
    key = jax.random.key(2)
    terms = jax.jit(vae.elbo)(model, batch, key)
    chex_shape = (batch.images.shape[0],)
    assert terms.elbo.shape == terms.kl.shape == terms.reconstruction.shape == chex_shape
    # The same draw by hand: encoder, reparameterised z, decoder, genmath terms.
    loc, log_scale = model.encode(batch.images)
    z = normal.sample(key, loc=loc, log_scale=log_scale, sample_shape=1)
    logits = model.decode(z)
    reconstruction = bernoulli.log_prob(batch.images.reshape(-1, 784), logits=logits).mean(0)
    kl = normal.kl_standard(loc=loc, log_scale=log_scale)
    np.testing.assert_allclose(terms.reconstruction, reconstruction, rtol=1e-5)
    np.testing.assert_allclose(terms.kl, kl, rtol=1e-5)
    np.testing.assert_allclose(terms.elbo, reconstruction - kl, rtol=1e-5)


def test_iwae_bound_is_at_least_the_mean_log_weight_on_the_same_samples():
    model, batch = small_vae(), binary_batch(20)
    log_w = jax.jit(vae.log_weights, static_argnames="num_samples")(
        model, batch, jax.random.key(2), num_samples=50
    )
    assert log_w.shape == (50, 20)
    bound = latent.iwae_bound(log_w, axis=0)
    # log-mean-exp >= mean (Jensen), example by example.
    assert np.all(np.asarray(bound) >= np.asarray(jnp.mean(log_w, axis=0)) - 1e-4)
    np.testing.assert_allclose(
        vae.iwae(model, batch, jax.random.key(2), num_samples=50), bound, rtol=1e-6
    )


def test_iwae_chunking_and_padding_do_not_change_the_bound():
    # A model whose every importance weight is log p(x), whatever z is drawn: the encoder
    # gives the prior (outputs 0: loc 0, log-scale 0) and the decoder ignores z (its input
    # weights 0; pixel logits from random output biases, so each image has its own value).
    model, batch = small_vae(), binary_batch(64)
    encoder_out, decoder_in = model.encoder.layers[-1], model.decoder.layers[0]
    encoder_out.kernel[...] = jnp.zeros_like(encoder_out.kernel[...])
    encoder_out.bias[...] = jnp.zeros_like(encoder_out.bias[...])
    decoder_in.kernel[...] = jnp.zeros_like(decoder_in.kernel[...])
    out_bias = model.decoder.layers[-1].bias
    out_bias[...] = jax.random.normal(jax.random.key(7), out_bias[...].shape)
    logits = model.decoder(jnp.zeros((1, 4)))[0]
    exact = bernoulli.log_prob(batch.images.reshape(64, 784), logits=logits)
    x, y, key = batch.images, batch.labels, jax.random.key(5)
    # One batch, one chunk; and batches of 50 (the second padded) in chunks of 4 samples.
    one_chunk = vae.iwae_per_example(model, x, y, key, num_samples=20, batch_size=64)
    chunked = vae.iwae_per_example(model, x, y, key, num_samples=20, batch_size=50, max_chunk=4)
    assert one_chunk.shape == chunked.shape == (64,)
    assert np.unique(np.asarray(exact)).size == 64  # a row in the wrong place would show
    np.testing.assert_allclose(one_chunk, exact, rtol=1e-6)
    np.testing.assert_allclose(chunked, exact, rtol=1e-6)


def test_nll_estimate_reports_its_standard_error():
    model, batch = small_vae(), binary_batch(100)
    key = jax.random.key(3)
    nll = vae.evaluate_log_likelihood(model, batch.images, None, key, num_samples=10)
    bound = np.asarray(
        vae.iwae_per_example(model, batch.images, None, key, num_samples=10), np.float64
    )
    np.testing.assert_allclose(nll["nll_nats"], -bound.mean(), rtol=1e-6)
    np.testing.assert_allclose(nll["nll_stderr_nats"], bound.std(ddof=1) / 10.0, rtol=1e-6)
    np.testing.assert_allclose(nll["bits_per_dim"], nll["nll_nats"] / (784 * math.log(2)))
    assert nll["num_samples"] == 10


# ----------------------------------------------------------------------- likelihoods


@pytest.mark.parametrize("variance", [1.0, 0.1])
def test_fixed_variance_gaussian_loss_is_a_scaled_mse(variance):
    model = small_vae(likelihood="gaussian", likelihood_options={"fixed_variance": variance})
    keys = jax.random.split(jax.random.key(8), 2)
    x = jax.random.uniform(keys[0], (6, 784))
    mean_logits = jax.random.normal(keys[1], (6, 784))
    nll = -jax.jit(model.likelihood.log_prob)(x, mean_logits)
    mse = jnp.mean((x - jax.nn.sigmoid(mean_logits)) ** 2, axis=-1)
    constant = 0.5 * 784 * math.log(2 * math.pi * variance)
    np.testing.assert_allclose(nll, constant + 784 / (2 * variance) * mse, rtol=10 * tol(nll.dtype))
    # Only the MSE depends on the decoder mean: minimising one minimises the other.
    assert np.argmin(nll) == np.argmin(mse)


@pytest.mark.parametrize(("scale", "shape"), [("pixel", (784,)), ("global", ())])
def test_learned_gaussian_scale(scale, shape):
    model = small_vae(likelihood="gaussian", likelihood_options={"scale": scale})
    log_scale = model.likelihood.log_scale()
    assert log_scale.shape == shape
    np.testing.assert_allclose(log_scale, 0.0, atol=1e-6)  # starts at unit scale
    loss_fn = vae.make_loss_fn(vae.Objective())
    batch = Batch(jnp.full((3, 28, 28), 0.5), jnp.zeros(3, jnp.int32))
    loss, metrics = loss_fn(model, batch, jax.random.key(0), 0)
    assert np.isfinite(loss) and set(metrics) == {"neg_elbo", "reconstruction", "kl"}
    assert model.likelihood.kind.startswith("log-density")


@pytest.mark.parametrize("name", sorted(likelihoods.LIKELIHOODS))
def test_every_likelihood_keeps_its_interface(name):
    cls = likelihoods.LIKELIHOODS[name]
    model = small_vae(likelihood=name)
    assert model.likelihood.name == name and cls.binarizations
    params = model.decode(jnp.zeros((5, 4)))
    assert params.shape == (5, 784 * model.likelihood.outputs_per_pixel)
    # A valid value of the data it models: 1 (binary), 0.5 (grey) or 128 (8-bit).
    value = {"dynamic": 1.0, "grey": 0.5, "8bit": 128.0}[cls.binarizations[0]]
    x = jnp.full((5, 784), value)
    key = {"key": jax.random.key(1)} if cls.needs_key else {}
    log_prob = model.likelihood.log_prob(x, params, **key)
    assert log_prob.shape == (5,) and np.all(np.isfinite(log_prob))
    mean = model.likelihood.mean(params)
    assert mean.shape == (5, 784)
    assert np.all((mean >= 0) & (mean <= model.likelihood.white))
    assert model.likelihood.sample(jax.random.key(0), params).shape == (5, 784)


def test_a_new_likelihood_is_one_registered_class():
    @likelihoods.register("test-laplace")
    class Laplace(likelihoods.Likelihood):
        binarizations = ("grey",)

        def __init__(self, *, rngs=None):
            del rngs

        def log_prob(self, x, params):
            return jnp.sum(-jnp.abs(x - jax.nn.sigmoid(params)) - math.log(2.0), axis=-1)

        def mean(self, params):
            return jax.nn.sigmoid(params)

        def sample(self, key, params):
            return self.mean(params) + jax.random.laplace(key, params.shape)

    try:
        model = small_vae(likelihood="test-laplace")
        batch = Batch(jnp.full((4, 28, 28), 0.3), jnp.zeros(4, jnp.int32))
        terms = vae.elbo(model, batch, jax.random.key(0))
        assert terms.elbo.shape == (4,) and np.all(np.isfinite(terms.elbo))
    finally:
        del likelihoods.LIKELIHOODS["test-laplace"]


def test_bernoulli_output_bias_starts_at_the_data_means():
    means = np.linspace(0.0, 1.0, 784)
    model = small_vae(pixel_means=means)
    bias = np.asarray(model.decoder.output_layer.bias[...])
    clipped = np.clip(means, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(bias, np.log(clipped / (1 - clipped)), rtol=1e-5)
    # Off: the bias stays at Flax's default, zero.
    off = small_vae(pixel_means=means, output_bias_init=False)
    np.testing.assert_array_equal(off.decoder.output_layer.bias[...], 0.0)
    # A transposed convolution has one bias per channel: the mean logit.
    conv = small_vae(pixel_means=means, architecture="conv", conv_channels=(4,))
    np.testing.assert_allclose(
        conv.decoder.output_layer.bias[...], [np.mean(np.log(clipped / (1 - clipped)))], rtol=1e-5
    )


# ----------------------------------------------------------------------- conditioning


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


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_conv_vae_shapes_with_leading_dimensions(conditional):
    model = small_vae(architecture="conv", conv_channels=(4, 8), conditional=conditional)
    assert isinstance(model.encoder, networks.ConvEncoder)
    assert isinstance(model.decoder, networks.ConvDecoder)
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


def test_conv_vae_training_lowers_the_negative_elbo(synthetic_mnist):
    model = small_vae(architecture="conv", conv_channels=(4, 8), conditional=True)
    images, labels = synthetic_mnist.train_images[:256], synthetic_mnist.train_labels[:256]
    batch = Batch(fixed_binarization(images, seed=0), jnp.asarray(labels))
    neg_elbo = jax.jit(lambda model: -jnp.mean(vae.elbo(model, batch, jax.random.key(10)).elbo))
    before = float(neg_elbo(model))
    trainer = Trainer(
        model,
        optax.adam(3e-3),
        vae.make_loss_fn(vae.Objective()),
        TrainConfig(epochs=4, batch_size=32, seed=0),
    )
    history = trainer.fit(images, labels, progress=False)
    after = float(neg_elbo(trainer.model))
    assert np.isfinite(before) and np.isfinite(after)
    assert after < before - 50.0, (before, after)
    assert history[-1]["neg_elbo"] < history[0]["neg_elbo"]


# ------------------------------------------------------------------- training recipe


def test_iwae_objective_reports_both_bounds():
    loss_fn = vae.make_loss_fn(vae.Objective(kind="iwae", num_samples=5))
    loss, metrics = jax.jit(loss_fn)(small_vae(), binary_batch(), jax.random.key(2), 0)
    assert loss == metrics["neg_iwae"]
    assert set(metrics) == {"neg_elbo", "reconstruction", "kl", "neg_iwae"}


def test_kl_warmup_weights_the_kl_by_an_optax_linear_schedule():
    model, batch, key = small_vae(), binary_batch(), jax.random.key(3)
    loss_fn = jax.jit(vae.make_loss_fn(vae.Objective(kl_warmup_epochs=2), steps_per_epoch=5))
    for step, weight in [(0, 0.0), (5, 0.5), (10, 1.0), (100, 1.0)]:
        loss, metrics = loss_fn(model, batch, key, step)
        expected = metrics["reconstruction"] + weight * metrics["kl"]
        np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # A warm-up shorter than a step still lasts one (rounded to 0 it had vanished).
    short = jax.jit(vae.make_loss_fn(vae.Objective(kl_warmup_epochs=0.05), steps_per_epoch=5))
    for step, weight in [(0, 0.0), (1, 1.0)]:
        loss, metrics = short(model, batch, key, step)
        expected = metrics["reconstruction"] + weight * metrics["kl"]
        np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # A product that is whole up to float rounding is not rounded up a step: the weight is
    # 1 at step 3300 (3300/3301 had it been rounded up; the KL, ~10 nats with the encoder's
    # outputs at 1, makes the difference 3e-3 against rounding of 5e-5).
    decimal = jax.jit(vae.make_loss_fn(vae.Objective(kl_warmup_epochs=1.1), steps_per_epoch=3000))
    wide = small_vae()
    wide.encoder.layers[-1].bias[...] = jnp.ones_like(wide.encoder.layers[-1].bias[...])
    for step, weight in [(3299, 3299 / 3300), (3300, 1.0)]:
        loss, metrics = decimal(wide, batch, key, step)
        assert metrics["kl"] > 5.0
        np.testing.assert_allclose(
            loss - metrics["reconstruction"], weight * metrics["kl"], rtol=0, atol=2e-4
        )
    # The reported ELBO is the unweighted bound throughout.
    _, metrics = loss_fn(model, batch, key, 0)
    np.testing.assert_allclose(
        metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"], rtol=1e-6
    )


def test_free_bits_floor_each_dimensions_batch_mean_kl():
    model, batch, key = small_vae(), binary_batch(), jax.random.key(4)
    lam = 0.5
    loss_fn = jax.jit(vae.make_loss_fn(vae.Objective(free_bits=lam)))
    loss, metrics = loss_fn(model, batch, key, 0)
    loc, log_scale = model.encode(batch.images)
    per_dim = normal.kl_standard(loc=loc, log_scale=log_scale, axis=()).mean(0)
    np.testing.assert_allclose(
        loss, metrics["reconstruction"] + np.sum(np.maximum(per_dim, lam)), rtol=1e-5
    )
    # At initialisation every dimension's KL is tiny, so the KL term is the floor itself ...
    assert np.all(per_dim < lam)
    # ... and a dimension under the floor gets no gradient from the KL term: the loss's
    # gradient is the reconstruction term's alone (same key, same draws).
    grads = jax.grad(lambda m: loss_fn(m, batch, key, 0)[0])(model)
    reconstruction = jax.grad(lambda m: loss_fn(m, batch, key, 0)[1]["reconstruction"])(model)
    pairs = zip(
        jax.tree.leaves(nnx.state(grads, nnx.Param)),
        jax.tree.leaves(nnx.state(reconstruction, nnx.Param)),
        strict=True,
    )
    for g, r in pairs:
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-7)


def test_training_with_the_recipe_runs_and_learns(synthetic_mnist):
    images, labels = synthetic_mnist.train_images, synthetic_mnist.train_labels
    model = small_vae(pixel_means=vae.pixel_means(images))
    objective = vae.Objective(kl_warmup_epochs=1, free_bits=0.1)
    trainer = Trainer(
        model,
        optax.adam(1e-3),
        vae.make_loss_fn(objective, steps_per_epoch=images.shape[0] // 128),
        TrainConfig(epochs=3),
    )
    history = trainer.fit(images, labels, progress=False)
    assert history[-1]["neg_elbo"] < history[0]["neg_elbo"]


def test_active_units_count_dimensions_whose_mean_varies():
    rng = np.random.default_rng(0)
    means = np.concatenate(
        [rng.normal(0, 1, (500, 3)), rng.normal(0, 0.05, (500, 2)), np.zeros((500, 1))], axis=1
    )
    assert vae.active_units(means) == 3
    assert vae.active_units(means, threshold=1e-3) == 5


# ------------------------------------------------------------------- configs and errors


def test_latent_grid_covers_the_prior_quantiles():
    grid = vae.latent_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(
        jnp.sort(jnp.unique(grid[:, 0])),
        jax.scipy.stats.norm.ppf(jnp.array([1, 3, 5, 7]) / 8),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"likelihood": "poisson"}, "likelihood"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"likelihood_options": {"fixed_variance": 1.0}}, "fixed_variance"),
        ({"activation": "sin"}, "activation"),
        (
            {"likelihood": "gaussian", "likelihood_options": {"fixed_variance": -1.0}},
            "fixed_variance",
        ),
        ({"likelihood": "gaussian", "likelihood_options": {"scale": "row"}}, "scale"),
        ({"hidden": (0,)}, "hidden"),
        ({"architecture": "foo"}, "architecture"),
        ({"conv_channels": (0, 8)}, "conv_channels"),
        ({"conv_channels": ()}, "conv_channels"),
        ({"conv_channels": (4, 8, 16)}, "conv_channels"),
    ],
)
def test_bad_config_names_the_field(overrides, name):
    with pytest.raises(ConfigError, match=name) as error:
        vae.VAEConfig(**overrides)
    assert error.value.field == name


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"kind": "vi"}, "objective"),
        ({"num_samples": 0}, "num_samples"),
        ({"kl_warmup_epochs": -1.0}, "kl_warmup_epochs"),
        ({"free_bits": float("nan")}, "free_bits"),
        ({"kind": "iwae", "free_bits": 1.0}, "objective"),
    ],
)
def test_bad_objective_names_the_field(overrides, name):
    with pytest.raises(ConfigError) as error:
        vae.Objective(**overrides)
    assert error.value.field == name


def test_bad_inputs_name_the_argument():
    model = small_vae()
    with pytest.raises(ValueError, match="`x`"):
        model.encode(jnp.zeros((2, 27, 28)))
    with pytest.raises(ValueError, match="`labels`"):
        vae.evaluate_elbo(model, jnp.zeros((4, 784)), jnp.zeros(3, jnp.int32), jax.random.key(0))
    with pytest.raises(ValueError, match="`num_samples`"):
        vae.iwae_per_example(model, jnp.zeros((4, 784)), None, jax.random.key(0), num_samples=0)
    with pytest.raises(TypeError, match="`labels`"):
        small_vae(conditional=True).encode(jnp.zeros((2, 784)), jnp.zeros(2))
