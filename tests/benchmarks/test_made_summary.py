"""The MADE long-run summary (``python -m benchmarks.made``) and its report section, on
hand-made run folders: wall time without restarts, the learning curve, the bars' verdict."""

from __future__ import annotations

import json

import pytest

from benchmarks import made, report


def _write_run(folder, epochs, *, epoch_s, restart_after, final_nll, conditional=False):
    folder.mkdir(parents=True)
    history, clock = [], 1000.0
    for epoch in range(1, epochs + 1):
        clock += epoch_s + (5000.0 if epoch == restart_after + 1 else 0.0)
        entry = {"epoch": epoch, "loss": 120.0 - epoch, "nll": 120.0 - epoch, "wall_clock": clock}
        if epoch % 5 == 0:
            entry["test_nll_mask0"] = final_nll + (epochs - epoch) / 10
        history.append(entry)
    (folder / "history.json").write_text(json.dumps(history))
    model = {
        "hidden": [8000],
        "num_masks": 1,
        "order_agnostic": False,
        "direct": True,
        "activation": "relu",
        "conditional": conditional,
    }
    metrics = {
        "preset": "ordered",
        "epochs": epochs,
        "config": {"model": model, "optimizer": {"schedule": "cosine"}},
        "num_parameters": 13_167_440,
        "batch_size": 100,
        "learning_rate": 1e-3,
        "binarization": "dynamic",
        "train_seconds_per_epoch": epoch_s + 3.0,
        "test_nll_nats": final_nll,
        "test_bits_per_dim": final_nll / 784 / 0.6931471805599453,
        "eval_masks": 1,
        "test_nll_note": "exact",
        "evaluation_set": "first 10000 test images, fixed_binarization(seed=0)",
        "device": "cpu: 2 cores",
    }
    if conditional:
        metrics["test_accuracy"] = 0.9612
        metrics["reference_test_accuracy"] = {"naive_bayes": 0.836, "logistic_regression": 0.9151}
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.mark.parametrize(
    "final_nll, verdict", [(85.5, ("met", "not met")), (88.0, ("not met",) * 2)]
)
def test_summary_and_report_state_the_bars(tmp_path, final_nll, verdict):
    _write_run(
        tmp_path / "made-ordered-run", 20, epoch_s=50.0, restart_after=10, final_nll=final_nll
    )
    summary = made.main(["--results", str(tmp_path)])
    (run,) = summary["runs"]
    # 19 gaps, the one holding the 5000 s restart left out; the first epoch's own time added.
    assert run["train_wall_s"] == pytest.approx(18 * 50.0 + 53.0)
    assert run["processes"] == 2 and run["median_epoch_s"] == pytest.approx(50.0)
    assert [p["epoch"] for p in run["curve"] if p["test_nll_mask0"]] == [5, 10, 15, 20]
    assert summary["bars"]["target_reached"] == (final_nll <= 86.76)
    assert summary["bars"]["goal_reached"] is False
    assert (tmp_path / "made-curve.png").stat().st_size > 0
    readme = report.render(tmp_path)
    assert f"| {final_nll:.2f} |" in readme
    assert f"Bar ≤ 86.76: **{verdict[0]}**; goal ≤ 84.78: **{verdict[1]}**" in readme
    assert "![MADE: NLL against the epoch](results/made-curve.png)" in readme


def test_a_conditional_run_reports_its_classifier_and_is_not_judged(tmp_path):
    _write_run(
        tmp_path / "made-conditional-run",
        10,
        epoch_s=40.0,
        restart_after=0,
        final_nll=80.0,
        conditional=True,
    )
    summary = made.main(["--results", str(tmp_path)])
    assert summary["bars"]["best_run"] is None
    readme = report.render(tmp_path)
    assert "96.1 % (naive Bayes 83.6 %, logistic regression 91.5 %)" in readme
    assert "| 80.00 (p(x | y)) |" in readme
    assert "No unconditional run yet: the bars are not judged." in readme
    _write_run(tmp_path / "made-ordered-run", 20, epoch_s=50.0, restart_after=10, final_nll=86.0)
    summary = made.main(["--results", str(tmp_path)])
    assert summary["bars"]["best_run"] == "ordered, 20 epochs"
    assert summary["bars"]["best_measured_nats"] == 86.0 and summary["bars"]["target_reached"]
