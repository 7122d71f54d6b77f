"""Checks that need 8 CPU devices; ``test_sharding.py`` runs them in a subprocess.

Run by hand with::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest -q \\
        tests/sharding/on_8_devices.py

(the file name does not match ``test_*.py``, so the main suite, which has one device,
does not collect it).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.experimental import checkify
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from examples.mixture import configs as mixture_configs
from examples.mixture import train as mixture_example
from genmath import bayes, bernoulli, categorical, debug, latent, mvn, normal
from models import factorized, mixture, sharding, vae
from models.mnist import evaluation_images
from models.training import ConfigError, TrainConfig, Trainer

DEVICES = 8
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


@pytest.fixture(scope="module", autouse=True)
def eight_devices():
    if jax.device_count() != DEVICES:
        pytest.fail(
            f"these checks need {DEVICES} devices, found {jax.device_count()}; run with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES}"
        )


def collectives(compiled_text: str) -> list[tuple[str, str]]:
    """(collective, result type) of every collective in compiled HLO text."""
    pattern = r"=\s*(.*?)\s+(" + "|".join(COLLECTIVES) + r")(?:-start)?\("
    return [(m.group(2), m.group(1)) for m in re.finditer(pattern, compiled_text)]


# --------------------------------------------------------------------- genmath kernels

B, D, K, S = 64, 6, 5, 7


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    dtype = jnp.zeros(()).dtype.name  # float64 under JAX_ENABLE_X64, else float32
    normal_ = lambda *shape: rng.standard_normal(shape).astype(dtype)
    tril = np.tril(normal_(D, D), -1) + np.diag(np.exp(normal_(D)))
    return {
        "x01": (rng.random((B, D)) < 0.5).astype(dtype),
        "a": normal_(B, D),
        "b": normal_(B, D),
        "c": normal_(B, D),
        "logits_p": normal_(B, K),
        "logits_q": normal_(B, K),
        "labels": rng.integers(0, K, B).astype(np.int32),
        "log_weights": normal_(S, B),
        "loc": normal_(D),
        "tril": tril,
        "tril_batch": np.broadcast_to(tril, (B, D, D)).copy(),
    }


# name -> (function of the inputs dict, the inputs it takes, which are batched).
# Batched inputs are sharded along their batch axis; the others (shared parameters) are
# replicated.
KERNELS = {
    "bernoulli.log_prob": (lambda v: bernoulli.log_prob(v["x01"], logits=v["a"]), "x01 a"),
    "bernoulli.kl": (lambda v: bernoulli.kl(logits_p=v["a"], logits_q=v["b"]), "a b"),
    "normal.log_prob": (lambda v: normal.log_prob(v["a"], loc=v["b"], log_scale=v["c"]), "a b c"),
    "normal.kl_standard": (lambda v: normal.kl_standard(loc=v["a"], log_scale=v["b"]), "a b"),
    "normal.kl": (
        lambda v: normal.kl(loc_p=v["a"], log_scale_p=v["b"], loc_q=v["c"], log_scale_q=v["a"]),
        "a b c",
    ),
    "mvn.log_prob": (
        lambda v: mvn.log_prob(v["a"], loc=v["b"], scale_tril=v["tril_batch"]),
        "a b tril_batch",
    ),
    "mvn.kl": (
        lambda v: mvn.kl(
            loc_p=v["a"], scale_tril_p=v["tril_batch"], loc_q=v["b"], scale_tril_q=v["tril_batch"]
        ),
        "a b tril_batch",
    ),
    "categorical.log_prob": (
        lambda v: categorical.log_prob(v["labels"], logits=v["logits_p"]),
        "labels logits_p",
    ),
    "categorical.kl": (
        lambda v: categorical.kl(logits_p=v["logits_p"], logits_q=v["logits_q"]),
        "logits_p logits_q",
    ),
    "bayes.posterior": (lambda v: bayes.posterior(v["logits_p"]), "logits_p"),
    "bayes.evidence": (lambda v: bayes.evidence(v["logits_p"]), "logits_p"),
    "latent.iwae_bound": (lambda v: latent.iwae_bound(v["log_weights"], axis=0), "log_weights"),
}
# Shared parameters with a batch of points: mvn solves the points that share a scale_tril
# in one group per device, a batch dimension of the triangular solve (XLA partitions a
# solve only along those), so they stay sharded.
SHARED_PARAMETER_KERNELS = {
    "mvn.log_prob(shared loc, scale_tril)": (
        lambda v: mvn.log_prob(v["a"], loc=v["loc"], scale_tril=v["tril"]),
        "a",
    ),
    "mvn.kl(batched p, shared q)": (
        lambda v: mvn.kl(
            loc_p=v["a"], scale_tril_p=v["tril_batch"], loc_q=v["loc"], scale_tril_q=v["tril"]
        ),
        "a tril_batch",
    ),
}


def _check_kernel_keeps_batch_sharded(name, fn, batched):
    mesh = sharding.data_mesh()
    values = _inputs()
    batched = set(batched.split())

    def spec(key):
        if key not in batched:
            return P()
        return P(None, "data") if key == "log_weights" else P("data")

    placed = {k: jax.device_put(v, NamedSharding(mesh, spec(k))) for k, v in values.items()}
    jitted = jax.jit(fn)
    out = jitted(placed)
    batch_axis = 0
    expected = NamedSharding(mesh, P("data"))
    assert out.sharding.is_equivalent_to(expected, out.ndim), (name, out.sharding)
    assert out.shape[batch_axis] == B
    hlo = jitted.lower(placed).compile().as_text()
    gathers = [c for c in collectives(hlo) if c[0] == "all-gather"]
    assert not gathers, (name, gathers)
    # Same values as on one device.
    reference = jax.jit(fn)(values)
    rtol = 1e-5 if out.dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(out), np.asarray(reference), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_output_stays_sharded_along_the_batch(name):
    fn, batched = KERNELS[name]
    _check_kernel_keeps_batch_sharded(name, fn, batched)


@pytest.mark.parametrize("name", sorted(SHARED_PARAMETER_KERNELS))
def test_shared_parameter_kernel_output_stays_sharded(name):
    fn, batched = SHARED_PARAMETER_KERNELS[name]
    _check_kernel_keeps_batch_sharded(name, fn, batched)


@pytest.mark.parametrize("explicit", [False, True], ids=["auto-mesh", "explicit-mesh"])
def test_value_checks_on_sharded_inputs(explicit):
    # The check reports the first offending value; picking it by indexing was a dynamic
    # slice that JAX refuses on a dimension sharded in explicit mode, even on valid input.
    axis_types = (jax.sharding.AxisType.Explicit if explicit else jax.sharding.AxisType.Auto,)
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=axis_types)
    place = lambda x: jax.device_put(x, NamedSharding(mesh, P("data")))
    logits = jnp.zeros(D)
    checked = debug.checked(lambda x: bernoulli.log_prob(x, logits=logits))
    good = np.full((B, D), 0.25, jnp.zeros(()).dtype)
    np.testing.assert_array_equal(checked(place(good)), bernoulli.log_prob(good, logits=logits))
    bad = good.copy()
    bad[B - 1, 2], bad[B - 1, 3] = 1.5, 7.0
    with pytest.raises(checkify.JaxRuntimeError, match=r"`x` must lie in \[0, 1\], got 1\.5"):
        checked(place(bad))


# ------------------------------------------------------------------------ VAE training

EXAMPLES = 1280
CONFIG = TrainConfig(epochs=15, batch_size=64, learning_rate=1e-3, seed=0)  # 300 steps


def tiny_vae() -> vae.VAE:
    config = vae.VAEConfig(latent_dim=4, hidden=(32,))
    return vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)))


LOSS = vae.make_loss_fn(vae.Objective())


def train(mesh, images, labels, epochs: int):
    """Per-step losses and final parameters of ``epochs`` epochs on ``mesh``."""
    trainer = Trainer(tiny_vae(), optax.adam(CONFIG.learning_rate), LOSS, CONFIG, mesh=mesh)
    losses = []
    for _ in range(epochs):
        trainer.run_epoch(images, labels)
        losses.append(np.asarray(trainer.step_metrics["loss"]))
    params = [np.asarray(x) for x in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))]
    return np.concatenate(losses), params, trainer


def tolerance(dtype) -> float:
    # The runs differ only in float rounding (each batch reduction summed in 8 parts
    # rather than 1); over 300 Adam steps that stays within a few ulps here, so 1e-5
    # (about 100 float32 ulps) leaves room for other platforms without hiding a real bug.
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-12


@pytest.fixture(scope="module")
def data(mnist):
    return mnist.train_images[:EXAMPLES], mnist.train_labels[:EXAMPLES]


@pytest.fixture(scope="module")
def one_device_run(data):
    return train(sharding.data_mesh(jax.devices()[:1]), *data, CONFIG.epochs)


@pytest.fixture(scope="module")
def eight_device_run(data):
    return train(sharding.data_mesh(), *data, CONFIG.epochs)


@pytest.fixture(scope="module")
def sharded_dataset_run(data):
    """The multi-host layout on one host: each device holds 1/8 of the training set."""
    mesh = sharding.data_mesh()
    images, labels = jax.device_put(data, sharding.batch_sharded(mesh))
    return (*train(mesh, images, labels, epochs=2), images, labels)


def epoch_collectives(trainer: Trainer, images, labels) -> list[tuple[str, str]]:
    """The collectives of the trainer's compiled epoch (the executable it already ran)."""
    images, labels = sharding.place_dataset(images, labels, trainer.mesh)
    key = sharding.replicate(trainer.epoch_key(0), trainer.mesh)
    compiled = trainer._epoch.lower(trainer.state, images, labels, key).compile()
    return collectives(compiled.as_text())


