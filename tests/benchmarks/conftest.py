"""The quick benchmark run shared by the benchmark smoke tests."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run_quick(
    tmp_path_factory, module: str, *, out_name: str, timeout: int, results: str, args=()
):
    """Runs ``python -m <module> --quick [args]`` and the report on its output, each in a
    subprocess (a fresh JAX, without the test session's x64 setting or compilation caches)
    writing to a temporary directory; returns ``(result, stdout, readme_text, out_dir)``."""
    out = tmp_path_factory.mktemp(out_name)
    env = dict(os.environ)
    completed = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (path,) = out.glob(results)
    readme = out / "README.md"
    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--results", str(out), "--readme", str(readme)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    return json.loads(path.read_text()), completed.stdout, readme.read_text(), out


@pytest.fixture(scope="session")
def run_quick_benchmark(tmp_path_factory):
    """A function running one benchmark suite's quick mode; see ``_run_quick``."""

    def run(module: str, **kwargs):
        return _run_quick(tmp_path_factory, module, **kwargs)

    return run
