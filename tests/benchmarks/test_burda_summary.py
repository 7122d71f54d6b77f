"""The Burda reproduction summary (``python -m benchmarks.burda``) and its report section, on
hand-made run folders: wall time without restarts, the K = 100 curve, the K = 5000 verdicts."""

from __future__ import annotations

import json

import pytest

from benchmarks import burda, report


def _write_run(folder, epochs, *, restart_after, epoch_s, nll, evaluation_file, k5000=None):
    folder.mkdir(parents=True)
    history, clock = [], 1000.0
    for epoch in range(1, epochs + 1):
        clock += epoch_s + (5000.0 if epoch == restart_after + 1 else 0.0)
        entry = {"epoch": epoch, "test_neg_elbo": 100.0 - epoch / 100, "wall_clock": clock}
        if epoch % 100 == 0:
            entry["test_nll_k100"] = nll - epoch / 1000
        history.append(entry)
    (folder / "history.json").write_text(json.dumps(history))
    if k5000 is not None:
        path = folder / evaluation_file
        path.parent.mkdir(parents=True, exist_ok=True)
        metrics = {
            "test_nll_nats": k5000,
            "test_nll_stderr_nats": 0.2,
            "eval_samples": 5000,
            "test_neg_elbo_nats": 90.0,
            "test_kl_nats": 25.0,
            "active_units": 21,
            "evaluation_set": "first 10000 test images, fixed_binarization(seed=0)",
            "device": "cpu: 1 cores",
        }
        path.write_text(json.dumps(metrics))


@pytest.fixture
def results(tmp_path):
    _write_run(
        tmp_path / "burda-fast-run",
        300,
        restart_after=150,
        epoch_s=2.0,
        nll=89.0,
        evaluation_file="k5000-epoch-2621/metrics.json",
        k5000=86.5,
    )
    _write_run(
        tmp_path / "burda-fast-ablation-run",
        200,
        restart_after=0,
        epoch_s=3.0,
        nll=90.0,
        evaluation_file="k5000-epoch-2621/metrics.json",
        k5000=None,
    )
    return tmp_path


def test_summary_counts_training_time_and_keeps_the_curve(results):
    summary = burda.main(["--results", str(results)])
    trained, ablation = summary["runs"]
    assert trained["epochs"] == 300 and ablation["epochs"] == 200
    # 299 gaps between epochs; the one holding the 5000 s restart is left out (and counted
    # as a second process), the other 298 are 2 s each.
    assert trained["train_wall_s"] == pytest.approx(298 * 2.0)
    assert trained["processes"] == 2 and ablation["processes"] == 1
    assert trained["median_epoch_s"] == pytest.approx(2.0)
    assert [p["epoch"] for p in trained["curve"]] == [100, 200, 300]
    assert trained["curve"][-1]["test_nll_k100"] == pytest.approx(88.7)
    assert trained["evaluation"]["test_nll_nats"] == 86.5
    assert "evaluation" not in ablation
    assert (results / "burda-curve.png").stat().st_size > 0
    written = json.loads((results / "burda-cpu.json").read_text())
    assert written["suite"] == "burda" and written["published_nll"] == 86.76


def test_report_section_states_each_verdict(results):
    burda.main(["--results", str(results)])
    readme = report.render(results)
    assert "## Burda et al.'s VAE likelihood" in readme
    assert "| 86.50 ± 0.20 |" in readme
    assert "- burda-fast: **met**: 86.50 nats against 86.76 (epoch 300)" in readme
    assert "- burda-fast, no output-bias init: not evaluated at K = 5000 yet" in readme
    assert "![test NLL against the epoch](results/burda-curve.png)" in readme
