"""Trains a VAE on MNIST and evaluates it as a density model, a generator and an encoder.

:func:`train_and_evaluate` is the library function behind ``python -m examples.vae``; the
distributed example, the training benchmark and the tests call it directly. It leaves in
``workdir``:

* ``metrics.json``: test ELBO with its reconstruction and KL terms, the importance-sampled
  negative log-likelihood (K = ``config.eval_samples``) with its standard error, in nats
  and bits/dim; the active units; the linear probe's accuracy; timings, the device, the
  configuration and the per-epoch history;
* ``samples.png`` (decoder means of prior samples; a conditional model draws digit d in
  row d), ``reconstructions.png`` (rows of test images, each followed by its
  reconstruction), ``manifold.png`` (2-D latent only: the decoded latent grid),
  ``training_curve.png``; for 8-bit data also ``pixel_samples.png`` (images drawn from
  ``p(x|z)`` itself at the same prior samples: the pixel noise the likelihood allows);
* for 8-bit data, the test ELBO and importance-sampled estimate also in bits/dim of the
  8-bit image (``test_bits_per_dim_elbo``, ``test_bits_per_dim_is``; lower bounds on
  ``log P(x)`` turned into upper bounds on bits/dim, for a dequantised likelihood
  included), comparable with any discrete model's bits/dim on the same test set;
* the trainer's ``train_log.csv``, ``history.json`` and ``checkpoints/`` (a rerun with
  the same workdir resumes from the latest checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from examples import _run
from examples.vae.configs import EVALUATION_FIELDS, Config
from genmath import dequantize, latent
from models import mnist, reporting, sharding, vae
from models.probe import fit_linear_probe, probe_accuracy
from models.training import Trainer, make_optimizer, run_key, training_settings

# On an accelerator the papers' K = 5000; on a CPU a K that keeps evaluation near a minute.
ACCELERATOR_EVAL_SAMPLES = 5000
CPU_EVAL_SAMPLES = 100


def default_eval_samples() -> int:
    return ACCELERATOR_EVAL_SAMPLES if jax.default_backend() != "cpu" else CPU_EVAL_SAMPLES


def build(config: Config, train_images, *, mesh: Mesh | None = None, workdir=None) -> Trainer:
    """The VAE that ``config`` describes and its trainer.

    Every process builds the same initial parameters from ``config.train.seed``; the
    decoder's output bias starts at the data's pixel means when the config asks for it.
    """
    init_key = run_key(config.train.seed, "init")
    means = vae.pixel_means(train_images) if config.model.output_bias_init else None
    model = vae.make_vae(config.model, rngs=nnx.Rngs(params=init_key), pixel_means=means)
    steps_per_epoch = train_images.shape[0] // config.train.batch_size
    tx = make_optimizer(config.optimizer, config.train, steps_per_epoch)
    loss_fn = vae.make_loss_fn(config.objective, steps_per_epoch=steps_per_epoch)
    # A cosine decay spans the whole run, so its length shapes the schedule.
    cosine = config.optimizer.schedule == "cosine"
    settings = training_settings(
        config,
        num_train=train_images.shape[0],
        ignore=EVALUATION_FIELDS,
        epochs_shape_schedule=cosine,
    )
    return Trainer(model, tx, loss_fn, config.train, workdir=workdir, mesh=mesh, settings=settings)


def train_and_evaluate(
    config: Config,
    workdir: str | os.PathLike,
    *,
    data: mnist.Mnist | None = None,
    data_dir: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Trains (or resumes) the VAE of ``config`` and evaluates it; returns the metrics.

    Args:
      config: the run (see :mod:`examples.vae.configs`).
      workdir: where checkpoints, metrics and pictures go.
      data: the MNIST arrays; by default :func:`models.mnist.load_mnist` of ``data_dir``.
        Its training arrays may be global arrays sharded over ``mesh`` (a multi-host job,
        :func:`models.mnist.load_mnist_shard`); evaluation runs on this process's copy.
      data_dir: the folder of the four MNIST IDX files (see ``load_mnist``).
      mesh: the devices to train on, data-parallel (default: all of them).
      resume: continue from the latest checkpoint in ``workdir``; ``False`` deletes the
        checkpoints there first.
      progress: show a progress bar.

    Returns:
      The metrics also written to ``workdir/metrics.json`` (by process 0).
    """
    start = time.perf_counter()
    workdir = _run.prepare_workdir(workdir, resume=resume)
    train_images, train_labels, test_images, test_labels = _run.select_data(config, data, data_dir)
    binarization = config.train.binarization
    x_test = mnist.evaluation_images(test_images, binarization=binarization, seed=config.eval_seed)
    y_test = jnp.asarray(test_labels)
    eval_key = run_key(config.train.seed, "evaluation")
    picture_key = run_key(config.train.seed, "pictures")

    trainer = build(config, train_images, mesh=mesh, workdir=workdir)
    eval_seconds, epochs_run = [0.0], [0]

    def local_model():
        # A process-local copy of the replicated parameters (a no-op on one process).
        return nnx.merge(trainer.graphdef, sharding.to_local(trainer.state))[0]

    def on_epoch_end(trainer: Trainer, record: dict) -> dict:
        tic = time.perf_counter()
        epochs_run[0] += 1
        extra = {}
        epoch = trainer.epochs_done
        if config.eval_every and epoch % config.eval_every == 0:
            terms = vae.evaluate_elbo(local_model(), x_test, y_test, eval_key)
            extra["test_neg_elbo"] = -terms["elbo"]
        if config.nll_every and epoch % config.nll_every == 0:
            nll = vae.evaluate_log_likelihood(
                local_model(),
                x_test,
                y_test,
                jax.random.fold_in(eval_key, 2),
                num_samples=config.curve_samples,
            )
            extra[f"test_nll_k{config.curve_samples}"] = nll["nll_nats"]
        extra["wall_clock"] = time.time()
        eval_seconds[0] += time.perf_counter() - tic
        return extra

    fit_start = time.perf_counter()
    history = trainer.fit(
        train_images,
        train_labels,
        resume=True,
        on_epoch_end=on_epoch_end,
        progress=progress and jax.process_index() == 0,
    )
    fit_seconds = time.perf_counter() - fit_start - eval_seconds[0]
    model = local_model()
    if jax.process_index() != 0:
        return {}

    terms = vae.evaluate_elbo(model, x_test, y_test, eval_key)
    eval_samples = config.eval_samples or default_eval_samples()
    tic = time.perf_counter()
    nll = vae.evaluate_log_likelihood(
        model, x_test, y_test, jax.random.fold_in(eval_key, 1), num_samples=eval_samples
    )
    iwae_seconds = time.perf_counter() - tic
    representation = _representation_metrics(
        model, config, x_test, y_test, _local_rows(train_images), _local_rows(train_labels)
    )
    pictures = save_pictures(model, workdir, x_test, y_test, picture_key)
    pictures.append(save_curves(workdir, history, config))

    neg_elbo = -terms["elbo"]
    likelihood = model.likelihood
    metrics = {
        "model": "vae",
        "test_nll_nats": nll["nll_nats"],
        "test_nll_stderr_nats": nll["nll_stderr_nats"],
        "test_bits_per_dim": nll["bits_per_dim"],
        "eval_samples": eval_samples,
        "test_neg_elbo_nats": neg_elbo,
        "test_neg_elbo_bits_per_dim": float(latent.bits_per_dim(neg_elbo, num_dims=784)),
        "test_reconstruction_nats": -terms["reconstruction"],
        "test_kl_nats": terms["kl"],
        **(_bits_per_dim_8bit(neg_elbo, nll, likelihood) if binarization == "8bit" else {}),
        **representation,
        "binarization": binarization,
        "evaluation_set": mnist.evaluation_note(x_test.shape[0], binarization, config.eval_seed),
        "likelihood_note": ("log p(x|y) (the label is given)" if model.conditional else "log p(x)")
        + f"; {likelihood.kind}",
        "seed": config.train.seed,
        **reporting.run_stamp(),
        "num_processes": jax.process_count(),
        "num_devices": trainer.mesh.devices.size,
        "train_examples": int(train_images.shape[0]),
        "epochs": config.train.epochs,
        "epochs_run_now": epochs_run[0],
        "train_seconds_per_epoch": fit_seconds / epochs_run[0] if epochs_run[0] else None,
        "train_seconds_note": "mean over the epochs run in this process, compilation and "
        "checkpointing included, per-epoch test evaluation excluded",
        "iwae_eval_seconds": iwae_seconds,
        "wall_time_s": time.perf_counter() - start,
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "history": history,
        "pictures": pictures,
    }
    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    return metrics


