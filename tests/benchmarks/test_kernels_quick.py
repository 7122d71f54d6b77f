"""Smoke test of the kernel benchmark: the quick mode runs end to end.

The run happens once per session, in a subprocess (so that it sees a fresh JAX,
without the test session's x64 setting or compilation caches) and writes to a
temporary directory, never to the committed results.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from benchmarks import kernels
from benchmarks._src import peers, plots
from benchmarks._src.workloads import WORKLOADS

MODES = ("forward", "value_and_grad")


@pytest.fixture(scope="module")
def quick_run(run_quick_benchmark):
    return run_quick_benchmark(
        "benchmarks.kernels", out_name="bench", timeout=300, results="*.json"
    )


def test_names_the_device(quick_run):
    result, stdout, _, _ = quick_run
    assert result["suite"] == "kernels"
    assert result["quick"] is True
    assert result["backend"] and result["device"]
    assert f"Device: {result['backend']}" in stdout
    assert result["copy_bandwidth"]["gbps"] > 0


@pytest.mark.parametrize("workload", [w.name for w in WORKLOADS])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("peer", ["genmath", "jnp"])
def test_every_workload_is_timed(quick_run, workload, mode, peer):
    result, _, _, _ = quick_run
    records = [
        r
        for r in result["records"]
        if r["workload"] == workload and r["mode"] == mode and r["peer"] == peer
    ]
    assert records, f"no {peer} {mode} record for {workload}"
    for record in records:
        assert record["status"] == "ok", record["status"]
        assert record["finite"]
        for key in ("compile_s", "median_s", "p25_s", "p75_s"):
            assert math.isfinite(record[key]) and record[key] > 0, key
        assert record["samples"] >= 1


@pytest.mark.parametrize("workload", [w.name for w in WORKLOADS])
def test_genmath_is_correct(quick_run, workload):
    result, _, _, _ = quick_run
    records = [
        r
        for r in result["records"]
        if r["workload"] == workload and r["peer"] == "genmath" and r["mode"] == "forward"
    ]
    for record in records:
        assert record["max_rel_err"] <= result["tolerance"][record["dtype"]]
        assert record["correct"] is True


def test_report_renders_the_run(quick_run):
    result, _, readme, _ = quick_run
    assert result["device"] in readme
    summary = readme.split("#### genmath against the targets")[1].split("####")[0]
    for workload in result["workloads"]:
        assert f"| {workload} |" in summary


def test_scaling_plot_is_written(quick_run, tmp_path):
    result, _, _, _ = quick_run
    # The quick run times one batch size; a copy at twice the batch makes a sweep.
    doubled = [{**r, "batch": 2 * r["batch"]} for r in result["records"]]
    result = {**result, "records": result["records"] + doubled}
    path = tmp_path / "batch.png"
    assert plots.plot_sweep(result, "batch", "forward", path)
    assert path.stat().st_size > 10_000
    assert not plots.plot_sweep(result, "dim", "forward", tmp_path / "dim.png")


def _scipy_reference(name: str, inputs: dict) -> np.ndarray:
    """The same quantities through scipy.stats, independently of the benchmark's code."""
    i = inputs
    if name.startswith("bernoulli"):
        # Grey levels: the cross-entropy x log p + (1 - x) log(1 - p).
        p = scipy.special.expit(i["logits"])
        return np.sum(scipy.special.xlogy(i["x"], p) + scipy.special.xlog1py(1 - i["x"], -p), -1)
    if name == "normal_log_prob":
        return np.sum(scipy.stats.norm.logpdf(i["x"], i["loc"], np.exp(i["log_scale"])), -1)
    if name in ("normal_kl_standard", "normal_kl"):
        loc_q = i.get("loc_q", 0.0)
        scale_q = np.exp(i.get("log_scale_q", 0.0))
        loc_p = i.get("loc_p", i.get("loc"))
        scale_p = np.exp(i.get("log_scale_p", i.get("log_scale")))
        terms = (
            np.log(scale_q / scale_p) + (scale_p**2 + (loc_p - loc_q) ** 2) / (2 * scale_q**2) - 0.5
        )
        return np.sum(terms, -1)
    if name.startswith("mvn_log_prob"):
        x, loc, tril = i["x"], i["loc"], i["scale_tril"]
        if tril.ndim == 2:
            return scipy.stats.multivariate_normal(loc, tril @ tril.T).logpdf(x)
        return np.stack(
            [
                [
                    scipy.stats.multivariate_normal(loc[j], tril[j] @ tril[j].T).logpdf(x[s, j])
                    for j in range(x.shape[1])
                ]
                for s in range(x.shape[0])
            ]
        )
    if name == "mvn_kl":
        out = []
        for k in range(len(i["loc_p"])):
            cov_p = i["scale_tril_p"][k] @ i["scale_tril_p"][k].T
            cov_q = i["scale_tril_q"][k] @ i["scale_tril_q"][k].T
            inv_q = np.linalg.inv(cov_q)
            d = i["loc_q"][k] - i["loc_p"][k]
            out.append(
                0.5
                * (
                    np.trace(inv_q @ cov_p)
                    + d @ inv_q @ d
                    - len(d)
                    + np.linalg.slogdet(cov_q)[1]
                    - np.linalg.slogdet(cov_p)[1]
                )
            )
        return np.array(out)
    if name == "categorical_entropy":
        return scipy.stats.entropy(scipy.special.softmax(i["logits"], -1), axis=-1)
    if name == "categorical_kl":
        return scipy.stats.entropy(
            scipy.special.softmax(i["logits_p"], -1),
            scipy.special.softmax(i["logits_q"], -1),
            axis=-1,
        )
    if name == "vae_loss":
        kl = _scipy_reference("normal_kl_standard", i)
        return kl - _scipy_reference("bernoulli_log_prob_binary", i)
    if name.startswith("discretized"):
        family = scipy.stats.logistic if "logistic" in name else scipy.stats.norm
        x = i["x"][..., None] if "mixture" in name else i["x"]
        log_bins = np.log(_bin_probability(family, x, i["loc"], np.exp(i["log_scale"])))
        if "mixture" in name:
            weights = scipy.special.softmax(i["logits"], -1)
            log_bins = scipy.special.logsumexp(log_bins, b=weights, axis=-1)
        return np.sum(log_bins, -1)
    if name == "categorical_log_prob_pixels":
        p = scipy.special.softmax(i["logits"], -1)
        return np.sum(np.log(np.take_along_axis(p, i["labels"][..., None], -1)[..., 0]), -1)
    if name == "normal_cross_entropy":
        return np.sum(_by_quadrature(_normal_cross_entropy, i), -1)
    if name == "mvn_cross_entropy":
        entropy = [
            scipy.stats.multivariate_normal(mean, tril @ tril.T).entropy()
            for mean, tril in zip(i["loc_p"], i["scale_tril_p"], strict=True)
        ]
        return np.array(entropy) + _scipy_reference("mvn_kl", i)
    if name.startswith("continuous_bernoulli"):
        quantity = name.removeprefix("continuous_bernoulli_")
        return np.sum(_by_quadrature(_CONTINUOUS_BERNOULLI[quantity], i), -1)
    if name == "mixture_log_prob":
        weights = scipy.special.softmax(i["logits"], -1)
        return scipy.special.logsumexp(i["component_log_probs"], b=weights, axis=-1)
    if name.startswith("iwae"):
        # Every surrogate's value is the IWAE bound, log of the mean weight over axis 0.
        k = i["log_weights"].shape[0]
        return scipy.special.logsumexp(i["log_weights"], axis=0, b=1.0 / k)
    if name == "relaxed_bernoulli_log_prob":
        # The logit x = log(y / (1 - y)) is logistic(l / t, 1 / t); dx/dy = 1 / (y (1 - y)).
        y, t = i["y"], i["temperature"]
        logit = scipy.stats.logistic.logpdf(scipy.special.logit(y), i["logits"] / t, 1.0 / t)
        return np.sum(logit - np.log(y) - np.log1p(-y), -1)
    if name == "relaxed_categorical_log_prob":
        return np.sum(_by_latent(_concrete_log_density, i), -1)
    raise AssertionError(name)


