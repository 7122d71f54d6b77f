"""MADE's exact likelihood after a full training run, summarised against the issue's bars.

``python -m benchmarks.made`` reads the committed long runs of ``examples.made``, each a
workdir under ``benchmarks/results/`` holding the run's ``metrics.json`` (the final exact
test NLL of the mask ensemble) and its per-epoch ``history.json`` (the training NLL every
epoch, the single-mask test NLL every ``eval_every`` epochs), and writes

* ``results/made-long-cpu.json`` (suite ``made``): per run the configuration, epochs,
  training wall time (the gaps between consecutive epochs' end times, in-run test
  evaluations included), the exact test NLL in nats and bits/dim, the learning curve, and
  the verdict on the bars: ≤ 86.76 nats (Burda et al.'s 1-layer VAE), goal ≤ 84.78 (their
  K = 50 IWAE);
* ``results/made-curve.png``: each run's test NLL against the epoch, beside both marks.

It trains nothing; the runs are::

    python -m examples.made --preset ordered --workdir benchmarks/results/made-ordered-run

(checkpoints of the 8000-unit model are 160 MB with the Adam moments, so they are not
committed: a run is finished within one session).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from benchmarks._src import device

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
TARGET_NATS = 86.76  # Burda et al. (2016), Table 1: VAE, one stochastic layer, K = 5000.
GOAL_NATS = 84.78  # Burda et al. (2016), Table 1: IWAE, one stochastic layer, K = 50.
# A gap between two epochs' end times longer than this is a restart between processes.
RESTART_GAP_S = 1000.0

# (workdir under results/, the command that trained it)
RUNS = (
    (
        "made-ordered-run",
        "python -m examples.made --data-dir ../shared/data/mnist --preset ordered "
        "--workdir benchmarks/results/made-ordered-run",
    ),
    (
        "made-conditional-run",
        "python -m examples.made --data-dir ../shared/data/mnist --conditional "
        "--workdir benchmarks/results/made-conditional-run",
    ),
    (
        "made-conditional-ordered-run",
        "python -m examples.made --data-dir ../shared/data/mnist --preset ordered "
        "--conditional --workdir benchmarks/results/made-conditional-ordered-run",
    ),
)

_CONDITIONAL_NOTE = (
    "log p(x | y) of the true label y, and the Bayes-rule classifier argmax_y p(y | x)"
)

_CONFIG_FIELDS = ("hidden", "num_masks", "order_agnostic", "direct", "activation", "conditional")


def summarise_run(workdir: pathlib.Path, command: str) -> dict:
    """One run's figures, from its ``metrics.json`` and ``history.json``."""
    metrics = json.loads((workdir / "metrics.json").read_text())
    history = json.loads((workdir / "history.json").read_text())
    end_times = np.array([entry["wall_clock"] for entry in history])
    gaps = np.diff(end_times)
    steady = gaps[gaps < RESTART_GAP_S]
    model = metrics["config"]["model"]
    conditional = {}
    if model["conditional"]:
        conditional = {
            "conditional_note": _CONDITIONAL_NOTE,
            "test_accuracy": metrics["test_accuracy"],
            "reference_test_accuracy": metrics["reference_test_accuracy"],
        }
    kind = ", conditional" if model["conditional"] else ""
    return {
        "name": f"{metrics['preset']}{kind}, {metrics['epochs']} epochs",
        "workdir": workdir.name,
        "command": command,
        "preset": metrics["preset"],
        **{field: model[field] for field in _CONFIG_FIELDS},
        "num_parameters": metrics["num_parameters"],
        "batch_size": metrics["batch_size"],
        "learning_rate": metrics["learning_rate"],
        "schedule": metrics["config"]["optimizer"]["schedule"],
        "binarization": metrics["binarization"],
        "epochs": metrics["epochs"],
        # The first epoch has no predecessor: its time is the process's own measure.
        "train_wall_s": float(np.sum(steady)) + metrics["train_seconds_per_epoch"],
        "median_epoch_s": float(np.median(steady)) if steady.size else None,
        "processes": int(np.sum(gaps >= RESTART_GAP_S)) + 1,
        "test_nll_nats": metrics["test_nll_nats"],
        "test_bits_per_dim": metrics["test_bits_per_dim"],
        "eval_masks": metrics["eval_masks"],
        "test_nll_note": metrics["test_nll_note"],
        "evaluation_set": metrics["evaluation_set"],
        "device": metrics["device"],
        "load_average_1min_at_end": metrics.get("load_average_1min"),
        **conditional,
        "curve": [
            {
                "epoch": entry["epoch"],
                "train_nll": entry["nll"],
                "test_nll_mask0": entry.get("test_nll_mask0"),
            }
            for entry in history
        ],
    }


def bars(runs: list[dict]) -> dict:
    """The issue's two bars against the best committed run of p(x) (a conditional model's
    p(x | y) is given the label, so it does not count)."""
    best = min(
        (run for run in runs if not run["conditional"]),
        key=lambda run: run["test_nll_nats"],
        default=None,
    )
    if best is None:
        return {"target_nats": TARGET_NATS, "goal_nats": GOAL_NATS, "best_run": None}
    value = best["test_nll_nats"]
    return {
        "target_nats": TARGET_NATS,
        "goal_nats": GOAL_NATS,
        "best_run": best["name"],
        "best_measured_nats": value,
        "target_reached": value <= TARGET_NATS,
        "goal_reached": value <= GOAL_NATS,
    }


def plot(runs: list[dict], path: pathlib.Path) -> None:
    from models import reporting

    curves = {}
    runs = [run for run in runs if not run["conditional"]]  # p(x | y) is not on this scale
    if not runs:
        return
    for run in runs:
        points = [p for p in run["curve"] if p["test_nll_mask0"] is not None]
        curves[f"{run['name']}: test, one mask"] = (
            [p["epoch"] for p in points],
            [p["test_nll_mask0"] for p in points],
        )
        curves[f"{run['name']}: training loss"] = (
            [p["epoch"] for p in run["curve"]],
            [p["train_nll"] for p in run["curve"]],
        )
    last = max(run["epochs"] for run in runs)
    curves[f"VAE, Burda et al. ({TARGET_NATS})"] = ([1, last], [TARGET_NATS, TARGET_NATS])
    curves[f"IWAE K = 50 ({GOAL_NATS})"] = ([1, last], [GOAL_NATS, GOAL_NATS])
    reporting.plot_curves(
        path, curves, xlabel="epoch", ylabel="NLL (nats)", title="MADE on MNIST: exact NLL"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.made",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    runs = [
        summarise_run(args.results / workdir, command)
        for workdir, command in RUNS
        if (args.results / workdir / "metrics.json").exists()
    ]
    if not runs:
        raise SystemExit(f"no finished MADE run under {args.results}")
    plot(runs, args.results / "made-curve.png")
    result = {
        "suite": "made",
        "kind": "long",
        "schema": 1,
        "summarised_on": device.describe()["date"],
        "curve_png": "made-curve.png",
        "runs": runs,
        "bars": bars(runs),
    }
    out = args.results / "made-long-cpu.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for run in runs:
        print(
            f"{run['name']:25s} {run['train_wall_s'] / 3600:5.2f} h  "
            f"exact NLL {run['test_nll_nats']:.2f} ({run['eval_masks']} masks)"
        )
    print(f"bars: {result['bars']}\nwrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