def _bits_per_dim_8bit(neg_elbo: float, nll: dict, likelihood) -> dict:
    """The 8-bit test metrics in bits/dim (``genmath.dequantize.bits_per_dim_8bit``)."""

    def bits(nats):
        return float(dequantize.bits_per_dim_8bit(-nats, num_dims=mnist.NUM_PIXELS))

    return {
        "test_bits_per_dim_elbo": bits(neg_elbo),
        "test_bits_per_dim_is": bits(nll["nll_nats"]),
        "is_samples": nll["num_samples"],
        "bits_per_dim_note": "-log2 P(x) / 784 of the 8-bit test images (0..255): the ELBO "
        "(one z per image) and the importance-sampled bound (K = is_samples), both lower "
        "bounds on log P(x), so upper bounds on the bits/dim; "
        + (
            "P is the dequantised Gaussian's mass on each 8-bit image, bounded through "
            "E_u[log p((x + u)/256)] - 784 log 256 with u ~ U[0, 1)^784 drawn with every z"
            if likelihood.needs_key
            else "P is the decoder's discrete distribution over the 256 levels"
        ),
    }


def _representation_metrics(
    model: vae.VAE, config: Config, x_test, y_test, train_images, train_labels
):
    """Active units and a linear probe's accuracy on the encoder means.

    A conditional model's encoder is given the label, so its means carry the label itself:
    a probe on them would score near 1 whatever the model learnt (an untrained one
    included), and the active units would count the label's directions. Both are left out
    (``None``) for it, with a note saying why.
    """
    if model.conditional:
        note = "not measured: the encoder of a conditional VAE is given the label"
        return {
            "active_units": None,
            "active_units_note": note,
            "probe_test_accuracy": None,
            "probe_train_accuracy": None,
            "probe_note": note,
        }
    test_features = vae.encoder_means(model, x_test, y_test)
    x_train = mnist.evaluation_images(
        train_images, binarization=config.train.binarization, seed=config.eval_seed + 1
    )
    y_train = jnp.asarray(train_labels)
    train_features = vae.encoder_means(model, x_train, y_train)
    probe = fit_linear_probe(train_features, y_train, steps=config.probe_steps)
    return {
        "active_units": vae.active_units(test_features),
        "active_units_note": "latent dimensions with Cov_x(E_q[z|x]) > 1e-2 on the test set"
        + ("" if model.top is None else " (z, the first of the two stochastic layers)"),
        "probe_test_accuracy": probe_accuracy(probe, test_features, y_test),
        "probe_train_accuracy": probe_accuracy(probe, train_features, y_train),
    }


