"""benchmarks/gpu.sh: its dry run prints every step under a timeout and runs nothing."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def _run(*args, env=None):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dry_run_lists_every_step_under_a_timeout(tmp_path):
    completed = _run("--dry-run", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for module in ("benchmarks.training", "benchmarks.iwae", "benchmarks.kernels"):
        assert f"-m {module}" in out
    assert out.count("(timeout ") == 3
    assert "--eval-samples 5000" in out and "iwae:50" in out
    assert f"--out {tmp_path}" in out
    assert "dry run: nothing was run" in out
    assert (tmp_path / "gpu.log").read_text() == out
    assert list(tmp_path.iterdir()) == [tmp_path / "gpu.log"]


def test_step_timeouts_fit_the_window(tmp_path):
    completed = _run("--dry-run", "--out", str(tmp_path))
    limits = [int(part.split("s)")[0]) for part in completed.stdout.split("(timeout ")[1:]]
    assert sum(limits) + 60 <= 600, limits  # 60 s: the environment check


def test_quick_dry_run_uses_the_quick_modes(tmp_path):
    completed = _run("--quick", "--dry-run", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("--quick") == 3


def test_unknown_argument_is_refused():
    completed = _run("--bogus")
    assert completed.returncode == 2
    assert "unknown argument --bogus" in completed.stderr
