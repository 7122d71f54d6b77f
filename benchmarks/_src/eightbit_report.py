"""The 8-bit MNIST section of ``benchmarks/README.md``: bits/dim of our models beside the
published flows, and the issue's bars computed from those numbers.

Reads the ``eightbit`` results file (``python -m benchmarks.eightbit``: the factorized
categorical, closed form and trained) and, when present, the VAE's 8-bit runs at
``<results>/vae-8bit/<likelihood>/metrics.json`` (written by ``python -m examples.vae``
with an 8-bit likelihood; keys ``test_bits_per_dim_elbo`` and ``test_bits_per_dim_is``).
"""

from __future__ import annotations

import json
import math
import pathlib

from benchmarks._src.render import source, table

TITLE = "8-bit MNIST (bits/dim)"

#: Published MNIST bits/dim of flows on dequantised 8-bit data, as tabulated by
#: Grathwohl et al., FFJORD, ICLR 2019, Table 2.
PUBLISHED = (
    ("RealNVP (Dinh et al. 2017)", 1.06),
    ("Glow (Kingma & Dhariwal 2018)", 1.05),
    ("FFJORD (Grathwohl et al. 2019)", 0.99),
)
PUBLISHED_SOURCE = "published (FFJORD paper, Table 2); dequantised density, an upper bound"
#: The issue's bar: the best VAE is at least this much better than the factorized categorical.
VAE_MARGIN_BITS_PER_DIM = 0.3
VAE_DIR = "vae-8bit"

INTRO = """\
Every figure here is bits/dim of the 8-bit MNIST test images (pixels 0..255, as they are):
`genmath.dequantize.bits_per_dim_8bit`, -log2 P(x) / 784 of the discrete image. A discrete
model's exact log P(x) (the factorized categorical) gives the exact figure; a bound on
log P(x) (a VAE's ELBO or importance-sampled estimate, a flow's dequantised density
E_u[log p((x + u)/256)] - 784 log 256) gives an upper bound on bits/dim, and all of them are
comparable with each other. A Gaussian density's nats on [0, 1] grey levels, or the
binarised-MNIST nats of the other sections, are not (the former is off by 8 bits/dim minus
the density's own scale, the latter is another data set). The uniform distribution over the
256 levels is 8 bits/dim.

Bars of issue 12: the factorized categorical trained with optax matches its closed form to
0.01 bits/dim; the best VAE, trained on this CPU, is at least 0.3 bits/dim better than the
factorized categorical (the better of its closed form and its trained model); goal: the
flows' published range, 0.99 to 1.06.
"""


