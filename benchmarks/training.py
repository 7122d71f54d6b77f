"""Training benchmark: what a genmath VAE epoch costs, and what the training buys.

Run ``python -m benchmarks.training`` (about eight minutes on a 2-core CPU) or
``python -m benchmarks.training --quick`` (a 5,000-image subset, under a minute).

1. **Head to head.** A VAE 784-400-20 (relu, Bernoulli decoder), batch 128, Adam 1e-3,
   on dynamically binarised MNIST, trained three ways on the same images for the same
   number of steps (the last incomplete batch dropped):

   * ``scan``: ``models.training.Trainer``, one compiled ``lax.scan`` per epoch;
   * ``jax-loop``: one jit-compiled step per minibatch, called from a Python loop over
     host-made (numpy) batches;
   * ``torch-<n>t``: the same model in plain PyTorch on the CPU (a Python loop over a
     ``DataLoader``, summed binary cross-entropy plus analytic KL, ``torch.optim.Adam``)
     with ``torch.set_num_threads(n)``, by default n = the core count and n = 1 (on a
     loaded machine OpenMP's barriers make more threads slower); the faster one is the
     reference. Skipped, saying so, when torch is not installed.

   Each contender runs a warm-up epoch (it compiles; its excess over the median epoch is
   reported as the compile time), then the timed epochs, the contenders taking turns
   epoch by epoch in a rotating order so that load drifting on a shared machine hits all
   alike. Reported: seconds per epoch (median), examples per second, compile time and
   every epoch's mean training loss (negative ELBO per image), so one sees all three learn.

2. **Quality for cost.** ``examples.vae`` with ``--preset burda`` for ``--burda-epochs``
   epochs and with the Flax-example preset for ``--flax-epochs`` epochs: test negative
   ELBO, importance-sampled test NLL (the example's ``K``), wall time, device. The quick
   run trains Burda's configuration for one epoch on 1,000 images, only to exercise it.

Results go to ``<out>/training-<backend>-<device>.json``; a full run into
``benchmarks/results`` then regenerates ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1

HIDDEN, LATENT = 400, 20
BATCH_SIZE, LEARNING_RATE = 128, 1e-3
QUICK_EXAMPLES = 5_000
FLAX_NEG_ELBO_BAR = 104.0
# Burda, Grosse & Salakhutdinov (2015), Table 1: one stochastic layer, trained on the ELBO
# (k = 1) for their full 3280-epoch schedule; test NLL in nats.
BURDA_ELBO_NLL_BAR = 86.76
BURDA_SCHEDULE_EPOCHS = 3280
TORCH_PIN = "torch==2.13.0"

JAX_CONTENDERS = {
        "scan": "genmath Trainer (lax.scan epoch)",
        "jax-loop": "JAX per-step loop (jit step, host batches)",
}


def torch_name(threads: int) -> str:
    return f"torch-{threads}t"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--quick", action="store_true",
        help=f"{QUICK_EXAMPLES:,} training images, 1 timed epoch, tiny quality runs (CI smoke)")
    add("--out", type=pathlib.Path, default=None,
        help=f"results directory (default {RESULTS_DIR}; --quick: a temp dir)")
    add("--data-dir", default=None, help="MNIST IDX folder (else $GENMATH_MNIST_DIR)")
    add("--epochs", type=int, default=None,
        help="timed epochs per contender after the warm-up epoch (default 3, quick 1)")
    add("--train-examples", type=int, default=None,
        help=f"head to head on the first N training images (default all, quick {QUICK_EXAMPLES})")
    add("--burda-epochs", type=int, default=None,
        help="epochs of the Burda et al. configuration (default 5 on CPU, 100 on accelerators)")
    add("--flax-epochs", type=int, default=10,
        help="epochs of the Flax-example configuration (default %(default)s)")
    add("--contender-budget-s", type=float, default=240.0,
        help="a contender whose epochs have taken longer than this takes no further timed "
             "epochs (it always gets the warm-up and one timed epoch; default %(default)s)")
    add("--seed", type=int, default=0)
    add("--skip-torch", action="store_true", help="leave out the PyTorch reference")
    add("--torch-threads", default=None,
        help="comma-separated torch.set_num_threads values, each its own contender; "
             "'cores' is the core count (default cores,1; quick: 1)")
    add("--skip-quality", action="store_true", help="leave out the Burda and Flax runs")
    add("--no-report", action="store_true",
        help="do not regenerate benchmarks/README.md after a full run")
    args = parser.parse_args(argv)
    for name in ("epochs", "train_examples", "burda_epochs", "flax_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.epochs is None:
        args.epochs = 1 if args.quick else 3
    if args.quick and args.train_examples is None:
        args.train_examples = QUICK_EXAMPLES
    if args.torch_threads is None:
        args.torch_threads = "1" if args.quick else "cores,1"
    return args


def torch_thread_counts(spec: str, cores: int) -> list[int]:
    """``--torch-threads`` as distinct positive counts (``cores`` is the core count)."""
    counts = []
    for part in spec.split(","):
        part = part.strip()
        count = cores if part == "cores" else int(part) if part.isdigit() else 0
        if count < 1:
            raise SystemExit(f"--torch-threads: expected 'cores' or positive integers, "
                             f"got {spec!r}")
        if count not in counts:
            counts.append(count)
    return counts


def torch_unavailable_reason() -> str | None:
    """Why the PyTorch reference cannot run here, or ``None`` when it can."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return (f"torch is not installed ({error}); the PyTorch reference is skipped "
                f"(pip install {TORCH_PIN} to include it)")
    return None


