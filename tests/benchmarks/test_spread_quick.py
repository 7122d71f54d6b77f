"""Smoke test of benchmarks.spread: fresh processes, every workload and mode, a ratio each."""

from __future__ import annotations

import pytest

from benchmarks import spread
from benchmarks._src import spread_report

WORKLOADS = ("bernoulli_log_prob_binary", "mvn_log_prob_batched")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("spread") / "result.json"
    return spread.main(["--quick", "--workloads", ",".join(WORKLOADS), "--out", str(out)])


def test_every_process_times_every_workload_and_mode(quick_run):
    assert quick_run["suite"] == "spread" and quick_run["processes"] == 2
    keys = {(r["process"], r["workload"], r["mode"]) for r in quick_run["rows"]}
    modes = ("forward", "value_and_grad")
    assert keys == {(p, w, m) for p in range(2) for w in WORKLOADS for m in modes}
    for row in quick_run["rows"]:
        assert row["genmath_s"] > 0 and row["jnp_s"] > 0 and row["correct"]
        assert row["ratio"] == pytest.approx(row["genmath_s"] / row["jnp_s"])


def test_summary_is_the_median_and_range_of_the_ratios(quick_run):
    for entry in quick_run["summary"]:
        ratios = sorted(entry["ratios"])
        assert len(ratios) == 2
        assert entry["median"] == pytest.approx(sum(ratios) / 2)
        assert (entry["min"], entry["max"]) == (ratios[0], ratios[-1])


def test_report_section_has_one_row_per_workload(quick_run):
    text = spread_report.section({**quick_run, "_file": "spread-test.json"}, None)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "–" in line]
    assert [row.split(" | ")[0][2:] for row in rows] == list(WORKLOADS)
