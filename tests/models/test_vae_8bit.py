"""The VAE's 8-bit likelihoods on synthetic data: the discretised logistic mixture and the
uniformly dequantised Gaussian against float64 scipy references, normalisation over the 256
levels, the dequantised bound below the exact discrete log-likelihood, the bounds over
(z, u) pairs, initialisation, extremes and gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads
from scipy import special, stats

from genmath import dequantize, latent, normal
from models import likelihoods, mnist, vae
from models.training import Batch, ConfigError

LOG_256 = math.log(256.0)


def softplus(v):
    return np.logaddexp(0.0, v)


def floored(raw, floor):
    return floor + softplus(np.asarray(raw, np.float64) - floor)


def mixture_params(rng, batch: int, components: int, *, loc_spread=0.7) -> np.ndarray:
    """Random raw decoder outputs for the mixture, laid out as the likelihood reads them."""
    logits = rng.normal(0.0, 2.0, (batch, 784, components))
    loc = rng.uniform(-loc_spread + 0.5, loc_spread + 0.5, (batch, 784, components))
    raw = rng.uniform(-6.0, -1.0, (batch, 784, components))
    return np.concatenate([logits, loc, raw], axis=-1).reshape(batch, -1)


def reference_mixture_pixel_log_prob(x, params, components) -> np.ndarray:
    """float64 scipy: log sum_k softmax(l)_k [F(b_k) - F(a_k)] per pixel, edge bins open."""
    per_pixel = np.asarray(params, np.float64).reshape(*np.shape(params)[:-1], 784, -1)
    logits, loc, raw = np.split(per_pixel, 3, axis=-1)
    scale = np.exp(floored(raw, likelihoods.MIN_LOG_SCALE_8BIT))
    x = np.asarray(x, np.float64)[..., None]
    lower = np.where(x > 0, (x - 0.5) / 255.0, -np.inf)
    upper = np.where(x < 255, (x + 0.5) / 255.0, np.inf)
    # The mass from the nearer tail, so it does not cancel: sf differences above the mean.
    right = lower > loc
    mass = np.where(
        right,
        stats.logistic.sf(lower, loc, scale) - stats.logistic.sf(upper, loc, scale),
        stats.logistic.cdf(upper, loc, scale) - stats.logistic.cdf(lower, loc, scale),
    )
    log_weights = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    return special.logsumexp(log_weights + np.log(mass), axis=-1)


def make_likelihood(name, **options):
    return likelihoods.make_likelihood(name, options, rngs=nnx.Rngs(0))


def small_vae(likelihood: str, pixel_means=None, seed: int = 0, **overrides) -> vae.VAE:
    config = vae.VAEConfig(latent_dim=4, hidden=(32,), likelihood=likelihood, **overrides)
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(seed)), pixel_means=pixel_means)


def pixels_8bit(rng, shape) -> np.ndarray:
    x = rng.integers(0, 256, shape)
    x.reshape(-1)[:4] = [0, 255, 1, 254]  # the edge levels and their neighbours
    return x


# ---------------------------------------------------------------- logistic mixture


@pytest.mark.parametrize("components", [1, 3])
def test_mixture_log_prob_matches_scipy(components):
    rng = np.random.default_rng(components)
    like = make_likelihood("logistic-mixture", components=components)
    assert like.outputs_per_pixel == 3 * components
    params = mixture_params(rng, 3, components)
    x = pixels_8bit(rng, (3, 784))
    got = jax.jit(like.log_prob)(jnp.asarray(x, jnp.float32), jnp.asarray(params, jnp.float32))
    want = reference_mixture_pixel_log_prob(x, params, components).sum(-1)
    assert got.shape == (3,) and got.dtype == jnp.float32
    # 784 float32 terms of a few nats each: relative rounding of the sum ~1e-6.
    np.testing.assert_allclose(got, want, rtol=2e-5)
    per_pixel = like.pixel_log_prob(jnp.asarray(x, jnp.float32), jnp.asarray(params, jnp.float32))
    np.testing.assert_allclose(per_pixel.sum(-1), got, rtol=1e-5)


def test_mixture_log_prob_float64():
    rng = np.random.default_rng(7)
    like = make_likelihood("logistic-mixture", components=2)
    params, x = mixture_params(rng, 2, 2), pixels_8bit(rng, (2, 784))
    with jax.enable_x64(True):
        got = jax.jit(like.log_prob)(jnp.asarray(x, jnp.float64), jnp.asarray(params))
        assert got.dtype == jnp.float64
    want = reference_mixture_pixel_log_prob(x, params, 2).sum(-1)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11)


@pytest.mark.parametrize("loc_spread", [0.7, 3.0], ids=["inside", "far-outside"])
def test_mixture_probabilities_over_the_256_levels_sum_to_one_per_pixel(loc_spread):
    rng = np.random.default_rng(1)
    like = make_likelihood("logistic-mixture", components=3)
    params = jnp.asarray(mixture_params(rng, 1, 3, loc_spread=loc_spread), jnp.float32)
    levels = jnp.broadcast_to(jnp.arange(256.0)[:, None], (256, 784))
    log_p = jax.jit(like.pixel_log_prob)(levels, params)  # (256 levels, 784 pixels)
    total = jax.nn.logsumexp(log_p, axis=0)
    np.testing.assert_allclose(total, 0.0, atol=2e-5)
    # The exact mean is the probability-weighted sum of the levels.
    brute_mean = jnp.sum(jnp.exp(log_p) * jnp.arange(256.0)[:, None], axis=0)
    np.testing.assert_allclose(jax.jit(like.mean)(params)[0], brute_mean, rtol=1e-4, atol=1e-3)


def test_mixture_samples_follow_the_level_probabilities():
    rng = np.random.default_rng(2)
    like = make_likelihood("logistic-mixture", components=3)
    params = jnp.asarray(mixture_params(rng, 1, 3), jnp.float32)
    draws = jax.jit(jax.vmap(like.sample, in_axes=(0, None)))(
        jax.random.split(jax.random.key(3), 2000), params
    )  # (2000, 1, 784)
    assert draws.shape == (2000, 1, 784) and draws.dtype == jnp.float32
    assert np.all((draws >= 0) & (draws <= 255) & (draws == jnp.round(draws)))
    # Sample mean per pixel vs the exact mean: the largest of 784 z-scores under 5.5.
    levels = jnp.broadcast_to(jnp.arange(256.0)[:, None], (256, 784))
    probs = jnp.exp(like.pixel_log_prob(levels, params))
    mean = jnp.sum(probs * jnp.arange(256.0)[:, None], 0)
    std = jnp.sqrt(jnp.sum(probs * (jnp.arange(256.0)[:, None] - mean) ** 2, 0))
    # (+1e-3 grey levels: float32 rounding of the means where a pixel is nearly certain)
    z_scores = (draws[:, 0].mean(0) - mean) / (std / math.sqrt(2000) + 1e-3)
    assert float(jnp.max(jnp.abs(z_scores))) < 5.5


def test_mixture_is_finite_with_finite_gradients_at_the_extremes():
    like = make_likelihood("logistic-mixture", components=2)
    per_pixel = np.zeros((784, 6), np.float32)
    extremes = [(1e4, -1e4), (-30.0, 30.0), (5.0, -4.0)]  # logits, locs, raw log-scales
    for i, (a, b) in enumerate(extremes):
        per_pixel[:, 2 * i], per_pixel[:, 2 * i + 1] = a, b
    params = jnp.asarray(per_pixel.reshape(1, -1))
    x = jnp.asarray(np.resize([0.0, 255.0, 128.0, 1.0], (1, 784)), jnp.float32)
    value, grad = jax.jit(jax.value_and_grad(lambda p: like.log_prob(x, p).sum()))(params)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # The floor: a raw log-scale of -30 is used as about -8.
    _, _, log_scale = like.mixture(jnp.full((1, 784 * 6), -30.0))
    np.testing.assert_allclose(log_scale, likelihoods.MIN_LOG_SCALE_8BIT, atol=1e-6)


def test_mixture_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    like = make_likelihood("logistic-mixture", components=2)
    with jax.enable_x64(True):
        # 16 pixels (the likelihood reads any number) keep the finite differences cheap.
        x = jnp.asarray(pixels_8bit(rng, (16,)), jnp.float64)
        params = jnp.asarray(mixture_params(rng, 1, 2)[0, : 16 * 6])
        fn = jax.jit(like.log_prob)
        check_grads(lambda p: fn(x, p), (params,), order=1, modes=["rev"], eps=1e-5)


def test_mixture_output_bias_starts_at_the_pixel_means():
    means = np.linspace(0.0, 1.0, 784)
    model = small_vae("logistic-mixture", pixel_means=means, likelihood_options={"components": 2})
    bias = model.decoder.output_layer.bias[...][None]
    logits, loc, log_scale = model.likelihood.mixture(bias)
    clipped = np.clip(means, 1e-3, 1 - 1e-3)
    np.testing.assert_array_equal(logits, 0.0)
    np.testing.assert_allclose(loc[0], np.stack([clipped, clipped], 1), rtol=1e-6)
    # The logistic whose standard deviation s pi / sqrt 3 is sqrt(m (1 - m)).
    std = np.sqrt(clipped * (1 - clipped))
    np.testing.assert_allclose(np.exp(log_scale[0, :, 0]) * math.pi / math.sqrt(3), std, rtol=1e-4)


# ------------------------------------------------------------- dequantised Gaussian


def deq_params(rng, batch: int, log_scale=(-4.0, -1.0)) -> np.ndarray:
    mean_logits = rng.normal(0.0, 2.0, (batch, 784))
    raw = rng.uniform(*log_scale, (batch, 784))
    return np.stack([mean_logits, raw], axis=-1).reshape(batch, -1)


def test_dequantized_log_prob_is_the_density_of_x_plus_u_minus_d_log_256():
    rng = np.random.default_rng(5)
    like = make_likelihood("dequantized-gaussian")
    params, x = deq_params(rng, 3), pixels_8bit(rng, (3, 784))
    key = jax.random.key(6)
    got = jax.jit(like.log_prob)(
        jnp.asarray(x, jnp.float32), jnp.asarray(params, jnp.float32), key=key
    )
    # The same u: dequantize.uniform of the same key and shape.
    y = np.asarray(dequantize.uniform(key, jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_array_equal(np.floor(256 * y), x)
    per_pixel = params.reshape(3, 784, 2)
    loc = special.expit(per_pixel[..., 0])
    scale = np.exp(floored(per_pixel[..., 1], math.log(1e-3)))
    want = stats.norm.logpdf(y, loc, scale).sum(-1) - 784 * LOG_256
    np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(
        like.log_density(jnp.asarray(y, jnp.float32), jnp.asarray(params, jnp.float32)),
        want + 784 * LOG_256,
        rtol=2e-5,
    )
    # Fresh keys draw fresh noise.
    other = like.log_prob(jnp.asarray(x, jnp.float32), jnp.asarray(params), key=jax.random.key(7))
    assert not np.allclose(other, got)


@pytest.mark.parametrize(
    ("log_scale", "max_gap"),
    [((-2.5, -1.0), 0.01), ((-6.5, -5.0), None)],
    ids=["smooth-over-a-level", "narrow"],
)
def test_dequantized_bound_is_below_the_exact_discrete_log_likelihood(log_scale, max_gap):
    """E_u[log p((x+u)/256)] - D log 256 <= log P(x) = sum_i log [Phi(b_i) - Phi(a_i)]."""
    rng = np.random.default_rng(8)
    like = make_likelihood("dequantized-gaussian")
    params, x = deq_params(rng, 1, log_scale), pixels_8bit(rng, (1, 784))
    # Means within about a level of x's bin, so that narrow Gaussians give it some mass.
    centres = (x[0] + 0.5 + rng.uniform(-1.0, 1.0, 784)) / 256.0
    params.reshape(784, 2)[:, 0] = special.logit(np.clip(centres, 1e-4, 1 - 1e-4))
    per_pixel = params.reshape(784, 2)
    loc = special.expit(per_pixel[:, 0])
    scale = np.exp(floored(per_pixel[:, 1], math.log(1e-3)))
    lower, upper = x[0] / 256.0, (x[0] + 1) / 256.0
    # The bin's mass from the nearer tail (no cancellation), in float64.
    right = lower > loc
    mass = np.where(
        right,
        stats.norm.sf(lower, loc, scale) - stats.norm.sf(upper, loc, scale),
        stats.norm.cdf(upper, loc, scale) - stats.norm.cdf(lower, loc, scale),
    )
    exact = np.log(mass).sum()
    keys = jax.random.split(jax.random.key(9), 2000)
    draws = jax.jit(jax.vmap(lambda k: like.log_prob(jnp.asarray(x, jnp.float32), params, key=k)))(
        keys
    )
    draws = np.asarray(draws, np.float64)[:, 0]
    mean, stderr = draws.mean(), draws.std(ddof=1) / math.sqrt(draws.size)
    # 1e-4 relative: float32 rounding of the 784-term sum, far below a 784 log(256/255) slip.
    assert mean <= exact + 4 * stderr + 1e-4 * abs(exact), (mean, exact, stderr)
    if max_gap is not None:
        # Smooth over a level, Jensen's gap is tiny: the bound is also close.
        assert exact - mean < max_gap * abs(exact) + 4 * stderr, (mean, exact)
    else:
        # Narrow Gaussians: a clear gap, yet still a bound.
        assert exact - mean > 10 * stderr


def test_dequantized_output_bias_and_extremes():
    means = np.linspace(0.0, 1.0, 784)
    model = small_vae("dequantized-gaussian", pixel_means=means)
    bias = model.decoder.output_layer.bias[...][None]
    loc, log_scale = model.likelihood.gaussian(bias)
    clipped = np.clip(means, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(loc[0], clipped, rtol=1e-5)
    std = np.maximum(np.sqrt(clipped * (1 - clipped)), 2e-3)
    np.testing.assert_allclose(np.exp(log_scale[0]), std, rtol=1e-4)
    # Extreme raw outputs: finite values and gradients; the scale never goes below the floor.
    like = model.likelihood
    params = jnp.asarray(np.resize([1e4, -30.0, -1e4, 30.0, 0.0, -1e4], (1, 1568)), jnp.float32)
    x = jnp.asarray(np.resize([255.0, 0.0, 128.0], (1, 784)), jnp.float32)
    fn = jax.value_and_grad(lambda p: like.log_prob(x, p, key=jax.random.key(0)).sum())
    value, grad = jax.jit(fn)(params)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert float(jnp.min(like.gaussian(params)[1])) >= math.log(1e-3) - 1e-6


# ------------------------------------------------------------------------- the VAE


def batch_8bit(synthetic_mnist, n: int = 32) -> Batch:
    images = mnist.binarize(synthetic_mnist.test_images[:n], mode="8bit")
    return Batch(images, jnp.asarray(synthetic_mnist.test_labels[:n]))


def test_the_encoder_sees_pixels_on_the_unit_scale(synthetic_mnist):
    model = small_vae("logistic-mixture")
    batch = batch_8bit(synthetic_mnist, 4)
    loc, _ = model.encode(batch.images)
    direct = model.encoder(batch.images.reshape(4, 784) / 255.0)[..., :4]
    np.testing.assert_allclose(loc, direct, rtol=1e-5, atol=1e-6)


def test_dequantized_bounds_draw_u_from_their_own_key(synthetic_mnist):
    """log w = log p(y|z) - D log 256 + log p(z) - log q(z|x), z and u from split keys."""
    model = small_vae(
        "dequantized-gaussian", pixel_means=vae.pixel_means(synthetic_mnist.train_images)
    )
    batch = batch_8bit(synthetic_mnist, 6)
    key = jax.random.key(11)
    log_w = jax.jit(vae.log_weights, static_argnames="num_samples")(
        model, batch, key, num_samples=3
    )
    z_key, u_key = jax.random.split(key)
    x = batch.images.reshape(6, 784)
    loc, log_scale = model.encode(x)
    z = normal.sample(z_key, loc=loc, log_scale=log_scale, sample_shape=3)
    params = model.decode(z)
    y = dequantize.uniform(u_key, jnp.broadcast_to(x, (3, 6, 784)))
    want = (
        model.likelihood.log_density(y, params)
        - 784 * LOG_256
        + normal.log_prob(z, loc=0.0, log_scale=0.0)
        - normal.log_prob(z, loc=loc, log_scale=log_scale)
    )
    np.testing.assert_allclose(log_w, want, rtol=1e-5)


@pytest.mark.parametrize("name", ["logistic-mixture", "dequantized-gaussian"])
def test_elbo_is_below_the_importance_sampled_bound_on_average(synthetic_mnist, name):
    model = small_vae(name, pixel_means=vae.pixel_means(synthetic_mnist.train_images))
    batch = batch_8bit(synthetic_mnist, 32)
    elbo = np.asarray(vae.elbo(model, batch, jax.random.key(1), num_samples=20).elbo, np.float64)
    iwae = np.asarray(
        vae.iwae_per_example(model, batch.images, None, jax.random.key(2), num_samples=100),
        np.float64,
    )
    diff = iwae - elbo
    assert diff.mean() > 3.0 * diff.std(ddof=1) / math.sqrt(diff.size), diff.mean()
    # Both are log-probabilities of 8-bit images: below 0, and in bits/dim above 0.
    assert np.all(iwae < 0.0)
    bpd = dequantize.bits_per_dim_8bit(iwae.mean(), num_dims=784)
    np.testing.assert_allclose(bpd, latent.bits_per_dim(-iwae.mean(), num_dims=784), rtol=1e-6)


@pytest.mark.parametrize(
    ("options", "name", "field"),
    [
        ({"components": 0}, "logistic-mixture", "components"),
        ({"components": 2.5}, "logistic-mixture", "components"),
        ({"min_scale": 0.0}, "dequantized-gaussian", "min_scale"),
        ({"min_scale": 2.0}, "dequantized-gaussian", "min_scale"),
        ({"fixed_variance": 1.0}, "logistic-mixture", "fixed_variance"),
        # The grey-level Gaussian: its learned scale starts at 1, above a bound below 1.
        ({"min_scale": 1.0}, "gaussian", "min_scale"),
        ({"min_scale": math.inf}, "gaussian", "min_scale"),
        ({"fixed_variance": math.inf}, "gaussian", "fixed_variance"),
        ({"fixed_variance": math.nan}, "gaussian", "fixed_variance"),
    ],
)
def test_bad_options_name_the_field(options, name, field):
    with pytest.raises(ConfigError) as error:
        vae.VAEConfig(likelihood=name, likelihood_options=options)
    assert error.value.field == field