# ------------------------------------------------------------------------ head to head


def _make_contenders(names, images, labels, args):
    from benchmarks._src import training_jax
    from models import vae

    config = vae.VAEConfig(latent_dim=LATENT, hidden=(HIDDEN,), activation="relu",
                           likelihood="bernoulli")
    common = dict(batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=args.seed)
    made = {}
    for name in names:
        if name == "scan":
            made[name] = training_jax.ScanContender(images, labels, config=config, **common)
        elif name == "jax-loop":
            made[name] = training_jax.StepLoopContender(images, labels, config=config, **common)
        else:
            from benchmarks._src import torch_vae

            threads = int(name.removeprefix("torch-").removesuffix("t"))
            made[name] = torch_vae.TorchTrainer(images, hidden=HIDDEN, latent=LATENT,
                                                threads=threads, **common)
    return made


def _timed_epoch(contender) -> tuple[dict, float]:
    tic = time.perf_counter()
    record = contender.run_epoch()
    return record, time.perf_counter() - tic


def _load1() -> float | None:
    from benchmarks._src import device

    values = device.load_average()
    return values[0] if values else None


def head_to_head(images, labels, args, cores: int) -> dict:
    """Warm-up epoch, then ``args.epochs`` timed epochs of every contender, interleaved."""
    threads = torch_thread_counts(args.torch_threads, cores)
    torch_names = [torch_name(t) for t in threads]
    labels_by_name = {**JAX_CONTENDERS,
                      **{torch_name(t): f"PyTorch reference, torch.set_num_threads({t})"
                         for t in threads}}
    skipped = {}
    if args.skip_torch:
        skipped = {n: "skipped: --skip-torch" for n in torch_names}
    elif (reason := torch_unavailable_reason()) is not None:
        skipped = {n: "skipped: " + reason for n in torch_names}
        print(reason, flush=True)
    names = [n for n in labels_by_name if n not in skipped]
    contenders = _make_contenders(names, images, labels, args)
    steps = images.shape[0] // BATCH_SIZE
    runs = {n: {"losses": [], "epoch_s": [], "data_loading_s": [], "load_1min": []}
            for n in names}

    for round_index in range(args.epochs + 1):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = runs[name]
            spent = run.get("first_epoch_s", 0.0) + sum(run["epoch_s"])
            if len(run["epoch_s"]) >= 1 and spent > args.contender_budget_s:
                continue  # over its time budget: keeps the epochs it has
            record, seconds = _timed_epoch(contenders[name])
            run["losses"].append(record["loss"])
            if round_index == 0:
                run["first_epoch_s"] = seconds
            else:
                run["epoch_s"].append(seconds)
                run["load_1min"].append(_load1())
                if "data_loading_s" in record:
                    run["data_loading_s"].append(record["data_loading_s"])
            kind = "warm-up" if round_index == 0 else f"timed {round_index}/{args.epochs}"
            print(f"  {name:<9} epoch ({kind}): {seconds:7.2f} s, loss {record['loss']:.2f}",
                  flush=True)

    results = []
    for name, label in labels_by_name.items():
        entry = {"name": name, "label": label}
        if name in skipped:
            results.append({**entry, "status": skipped[name]})
            continue
        run = runs[name]
        median = statistics.median(run["epoch_s"])
        entry.update(
                status="ok",
                first_epoch_s=run["first_epoch_s"],
                epoch_s=run["epoch_s"],
                median_epoch_s=median,
                min_epoch_s=min(run["epoch_s"]),
                examples_per_s=steps * BATCH_SIZE / median,
                # The warm-up epoch's excess over a steady one: tracing and compiling for
                # JAX; first-touch allocation and thread start-up for (eager) torch.
                warmup_excess_s=max(run["first_epoch_s"] - median, 0.0),
                losses=run["losses"],
                final_loss=run["losses"][-1],
                load_1min=run["load_1min"],
        )
        if name in JAX_CONTENDERS:
            entry["compile_s"] = entry["warmup_excess_s"]
        if run["data_loading_s"]:
            entry["data_loading_s_median"] = statistics.median(run["data_loading_s"])
        if name.startswith("torch"):
            entry["torch_threads"] = contenders[name].threads
        results.append(entry)

    by_name = {r["name"]: r for r in results if r["status"] == "ok"}
    # The reference is the fastest torch setting measured: on a loaded machine more
    # threads can be slower (their OpenMP barriers wait for descheduled threads).
    timed_torch = [by_name[n] for n in torch_names if n in by_name]
    if timed_torch:
        by_name["torch"] = max(timed_torch, key=lambda r: r["examples_per_s"])
    ratios = {}
    for a, b in (("scan", "torch"), ("scan", "jax-loop"), ("jax-loop", "torch")):
        if a in by_name and b in by_name:
            ratios[f"{a}/{b}"] = by_name[a]["examples_per_s"] / by_name[b]["examples_per_s"]
    return {
            "model": f"VAE 784-{HIDDEN}-{LATENT}, relu, Bernoulli decoder, Gaussian encoder",
            "loss": "negative ELBO per image (analytic KL, one z sample), nats",
            "optimizer": f"Adam, learning rate {LEARNING_RATE:g}",
            "batch_size": BATCH_SIZE,
            "binarization": "dynamic",
            "train_examples": int(images.shape[0]),
            "steps_per_epoch": steps,
            "examples_per_epoch": steps * BATCH_SIZE,
            "timed_epochs": args.epochs,
            "contender_budget_s": args.contender_budget_s,
            "contenders": results,
            "torch_reference": by_name["torch"]["name"] if timed_torch else None,
            "throughput_ratios": ratios,
    }


