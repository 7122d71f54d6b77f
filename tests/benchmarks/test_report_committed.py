"""The committed benchmark README is what ``python -m benchmarks.report`` renders from the
committed results: no figure there comes from a run whose file was not committed."""

from __future__ import annotations

import pathlib

from benchmarks import report

BENCHMARKS = pathlib.Path(report.__file__).parent


def test_committed_readme_is_rendered_from_committed_results():
    rendered = report.render(BENCHMARKS / "results")
    committed = (BENCHMARKS / "README.md").read_text()
    assert rendered == committed, (
        "benchmarks/README.md differs from what benchmarks/results renders: "
        "run `python -m benchmarks.report` and commit both"
    )