def test_eight_devices_match_one_device_step_for_step(one_device_run, eight_device_run):
    losses_1, params_1, _ = one_device_run
    losses_8, params_8, trainer = eight_device_run
    assert losses_1.shape == losses_8.shape == (CONFIG.epochs * EXAMPLES // CONFIG.batch_size,)
    assert losses_8[-1] < losses_8[0] - 100.0  # it trained
    rtol = tolerance(losses_1.dtype)
    np.testing.assert_allclose(losses_8, losses_1, rtol=rtol)
    for p8, p1 in zip(params_8, params_1, strict=True):
        np.testing.assert_allclose(p8, p1, rtol=rtol, atol=rtol)
    # The state stays replicated over all 8 devices.
    for leaf in jax.tree.leaves(trainer.state):
        assert len(leaf.sharding.device_set) == DEVICES and leaf.sharding.is_fully_replicated


def test_epoch_all_reduces_gradients_and_gathers_nothing(data, eight_device_run):
    found = epoch_collectives(eight_device_run[2], *data)
    kinds = {kind for kind, _ in found}
    # One fused all-reduce of the gradients (and loss/metrics); the replicated dataset
    # and parameters are never gathered.
    assert "all-reduce" in kinds, found
    assert "all-gather" not in kinds, found


def test_dataset_sharded_across_devices_draws_the_same_batches(one_device_run, sharded_dataset_run):
    losses_1 = one_device_run[0]
    losses = sharded_dataset_run[0]
    steps = losses.shape[0]
    np.testing.assert_allclose(losses, losses_1[:steps], rtol=tolerance(losses.dtype))


def test_epoch_on_a_sharded_dataset_gathers_only_batch_indices(sharded_dataset_run):
    _, _, trainer, images, labels = sharded_dataset_run
    found = epoch_collectives(trainer, images, labels)
    gathered = [shape for kind, shape in found if kind == "all-gather"]
    # The batch is assembled by a masked local gather and an all-reduce; only the int32
    # indices (never images or parameters) are all-gathered.
    assert all(shape.startswith("s32[") for shape in gathered), found
    assert any(kind == "all-reduce" for kind, _ in found), found


def test_batch_size_must_split_over_the_devices():
    config = TrainConfig(batch_size=60)
    # A ConfigError naming the option, which the examples turn into a usage line.
    with pytest.raises(ConfigError, match=r"is 60, which the 8 devices cannot split") as error:
        Trainer(tiny_vae(), optax.adam(1e-3), LOSS, config, mesh=sharding.data_mesh())
    assert error.value.field == "batch_size"
    # The same batch size is fine on a mesh it splits over.
    Trainer(tiny_vae(), optax.adam(1e-3), LOSS, config, mesh=sharding.data_mesh(jax.devices()[:4]))


def test_process_rows_split_evenly_over_the_devices():
    mesh = sharding.data_mesh()
    assert sharding.process_rows(16, mesh) == slice(0, 16)  # one process holds every row
    with pytest.raises(ValueError, match=r"num_examples=12 is not divisible by the 8 devices"):
        sharding.process_rows(12, mesh)
    assembled = sharding.assemble(np.arange(16, dtype=np.int32), 16, mesh)
    assert [shard.data.shape for shard in assembled.addressable_shards] == [(2,)] * DEVICES


def test_default_mesh_spans_all_devices():
    trainer = Trainer(tiny_vae(), optax.adam(1e-3), LOSS, CONFIG)
    assert trainer.mesh.shape == {"data": DEVICES}


# ----------------------------------------------------------------------- mixture model

MIXTURE_EXAMPLES = 512


def test_mixture_gradient_training_matches_one_device(mnist):
    images, labels = mnist.train_images[:MIXTURE_EXAMPLES], mnist.train_labels[:MIXTURE_EXAMPLES]
    config = TrainConfig(epochs=1, batch_size=64, seed=0, binarization="dynamic")
    fixed = evaluation_images(images, binarization="dynamic")
    runs = []
    for mesh in (sharding.data_mesh(jax.devices()[:1]), sharding.data_mesh()):
        model = mixture.MixtureOfBernoullis(10, key=jax.random.key(0), init_images=images)
        nll_before = -float(np.mean(model.log_prob(fixed)))
        loss_fn = factorized.make_loss_fn(MIXTURE_EXAMPLES)
        trainer = Trainer(model, optax.adam(1e-2), loss_fn, config, mesh=mesh)
        losses = []
        for _ in range(config.epochs):
            trainer.run_epoch(images, labels)
            losses.append(np.asarray(trainer.step_metrics["loss"]))
        runs.append((np.concatenate(losses), np.asarray(trainer.model.probs)))
    (losses_1, probs_1), (losses_8, probs_8) = runs
    # It trained: the NLL of the same binarised images fell (a minibatch's loss is too
    # noisy a sign over the epoch's 8 steps).
    assert -float(np.mean(trainer.model.log_prob(fixed))) < nll_before
    rtol = tolerance(losses_1.dtype)
    np.testing.assert_allclose(losses_8, losses_1, rtol=rtol)
    np.testing.assert_allclose(probs_8, probs_1, rtol=rtol, atol=rtol)


def test_em_runs_data_parallel_on_images_sharded_along_the_batch(mnist):
    images = mnist.train_images[: 2 * MIXTURE_EXAMPLES]
    runs = []
    for mesh in (sharding.data_mesh(jax.devices()[:1]), sharding.data_mesh()):
        model = mixture.MixtureOfBernoullis(10, key=jax.random.key(0), init_images=images)
        history = mixture.fit_em(model, images, iterations=10, mesh=mesh, progress=False)
        assert model.logits[...].sharding.is_fully_replicated
        assert len(model.logits[...].sharding.device_set) == len(mesh.devices.flat)
        runs.append((np.asarray(history), np.asarray(model.probs)))
    (nll_1, probs_1), (nll_8, probs_8) = runs
    assert nll_8[-1] < nll_8[0] - 10.0
    rtol = tolerance(probs_1.dtype)  # the history holds Python floats: use the model's dtype
    np.testing.assert_allclose(nll_8, nll_1, rtol=rtol)
    # Only the M-step sums over images are reassociated (8 partial sums); EM feeds that
    # rounding back through the responsibilities, but it stays small: over these 10
    # iterations the templates differed by at most 2.6e-6 (float32) when this was written,
    # so the step-for-step tolerance applies here too.
    np.testing.assert_allclose(probs_8, probs_1, rtol=rtol, atol=rtol)


def test_em_iteration_all_reduces_statistics_and_gathers_no_images(mnist):
    mesh = sharding.data_mesh()
    images = mixture._place_images(mnist.train_images[: 2 * MIXTURE_EXAMPLES], mesh)
    model = mixture.MixtureOfBernoullis(10, key=jax.random.key(0))
    params = sharding.replicate((model.logits[...], model.mixture_logits[...]), mesh)
    key = sharding.replicate(jax.random.key(0), mesh)
    compiled = mixture._em_iteration.lower(
        *params, images, key, 1.0, 1.0, binarization="dynamic", mesh=mesh
    ).compile()
    found = collectives(compiled.as_text())
    assert any(kind == "all-reduce" for kind, _ in found), found
    assert not any(kind == "all-gather" for kind, _ in found), found


def test_em_needs_images_divisible_by_the_devices(mnist):
    model = mixture.MixtureOfBernoullis(10, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"fit_em: the number of `images` \(12\) .* 8 devices"):
        mixture.fit_em(model, mnist.train_images[:12], iterations=1, progress=False)


def test_em_example_needs_a_training_set_divisible_by_the_devices(mnist, tmp_path):
    config = mixture_configs.Config(
        train=TrainConfig(epochs=1), algorithm="em", num_components=5, train_examples=12
    )
    with pytest.raises(ConfigError, match=r"is 12, which the 8 devices cannot split") as error:
        mixture_example.train_and_evaluate(config, tmp_path, data=mnist, progress=False)
    assert error.value.field == "train_examples"
