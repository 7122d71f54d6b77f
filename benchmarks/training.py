"""Training benchmark: what a genmath VAE epoch costs, where it goes, and what it buys.

Run ``python -m benchmarks.training`` (about ten minutes on a 2-core CPU, the quality runs
apart) or ``python -m benchmarks.training --quick`` (a 5,000-image subset, a few minutes).

1. **Head to head.** A VAE 784-400-20 (relu, Bernoulli decoder), batch 128, Adam 1e-3,
   on dynamically binarised MNIST, trained three ways on the same images for the same
   number of steps (the last incomplete batch dropped):

   * ``scan``: ``models.training.Trainer.run_epoch``, one compiled ``lax.scan`` per epoch;
   * ``jax-loop``: ``jax.jit(models.training.make_train_step(...), donate_argnums=0)``
     called once per minibatch from a Python loop over host-made (numpy) batches;
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

2. **Breakdown** of a scan epoch (``--skip-breakdown`` leaves it out), timed in the same
   rotation: the train step alone (a plain ``lax.scan`` over pre-binarised batches); the
   binarisation alone, old (``jax.random.bernoulli``) and new (``mnist.bernoulli_pixels``),
   each a scan over the epoch's batches, and the gather alone; a plain ``lax.scan`` of
   gather + binarisation + step; and so the Trainer's overhead (scan Trainer epoch minus
   the plain scan, paired by round) and the per-step loop's dispatch cost (its epoch minus
   its host batching minus the step alone).

3. **Quality for cost.** ``examples.vae.train.train_and_evaluate`` with the ``burda()``
   configuration for ``--burda-epochs`` epochs and with ``flax()`` for ``--flax-epochs``:
   test negative ELBO, importance-sampled test NLL (the example's ``K``), wall time. The
   quick run trains Burda's configuration for one epoch on 1,000 images, only to exercise it.

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
SCHEMA_VERSION = 2

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
    "jax-loop": "JAX per-step loop (jit make_train_step, donated; host batches)",
}


TORCH_CUDA = "torch-cuda"


def torch_name(threads: int) -> str:
    return f"torch-{threads}t"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help=f"{QUICK_EXAMPLES:,} training images, 1 timed epoch, tiny quality run (CI smoke)",
    )
    add(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"results directory (default {RESULTS_DIR}; --quick: a temp dir)",
    )
    add("--data-dir", default=None, help="MNIST IDX folder (else $GENMATH_MNIST_DIR)")
    add(
        "--epochs",
        type=int,
        default=None,
        help="timed epochs per contender after the warm-up epoch (default 3, quick 1)",
    )
    add(
        "--train-examples",
        type=int,
        default=None,
        help=f"head to head on the first N training images (default all, quick {QUICK_EXAMPLES})",
    )
    add(
        "--burda-epochs",
        type=int,
        default=None,
        help="epochs of the Burda et al. configuration (default 5 on CPU, 100 on accelerators)",
    )
    add(
        "--flax-epochs",
        type=int,
        default=10,
        help="epochs of the Flax-example configuration (default %(default)s)",
    )
    add(
        "--contender-budget-s",
        type=float,
        default=240.0,
        help="a contender whose epochs have taken longer than this takes no further timed "
        "epochs (it always gets the warm-up and one timed epoch; default %(default)s)",
    )
    add("--seed", type=int, default=0)
    add("--skip-torch", action="store_true", help="leave out the PyTorch reference")
    add(
        "--torch-threads",
        default=None,
        help="comma-separated torch.set_num_threads values, each its own contender; "
        "'cores' is the core count (default cores,1; quick: 1)",
    )
    add(
        "--torch-cuda",
        choices=("auto", "on", "off"),
        default="auto",
        help="also time the PyTorch reference on the GPU (auto: when JAX runs on a GPU and "
        "torch sees one)",
    )
    add("--skip-breakdown", action="store_true", help="leave out the breakdown of a scan epoch")
    add("--skip-quality", action="store_true", help="leave out the Burda and Flax runs")
    add(
        "--no-report",
        action="store_true",
        help="do not regenerate benchmarks/README.md after a full run",
    )
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
            raise SystemExit(
                f"--torch-threads: expected 'cores' or positive integers, got {spec!r}"
            )
        if count not in counts:
            counts.append(count)
    return counts


def torch_unavailable_reason() -> str | None:
    """Why the PyTorch reference cannot run here, or ``None`` when it can."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return (
            f"torch is not installed ({error}); the PyTorch reference is skipped "
            f"(pip install {TORCH_PIN} to include it)"
        )
    return None


# ------------------------------------------------------------------------ head to head


