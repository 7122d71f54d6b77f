"""Smoke test of the 8-bit MNIST benchmark (factorized categorical) and of its report section,
which also reads the VAE's 8-bit runs.

The quick run happens once per module in a subprocess writing to a temporary directory; the
report's bars are checked on hand-made results as well, with and without VAE runs.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from benchmarks import eightbit, report
from benchmarks._src import eightbit_report
from models import factorized_categorical as fc


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    return run_quick_benchmark(
        "benchmarks.eightbit", out_name="eightbit-bench", timeout=600, results="eightbit-*.json"
    )


def test_both_models_are_scored_and_timed(quick_run):
    result, stdout, _, out = quick_run
    assert result["suite"] == "eightbit" and result["quick"] is True
    assert f"Device: {result['backend']}" in stdout
    fcat = result["factorized_categorical"]
    closed, trained = fcat["closed_form"], fcat["trained"]
    for value in (closed["test_bits_per_dim"], trained["test_bits_per_dim"], result["wall_s"]):
        assert math.isfinite(value) and value > 0
    assert closed["seconds"] > 0 and trained["train_seconds"] > 0
    assert trained["epochs"] == eightbit.QUICK["epochs"] == len(trained["history"])
    assert fcat["train_examples"] == eightbit.QUICK["train_examples"]
    assert fcat["evaluation_set"] == "first 500 test images, 8bit"
    # The difference and the bar's verdict follow from the two figures.
    gap = trained["test_bits_per_dim"] - closed["test_bits_per_dim"]
    assert fcat["trained_minus_closed_form_bits_per_dim"] == pytest.approx(gap)
    assert fcat["bar_bits_per_dim"] == 0.01
    assert fcat["bar_met"] == (abs(gap) <= 0.01)
    for model in (closed, trained):
        bits = model["test_nll_nats"] / (784 * math.log(2.0))
        assert model["test_bits_per_dim"] == pytest.approx(bits, rel=1e-6)
    assert (out / result["samples_picture"]).stat().st_size > 0


def test_closed_form_matches_numpy_on_the_same_images(quick_run, mnist):
    """The closed form's test NLL from the benchmark against numpy float64 on the images the
    quick run used (the first 2000 training and 500 test images)."""
    result, _, _, _ = quick_run
    log_probs = np.log(fc.closed_form_probs(mnist.train_images[:2000]))
    levels = mnist.test_images[:500].reshape(500, 784).astype(np.int64)
    want = -log_probs[np.arange(784), levels].sum(-1).mean()
    got = result["factorized_categorical"]["closed_form"]["test_nll_nats"]
    assert got == pytest.approx(want, rel=1e-5)


def test_pseudo_count_sweep_holds_out_training_images(quick_run, mnist):
    result, _, _, _ = quick_run
    sweep = result["pseudo_count_sweep"]
    assert sweep["fit_examples"] == 1500 and sweep["held_out_examples"] == 500
    assert [r["pseudo_count"] for r in sweep["runs"]] == list(eightbit.SWEEP_PSEUDO_COUNTS)
    # One entry recomputed independently: alpha = 1 fitted on 1500, scored on the next 500.
    images = mnist.train_images[:2000]
    counts = np.stack([(images[:1500].reshape(1500, 784) == k).sum(0) for k in range(256)], -1)
    log_probs = np.log((counts + 1.0) / (1500 + 256.0))
    levels = images[1500:].reshape(500, 784).astype(np.int64)
    want = -log_probs[np.arange(784), levels].sum(-1).mean()
    (one,) = [r for r in sweep["runs"] if r["pseudo_count"] == 1.0]
    assert one["nll_nats"] == pytest.approx(want, rel=1e-10)


def test_report_renders_the_section(quick_run):
    result, _, readme, _ = quick_run
    assert "## 8-bit MNIST (bits/dim)" in readme
    assert f"### {result['backend']}: {result['device']}" in readme
    closed = result["factorized_categorical"]["closed_form"]["test_bits_per_dim"]
    assert f"| {closed:.4f} |" in readme
    for name, value in eightbit_report.PUBLISHED:
        assert f"| {name} | {value:.2f} |" in readme
    assert "| VAE, 8-bit likelihoods | not yet run |" in readme
    assert "not yet evaluated: no VAE 8-bit results" in readme
    assert f"![factorized categorical samples](results/{result['samples_picture']})" in readme


# ------------------------------------------------------------------ the bars, by hand


def fake_result(closed: float = 1.69, trained: float = 1.6917) -> dict:
    nats = lambda bits: bits * 784 * math.log(2.0)
    return {
        "suite": "eightbit",
        "backend": "cpu",
        "device": "test CPU",
        "jax": "0",
        "date": "2026-12-01T00:00:00",
        "command": "python -m benchmarks.eightbit",
        "wall_s": 1.0,
        "factorized_categorical": {
            "closed_form": {
                "test_bits_per_dim": closed,
                "test_nll_nats": nats(closed),
                "seconds": 1.0,
            },
            "trained": {
                "test_bits_per_dim": trained,
                "test_nll_nats": nats(trained),
                "train_seconds": 2.0,
                "epochs": 5,
            },
            "trained_minus_closed_form_bits_per_dim": trained - closed,
            "bar_bits_per_dim": 0.01,
            "pseudo_count": 1.0,
            "train_examples": 60000,
            "evaluation_set": "first 10000 test images, 8bit",
        },
        "pseudo_count_sweep": {
            "fit_examples": 50000,
            "held_out_examples": 10000,
            "runs": [{"pseudo_count": 1.0, "nll_nats": 900.0, "bits_per_dim": 1.66}],
        },
        "samples_picture": "eightbit-cpu-samples.png",
    }


def write_vae(results_dir, likelihood: str, elbo: float, iwae: float | None) -> None:
    # The keys examples/vae/train.py writes for 8-bit data.
    metrics = {
        "test_bits_per_dim_elbo": elbo,
        "test_neg_elbo_nats": elbo * 784 * math.log(2.0),
        "epochs": 10,
        "train_seconds_per_epoch": 100.0,
        "device": "cpu: 1 cores",
        "is_samples": 5000,
        "evaluation_set": "first 10000 test images, 8bit",
    }
    if iwae is not None:
        metrics["test_bits_per_dim_is"] = iwae
    path = results_dir / "vae-8bit" / likelihood / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))


def verdicts(result, results_dir) -> list[str]:
    return [v for _, v in eightbit_report.bars(result, eightbit_report.load_vae_runs(results_dir))]


@pytest.mark.parametrize(
    ("trained", "met"), [(1.6917, True), (1.6999, True), (1.7001, False), (1.6799, False)]
)
def test_agreement_bar_is_computed(tmp_path, trained, met):
    first = verdicts(fake_result(trained=trained), tmp_path)[0]
    assert first.startswith("met" if met else "not met"), first


def test_vae_bar_uses_the_best_bound_of_the_best_run(tmp_path):
    # Reference: min(closed 1.69, trained 1.6917) = 1.69, so the bar is <= 1.39.
    write_vae(tmp_path, "gaussian-dequantized", elbo=1.55, iwae=1.50)
    write_vae(tmp_path, "logistic-mixture", elbo=1.42, iwae=1.385)
    result = fake_result()
    _, vae, goal = verdicts(result, tmp_path)
    assert vae.startswith("met: 1.3850 (logistic-mixture, cpu: 1 cores)"), vae
    assert "+0.3050 bits/dim below 1.6900" in vae
    assert goal.startswith("not reached: 1.3850")
    readme = eightbit_report.section(result, tmp_path)
    assert "| VAE, logistic-mixture (K = 5000) | 1.3850 |" in readme
    nats = 1.55 * 784 * math.log(2.0)
    assert f"| VAE, gaussian-dequantized (ELBO) | 1.5500 | {nats:.2f} | bound | 10 ep" in readme
    source = "`vae-8bit/gaussian-dequantized/metrics.json` (first 10000 test images, 8bit)"
    assert f"100 s/epoch, cpu: 1 cores | {source} |" in readme
    assert "not yet run" not in readme


def test_vae_bar_not_met_and_elbo_only_runs(tmp_path):
    write_vae(tmp_path, "logistic", elbo=1.40, iwae=None)
    _, vae, _ = verdicts(fake_result(), tmp_path)
    assert vae.startswith("not met: 1.4000"), vae
    readme = eightbit_report.section(fake_result(), tmp_path)
    assert "| VAE, logistic (K = 5000) | — |" in readme


def test_flows_goal_reached(tmp_path):
    write_vae(tmp_path, "logistic-mixture", elbo=1.10, iwae=1.04)
    _, vae, goal = verdicts(fake_result(), tmp_path)
    assert vae.startswith("met") and goal.startswith("reached: 1.0400")


def test_report_discovers_the_suite(tmp_path):
    (tmp_path / "eightbit-cpu.json").write_text(json.dumps(fake_result()))
    text = report.render(tmp_path)
    assert text.count("## 8-bit MNIST (bits/dim)") == 1
    assert "### cpu: test CPU" in text


def test_summary_names_the_bar():
    text = eightbit_report.summary_text(copy.deepcopy(fake_result()))
    assert "closed form 1.6900 bits/dim" in text and "met: |1.6917 - 1.6900|" in text


@pytest.mark.parametrize(
    "argv", [["--epochs", "0"], ["--validation-examples", "0"], ["--train-examples", "-1"]]
)
def test_bad_flags_are_rejected(argv):
    with pytest.raises(SystemExit):
        eightbit.parse_args(argv)


def test_sweep_needs_a_fit_and_a_held_out_part():
    images = np.zeros((10, 28, 28), np.uint8)
    with pytest.raises(SystemExit, match="--validation-examples must lie in"):
        eightbit.pseudo_count_sweep(images, 10)
