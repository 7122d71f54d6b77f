"""Re-runs the examples whose results the docs show, and commits-ready copies their outputs.

    python docs/results/refresh.py [NAME ...] [--data-dir DIR] [--keep-workdirs]

For each run of ``docs/results/runs.json`` (all, or the NAMEs given) this runs the
example's command (the one the docs print) with ``--workdir`` in a temporary folder, then
copies its ``metrics.json`` and the pictures that file lists into ``docs/results/<name>/``,
replacing what was there. Commit the result: the docs build reads only those files.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="runs to refresh (default: all)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--keep-workdirs", action="store_true")
    args = parser.parse_args(argv)
    runs = {run["name"]: run for run in json.loads((HERE / "runs.json").read_text())}
    unknown = sorted(set(args.names) - set(runs))
    if unknown:
        parser.error(f"unknown runs {unknown}; runs.json has {sorted(runs)}")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="genmath-docs-runs-"))
    for name in args.names or list(runs):
        run = runs[name]
        workdir = scratch / name
        command = [sys.executable, "-m", run["module"], "--data-dir", args.data_dir]
        command += ["--workdir", str(workdir), "--no-progress", *run.get("args", [])]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, cwd=ROOT, check=True)
        metrics = json.loads((workdir / "metrics.json").read_text())
        target = HERE / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        shutil.copyfile(workdir / "metrics.json", target / "metrics.json")
        for picture in metrics.get("pictures", []):
            shutil.copyfile(workdir / picture, target / picture)
        print(f"{name}: {target.relative_to(ROOT)} <- {workdir}", flush=True)
    if not args.keep_workdirs:
        shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
