"""The wheel is the library: it installs ``genmath`` and no top-level ``models``, ``examples``
or ``benchmarks`` package (those run from the source checkout)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_genmath(tmp_path):
    # No build isolation: the test environment's setuptools builds it, with no network.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("genmath-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {
        "genmath",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    assert "genmath/normal.py" in names and "genmath/_src/validation.py" in names
    assert not any(
        name.startswith(("models/", "examples/", "benchmarks/", "tests/")) for name in names
    )
