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


FAKE_PYTHON = """#!/usr/bin/env bash
# Passes the environment check (reads its script from stdin); fails the IWAE step.
case "$*" in
  *benchmarks.iwae*) echo "iwae broke"; exit 3 ;;
  *-m\\ benchmarks.*) echo "ran $*" ;;
  *) cat > /dev/null ;;
esac
"""


def test_a_failed_step_is_reported_and_the_others_still_run(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / "out"
    completed = _run("--quick", "--out", str(out), env={"PYTHON": str(fake)})
    assert completed.returncode == 1, completed.stdout + completed.stderr
    log = (out / "gpu.log").read_text()
    assert "step iwae FAILED (exit 3)" in log
    assert "ran -m benchmarks.kernels" in log  # the step after the failed one ran
    assert "failed steps: iwae" in log


def test_without_a_working_environment_it_stops_at_once(tmp_path):
    completed = _run("--quick", "--out", str(tmp_path), env={"PYTHON": "false"})
    assert completed.returncode == 2
    assert "not installing" in completed.stdout
