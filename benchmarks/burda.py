"""Burda et al.'s VAE likelihood, reproduced: the long runs summarised, with their ablation.

``python -m benchmarks.burda`` reads the two committed ``burda-fast`` runs of
``examples.vae`` (the trained run and the same preset with ``--no-output-bias-init``), each
a workdir under ``benchmarks/results/`` holding its per-epoch ``history.json`` and a
K = 5000 evaluation, and writes

* ``results/burda-cpu.json`` (suite ``burda``): per run the epochs, the training wall time
  (the gaps between consecutive epochs' end times, in-run test evaluations included,
  restarts between processes left out), the test -ELBO and K = 100 NLL every 100 epochs, and
  the K = 5000 test NLL with its standard error, -ELBO and active units;
* ``results/burda-curve.png``: both runs' K = 100 test NLL against the epoch, beside
  Burda et al.'s 86.76 nats.

It trains nothing; the runs themselves are (see each run's README for how it was split
over processes)::

    python -m examples.vae --preset burda-fast --workdir benchmarks/results/burda-fast-run
    python -m examples.vae --preset burda-fast --no-output-bias-init --epochs 2621 \\
        --workdir benchmarks/results/burda-fast-ablation-run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from benchmarks._src import device

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
PUBLISHED_NLL = 86.76  # Burda et al. (2016), Table 1: VAE, one stochastic layer, K = 5000.
# A gap between two epochs' end times longer than this is a restart between processes.
RESTART_GAP_S = 1000.0

# (name, workdir, file of its K = 5000 evaluation, what differs)
RUNS = (
    (
        "burda-fast",
        "burda-fast-run",
        "k5000-epoch-2621/metrics.json",
        "decoder output bias from the training pixels' log-odds (the default)",
    ),
    (
        "burda-fast, no output-bias init",
        "burda-fast-ablation-run",
        "k5000-epoch-2621/metrics.json",
        "decoder output bias started at 0 (--no-output-bias-init)",
    ),
)


def _end_times(history: list[dict]) -> np.ndarray:
    return np.array([entry.get("wall_clock", entry.get("wall_time")) for entry in history])


def summarise_run(name: str, workdir: pathlib.Path, evaluation: str, note: str) -> dict:
    """One run's figures, from its ``history.json`` and its K = 5000 ``metrics.json``."""
    history = json.loads((workdir / "history.json").read_text())
    gaps = np.diff(_end_times(history))
    steady = gaps[gaps < RESTART_GAP_S]
    # The K = 100 NLL is evaluated every 100 epochs; the -ELBO (every epoch) beside it.
    curve = [
        {
            "epoch": entry["epoch"],
            "test_neg_elbo": entry.get("test_neg_elbo"),
            "test_nll_k100": entry["test_nll_k100"],
        }
        for entry in history
        if entry.get("test_nll_k100") is not None
    ]
    summary = {
        "name": name,
        "workdir": workdir.name,
        "note": note,
        "epochs": history[-1]["epoch"],
        "train_wall_s": float(np.sum(steady)),
        "median_epoch_s": float(np.median(steady)),
        "processes": int(np.sum(gaps >= RESTART_GAP_S)) + 1,
        "curve": curve,
    }
    metrics_path = workdir / evaluation
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        summary["evaluation"] = {
            key: metrics.get(key)
            for key in (
                "test_nll_nats",
                "test_nll_stderr_nats",
                "eval_samples",
                "test_neg_elbo_nats",
                "test_kl_nats",
                "active_units",
                "evaluation_set",
                "device",
            )
        }
        summary["evaluation"]["file"] = f"{workdir.name}/{evaluation}"
    return summary


def plot(runs: list[dict], path: pathlib.Path) -> None:
    from models import reporting

    curves = {}
    for run in runs:
        epochs = [point["epoch"] for point in run["curve"]]
        values = [point["test_nll_k100"] for point in run["curve"]]
        curves[f"{run['name']} (K = 100)"] = (epochs, values)
    last = max(run["epochs"] for run in runs)
    curves["Burda et al. 2016 (K = 5000)"] = ([1, last], [PUBLISHED_NLL, PUBLISHED_NLL])
    reporting.plot_curves(
        path,
        curves,
        xlabel="epoch",
        ylabel="test NLL (nats)",
        title="burda-fast: with and without the output-bias initialisation",
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.burda",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    runs = [
        summarise_run(name, args.results / workdir, evaluation, note)
        for name, workdir, evaluation, note in RUNS
        if (args.results / workdir / "history.json").exists()
    ]
    if not runs:
        raise SystemExit(f"no burda-fast run under {args.results}")
    plot(runs, args.results / "burda-curve.png")
    info = device.describe()
    result = {
        "suite": "burda",
        "schema": 1,
        "summarised_on": info["date"],
        "published_nll": PUBLISHED_NLL,
        "curve_png": "burda-curve.png",
        "runs": runs,
    }
    out = args.results / "burda-cpu.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for run in runs:
        evaluation = run.get("evaluation", {})
        print(
            f"{run['name']:35s} {run['epochs']:5d} epochs  {run['train_wall_s'] / 3600:5.2f} h  "
            f"NLL {evaluation.get('test_nll_nats', float('nan')):.2f} "
            f"(K = {evaluation.get('eval_samples')})  active {evaluation.get('active_units')}"
        )
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