def _local_rows(array) -> np.ndarray:
    """This process's rows of a (possibly multi-process, batch-sharded) training array."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
        return np.concatenate([np.asarray(s.data) for s in shards if s.replica_id == 0])
    return np.asarray(array)


def summary(metrics: dict) -> str:
    """One line for the terminal."""
    elbo_bits = (
        f" = {metrics['test_bits_per_dim_elbo']:.4f} bits/dim"
        if "test_bits_per_dim_elbo" in metrics
        else ""
    )
    representation = (
        ""
        if metrics["active_units"] is None
        else f"{metrics['active_units']} active units; probe accuracy "
        f"{metrics['probe_test_accuracy']:.4f}; "
    )
    return (
        f"test -ELBO {metrics['test_neg_elbo_nats']:.2f} nats{elbo_bits} (reconstruction "
        f"{metrics['test_reconstruction_nats']:.2f}, KL {metrics['test_kl_nats']:.2f}); test NLL "
        f"(IWAE, K={metrics['eval_samples']}) {metrics['test_nll_nats']:.2f} "
        f"± {metrics['test_nll_stderr_nats']:.2f} nats = {metrics['test_bits_per_dim']:.4f} "
        f"bits/dim; {representation}{metrics['epochs_run_now']} epochs trained now on "
        f"{metrics['device']}"
    )


@nnx.jit
def _picture_arrays(model: vae.VAE, key, x, y) -> dict[str, jax.Array]:
    """Every picture's images in one compiled call."""
    # Prior samples; a conditional model draws digit d in row d.
    labels = jnp.repeat(jnp.arange(10), 10) if model.conditional else None
    # Separate roots: a two-layer prior splits its key, and no pixel may reuse a latent's.
    latent_key, pixel_key = jax.random.split(key)
    arrays = {"samples": model.generate(latent_key, 100, labels)}
    white = model.likelihood.white
    if white != 1.0:
        # Grey levels: the likelihood's own draws at the same latents show its pixel noise.
        params = model.decode(model.sample_prior(latent_key, 100, labels), labels)
        pixels = model.likelihood.sample(pixel_key, params)
        arrays["pixel_samples"] = pixels.reshape(-1, 28, 28)
    # Rows of eight test images, each row followed by its reconstructions.
    originals = x[:64].reshape(8, 8, 28, 28)
    recon = model.reconstruct(x[:64], y[:64]).reshape(8, 8, 28, 28)
    arrays["reconstructions"] = jnp.stack([originals, recon], axis=1).reshape(-1, 28, 28)
    if model.latent_dim == 2 and not model.conditional and model.top is None:
        arrays["manifold"] = model.mean(model.decode(vae.latent_grid(20)))
    # Pictures take values in [0, 1].
    return {name: images * (1.0 / white) for name, images in arrays.items()}