# ----------------------------------------------------------------------------- quality


QUALITY_KEYS = ("test_neg_elbo_nats", "test_nll_nats", "test_bits_per_dim", "eval_samples",
                "test_reconstruction_nats", "test_kl_nats", "probe_test_accuracy",
                "train_examples", "epochs", "train_seconds_per_epoch", "wall_time_s",
                "evaluation_set", "device")


def quality_run(preset: str, epochs: int, args, workdir: pathlib.Path) -> dict:
    """``examples.vae`` for ``epochs`` epochs of ``preset``; its metrics and wall time."""
    from examples import vae as vae_example
    from models import vae

    argv = ["--preset", preset, "--epochs", str(epochs), "--seed", str(args.seed),
            "--workdir", str(workdir), "--no-resume", "--no-progress"]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.quick:
        argv += ["--train-examples", "1000", "--test-examples", "500", "--eval-samples", "10",
                 "--probe-steps", "20"]
    tic = time.perf_counter()
    metrics = vae_example.main(argv)
    wall = time.perf_counter() - tic
    history = metrics["history"]
    chosen = vae.preset(preset)
    return {
            "preset": preset,
            "description": chosen.description,
            "model": dataclasses.asdict(chosen.model),
            "batch_size": metrics["train_config"]["batch_size"],
            "command": "python -m examples.vae " + " ".join(argv).replace(str(workdir), "<tmp>"),
            **{k: metrics[k] for k in QUALITY_KEYS},
            "train_losses": [r["loss"] for r in history],
            "test_neg_elbo_by_epoch": [r.get("test_neg_elbo") for r in history],
            "wall_s": wall,
    }


