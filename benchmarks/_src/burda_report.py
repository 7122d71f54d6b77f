"""The Burda reproduction section of ``benchmarks/README.md`` (``python -m benchmarks.burda``)."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import source, table

TITLE = "Burda et al.'s VAE likelihood (burda-fast), with its ablation"

INTRO = """\
Burda et al.'s one-stochastic-layer VAE (784-200-200-50, tanh, Bernoulli decoder), trained
on the ELBO on dynamically binarised MNIST with the `burda-fast` preset of `examples.vae`
(batch 1000, Adam 1e-3 constant, seed 0), and the same preset with the decoder's output
bias started at 0 instead of the training pixels' log-odds (`--no-output-bias-init`), the
ablation. Test figures are on `fixed_binarization(seed=0)` of the 10,000 test images; the
NLL is the importance-sampled estimate at the papers' K = 5000, with its standard error
over the test images. Bar of issue 11: test NLL ≤ 86.76 nats (Burda et al. 2016).
"""


def _nll(evaluation: dict | None) -> str:
    if not evaluation or evaluation.get("test_nll_nats") is None:
        return "not evaluated yet"
    return f"{evaluation['test_nll_nats']:.2f} ± {evaluation['test_nll_stderr_nats']:.2f}"


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for the ``burda`` results file."""
    del results_dir
    published = result["published_nll"]
    rows = []
    for run in result["runs"]:
        evaluation = run.get("evaluation") or {}
        rows.append(
            [
                run["name"],
                run["note"],
                f"{run['epochs']}",
                f"{run['train_wall_s'] / 3600:.2f} h ({run['processes']} processes told apart "
                "by gaps)",
                f"{run['median_epoch_s']:.2f} s",
                _nll(evaluation),
                f"{evaluation['test_neg_elbo_nats']:.2f}" if evaluation else "",
                f"{evaluation['active_units']} / 50" if evaluation else "",
                f"`{evaluation['file']}`" if evaluation else f"`{run['workdir']}/`",
            ]
        )
    headers = [
        "run",
        "decoder output bias",
        "epochs",
        "training wall time",
        "median s/epoch",
        "test NLL, K = 5000 (nats)",
        "test −ELBO",
        "active units",
        "evaluation file",
    ]
    devices = sorted({(run.get("evaluation") or {}).get("device") or "" for run in result["runs"]})
    epochs = sorted({p["epoch"] for run in result["runs"] for p in run["curve"]})
    shown = [e for e in epochs if e in (100, 500, 1000, 1500, 2000, 2500) or e == epochs[-1]]
    curve_rows = []
    for run in result["runs"]:
        by_epoch = {p["epoch"]: p["test_nll_k100"] for p in run["curve"]}
        curve_rows.append(
            [run["name"]] + [f"{by_epoch[e]:.2f}" if e in by_epoch else "" for e in shown]
        )
    verdicts = []
    for run in result["runs"]:
        evaluation = run.get("evaluation") or {}
        value = evaluation.get("test_nll_nats")
        if value is None:
            verdicts.append(f"- {run['name']}: not evaluated at K = 5000 yet")
            continue
        met = "met" if value <= published else "not met"
        verdicts.append(
            f"- {run['name']}: **{met}**: {value:.2f} nats against {published} "
            f"(epoch {run['epochs']})"
        )
    return (
        f"{source(result)}Summarised {result['summarised_on'][:10]} "
        "by `python -m benchmarks.burda` from the "
        f"runs' own files; trained and evaluated on {', '.join(d for d in devices if d)}. "
        "Wall time is the sum of the gaps between consecutive epochs' end times, the test "
        "evaluations every 100 epochs included and the pauses between processes left out.\n\n"
        + table(headers, rows, markdown=True)
        + "\n\nTest NLL at K = 100 during training (every 100 epochs, from `history.json`):\n\n"
        + table(["run"] + [f"epoch {e}" for e in shown], curve_rows, markdown=True)
        + "\n\nBar (≤ 86.76 nats at K = 5000):\n\n"
        + "\n".join(verdicts)
        + f"\n\n![test NLL against the epoch](results/{result['curve_png']})\n"
    )