def setup(seed: int):
    """The head-to-head model and trainer settings (the torch reference mirrors them)."""
    from benchmarks._src import training_jax
    from models import training, vae

    # No output-bias initialisation: the torch reference starts from PyTorch's defaults.
    model = vae.VAEConfig(
        latent_dim=LATENT,
        hidden=(HIDDEN,),
        activation="relu",
        likelihood="bernoulli",
        output_bias_init=False,
    )
    train = training.TrainConfig(
        batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed, binarization="dynamic"
    )
    return training_jax.Setup(model=model, train=train)


def torch_cuda_wanted(mode: str) -> bool:
    """Whether to add the ``torch-cuda`` contender (``--torch-cuda``; torch importable)."""
    if mode == "off":
        return False
    import jax
    import torch

    if mode == "on":
        if not torch.cuda.is_available():
            raise SystemExit("--torch-cuda on: torch sees no GPU")
        return True
    return jax.default_backend() == "gpu" and torch.cuda.is_available()


def _make(names, images, labels, args, cores: int) -> dict:
    from benchmarks._src import training_jax

    chosen = setup(args.seed)
    made = {}
    for name in names:
        if name.startswith("torch-"):
            from benchmarks._src import torch_vae

            cuda = name == TORCH_CUDA
            made[name] = torch_vae.TorchTrainer(
                images,
                hidden=HIDDEN,
                latent=LATENT,
                threads=cores if cuda else int(name.removeprefix("torch-").removesuffix("t")),
                device="cuda" if cuda else "cpu",
                batch_size=BATCH_SIZE,
                learning_rate=LEARNING_RATE,
                seed=args.seed,
            )
        else:
            made[name] = training_jax.make_component(name, images, labels, chosen)
    return made


def _load1() -> float | None:
    from benchmarks._src import device

    values = device.load_average()
    return values[0] if values else None


def _rounds(objects: dict, args) -> dict:
    """A warm-up epoch, then ``args.epochs`` timed epochs of every object, interleaved."""
    names = list(objects)
    runs = {
        n: {"records": [], "epoch_s": [], "rounds": [], "data_loading_s": [], "load_1min": []}
        for n in names
    }
    for round_index in range(args.epochs + 1):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = runs[name]
            spent = run.get("first_epoch_s", 0.0) + sum(run["epoch_s"])
            if len(run["epoch_s"]) >= 1 and spent > args.contender_budget_s:
                continue  # over its time budget: keeps the epochs it has
            tic = time.perf_counter()
            record = objects[name].run_epoch()
            seconds = time.perf_counter() - tic
            run["records"].append(record)
            if round_index == 0:
                run["first_epoch_s"] = seconds
            else:
                run["epoch_s"].append(seconds)
                run["rounds"].append(round_index)
                run["load_1min"].append(_load1())
                if "data_loading_s" in record:
                    run["data_loading_s"].append(record["data_loading_s"])
            kind = "warm-up" if round_index == 0 else f"timed {round_index}/{args.epochs}"
            value = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "data_loading_s")
            print(f"  {name:<18} epoch ({kind}): {seconds:7.3f} s, {value}", flush=True)
    return runs


def _timing(run: dict) -> dict:
    median = statistics.median(run["epoch_s"])
    return {
        "first_epoch_s": run["first_epoch_s"],
        "epoch_s": run["epoch_s"],
        "rounds": run["rounds"],
        "median_epoch_s": median,
        "min_epoch_s": min(run["epoch_s"]),
        # The warm-up epoch's excess over a steady one: tracing and compiling for JAX;
        # first-touch allocation and thread start-up for (eager) torch.
        "warmup_excess_s": max(run["first_epoch_s"] - median, 0.0),
        "load_1min": run["load_1min"],
    }


def paired_difference(a: dict, b: dict) -> float | None:
    """Median over the rounds both timed of ``a``'s epoch minus ``b``'s (seconds)."""
    b_by_round = dict(zip(b["rounds"], b["epoch_s"], strict=True))
    diffs = [
        t - b_by_round[r] for r, t in zip(a["rounds"], a["epoch_s"], strict=True) if r in b_by_round
    ]
    return statistics.median(diffs) if diffs else None