def load_vae_runs(results_dir: pathlib.Path) -> list[dict]:
    """The VAE's 8-bit runs, one per ``vae-8bit/<likelihood>/metrics.json``, by name."""
    runs = []
    for path in sorted((results_dir / VAE_DIR).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        elbo, iwae = metrics.get("test_bits_per_dim_elbo"), metrics.get("test_bits_per_dim_is")
        runs.append(
            {
                "likelihood": path.parent.name,
                "elbo_bits_per_dim": elbo,
                "is_bits_per_dim": iwae,
                # The tighter of the two bounds (both are upper bounds on bits/dim).
                "best_bits_per_dim": min(
                    (v for v in (elbo, iwae) if _finite(v)), default=float("nan")
                ),
                "elbo_nats": metrics.get("test_neg_elbo_nats"),
                "is_nats": metrics.get("test_nll_nats"),
                "is_samples": metrics.get("is_samples", metrics.get("eval_samples")),
                "epochs": metrics.get("epochs"),
                "seconds_per_epoch": metrics.get("train_seconds_per_epoch"),
                "device": metrics.get("device", "?"),
                "evaluation_set": metrics.get("evaluation_set", "?"),
                "file": f"{VAE_DIR}/{path.parent.name}/metrics.json",
            }
        )
    return runs


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _bits(value) -> str:
    return f"{value:.4f}" if _finite(value) else "—"


def _seconds(value) -> str:
    return f"{value:.0f} s" if _finite(value) else "?"


def _nats(value) -> str:
    return f"{value:.2f}" if _finite(value) else ""


def bars(result: dict, vae_runs: list[dict]) -> list[tuple[str, str]]:
    """``(bar, verdict)`` for each of the issue's bars, computed from the numbers."""
    fc = result["factorized_categorical"]
    closed = fc["closed_form"]["test_bits_per_dim"]
    trained = fc["trained"]["test_bits_per_dim"]
    gap = fc["trained_minus_closed_form_bits_per_dim"]
    limit = fc["bar_bits_per_dim"]
    verdicts = [
        (
            f"factorized categorical: trained within {limit} bits/dim of its closed form",
            f"{'met' if abs(gap) <= limit else 'not met'}: |{trained:.4f} - {closed:.4f}| = "
            f"{abs(gap):.5f}",
        )
    ]
    reference = min(closed, trained)
    measured = [run for run in vae_runs if _finite(run["best_bits_per_dim"])]
    vae_bar = (
        f"best VAE at least {VAE_MARGIN_BITS_PER_DIM} bits/dim better than the factorized "
        f"categorical (≤ {reference - VAE_MARGIN_BITS_PER_DIM:.4f})"
    )
    goal = f"goal: best VAE in the flows' range (≤ {max(v for _, v in PUBLISHED):.2f})"
    if not measured:
        verdicts.append((vae_bar, f"not yet evaluated: no VAE 8-bit results in `{VAE_DIR}/`"))
        verdicts.append((goal, "not yet evaluated"))
        return verdicts
    best = min(measured, key=lambda run: run["best_bits_per_dim"])
    margin = reference - best["best_bits_per_dim"]
    where = f"{best['likelihood']}, {best['device']}"
    verdicts.append(
        (
            vae_bar,
            f"{'met' if margin >= VAE_MARGIN_BITS_PER_DIM else 'not met'}: "
            f"{best['best_bits_per_dim']:.4f} ({where}) is {margin:+.4f} bits/dim below "
            f"{reference:.4f}",
        )
    )
    top = max(v for _, v in PUBLISHED)
    verdicts.append(
        (
            goal,
            f"{'reached' if best['best_bits_per_dim'] <= top else 'not reached'}: "
            f"{best['best_bits_per_dim']:.4f}",
        )
    )
    return verdicts


def quality_rows(result: dict, vae_runs: list[dict]) -> list[list[str]]:
    fc = result["factorized_categorical"]
    closed, trained = fc["closed_form"], fc["trained"]
    alpha = f"Dirichlet pseudo-count {fc['pseudo_count']:g}"
    rows = [
        [
            f"factorized categorical, closed form ({alpha})",
            _bits(closed["test_bits_per_dim"]),
            f"{closed['test_nll_nats']:.2f}",
            "exact",
            f"level counts, {_seconds(closed['seconds'])}",
            "this run",
        ],
        [
            f"factorized categorical, Adam {trained['epochs']} epochs",
            _bits(trained["test_bits_per_dim"]),
            f"{trained['test_nll_nats']:.2f}",
            "exact",
            _seconds(trained["train_seconds"]),
            "this run",
        ],
    ]
    if not vae_runs:
        rows.append(["VAE, 8-bit likelihoods", "not yet run", "", "", "", f"`{VAE_DIR}/`"])
    for run in vae_runs:
        k = f"K = {run['is_samples']}" if run["is_samples"] else "importance-sampled"
        training = f"{run['epochs']} epochs" if run["epochs"] else "? epochs"
        if _finite(run["seconds_per_epoch"]):
            training += f", {run['seconds_per_epoch']:.0f} s/epoch"
        training += f", {run['device']}"
        source = f"`{run['file']}` ({run['evaluation_set']})"
        rows.append(
            [
                f"VAE, {run['likelihood']} (ELBO)",
                _bits(run["elbo_bits_per_dim"]),
                _nats(run["elbo_nats"]),
                "bound",
                training,
                source,
            ]
        )
        rows.append(
            [
                f"VAE, {run['likelihood']} ({k})",
                _bits(run["is_bits_per_dim"]),
                _nats(run["is_nats"]),
                "bound",
                training,
                source,
            ]
        )
    rows += [[name, f"{value:.2f}", "", "bound", "", PUBLISHED_SOURCE] for name, value in PUBLISHED]
    return rows


def sweep_rows(result: dict) -> list[list[str]]:
    return [
        [f"{run['pseudo_count']:g}", f"{run['nll_nats']:.2f}", _bits(run["bits_per_dim"])]
        for run in result["pseudo_count_sweep"]["runs"]
    ]


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one ``eightbit`` results file."""
    vae_runs = load_vae_runs(results_dir)
    fc = result["factorized_categorical"]
    sweep = result["pseudo_count_sweep"]
    quick = " **Quick (smoke) run: subsets only.**" if result.get("quick") else ""
    parts = [
        f"{source(result)}Device: {result['device']} "
        f"({result['backend']}); jax {result['jax']}, "
        f"{result['date'][:10]}; load average {result.get('load_average_before')} before, "
        f"{result.get('load_average_after')} after (a shared machine: timings are upper "
        f"bounds). `{result['command']}`: {result['wall_s']:.0f} s in all; "
        f"{fc['train_examples']} training images, test set: {fc['evaluation_set']}.{quick}",
        table(
            ["model", "test bits/dim", "test NLL (nats)", "log P(x)", "training", "source"],
            quality_rows(result, vae_runs),
            markdown=True,
        ),
        "Bars, computed from the figures above:\n\n"
        + "\n".join(f"- {bar}: **{verdict}**" for bar, verdict in bars(result, vae_runs)),
        f"The pseudo-count (fixed at {fc['pseudo_count']:g} beforehand) against others: the "
        f"closed form fitted on the first {sweep['fit_examples']} training images, scored on "
        f"the last {sweep['held_out_examples']} (the test set plays no part).\n\n"
        + table(
            ["pseudo-count", "held-out NLL (nats)", "bits/dim"], sweep_rows(result), markdown=True
        ),
        f"Samples of the trained factorized categorical (pixels independent, so no digits):\n\n"
        f"![factorized categorical samples](results/{result['samples_picture']})",
    ]
    heading = f"### {result['backend']}: {result['device']}"
    return "\n\n".join([heading, *parts]) + "\n"


def summary_text(result: dict) -> str:
    """A few lines for the terminal."""
    fc = result["factorized_categorical"]
    lines = [
        f"factorized categorical on 8-bit MNIST ({result['device']}):",
        f"  closed form {fc['closed_form']['test_bits_per_dim']:.4f} bits/dim "
        f"({fc['closed_form']['seconds']:.1f} s)",
        f"  trained     {fc['trained']['test_bits_per_dim']:.4f} bits/dim "
        f"({fc['trained']['epochs']} epochs, {fc['trained']['train_seconds']:.1f} s)",
    ]
    # This run's bar only; the VAE's come from other runs, in the README.
    bar, verdict = bars(result, [])[0]
    lines.append(f"  {bar}: {verdict}")
    return "\n".join(lines)
