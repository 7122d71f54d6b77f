"""Smoke test of the scaling benchmark: 1 and 2 forced CPU devices, a few steps each."""

from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    return run_quick_benchmark(
        "benchmarks.scaling",
        out_name="scaling-bench",
        timeout=400,
        results="scaling-*.json",
        args=("--devices", "1,2", "--epochs", "1", "--train-examples", "512"),
    )


def test_every_device_count_trains_the_same(quick_run):
    result, _, _, _ = quick_run
    assert result["suite"] == "scaling" and result["quick"] is True
    assert [r["devices"] for r in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["steps_per_epoch"] == 512 // 128
        assert math.isfinite(run["examples_per_second"]) and run["examples_per_second"] > 0
        assert len(run["epoch_mean_losses"]) == 2
    # Same batches and draws whatever the device count: float rounding only.
    assert result["runs"][1]["max_rel_loss_difference_vs_1_device"] < 1e-3


def test_report_renders_the_run(quick_run):
    _, _, readme, _ = quick_run
    assert "## Scaling" in readme
    assert "| 2 |" in readme