def _concrete_log_density(y, logits, temperature):
    """The Concrete density (Maddison et al. 2017, Definition 1) of one latent, as the
    product it is written as, in float64: (K-1)! t^(K-1) prod_k pi_k y_k^(-t-1) / S."""
    k = len(y)
    pi = scipy.special.softmax(logits)
    total = np.sum(pi * y**-temperature)
    density = math.factorial(k - 1) * temperature ** (k - 1)
    density *= np.prod(pi * y ** (-temperature - 1) / total)
    return np.log(density)


def _by_latent(density, inputs: dict) -> np.ndarray:
    """``density(y, logits, temperature)`` of each latent (the class axis last)."""
    y, logits = inputs["y"], inputs["logits"]
    flat = [
        density(a, b, float(inputs["temperature"]))
        for a, b in zip(y.reshape(-1, y.shape[-1]), logits.reshape(-1, y.shape[-1]), strict=True)
    ]
    return np.reshape(flat, y.shape[:-1])


def _bin_probability(family, x, loc, scale):
    """P(bin x) of 8-bit pixels under ``family(loc, scale)`` on the [0, 1] scale (edge bins
    to +-inf); above the location from the survival function, so nothing cancels."""
    dist = family(loc, scale)
    lower = np.where(x == 0, -np.inf, (x - 0.5) / 255)
    upper = np.where(x == 255, np.inf, (x + 0.5) / 255)
    above = lower + upper > 2 * loc
    return np.where(above, dist.sf(lower) - dist.sf(upper), dist.cdf(upper) - dist.cdf(lower))


