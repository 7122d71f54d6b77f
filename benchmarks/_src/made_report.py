"""The MADE section of ``benchmarks/README.md``: exact test likelihoods of short runs."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import source, table

TITLE = "MADE (exact likelihood)"

INTRO = """\
`python -m examples.made` trains MADE (Germain et al. 2015) on dynamically binarised MNIST
with order-agnostic training over a fixed set of masks; the test NLL is exact (no bound): the
mask ensemble `bayes.evidence` over the masks minus log M, on `fixed_binarization(seed=0)` of
the test set. Bars of the issue: ≤ 86.76 nats (below the 1-layer VAE's published figure),
goal ≤ 84.78.
"""


def _accuracy(run: dict) -> str:
    if "test_accuracy" not in run:
        return ""
    references = run["reference_test_accuracy"]
    return (
        f"{100 * run['test_accuracy']:.1f} % (naive Bayes {100 * references['naive_bayes']:.1f} %,"
        f" logistic regression {100 * references['logistic_regression']:.1f} %)"
    )


def _long_section(result: dict) -> str:
    """The full training runs (``python -m benchmarks.made``) and the bars' verdict."""
    rows = [
        [
            run["name"],
            f"{run['hidden']}, {run['num_masks']} mask(s)"
            + (", order-agnostic" if run["order_agnostic"] and run["num_masks"] > 1 else ""),
            f"{run['num_parameters'] / 1e6:.1f} M",
            f"batch {run['batch_size']}, Adam {run['learning_rate']:g}, {run['schedule']}",
            f"{run['epochs']}",
            f"{run['train_wall_s'] / 3600:.2f} h"
            + (f" ({run['median_epoch_s']:.0f} s/epoch)" if run["median_epoch_s"] else ""),
            f"{run['test_nll_nats']:.2f}" + (" (p(x | y))" if run["conditional"] else ""),
            f"{run['test_bits_per_dim']:.4f}",
            _accuracy(run),
            run["device"],
            f"`{run['command']}`",
        ]
        for run in result["runs"]
    ]
    headers = [
        "run",
        "hidden units, masks",
        "parameters",
        "optimiser",
        "epochs",
        "training wall time",
        "test NLL (nats, exact)",
        "bits/dim",
        "Bayes-rule classifier",
        "device",
        "command",
    ]
    bars = result["bars"]
    if bars["best_run"] is None:
        verdict = "No unconditional run yet: the bars are not judged."
    else:
        verdict = (
            f"Best: {bars['best_measured_nats']:.2f} nats ({bars['best_run']}). "
            f"Bar ≤ {bars['target_nats']}: **{'met' if bars['target_reached'] else 'not met'}**;"
            f" goal ≤ {bars['goal_nats']}: **{'met' if bars['goal_reached'] else 'not met'}**."
        )
    return (
        f"{source(result)}Full runs, summarised "
        f"{result['summarised_on'][:10]} by `python -m benchmarks.made` "
        "from each run's `metrics.json` and `history.json` (wall time: the sum of the gaps "
        "between consecutive epochs' end times, in-run test evaluations included).\n\n"
        + table(headers, rows, markdown=True)
        + f"\n\n{verdict}\n\n![MADE: NLL against the epoch](results/{result['curve_png']})\n"
    )


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one MADE results file."""
    del results_dir
    if result.get("kind") == "long":
        return _long_section(result)
    rows = [
        [
            run["name"],
            f"{run['epochs']}",
            f"{run['num_parameters'] / 1e6:.2f} M",
            f"{run['test_nll_nats']:.2f}",
            f"{run['test_bits_per_dim']:.4f}",
            f"{run.get('test_nll_mean_single_mask_nats', float('nan')):.2f}",
            f"{run['train_seconds']:.0f} s",
            f"`{run['command']}`",
        ]
        for run in result["runs"]
    ]
    headers = [
        "run",
        "epochs",
        "parameters",
        "test NLL (nats, exact)",
        "bits/dim",
        "one mask (mean)",
        "training",
        "command",
    ]
    return (
        f"{source(result)}Device: {result['device']} "
        f"({result['device_note']}); "
        f"jax {result['jax']}, {result['date'][:10]}. {result['note']}.\n\n"
        + table(headers, rows, markdown=True)
        + "\n"
    )
