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

HAS_TORCH = importlib.util.find_spec("torch") is not None
JAX_CONTENDERS = tuple(training.JAX_CONTENDERS)
QUICK_TORCH = training.torch_name(1)


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    result, stdout, readme, _ = run_quick_benchmark(
            "benchmarks.training", out_name="train-bench", timeout=420,
            results="training-*.json")
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
    finals = {c["name"]: c["final_loss"] for c in result["head_to_head"]["contenders"]
              if c["status"] == "ok"}
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


@pytest.mark.parametrize(("spec", "expected"), [("cores,1", [2, 1]), ("1", [1]),
                                                ("2,cores", [2]), (" 3 , 1", [3, 1])])
def test_torch_thread_counts(spec, expected):
    assert training.torch_thread_counts(spec, cores=2) == expected


@pytest.mark.parametrize("spec", ["0", "two", "1,-1", ""])
def test_torch_thread_counts_rejects_bad_input(spec):
    with pytest.raises(SystemExit, match="--torch-threads"):
        training.torch_thread_counts(spec, cores=2)


def test_quality_run_is_recorded(quick_run):
    result, _, _ = quick_run
    burda = result["quality"]["burda"]
    assert burda["preset"] == "burda" and burda["epochs"] == 1
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
