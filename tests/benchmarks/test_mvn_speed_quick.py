"""Smoke test of benchmarks.mvn_speed: one workload, few repetitions, a two-point sweep."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    # A subprocess: the script turns on x64 for its accuracy sweep.
    out = tmp_path_factory.mktemp("mvn-speed") / "result.json"
    args = ["--quick", "--no-torch", "--workloads", "mvn_kl", "--out", str(out)]
    subprocess.run(
        [sys.executable, "-m", "benchmarks.mvn_speed", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.read_text())


def test_every_contender_is_timed_and_accurate(quick_run):
    assert quick_run["suite"] == "mvn_speed" and quick_run["quick"] is True
    contenders = {(r["mode"], r["contender"]) for r in quick_run["records"]}
    for mode in ("forward", "value_and_grad"):
        for name in ("solve_form", "genmath", "blocked", "inverse_matmul"):
            assert (mode, name) in contenders
    for record in quick_run["records"]:
        assert record["finite"] and record["median_s"] > 0
        if record["mode"] == "forward":
            assert record["max_rel_err"] < 1e-4
    (forward, backward) = sorted(quick_run["ratios"], key=lambda r: r["mode"])
    assert math.isfinite(forward["solve_form_over_genmath"])
    assert math.isfinite(backward["solve_form_over_genmath_cpu"])


def test_accuracy_sweep_covers_both_dtypes(quick_run):
    rows = quick_run["accuracy"]
    assert {r["dtype"] for r in rows} == {"float32", "float64"}
    for row in rows:
        # The factors have the condition number asked for.
        assert row["kappa_L"] == pytest.approx(row["condition_target"], rel=0.1)
        eps = 1.2e-7 if row["dtype"] == "float32" else 2.3e-16
        # Within the first-order bound of a triangular solve, kappa(L) eps.
        assert row["log_prob_rel_err"] < row["kappa_L"] * eps
        assert row["log_prob_many_points_rel_err"] < row["kappa_L"] * eps
        assert row["kl_rel_err"] < row["kappa_L"] * eps


def test_report_section_gives_the_bar_and_the_sweep(quick_run):
    from benchmarks._src import mvn_speed_report

    text = mvn_speed_report.section({**quick_run, "_file": "mvn-speed-test.json"}, None)
    met = sum(r["solve_form_over_genmath"] >= 2.0 for r in quick_run["ratios"])
    assert f"**{met} of {len(quick_run['ratios'])}** workload-mode pairs" in text
    assert text.count("| float32 |") == len({r["condition_target"] for r in quick_run["accuracy"]})