def save_pictures(model: vae.VAE, workdir: str, x_test, y_test, key) -> list[str]:
    """``samples.png``, ``reconstructions.png``, (2-D latent) ``manifold.png`` and (8-bit
    data) ``pixel_samples.png``."""
    arrays = jax.device_get(_picture_arrays(model, key, x_test, y_test))
    columns = {"samples": 10, "pixel_samples": 10, "reconstructions": 8, "manifold": 20}
    written = []
    for name, images in arrays.items():
        reporting.save_image_grid(
            os.path.join(workdir, f"{name}.png"), np.asarray(images), ncols=columns[name]
        )
        written.append(f"{name}.png")
    return written


def save_curves(workdir: str, history: list[dict], config: Config) -> str:
    """``training_curve.png``: train and test bounds against the epoch."""

    def curve(key):
        rows = [r for r in history if key in r]
        return [r["epoch"] for r in rows], [r[key] for r in rows]

    curves = {"train −ELBO": curve("neg_elbo")}
    for key, label in (
        ("test_neg_elbo", "test −ELBO"),
        (f"test_nll_k{config.curve_samples}", f"test NLL (K={config.curve_samples})"),
        ("neg_iwae", f"train −IWAE (K={config.objective.num_samples})"),
    ):
        if curve(key)[0]:
            curves[label] = curve(key)
    reporting.plot_curves(
        os.path.join(workdir, "training_curve.png"),
        curves,
        xlabel="epoch",
        ylabel="nats per image",
        title=f"VAE on MNIST ({config.train.binarization} binarisation)",
    )
    return "training_curve.png"