def breakdown(runs: dict, contenders: dict, steps: int) -> dict:
    """The breakdown components' timings and what follows from them (seconds per epoch)."""
    from benchmarks._src import training_jax

    components = {}
    for name, label in training_jax.BREAKDOWN.items():
        if name not in runs:
            continue
        entry = {"name": name, "label": label, **_timing(runs[name])}
        entry["compile_s"] = entry["warmup_excess_s"]
        values = runs[name]["records"]
        if "loss" in values[0]:
            entry["losses"] = [r["loss"] for r in values]
        if "mean_pixel" in values[0]:
            entry["mean_pixel"] = values[-1]["mean_pixel"]
        components[name] = entry
    median = lambda name: components[name]["median_epoch_s"] if name in components else None
    scan = contenders.get("scan")
    loop = contenders.get("jax-loop")
    derived = {
        "step_compute_s": median("step-only"),
        "binarize_bernoulli_s": median("binarize-bernoulli"),
        "binarize_pixels_s": median("binarize-pixels"),
        "binarize_pixels_rbg_s": median("binarize-pixels-rbg"),
        "gather_s": median("gather"),
        "plain_scan_s": median("plain-scan"),
        "scan_trainer_s": scan["median_epoch_s"] if scan else None,
        "jax_loop_s": loop["median_epoch_s"] if loop else None,
    }
    if derived["binarize_bernoulli_s"] and derived["binarize_pixels_s"]:
        derived["binarize_speedup"] = derived["binarize_bernoulli_s"] / derived["binarize_pixels_s"]
    if scan and "plain-scan" in components:
        derived["trainer_overhead_s"] = paired_difference(scan, components["plain-scan"])
        derived["trainer_overhead_unpaired_s"] = (
            scan["median_epoch_s"] - components["plain-scan"]["median_epoch_s"]
        )
    if derived["step_compute_s"] is not None and derived["binarize_pixels_s"] is not None:
        derived["step_plus_binarize_s"] = derived["step_compute_s"] + derived["binarize_pixels_s"]
    if loop and derived["step_compute_s"] is not None and "data_loading_s_median" in loop:
        # What the per-step loop pays beyond its host batching and the step's compute:
        # per-step dispatch and the host-to-device transfer of each batch.
        derived["loop_dispatch_s"] = (
            loop["median_epoch_s"] - loop["data_loading_s_median"] - derived["step_compute_s"]
        )
    return {
        "steps_per_epoch": steps,
        "components": components,
        **derived,
        "note": "seconds per epoch; each component timed in the same rotation as the "
        "contenders; trainer_overhead_s is the median over rounds of (scan - plain-scan)",
    }


def head_to_head(images, labels, args, cores: int) -> dict:
    """Warm-up epoch, then ``args.epochs`` timed epochs of every contender, interleaved."""
    from benchmarks._src import training_jax

    threads = torch_thread_counts(args.torch_threads, cores)
    torch_names = [torch_name(t) for t in threads]
    labels_by_name = {
        **JAX_CONTENDERS,
        **{torch_name(t): f"PyTorch reference, torch.set_num_threads({t})" for t in threads},
    }
    skipped = {}
    if args.skip_torch:
        skipped = {n: "skipped: --skip-torch" for n in torch_names}
    elif (reason := torch_unavailable_reason()) is not None:
        skipped = {n: "skipped: " + reason for n in torch_names}
        print(reason, flush=True)
    elif torch_cuda_wanted(args.torch_cuda):
        torch_names.append(TORCH_CUDA)
        labels_by_name[TORCH_CUDA] = "PyTorch reference on the GPU (batches copied per step)"
    names = [n for n in labels_by_name if n not in skipped]
    if not args.skip_breakdown:
        names += list(training_jax.BREAKDOWN)
    objects = _make(names, images, labels, args, cores)
    steps = images.shape[0] // BATCH_SIZE
    runs = _rounds(objects, args)

    results = []
    for name, label in labels_by_name.items():
        entry = {"name": name, "label": label}
        if name in skipped:
            results.append({**entry, "status": skipped[name]})
            continue
        run = runs[name]
        entry.update(status="ok", **_timing(run))
        losses = [r["loss"] for r in run["records"]]
        entry.update(
            examples_per_s=steps * BATCH_SIZE / entry["median_epoch_s"],
            losses=losses,
            final_loss=losses[-1],
        )
        if name in JAX_CONTENDERS:
            entry["compile_s"] = entry["warmup_excess_s"]
        if run["data_loading_s"]:
            entry["data_loading_s_median"] = statistics.median(run["data_loading_s"])
        if name.startswith("torch"):
            entry["torch_threads"] = objects[name].threads
            entry["torch_device"] = str(objects[name].device)
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
    result = {
        "model": f"VAE 784-{HIDDEN}-{LATENT}, relu, Bernoulli decoder, Gaussian encoder",
        "loss": "negative ELBO per image (analytic KL, one z sample), nats",
        "optimizer": f"Adam, learning rate {LEARNING_RATE:g}",
        "batch_size": BATCH_SIZE,
        "binarization": "dynamic (mnist.bernoulli_pixels on the device; numpy in jax-loop)",
        "train_examples": int(images.shape[0]),
        "steps_per_epoch": steps,
        "examples_per_epoch": steps * BATCH_SIZE,
        "timed_epochs": args.epochs,
        "contender_budget_s": args.contender_budget_s,
        "contenders": results,
        "torch_reference": by_name["torch"]["name"] if timed_torch else None,
        "throughput_ratios": ratios,
    }
    if not args.skip_breakdown:
        result["breakdown"] = breakdown(runs, by_name, steps)
    return result