def _by_quadrature(integral, inputs: dict) -> np.ndarray:
    """``integral(**scalars)`` elementwise over the (broadcast) inputs."""
    arrays = np.broadcast_arrays(*inputs.values())
    columns = zip(*map(np.ravel, arrays), strict=True)
    values = [integral(**dict(zip(inputs, v, strict=True))) for v in columns]
    return np.reshape(values, arrays[0].shape)


def _quad(f, low, high):
    return scipy.integrate.quad(f, low, high, epsabs=1e-13, epsrel=1e-13, limit=200)[0]


def _normal_cross_entropy(loc_p, log_scale_p, loc_q, log_scale_q):
    p = scipy.stats.norm(loc_p, np.exp(log_scale_p))
    q = scipy.stats.norm(loc_q, np.exp(log_scale_q))
    return _quad(lambda t: -p.pdf(t) * q.logpdf(t), loc_p - 40 * p.std(), loc_p + 40 * p.std())


def _continuous_bernoulli_density(logits):
    """The continuous Bernoulli density, normalised by numerical integration."""
    lam = scipy.special.expit(logits)
    unnormalised = lambda t: lam**t * (1 - lam) ** (1 - t)
    norm = _quad(unnormalised, 0.0, 1.0)
    return lambda t: unnormalised(t) / norm


def _cb_log_prob(x, logits):
    return np.log(_continuous_bernoulli_density(logits)(x))


def _cb_entropy(logits):
    p = _continuous_bernoulli_density(logits)
    return _quad(lambda t: -p(t) * np.log(p(t)), 0.0, 1.0)


def _cb_kl(logits_p, logits_q):
    p, q = _continuous_bernoulli_density(logits_p), _continuous_bernoulli_density(logits_q)
    return _quad(lambda t: p(t) * np.log(p(t) / q(t)), 0.0, 1.0)


_CONTINUOUS_BERNOULLI = {"log_prob": _cb_log_prob, "entropy": _cb_entropy, "kl": _cb_kl}


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_reference_agrees_with_scipy(workload):
    """The float64 references every peer is judged by are themselves right."""
    inputs = workload.make_inputs(np.random.default_rng(0), 3, 5)
    expected = _scipy_reference(workload.name, inputs)
    np.testing.assert_allclose(workload.reference(**inputs), expected, rtol=1e-10, atol=1e-10)


def test_missing_peer_is_reported_not_fatal(monkeypatch, capsys):
    def broken():
        raise ImportError("No module named 'distrax'")

    monkeypatch.setitem(peers._LOADERS, "distrax", broken)
    loaded, unavailable = kernels._load_peers(["jnp", "distrax"])
    assert [p.name for p in loaded] == ["jnp"]
    assert unavailable == {"distrax": "not available: ImportError: No module named 'distrax'"}
    assert "distrax" in capsys.readouterr().out


def test_unknown_peer_is_rejected():
    with pytest.raises(SystemExit, match="unknown peer"):
        kernels.main(["--quick", "--peers", "jnp,nonsense"])


def _timing(median, p25, p75, correct=True):
    return {"median_s": median, "p25_s": p25, "p75_s": p75, "correct": correct, "peer": "x"}


@pytest.mark.parametrize(
    ("genmath", "best", "expected"),
    [
        (_timing(1.00, 0.95, 1.05), _timing(1.10, 1.0, 1.2), "✓"),
        # A median gap inside both interquartile ranges is not evidence.
        (_timing(1.05, 0.95, 1.15), _timing(1.00, 0.90, 1.10), "✓ (≈ x, within noise)"),
        # Quartiles apart: slower.
        (_timing(1.30, 1.25, 1.35), _timing(1.00, 0.95, 1.05), "✗ slower than x"),
        (_timing(1.00, 0.95, 1.05, correct=False), None, "✗ WRONG"),
    ],
)
def test_target_verdict_needs_evidence_beyond_the_noise(genmath, best, expected):
    from benchmarks._src import render

    jnp_ = dict(genmath, correct=True)  # on par with jnp: only the peer comparison counts
    row = {
        "genmath": genmath,
        "jnp": jnp_,
        "best": best,
        "vs_jnp": genmath["median_s"] / jnp_["median_s"],
        "vs_best": None if best is None else genmath["median_s"] / best["median_s"],
    }
    assert render._verdict(row) == expected


def test_target_verdict_flags_a_slow_kernel_against_jnp():
    from benchmarks._src import render

    genmath, jnp_ = _timing(1.2, 1.15, 1.25), _timing(1.0, 0.95, 1.05)
    row = {"genmath": genmath, "jnp": jnp_, "best": None, "vs_jnp": 1.2, "vs_best": None}
    assert render._verdict(row) == "✗ > 1.10× jnp"


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_headline_only_times_one_size_even_on_an_accelerator(workload):
    # The GPU script's short window: one case per workload, at the summary table's size.
    cases = kernels._cases(workload, False, True, True, headline_only=True)
    assert cases == [(workload.headline_batch(False), workload.dim, ("batch",))]
    full = kernels._cases(workload, False, True, True)
    assert (workload.headline_batch(False), workload.dim) in {(b, d) for b, d, _ in full}