# -------------------------------------------------------------------------------- main


def _summary(result: dict) -> str:
    from benchmarks._src import training_report

    return training_report.summary_text(result)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import jax

    from benchmarks._src import device
    from models import mnist

    info = device.describe()
    cores = info["host_cores"]
    load_before = device.load_average()
    reason = None if args.skip_torch else torch_unavailable_reason()
    torch_info = {}
    if not args.skip_torch and reason is None:
        import torch

        torch_info = {"torch": torch.__version__,
                      "torch_threads": torch_thread_counts(args.torch_threads, cores)}
    burda_epochs = args.burda_epochs or (5 if info["backend"] == "cpu" else 100)
    print(f"Device: {info['backend']} — {info['device']}; jax {info['jax']}"
          + (f"; torch {torch_info['torch']}" if torch_info else "")
          + f"; {'quick' if args.quick else 'full'} run; load average {load_before}", flush=True)

    data = mnist.load_mnist(args.data_dir)
    count = args.train_examples or data.train_images.shape[0]
    if not BATCH_SIZE <= count <= data.train_images.shape[0]:
        raise SystemExit(f"--train-examples must lie in [{BATCH_SIZE}, "
                         f"{data.train_images.shape[0]}], got {count}")
    images, labels = data.train_images[:count], data.train_labels[:count]
    print(f"Head to head: {count:,} images, {count // BATCH_SIZE} steps of {BATCH_SIZE} per "
          f"epoch, 1 warm-up + {args.epochs} timed epochs each", flush=True)
    training = head_to_head(images, labels, args, cores)

    quality = {}
    if not args.skip_quality:
        with tempfile.TemporaryDirectory(prefix="genmath-train-bench-") as tmp:
            # Quick: one epoch of Burda on a tiny subset, only to exercise the path.
            runs = [("burda", 1)] if args.quick else [("burda", burda_epochs),
                                                      ("flax", args.flax_epochs)]
            for preset, epochs in runs:
                print(f"Quality: preset {preset}, {epochs} epochs", flush=True)
                quality[preset] = quality_run(preset, epochs, args, pathlib.Path(tmp) / preset)
        if "flax" in quality:
            quality["flax"]["neg_elbo_bar_nats"] = FLAX_NEG_ELBO_BAR
        if "burda" in quality:
            quality["burda"]["nll_bar_nats"] = BURDA_ELBO_NLL_BAR
            quality["burda"]["bar_epochs"] = BURDA_SCHEDULE_EPOCHS

    result = {
            "suite": "training",
            "schema": SCHEMA_VERSION,
            **info,
            **torch_info,
            "jax_backend_devices": [str(d) for d in jax.devices()],
            "quick": args.quick,
            "command": " ".join(["python -m benchmarks.training",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "load_average_before": load_before,
            "load_average_after": device.load_average(),
            "wall_s": time.perf_counter() - started,
            "head_to_head": training,
            "quality": quality,
    }
    out = args.out or (pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick
                       else RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"training-{info['slug']}.json"
    path.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    print()
    print(_summary(result))
    print(f"\nResults written to {path} ({result['wall_s']:.0f} s)")
    if not args.quick and not args.no_report and out.resolve() == RESULTS_DIR.resolve():
        from benchmarks import report

        report.main([])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
