"""The IWAE-timing section of ``benchmarks/README.md`` (and its stdout summary)."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import fmt_time, table

TITLE = "IWAE timing and the long quality runs"

INTRO = """\
`python -m benchmarks.iwae` (`--quick`: a smoke run of seconds) times a few epochs of
Burda et al.'s architecture (`configs.burda()`: 200-200-50 tanh, batch 20, their Adam
schedule) trained on the IWAE bound with K = 50 and on the ELBO, built as
`examples.vae.train.build` builds it and run by `Trainer.run_epoch`, plus one checkpoint
save, the test-ELBO evaluation the example runs every 10 epochs, and the K = 5000
importance-sampled test NLL (`vae.evaluate_log_likelihood`, a first call that compiles
and a second one). From these it projects each full run: 3280 epochs of 60,000 images,
a checkpoint per epoch, a test ELBO every 10 epochs and the final K = 5000 NLL on the
10,000 test images, per-step and per-image times scaled linearly from the measured subsets.
With `--preset burda-2layer` it times Burda et al.'s two-stochastic-layer model instead
(`configs.burda_2layer()`: 200-200-100 and 100-100-50, the same schedule; file
`iwae-2layer-*.json`).

The runs themselves, one command each (`python -m benchmarks.quality --list` prints
them with their expected wall times; the workdir defaults to `runs/<run>`, and a rerun with
the same `--workdir` resumes):

| model (Burda et al. 2015, Table 1) | their test NLL | `python -m benchmarks.quality ...` |
|---|---|---|
| VAE, 1 stochastic layer, k = 1 | 86.76 | `burda-elbo` |
| IWAE, 1 stochastic layer, k = 50 | 84.78 | `burda-iwae-k50` |
| IWAE, 2 stochastic layers, k = 50 | 82.90 | `burda-iwae-k50-2layer` |
"""

HEADERS = [
    "objective",
    "measured",
    "s/epoch (measured)",
    "compile",
    "s/epoch (60,000 images)",
    "checkpoint",
    "test ELBO eval",
    "full run (3280 epochs)",
]


def _hours(seconds) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _rows(result: dict) -> list[list[str]]:
    rows = []
    for run in result["runs"]:
        projection = run["projection"]
        rows.append(
            [
                f"{run['objective']['kind']} (K={run['objective']['num_samples']})"
                + (", 2 stochastic layers" if run["name"].endswith("-2layer") else ""),
                f"{len(run['epoch_s'])} epochs × {run['train_examples']:,} images",
                fmt_time(run["median_epoch_s"]),
                fmt_time(run["compile_s"]),
                fmt_time(projection["epoch_s"]),
                fmt_time(run["checkpoint_save_s"]),
                fmt_time(run["test_elbo_eval_s"]),
                _hours(projection["total_s"]),
            ]
        )
    return rows


def _nll_line(result: dict) -> str:
    nll = result.get("nll")
    if not nll:
        return "NLL evaluation: not timed in this run."
    scaled = (
        f"; the 10,000 test images: {fmt_time(nll['full_test_set_s'])} (scaled linearly)"
        if nll["extrapolated"]
        else ""
    )
    return (
        f"Test NLL, K = {nll['num_samples']} on {nll['examples']:,} images: first call "
        f"{fmt_time(nll['first_call_s'])} (compilation included), second "
        f"{fmt_time(nll['second_call_s'])}{scaled}."
    )


def _run_line(result: dict) -> str:
    return (
        f"{'quick' if result['quick'] else 'full'} run on {result['date']}, "
        f"jax {result['jax']}, {result['wall_s']:.0f} s, MNIST from {result['data_source']}."
    )


def summary_text(result: dict) -> str:
    return "\n".join(
        [
            f"Summary — {result['backend']}: {result['device']}",
            _run_line(result),
            "",
            table(HEADERS, _rows(result)),
            _nll_line(result),
        ]
    )


def section(result: dict, results_dir: pathlib.Path) -> str:
    del results_dir
    return "\n".join(
        [
            f"### {result['backend']}: {result['device']}"
            + (", two stochastic layers" if result.get("preset") == "burda-2layer" else ""),
            "",
            f"Results file `results/{result['_file']}`: {_run_line(result)}",
            "",
            table(HEADERS, _rows(result), markdown=True),
            "",
            _nll_line(result)
            + " The full-run column adds training, checkpoints, the test-ELBO evaluations "
            "and the final NLL; compilation (once per run) is left out.",
            "",
        ]
    )
