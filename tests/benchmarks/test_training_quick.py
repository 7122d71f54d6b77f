"""Smoke test of the training benchmark: the quick mode runs end to end and learns.

The run happens once per module, in a subprocess (a fresh JAX, no compilation caches
shared with the test session) writing to a temporary directory, never to the committed
results. Without torch installed (as in CI) the PyTorch reference must be skipped with a
message saying so.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from benchmarks import training
from benchmarks._src import training_jax, training_report

HAS_TORCH = importlib.util.find_spec("torch") is not None
JAX_CONTENDERS = tuple(training.JAX_CONTENDERS)
QUICK_TORCH = training.torch_name(1)


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    result, stdout, readme, _ = run_quick_benchmark(
        "benchmarks.training", out_name="train-bench", timeout=540, results="training-*.json"
    )
    return result, stdout, readme


def _contender(result: dict, name: str) -> dict:
    (entry,) = [c for c in result["head_to_head"]["contenders"] if c["name"] == name]
    return entry


def test_names_the_device_and_the_load(quick_run):
    result, stdout, _ = quick_run
    assert result["suite"] == "training"
    assert result["quick"] is True
    assert result["backend"] and result["device"] and result["jax"]
    assert f"Device: {result['backend']}" in stdout
    assert result["load_average_before"] is None or len(result["load_average_before"]) == 3
    h2h = result["head_to_head"]
    assert h2h["train_examples"] == training.QUICK_EXAMPLES
    assert h2h["steps_per_epoch"] == training.QUICK_EXAMPLES // training.BATCH_SIZE


@pytest.mark.parametrize("name", [*JAX_CONTENDERS, QUICK_TORCH])
def test_contender_is_timed_and_learns(quick_run, name):
    result, _, _ = quick_run
    entry = _contender(result, name)
    if name == QUICK_TORCH and not HAS_TORCH:
        pytest.skip("torch is not installed (its skip is tested below)")
    assert entry["status"] == "ok", entry["status"]
    for key in ("examples_per_s", "median_epoch_s", "first_epoch_s"):
        assert math.isfinite(entry[key]) and entry[key] > 0, key
    assert math.isfinite(entry["warmup_excess_s"]) and entry["warmup_excess_s"] >= 0
    assert ("compile_s" in entry) == (name in JAX_CONTENDERS)
    assert len(entry["epoch_s"]) == 1 and len(entry["losses"]) == 2
    assert all(math.isfinite(v) for v in entry["losses"])
    assert entry["losses"][-1] < entry["losses"][0], entry["losses"]


def test_contenders_reach_similar_losses(quick_run):
    """The same model and loss: after the same steps, final losses agree to a few percent."""
    result, _, _ = quick_run
    finals = {
        c["name"]: c["final_loss"]
        for c in result["head_to_head"]["contenders"]
        if c["status"] == "ok"
    }
    for loss in finals.values():
        assert abs(loss - finals["scan"]) / finals["scan"] < 0.15, finals


def test_torch_reference_runs_or_is_skipped_clearly(quick_run):
    result, stdout, _ = quick_run
    entry = _contender(result, QUICK_TORCH)
    ratios = result["head_to_head"]["throughput_ratios"]
    if HAS_TORCH:
        assert entry["status"] == "ok"
        assert entry["torch_threads"] == 1
        assert result["head_to_head"]["torch_reference"] == QUICK_TORCH
        assert ratios["scan/torch"] > 0
    else:
        assert entry["status"].startswith("skipped: torch is not installed")
        assert training.TORCH_PIN in entry["status"]
        assert "torch is not installed" in stdout
        assert "scan/torch" not in ratios
    assert ratios["scan/jax-loop"] > 0


def test_torch_missing_gives_a_clear_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    reason = training.torch_unavailable_reason()
    assert "torch is not installed" in reason and training.TORCH_PIN in reason


@pytest.mark.parametrize(
    ("spec", "expected"), [("cores,1", [2, 1]), ("1", [1]), ("2,cores", [2]), (" 3 , 1", [3, 1])]
)
def test_torch_thread_counts(spec, expected):
    assert training.torch_thread_counts(spec, cores=2) == expected


@pytest.mark.parametrize("spec", ["0", "two", "1,-1", ""])
def test_torch_thread_counts_rejects_bad_input(spec):
    with pytest.raises(SystemExit, match="--torch-threads"):
        training.torch_thread_counts(spec, cores=2)


BREAKDOWN_FIELDS = (
    "step_compute_s",
    "binarize_bernoulli_s",
    "binarize_pixels_s",
    "gather_s",
    "plain_scan_s",
    "scan_trainer_s",
    "jax_loop_s",
    "trainer_overhead_s",
    "step_plus_binarize_s",
    "loop_dispatch_s",
    "binarize_speedup",
)


def test_breakdown_is_recorded(quick_run):
    result, _, _ = quick_run
    breakdown = result["head_to_head"]["breakdown"]
    assert breakdown["steps_per_epoch"] == result["head_to_head"]["steps_per_epoch"]
    assert set(breakdown["components"]) == set(training_jax.BREAKDOWN)
    for name, entry in breakdown["components"].items():
        assert entry["label"] == training_jax.BREAKDOWN[name]
        assert len(entry["epoch_s"]) == 1 and entry["rounds"] == [1]
        assert math.isfinite(entry["median_epoch_s"]) and entry["median_epoch_s"] > 0, name
    for field in BREAKDOWN_FIELDS:
        assert math.isfinite(breakdown[field]), field  # differences may be negative
    for field in ("step_compute_s", "binarize_pixels_s", "plain_scan_s", "binarize_speedup"):
        assert breakdown[field] > 0, field
    scan = _contender(result, "scan")
    plain = breakdown["components"]["plain-scan"]
    assert breakdown["trainer_overhead_s"] == pytest.approx(
        scan["epoch_s"][0] - plain["epoch_s"][0]
    )
    # Both binarisations draw Bernoulli(pixel / 255): their mean is the mean intensity.
    pixels = {n: breakdown["components"][n]["mean_pixel"] for n in training_jax.BINARIZERS}
    for name in ("binarize-bernoulli", "binarize-pixels", "binarize-pixels-rbg"):
        assert abs(pixels[name] - pixels["gather"]) < 0.01, pixels
    # The scans that train learn.
    for name in ("step-only", "plain-scan"):
        losses = breakdown["components"][name]["losses"]
        assert losses[-1] < losses[0], (name, losses)


def test_paired_difference_pairs_by_round():
    a = {"rounds": [1, 2, 3], "epoch_s": [1.0, 2.0, 9.0]}
    b = {"rounds": [1, 3], "epoch_s": [0.5, 8.0]}
    assert training.paired_difference(a, b) == pytest.approx(0.75)  # median of 0.5, 1.0
    assert training.paired_difference(a, {"rounds": [], "epoch_s": []}) is None


def test_breakdown_renders_without_a_run():
    breakdown = {
        "steps_per_epoch": 10,
        "components": {"plain-scan": {"label": "plain scan label", "median_epoch_s": 1.0}},
        "plain_scan_s": 1.0,
        "scan_trainer_s": 1.2,
        "trainer_overhead_s": -0.05,
        "binarize_speedup": 1.5,
    }
    rows = training_report._breakdown_rows(breakdown)
    assert [r[0] for r in rows] == ["plain scan", "Trainer overhead", "scan Trainer"]
    assert rows[0][1] == "plain scan label"
    assert rows[1][2] == "−50.00 ms" and rows[1][4] == "−4 %"
    assert "1.50×" in training_report._breakdown_note(breakdown)


def test_quality_run_is_recorded(quick_run):
    result, _, _ = quick_run
    burda = result["quality"]["burda"]
    assert burda["preset"] == "burda" and burda["epochs"] == 1
    assert "train_and_evaluate(configs.burda()" in burda["call"]
    assert burda["config"]["train"]["batch_size"] == 20 == burda["batch_size"]
    assert burda["config"]["train_examples"] == 1000
    assert burda["eval_samples"] == 10
    for key in ("test_neg_elbo_nats", "test_nll_nats", "wall_s"):
        assert math.isfinite(burda[key]) and burda[key] > 0, key
    # The importance-weighted bound is at least as tight as the ELBO (up to MC noise).
    assert burda["test_nll_nats"] < burda["test_neg_elbo_nats"] + 1.0


def test_report_renders_the_run(quick_run):
    result, _, readme = quick_run
    assert "## Training" in readme
    assert result["device"] in readme
    for name in JAX_CONTENDERS:
        assert f"| {name} |" in readme
    assert "| burda (batch 20) | 1 |" in readme
    assert "#### Breakdown of an epoch" in readme
    for part in ("step alone", "binarise, old", "binarise, new", "Trainer overhead"):
        assert f"| {part} |" in readme
