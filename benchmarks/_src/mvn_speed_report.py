"""The full-covariance section of ``benchmarks/README.md`` (``python -m benchmarks.mvn_speed``)."""

from __future__ import annotations

import pathlib

from benchmarks._src import checks
from benchmarks._src.render import fmt_time, table

TITLE = "Full-covariance Gaussian (mvn): speed and conditioning"

INTRO = """\
`python -m benchmarks.mvn_speed` times `genmath.mvn` on the kernel suite's three
full-covariance workloads (D = 64, float32) beside the textbook solve form (one LAPACK
triangular solve, what genmath computed before issue 13), the blocked solve and the explicit
inverse applied as a product, and PyTorch's `MultivariateNormal`, interleaved in one process;
then it measures the relative error against 40-digit mpmath for factors of condition number
κ(L) from 1e2 to 1e8. Bar of issue 13: genmath at least 2× faster than the solve form on the
three workloads, forward and with gradients.
"""

CONTENDERS = ("genmath", "solve_form", "blocked", "inverse_matmul", "torch")
BAR = 2.0


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one ``mvn-speed-*.json`` file."""
    del results_dir
    by_key = {(r["workload"], r["mode"], r["contender"]): r for r in result["records"]}
    rows, verdicts = [], []
    for ratio in result["ratios"]:
        workload, mode = ratio["workload"], ratio["mode"]
        batch = by_key[(workload, mode, "genmath")]["batch"]
        records = [by_key.get((workload, mode, c)) for c in CONTENDERS]
        times = [fmt_time(r["median_s"]) if r else "" for r in records]
        speedup = ratio["solve_form_over_genmath"]
        torch = ratio.get("torch_over_genmath")
        torch_text = f"{torch:.2f}×" if torch else ""
        # A fast wrong answer meets no bar: genmath's forward value against float64.
        error = by_key[(workload, "forward", "genmath")].get("max_rel_err")
        correct = error is not None and checks.is_correct(error, "float32")
        error_text = f"{error:.1e}" if error is not None else "not checked"
        rows.append(
            [f"{workload} ({batch})", mode, *times, f"{speedup:.2f}×", torch_text, error_text]
        )
        verdicts.append(speedup >= BAR and correct)
    headers = [
        "workload (batch)",
        "mode",
        *CONTENDERS,
        "solve form / genmath",
        "torch / genmath",
        "genmath error (forward, vs float64)",
    ]
    accuracy_rows = [
        [
            f"{row['kappa_L']:.0e}",
            row["dtype"],
            f"{row['log_prob_rel_err']:.1e}",
            f"{row['log_prob_rel_err_solve_form']:.1e}",
            f"{row['log_prob_many_points_rel_err']:.1e}"
            if "log_prob_many_points_rel_err" in row
            else "",
            f"{row['log_prob_many_points_rel_err_solve_form']:.1e}"
            if "log_prob_many_points_rel_err_solve_form" in row
            else "",
            f"{row['kl_rel_err']:.1e}",
            f"{row['kl_rel_err_solve_form']:.1e}",
        ]
        for row in result["accuracy"]
    ]
    accuracy_headers = [
        "κ(L)",
        "dtype",
        "log_prob, 4 points",
        "solve form",
        "log_prob, 2D points",
        "solve form",
        "kl",
        "solve form",
    ]
    met = sum(verdicts)
    verdict = f"**{met} of {len(verdicts)}** workload-mode pairs at ≥ {BAR:.0f}× the solve form" + (
        ": met." if met == len(verdicts) else ": not met."
    )
    return (
        f"### {result['backend']}: {result['device']}\n\n"
        f"Results file `results/{result['_file']}` ({result['date'][:10]}, jax {result['jax']}, "
        f"{'quick' if result.get('quick') else 'full'} run, "
        f"{result['reps']} interleaved repetitions, torch on {result.get('torch_threads')} "
        f"thread(s); 1-minute load average {result['load_average'][0]:.1f} at the end). "
        "Medians:\n\n" + table(headers, rows, markdown=True) + f"\n\nBar: {verdict}\n\n"
        "Largest relative error against 40-digit mpmath (D = "
        f"{result['accuracy'][0]['dim']}; 4 points take LAPACK's solve in `mvn.log_prob`, "
        "2D points the inverse):\n\n" + table(accuracy_headers, accuracy_rows, markdown=True) + "\n"
    )