# ----------------------------------------------------------------------------- quality


QUALITY_KEYS = (
    "test_neg_elbo_nats",
    "test_nll_nats",
    "test_nll_stderr_nats",
    "test_bits_per_dim",
    "eval_samples",
    "test_reconstruction_nats",
    "test_kl_nats",
    "active_units",
    "probe_test_accuracy",
    "train_examples",
    "epochs",
    "train_seconds_per_epoch",
    "iwae_eval_seconds",
    "wall_time_s",
    "evaluation_set",
    "device",
)
QUICK_QUALITY = {
    "train_examples": 1000,
    "test_examples": 500,
    "eval_samples": 10,
    "probe_steps": 20,
}


def quality_config(preset: str, epochs: int, *, seed: int, quick: bool):
    """``examples.vae.configs.<preset>()`` trained for ``epochs`` epochs, and what changed."""
    from examples.vae import configs

    base = configs.get_config(preset)
    train = dataclasses.replace(base.train, epochs=epochs, seed=seed)
    extra = QUICK_QUALITY if quick else {}
    changed = {"train.epochs": epochs, "train.seed": seed, **extra}
    return dataclasses.replace(base, train=train, **extra), changed


def quality_run(config, changed: dict, data, workdir: pathlib.Path) -> dict:
    """``train_and_evaluate(config, workdir, data=data)``: its metrics and wall time."""
    from examples.vae import configs
    from examples.vae.train import train_and_evaluate

    function = configs.PRESETS[config.preset]
    tic = time.perf_counter()
    metrics = train_and_evaluate(config, workdir, data=data, resume=False, progress=False)
    wall = time.perf_counter() - tic
    history = metrics["history"]
    return {
        "preset": config.preset,
        "description": (function.__doc__ or "").strip().splitlines()[0],
        "call": f"examples.vae.train.train_and_evaluate(configs.{function.__name__}() with "
        + ", ".join(f"{k}={v}" for k, v in changed.items())
        + ", workdir, data=...)",
        "config": dataclasses.asdict(config),
        "model": dataclasses.asdict(config.model),
        "batch_size": config.train.batch_size,
        **{k: metrics.get(k) for k in QUALITY_KEYS},
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

    from benchmarks._src import data as bench_data
    from benchmarks._src import device

    info = device.describe()
    cores = info["host_cores"]
    load_before = device.load_average()
    reason = None if args.skip_torch else torch_unavailable_reason()
    torch_info = {}
    if not args.skip_torch and reason is None:
        import torch

        torch_info = {
            "torch": torch.__version__,
            "torch_threads": torch_thread_counts(args.torch_threads, cores),
        }
    burda_epochs = args.burda_epochs or (5 if info["backend"] == "cpu" else 100)
    print(
        f"Device: {info['backend']} — {info['device']}; jax {info['jax']}"
        + (f"; torch {torch_info['torch']}" if torch_info else "")
        + f"; {'quick' if args.quick else 'full'} run; load average {load_before}",
        flush=True,
    )

    data, source = bench_data.load(args.data_dir)
    count = args.train_examples or data.train_images.shape[0]
    if not BATCH_SIZE <= count <= data.train_images.shape[0]:
        raise SystemExit(
            f"--train-examples must lie in [{BATCH_SIZE}, {data.train_images.shape[0]}], "
            f"got {count}"
        )
    images, labels = data.train_images[:count], data.train_labels[:count]
    print(
        f"Head to head: {count:,} images, {count // BATCH_SIZE} steps of {BATCH_SIZE} per "
        f"epoch, 1 warm-up + {args.epochs} timed epochs each"
        + ("" if args.skip_breakdown else ", breakdown components in the same rotation"),
        flush=True,
    )
    training = head_to_head(images, labels, args, cores)

    quality = {}
    if not args.skip_quality:
        with tempfile.TemporaryDirectory(prefix="genmath-train-bench-") as tmp:
            # Quick: one epoch of Burda on a tiny subset, only to exercise the path.
            runs = (
                [("burda", 1)]
                if args.quick
                else [("burda", burda_epochs), ("flax", args.flax_epochs)]
            )
            for preset, epochs in runs:
                print(f"Quality: configs.{preset}(), {epochs} epochs", flush=True)
                config, changed = quality_config(preset, epochs, seed=args.seed, quick=args.quick)
                quality[preset] = quality_run(config, changed, data, pathlib.Path(tmp) / preset)
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
        "data_source": source,
        "command": " ".join(
            ["python -m benchmarks.training", *(argv if argv is not None else sys.argv[1:])]
        ),
        "load_average_before": load_before,
        "load_average_after": device.load_average(),
        "wall_s": time.perf_counter() - started,
        "head_to_head": training,
        "quality": quality,
    }
    out = args.out or (
        pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    )
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
