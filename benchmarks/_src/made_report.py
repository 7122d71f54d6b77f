"""The MADE section of ``benchmarks/README.md``: exact test likelihoods of short runs."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import table

TITLE = "MADE (exact likelihood)"

INTRO = """\
`python -m examples.made` trains MADE (Germain et al. 2015) on dynamically binarised MNIST
with order-agnostic training over a fixed set of masks; the test NLL is exact (no bound): the
mask ensemble `bayes.evidence` over the masks minus log M, on `fixed_binarization(seed=0)` of
the test set. Bars of the issue: ≤ 86.76 nats (below the 1-layer VAE's published figure),
goal ≤ 84.78.
"""


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one MADE results file."""
    del results_dir
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
        f"Device: {result['device']} ({result['device_note']}); "
        f"jax {result['jax']}, {result['date'][:10]}. {result['note']}.\n\n"
        + table(headers, rows, markdown=True)
        + "\n"
    )
