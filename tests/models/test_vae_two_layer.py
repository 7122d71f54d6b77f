"""Burda et al.'s two-stochastic-layer VAE: its log-weights by hand, its ELBO's KL term,
its IWAE estimate against a quadrature of log p(x), sampling, training and config checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from scipy.special import logsumexp

from genmath import bernoulli, normal
from models import vae
from models.training import Batch, ConfigError, TrainConfig, Trainer


def two_layer_vae(latent_dim=4, top_latent_dim=3, **overrides) -> vae.VAE:
    config = vae.VAEConfig(
        latent_dim=latent_dim,
        hidden=(32,),
        top_latent_dim=top_latent_dim,
        top_hidden=(16, 16),
        activation="tanh",
        **overrides,
    )
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)))


def binary_batch(n: int = 6, seed: int = 1) -> Batch:
    x = (jax.random.uniform(jax.random.key(seed), (n, 784)) > 0.5).astype(jnp.float32)
    return Batch(x, jnp.arange(n, dtype=jnp.int32) % 10)


def test_networks_have_burdas_shapes():
    config = vae.VAEConfig(
        latent_dim=100, hidden=(200, 200), top_latent_dim=50, top_hidden=(100, 100)
    )
    model = vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)))
    up = [layer.kernel.shape for layer in model.top.up.layers]
    down = [layer.kernel.shape for layer in model.top.down.layers]
    assert up == [(100, 100), (100, 100), (100, 100)]  # z1 -> 100 -> 100 -> (loc, scale) of z2
    assert down == [(50, 100), (100, 100), (100, 200)]  # z2 -> 100 -> 100 -> (loc, scale) of z1
    assert model.latent_dim == 100 and model.top.latent_dim == 50


def test_log_weights_are_log_p_x_z1_z2_minus_log_q_by_hand():
    model, batch, key = two_layer_vae(), binary_batch(), jax.random.key(2)
    log_w = jax.jit(vae.log_weights, static_argnames="num_samples")(
        model, batch, key, num_samples=7
    )
    assert log_w.shape == (7, 6)
    # The same draws by hand: z1 ~ q(z1|x), z2 ~ q(z2|z1), then every density by genmath.
    key, top_key = jax.random.split(key)
    loc1, log_scale1 = model.encode(batch.images)
    z1 = normal.sample(key, loc=loc1, log_scale=log_scale1, sample_shape=7)
    loc2, log_scale2 = model.encode_top(z1)
    z2 = normal.sample(top_key, loc=loc2, log_scale=log_scale2)
    prior_loc, prior_log_scale = model.prior_given_top(z2)
    expected = (
        bernoulli.log_prob(batch.images, logits=model.decode(z1))
        + normal.log_prob(z1, loc=prior_loc, log_scale=prior_log_scale)
        + normal.log_prob(z2, loc=0.0, log_scale=0.0)
        - normal.log_prob(z1, loc=loc1, log_scale=log_scale1)
        - normal.log_prob(z2, loc=loc2, log_scale=log_scale2)
    )
    np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-3)


def test_elbo_agrees_with_the_mean_log_weight_by_monte_carlo():
    # The ELBO's z2 step is analytic, the mean log-weight's is sampled: equal expectations.
    model, batch = two_layer_vae(), binary_batch(2)
    k = 20_000
    terms = vae.elbo(model, batch, jax.random.key(3), num_samples=k)
    log_w = np.asarray(vae.log_weights(model, batch, jax.random.key(4), num_samples=k), np.float64)
    stderr = log_w.std(axis=0) / np.sqrt(k)
    assert np.all(np.abs(np.asarray(terms.elbo) - log_w.mean(axis=0)) < 5 * stderr + 1e-3)
    np.testing.assert_allclose(terms.elbo, terms.reconstruction - terms.kl, rtol=1e-6)
    assert np.all(np.asarray(terms.kl) > 0)  # a KL between the joint q and the joint prior


def test_iwae_estimate_converges_to_a_quadrature_of_log_p_x():
    # One-dimensional z1 and z2 so that p(x) is a 2-D integral. The decoder's weights are
    # shrunk so that the posterior stays broad, and both q layers are made broader than it
    # (loc 0, log-scale 0.7), so that the importance weights are light-tailed and the
    # estimate's standard error is honest.
    model = two_layer_vae(latent_dim=1, top_latent_dim=1)
    for layer in model.decoder.layers:
        layer.kernel[...] = 0.05 * layer.kernel[...]
    for net in (model.encoder, model.top.up):
        net.output_layer.kernel[...] = jnp.zeros_like(net.output_layer.kernel[...])
        net.output_layer.bias[...] = jnp.array([0.0, 0.7])
    x = binary_batch(1).images
    grid = np.linspace(-9.0, 9.0, 1801)
    step = grid[1] - grid[0]
    z = jnp.asarray(grid[:, None], jnp.float32)
    log_lik = np.asarray(bernoulli.log_prob(x, logits=model.decode(z)), np.float64)  # (n1,)
    prior_loc, prior_log_scale = (np.asarray(a, np.float64)[:, 0] for a in model.prior_given_top(z))
    # log p(z1 | z2) on the grid: rows z2, columns z1 (float64 by hand).
    scale = np.exp(prior_log_scale)[:, None]
    log_p1 = -0.5 * ((grid[None, :] - prior_loc[:, None]) / scale) ** 2 - np.log(
        scale * np.sqrt(2 * np.pi)
    )
    log_p2 = -0.5 * grid**2 - 0.5 * np.log(2 * np.pi)
    exact = logsumexp(log_p2[:, None] + log_p1 + log_lik[None, :]) + 2 * np.log(step)
    k = 200_000
    log_w = np.asarray(vae.log_weights(model, Batch(x, None), jax.random.key(5), num_samples=k))
    log_w = log_w[:, 0].astype(np.float64)
    estimate = logsumexp(log_w) - np.log(k)
    w = np.exp(log_w - log_w.max())
    stderr = w.std() / (w.mean() * np.sqrt(k))  # delta method: the log of a mean
    assert abs(estimate - exact) < 4 * stderr, (estimate, exact, stderr)


def test_prior_samples_and_pictures_come_from_the_hierarchy():
    model = two_layer_vae()
    key = jax.random.key(6)
    z = jax.jit(model.sample_prior, static_argnums=1)(key, 5)
    assert z.shape == (5, 4)
    # By hand: z2 ~ N(0, I), then z1 ~ p(z1 | z2).
    top_key, key1 = jax.random.split(key)
    z2 = normal.sample(top_key, loc=jnp.zeros((5, 3)), log_scale=jnp.zeros((5, 3)))
    loc, log_scale = model.prior_given_top(z2)
    np.testing.assert_allclose(z, normal.sample(key1, loc=loc, log_scale=log_scale), rtol=1e-6)
    images = model.generate(key, 5)
    assert images.shape == (5, 28, 28)
    assert np.all((np.asarray(images) >= 0) & (np.asarray(images) <= 1))


@pytest.mark.parametrize("conditional", [False, True])
def test_iwae_training_lowers_the_loss_with_finite_gradients(synthetic_mnist, conditional):
    images = synthetic_mnist.train_images[:512]
    labels = synthetic_mnist.train_labels[:512]
    model = two_layer_vae(conditional=conditional)
    loss_fn = vae.make_loss_fn(vae.Objective(kind="iwae", num_samples=5))
    batch = Batch(jnp.asarray(images[:64], jnp.float32) / 255.0 > 0.5, jnp.asarray(labels[:64]))
    batch = Batch(batch.images.astype(jnp.float32), batch.labels)
    grads = jax.grad(lambda m: loss_fn(m, batch, jax.random.key(0), 0)[0])(model)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in jax.tree.leaves(nnx.state(grads.top, nnx.Param)))
    trainer = Trainer(model, optax.adam(1e-3), loss_fn, TrainConfig(epochs=3, batch_size=64))
    history = trainer.fit(images, labels, progress=False)
    assert history[-1]["neg_iwae"] < history[0]["neg_iwae"] - 10.0


def test_free_bits_is_refused_with_two_layers():
    loss_fn = vae.make_loss_fn(vae.Objective(free_bits=0.5))
    with pytest.raises(ValueError, match="free_bits"):
        loss_fn(two_layer_vae(), binary_batch(), jax.random.key(0), 0)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [({"top_latent_dim": -1}, "top_latent_dim"), ({"top_hidden": (0,)}, "top_hidden")],
)
def test_bad_top_layer_config_names_the_field(overrides, name):
    with pytest.raises(ConfigError) as error:
        vae.VAEConfig(**overrides)
    assert error.value.field == name


def test_one_layer_model_has_no_top_to_ask():
    model = vae.make_vae(
        vae.VAEConfig(latent_dim=4, hidden=(8,)), rngs=nnx.Rngs(params=jax.random.key(0))
    )
    with pytest.raises(ValueError, match="one stochastic layer"):
        model.encode_top(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="one stochastic layer"):
        model.prior_given_top(jnp.zeros((2, 3)))
