"""Smoke test of the IWAE timing and of the quality-run commands built on its projections.

The quick run happens once per module in a subprocess writing to a temporary directory.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import iwae, quality


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    return run_quick_benchmark(
        "benchmarks.iwae", out_name="iwae-bench", timeout=300, results="iwae-*.json"
    )


def test_epochs_checkpoint_and_evaluation_are_timed(quick_run):
    result, stdout, _, _ = quick_run
    assert result["suite"] == "iwae" and result["quick"] is True
    assert f"Device: {result['backend']}" in stdout
    (run,) = result["runs"]
    assert run["name"] == "iwae-k50"
    assert run["objective"] == {"kind": "iwae", "num_samples": 50}
    assert run["config"]["objective"]["kind"] == "iwae"
    assert run["config"]["train"]["batch_size"] == 20
    assert run["steps_per_epoch"] == iwae.QUICK["train_examples"] // 20
    for key in (
        "first_epoch_s",
        "median_epoch_s",
        "step_s",
        "checkpoint_save_s",
        "test_elbo_eval_s",
        "test_neg_elbo_nats",
    ):
        assert math.isfinite(run[key]) and run[key] > 0, key
    assert all(math.isfinite(v) for v in run["losses"])
    nll = result["nll"]
    assert nll["num_samples"] == iwae.QUICK["eval_samples"]
    assert nll["examples"] == iwae.QUICK["eval_examples"] and nll["extrapolated"]
    assert nll["full_test_set_s"] == pytest.approx(nll["second_call_s"] * 10_000 / 20)


def test_projection_adds_up(quick_run):
    result, _, _, _ = quick_run
    (run,) = result["runs"]
    p = run["projection"]
    assert p["epochs"] == iwae.SCHEDULE_EPOCHS
    assert p["epoch_s"] == pytest.approx(run["step_s"] * 3000)
    assert p["test_elbo_evals"] == iwae.SCHEDULE_EPOCHS // run["config"]["eval_every"]
    parts = p["train_s"] + p["checkpoints_s"] + p["test_elbo_evals_s"] + p["final_nll_s"]
    assert p["total_s"] == pytest.approx(parts)


def test_report_renders_the_run(quick_run):
    result, _, readme, _ = quick_run
    assert "## IWAE timing and the long quality runs" in readme
    assert result["device"] in readme
    assert "| iwae (K=50) |" in readme
    assert "| IWAE, 2 stochastic layers, k = 50 | 82.90 | `burda-iwae-k50-2layer` |" in readme


def test_quality_lists_runs_with_expected_times(quick_run, capsys):
    result, _, _, out = quick_run
    assert quality.main(["--list", "--results", str(out)]) == 0
    text = capsys.readouterr().out
    assert "burda-iwae-k50: " in text and "84.78" in text
    assert f"expected on {result['device']}" in text  # from the quick run's projection
    assert "burda-iwae-k50-2layer: " in text and "82.90" in text
    assert "configs.burda_2layer() with objective=Objective(kind='iwae', num_samples=50)" in text
    assert "burda-elbo" in text and "86.76" in text


def test_quality_dry_run_builds_the_config(capsys):
    assert quality.main(["burda-iwae-k50", "--dry-run"]) == 0
    assert "Objective(kind='iwae', num_samples=50)" in capsys.readouterr().out
    config = quality.config_for("burda-iwae-k50", epochs=7)
    assert config.objective.kind == "iwae" and config.objective.num_samples == 50
    assert config.train.epochs == 7 and config.train.batch_size == 20
    assert config.eval_samples == 5000
    assert quality.config_for("burda-elbo").train.epochs == iwae.SCHEDULE_EPOCHS


def test_two_layer_quality_run_builds_burdas_hierarchy():
    config = quality.config_for("burda-iwae-k50-2layer")
    assert config.model.latent_dim == 100 and config.model.hidden == (200, 200)
    assert config.model.top_latent_dim == 50 and config.model.top_hidden == (100, 100)
    assert config.objective.kind == "iwae" and config.objective.num_samples == 50
    assert config.train.epochs == iwae.SCHEDULE_EPOCHS and config.train.batch_size == 20
    assert quality.RUNS["burda-iwae-k50-2layer"].timing_name == "iwae-k50-2layer"


@pytest.mark.parametrize("spec", ["iwae", "vae:3", "iwae:0", "elbo:x"])
def test_bad_objectives_are_rejected(spec):
    with pytest.raises(SystemExit, match="--objectives"):
        iwae.parse_objectives(spec)


@pytest.mark.parametrize(
    ("run", "bar"), [("burda-iwae-k50", 84.78), ("burda-iwae-k50-2layer", 82.90)]
)
def test_quality_run_trains_evaluates_and_judges(tmp_path, capsys, run, bar):
    argv = [run, "--workdir", str(tmp_path), "--epochs", "1", "--no-progress"]
    argv += ["--train-examples", "200", "--test-examples", "64", "--eval-samples", "10"]
    assert quality.main(argv) == 0
    out = capsys.readouterr().out
    assert f"against Burda's {bar:.2f} after 1 epochs: not met" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["objective"] == {
        "kind": "iwae",
        "num_samples": 50,
        "kl_warmup_epochs": 0.0,
        "free_bits": 0.0,
    }
    assert math.isfinite(metrics["test_nll_nats"]) and (tmp_path / "samples.png").exists()
    two_layers = run.endswith("2layer")
    assert metrics["config"]["model"]["top_latent_dim"] == (50 if two_layers else 0)
