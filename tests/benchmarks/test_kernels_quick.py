"""Smoke test of the kernel benchmark: the quick mode runs end to end.

The run happens once per session, in a subprocess (so that it sees a fresh JAX,
without the test session's x64 setting or compilation caches) and writes to a
temporary directory, never to the committed results.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks._src import plots
from benchmarks._src.workloads import WORKLOADS

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODES = ("forward", "value_and_grad")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.kernels", "--quick", "--out", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (path,) = out.glob("*.json")
    readme = out / "README.md"
    report = subprocess.run(
            [sys.executable, "-m", "benchmarks.report", "--results", str(out),
             "--readme", str(readme)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode == 0, report.stderr[-3000:]
    return json.loads(path.read_text()), completed.stdout, readme.read_text(), out


def test_names_the_device(quick_run):
    result, stdout, _, _ = quick_run
    assert result["suite"] == "kernels"
    assert result["quick"] is True
    assert result["backend"] and result["device"]
    assert f"Device: {result['backend']}" in stdout
    assert result["copy_bandwidth"]["gbps"] > 0


@pytest.mark.parametrize("workload", [w.name for w in WORKLOADS])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("peer", ["genmath", "jnp"])
def test_every_workload_is_timed(quick_run, workload, mode, peer):
    result, _, _, _ = quick_run
    records = [r for r in result["records"]
               if r["workload"] == workload and r["mode"] == mode and r["peer"] == peer]
    assert records, f"no {peer} {mode} record for {workload}"
    for record in records:
        assert record["status"] == "ok", record["status"]
        assert record["finite"]
        for key in ("compile_s", "median_s", "p25_s", "p75_s"):
            assert math.isfinite(record[key]) and record[key] > 0, key
        assert record["samples"] >= 1


@pytest.mark.parametrize("workload", [w.name for w in WORKLOADS])
def test_genmath_is_correct(quick_run, workload):
    result, _, _, _ = quick_run
    records = [r for r in result["records"] if r["workload"] == workload
               and r["peer"] == "genmath" and r["mode"] == "forward"]
    for record in records:
        assert record["max_rel_err"] <= result["tolerance"][record["dtype"]]
        assert record["correct"] is True


def test_report_renders_the_run(quick_run):
    result, _, readme, _ = quick_run
    assert result["device"] in readme
    summary = readme.split("#### genmath against the targets")[1].split("####")[0]
    for workload in result["workloads"]:
        assert f"| {workload} |" in summary


def test_scaling_plot_is_written(quick_run, tmp_path):
    result, _, _, _ = quick_run
    # The quick run times one batch size; a copy at twice the batch makes a sweep.
    doubled = [{**r, "batch": 2 * r["batch"]} for r in result["records"]]
    result = {**result, "records": result["records"] + doubled}
    path = tmp_path / "batch.png"
    assert plots.plot_sweep(result, "batch", "forward", path)
    assert path.stat().st_size > 10_000
    assert not plots.plot_sweep(result, "dim", "forward", tmp_path / "dim.png")
