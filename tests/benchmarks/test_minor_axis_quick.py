"""Smoke test of benchmarks.minor_axis: every layout and expression timed, the same values."""

from __future__ import annotations

import pytest

from benchmarks import minor_axis
from benchmarks._src import minor_axis_report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("minor-axis") / "result.json"
    return minor_axis.main(["--quick", "--out", str(out)])


def test_every_layout_and_expression_is_timed(quick_run):
    assert quick_run["suite"] == "minor_axis" and quick_run["quick"] is True
    keys = {(r["minor_axis"], r["expression"]) for r in quick_run["records"]}
    assert keys == {(m, e) for m in minor_axis.MINOR_AXES for e in minor_axis.EXPRESSIONS}
    for record in quick_run["records"]:
        assert record["median_s"] > 0
        assert record["max_rel_diff_vs_flat"] <= 1e-6


def test_report_section_has_one_row_per_layout(quick_run):
    text = minor_axis_report.section({**quick_run, "_file": "minor-axis-test.json"}, None)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "×)" in line]
    assert len(rows) == len(minor_axis.MINOR_AXES)
    assert "| flat |" in text and "(1.0×)" in text
