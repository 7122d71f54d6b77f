"""The long quality runs against Burda et al. (2015), one command each.

    python -m benchmarks.quality burda-iwae-k50 --workdir runs/burda-iwae-k50
    python -m benchmarks.quality burda-elbo --workdir runs/burda-elbo
    python -m benchmarks.quality burda-iwae-k50-2layer --workdir runs/burda-iwae-k50-2layer
    python -m benchmarks.quality --list      # every run: its bar, config, expected wall time

Each run is ``examples.vae.train.train_and_evaluate(config, workdir, data=...)`` with
``configs.burda()`` (200-200-50 tanh, batch 20, Burda's Adam schedule over 3280 epochs,
output bias from the pixel means) or, for the two-stochastic-layer run,
``configs.burda_2layer()`` (200-200-100-100-100-50), the run's objective and
``eval_samples=5000``, the K of the paper's test NLL. A rerun with the same
``--workdir`` resumes from the latest checkpoint, so a run can span several machine
sessions. ``--dry-run`` prints the configuration and the expected wall time without
training.

The expected wall time is the projection of the latest ``benchmarks/results/iwae-*.json``
(``python -m benchmarks.iwae``, a few measured epochs) of this device, else of each
device measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
EVAL_SAMPLES = 5000


@dataclasses.dataclass(frozen=True)
class Run:
    """A published result and how to reproduce it here."""

    paper: str
    bar_nats: float
    objective: tuple[str, int]  # (kind, K)
    preset: str = "burda"  # a preset of examples.vae.configs

    @property
    def timing_name(self) -> str:
        """The run's entry in ``python -m benchmarks.iwae``'s results."""
        kind, k = self.objective
        return timing_name(kind, k, self.preset)


# The presets a timing or quality run can use, and the suffix of their names and files.
PRESET_SUFFIXES = {"burda": "", "burda-2layer": "-2layer"}


def timing_name(kind: str, k: int, preset: str = "burda") -> str:
    """``iwae-k50`` (one stochastic layer), ``iwae-k50-2layer`` (``burda-2layer``)."""
    return f"{kind}-k{k}{PRESET_SUFFIXES[preset]}"


RUNS = {
    "burda-elbo": Run(
        "Burda et al. (2015), Table 1: VAE, one stochastic layer, trained with k = 1",
        86.76,
        ("elbo", 1),
    ),
    "burda-iwae-k50": Run(
        "Burda et al. (2015), Table 1: IWAE, one stochastic layer, k = 50",
        84.78,
        ("iwae", 50),
    ),
    "burda-iwae-k50-2layer": Run(
        "Burda et al. (2015), Table 1: IWAE, two stochastic layers (784-100-50), k = 50",
        82.90,
        ("iwae", 50),
        preset="burda-2layer",
    ),
}


def config_for(name: str, *, epochs: int | None = None, seed: int = 0, **overrides):
    """The ``examples.vae.configs.Config`` of run ``name`` (``overrides``: Config fields)."""
    from examples.vae import configs
    from models import vae

    run = RUNS[name]
    base = configs.get_config(run.preset)
    kind, k = run.objective
    train = dataclasses.replace(base.train, seed=seed, epochs=epochs or base.train.epochs)
    return dataclasses.replace(
        base,
        objective=vae.Objective(kind=kind, num_samples=k),
        train=train,
        preset=f"{run.preset} ({name})",
        **{"eval_samples": EVAL_SAMPLES, **overrides},
    )


def expected_wall_times(name: str, results_dir: pathlib.Path = RESULTS_DIR) -> list[dict]:
    """Projected wall times of ``name`` from every ``iwae-*.json`` in ``results_dir``."""
    timing = RUNS[name].timing_name
    found = []
    for path in sorted(results_dir.glob("iwae-*.json")):
        result = json.loads(path.read_text())
        for entry in result.get("runs", []):
            if entry["name"] == timing:
                found.append(
                    {
                        "file": path.name,
                        "device": result["device"],
                        "slug": result["slug"],
                        "quick": result.get("quick", False),
                        "date": result["date"],
                        "epoch_s": entry["projection"]["epoch_s"],
                        "total_s": entry["projection"]["total_s"],
                        "measured": f"{len(entry['epoch_s'])} epochs of "
                        f"{entry['train_examples']:,} images",
                    }
                )
    return found


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def describe(name: str, results_dir: pathlib.Path = RESULTS_DIR) -> str:
    run = RUNS[name]
    lines = [f"{name}: {run.paper}; test NLL bar {run.bar_nats:.2f} nats"]
    kind, k = run.objective
    preset = run.preset.replace("-", "_")
    lines.append(
        f"  config: configs.{preset}() with objective=Objective(kind={kind!r}, num_samples={k}), "
        f"eval_samples={EVAL_SAMPLES} (3280 epochs, batch 20)"
    )
    lines.append(f"  command: python -m benchmarks.quality {name} --workdir runs/{name}")
    for t in expected_wall_times(name, results_dir):
        lines.append(
            f"  expected on {t['device']}: {_hours(t['total_s'])} "
            f"({t['epoch_s']:.2f} s/epoch; from {t['file']}, {t['measured']}"
            + (", a quick run" if t["quick"] else "")
            + ")"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", nargs="?", choices=tuple(RUNS), help="the run")
    parser.add_argument("--list", action="store_true", help="describe every run and exit")
    parser.add_argument("--workdir", default=None, help="default runs/<run>")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder")
    parser.add_argument(
        "--epochs", type=int, default=None, help="stop early (the bar needs all 3280)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-examples", type=int, default=None, help="smoke runs only")
    parser.add_argument("--test-examples", type=int, default=None, help="smoke runs only")
    parser.add_argument(
        "--eval-samples", type=int, default=EVAL_SAMPLES, help="K of the test NLL (the bar: 5000)"
    )
    parser.add_argument("--dry-run", action="store_true", help="describe the run, train nothing")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.list and args.run is None:
        parser.error("name a run (or --list)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n\n".join(describe(name, args.results) for name in RUNS))
        return 0
    print(describe(args.run, args.results), flush=True)
    config = config_for(
        args.run,
        epochs=args.epochs,
        seed=args.seed,
        eval_samples=args.eval_samples,
        train_examples=args.train_examples,
        test_examples=args.test_examples,
    )
    if args.dry_run:
        return 0

    from benchmarks._src import data as bench_data
    from examples.vae.train import summary, train_and_evaluate

    data, source = bench_data.load(args.data_dir)
    print(f"MNIST from {source}", flush=True)
    workdir = args.workdir or os.path.join("runs", args.run)
    metrics = train_and_evaluate(config, workdir, data=data, progress=not args.no_progress)
    bar = RUNS[args.run].bar_nats
    met = metrics["test_nll_nats"] <= bar
    print(f"{summary(metrics)}; outputs in {workdir}")
    print(
        f"test NLL {metrics['test_nll_nats']:.2f} nats (K={metrics['eval_samples']}) against "
        f"Burda's {bar:.2f} after {metrics['epochs']} epochs: {'met' if met else 'not met'}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
