"""Tests for genmath.discretized_logistic and genmath.discretized_normal (8-bit pixels)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import special as sp_special

from genmath import discretized_logistic, discretized_normal
from tests.genmath.helpers import DTYPES, grad_tol

MODULES = {"logistic": discretized_logistic, "normal": discretized_normal}
XS = [0, 1, 127, 128, 254, 255]
LOCS = [-50.0, -1.0, 0.0, 0.3, 0.5, 1.0, 2.0, 50.0]
LOG_SCALES = [-10.0, -7.0, -5.0, -3.0, -1.0, 0.0, 2.0, 5.0]


@functools.cache
def _mp_log_prob(kind: str, x: int, loc: float, log_scale: float, dtype: str) -> float:
    """log P(bin x) in 60-digit arithmetic: each tail as its own small CDF, no cancellation.

    The bin edges (x -+ 0.5)/255 are taken as rounded to ``dtype``, as the function
    under test must round them: what is measured is the error of the
    rest of the computation (x/255 - loc is ill-conditioned for a tiny scale).
    """
    dt = np.dtype(dtype).type
    edge_lo = mpmath.mpf(float(dt(x - 0.5) / dt(255.0)))
    edge_hi = mpmath.mpf(float(dt(x + 0.5) / dt(255.0)))
    with mpmath.workdps(60):
        scale = mpmath.exp(mpmath.mpf(log_scale))
        loc = mpmath.mpf(loc)
        a = -mpmath.inf if x == 0 else (edge_lo - loc) / scale
        b = mpmath.inf if x == 255 else (edge_hi - loc) / scale
        if kind == "logistic":

            def cdf(z):
                return mpmath.mpf(0) if z == -mpmath.inf else 1 / (1 + mpmath.exp(-z))
        else:

            def cdf(z):
                return mpmath.ncdf(z)

        # Reflect into the left half: F(b) - F(a) = F(-a) - F(-b) for both symmetric laws.
        mid = b if x == 0 else (a if x == 255 else (a + b) / 2)
        p = cdf(b) - cdf(a) if mid <= 0 else cdf(-a) - cdf(-b)
        return float(mpmath.log(p))


def _reference_tol(kind, dtype):
    eps = float(np.finfo(dtype).eps)
    if kind == "normal" and dtype == np.float64:
        # jax.scipy.special.log_ndtr's asymptotic series for z < -20 is only good to ~2e-11
        # relative in float64 (checked against mpmath), and the edge bins use it as is.
        return 1e-10
    return 64 * eps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_log_prob_matches_mpmath_reference(kind, dtype):
    grid = np.array(np.meshgrid(XS, LOCS, LOG_SCALES, indexing="ij")).reshape(3, -1)
    x, loc, log_scale = grid
    expected = np.array(
        [_mp_log_prob(kind, int(a), b, c, np.dtype(dtype).name) for a, b, c in grid.T]
    )
    actual = MODULES[kind].log_prob(
        x.astype(np.int32), loc=loc.astype(dtype), log_scale=log_scale.astype(dtype), axis=()
    )
    assert actual.dtype == dtype
    tol = _reference_tol(kind, dtype)
    err = np.abs(np.asarray(actual, np.float64) - expected) / np.maximum(1.0, np.abs(expected))
    assert np.all(np.isfinite(actual))
    assert err.max() <= tol, grid.T[np.argmax(err)]


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_log_prob_matches_scipy_cdf_differences_mid_range(kind):
    # Where float64 CDF differences do not cancel, scipy's are a direct reference.
    x = np.arange(256)
    loc, log_scale = 0.4, -2.0
    s = np.exp(log_scale)
    lo = np.where(x == 0, -np.inf, ((x - 0.5) / 255 - loc) / s)
    hi = np.where(x == 255, np.inf, ((x + 0.5) / 255 - loc) / s)
    cdf = sp_special.expit if kind == "logistic" else sp_special.ndtr
    expected = np.log(cdf(hi) - cdf(lo))
    actual = MODULES[kind].log_prob(x, loc=jnp.asarray(loc), log_scale=log_scale, axis=())
    # 32 float32 ulps; in float64, the 1e-10 relative accuracy of the tails' log_ndtr.
    rtol = 32 * float(np.finfo(np.float32).eps) if actual.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(actual, expected, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
@pytest.mark.parametrize("loc", [-3.0, 0.0, 0.5, 1.0, 5.0])
@pytest.mark.parametrize("log_scale", [-10.0, -5.0, -2.0, 0.0, 5.0])
def test_probabilities_of_all_256_bins_sum_to_one(kind, dtype, loc, log_scale):
    x = jnp.arange(256)
    lp = MODULES[kind].log_prob(x, loc=dtype(loc), log_scale=dtype(log_scale), axis=())
    total = np.sum(np.exp(np.asarray(lp, np.float64)))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert abs(total - 1.0) <= tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_mixture_is_the_log_sum_of_weighted_components_and_sums_to_one(kind, dtype, rng):
    module = MODULES[kind]
    logits = rng.normal(size=(3, 4)).astype(dtype)  # D = 3 pixels, K = 4 components
    loc = rng.uniform(-0.5, 1.5, size=(3, 4)).astype(dtype)
    log_scale = rng.uniform(-6.0, 1.0, size=(3, 4)).astype(dtype)
    x = jnp.broadcast_to(jnp.arange(256)[:, None], (256, 3))
    mix = module.mixture_log_prob(x, logits=logits, loc=loc, log_scale=log_scale, axis=())
    assert mix.shape == (256, 3) and mix.dtype == dtype
    components = module.log_prob(x[..., None], loc=loc, log_scale=log_scale, axis=())
    expected = jax.nn.logsumexp(jax.nn.log_softmax(logits) + components, axis=-1)
    np.testing.assert_allclose(mix, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    totals = np.exp(np.asarray(mix, np.float64)).sum(axis=0)
    np.testing.assert_allclose(totals, 1.0, atol=1e-12 if dtype == np.float64 else 2e-5)
    # The event axis sums the pixels.
    summed = module.mixture_log_prob(x, logits=logits, loc=loc, log_scale=log_scale)
    np.testing.assert_allclose(summed, mix.sum(-1), rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_single_logit_broadcast_over_the_components_weighs_them_equally(kind):
    # logits of component size 1 broadcast to loc's K: K equal weights, as in
    # mixture.log_prob and mixture_sample (normalising the one logit first gave weight 1
    # to every component, probabilities summing to K).
    module = MODULES[kind]
    loc = jnp.array([0.2, 0.5, 0.8])
    x = jnp.arange(256)[:, None]
    f = jax.jit(lambda lg: module.mixture_log_prob(x, logits=lg, loc=loc, log_scale=-3.0, axis=()))
    one, equal = f(jnp.zeros(1)), f(jnp.zeros(3))
    np.testing.assert_allclose(one, equal, rtol=1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(one, np.float64)).sum(), 1.0, atol=2e-5)
    gradient = jax.grad(lambda lg: jnp.sum(f(lg)[100:160]))(jnp.zeros(1))
    # 0 up to the float32 rounding of 60 pixels' sums (it was -2 per pixel).
    np.testing.assert_allclose(gradient, 0.0, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_loc_on_a_bin_edge_within_the_documented_conditioning(kind, dtype):
    """loc = 0.5 is the edge between bins 127 and 128: at a scale of e^-8 both bins match
    60-digit mpmath, compiled or not, to the conditioning of an edge rounded by an ulp (the
    module notes: at far smaller scales the compiled edge's rounding decides)."""
    module = MODULES[kind]
    x = jnp.asarray([127, 128], jnp.int32)
    loc, log_scale = jnp.asarray(0.5, dtype), jnp.asarray(-8.0, dtype)
    expected = [_mp_log_prob(kind, v, 0.5, -8.0, np.dtype(dtype).name) for v in (127, 128)]
    compiled = jax.jit(lambda x, m, s: module.log_prob(x, loc=m, log_scale=s, axis=()))
    eager = module.log_prob(x, loc=loc, log_scale=log_scale, axis=())
    # An edge off by an ulp (eps / 2 at 0.5) moves it by eps / 2 / s scales.
    eps = float(np.finfo(dtype).eps)
    bound = _reference_tol(kind, dtype) + 2 * eps * math.exp(8.0)
    for value in (compiled(x, loc, log_scale), eager):
        np.testing.assert_allclose(np.asarray(value, np.float64), expected, rtol=bound)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_event_axis_sums_and_batch_broadcasts(kind):
    module = MODULES[kind]
    x = jnp.arange(24).reshape(2, 3, 4) * 10
    loc = jnp.linspace(0.0, 1.0, 4)
    elementwise = module.log_prob(x, loc=loc, log_scale=-2.0, axis=())
    out = module.log_prob(x, loc=loc, log_scale=-2.0, axis=(1, 2))
    assert out.shape == (2,)
    np.testing.assert_allclose(out, elementwise.sum((1, 2)), rtol=1e-5)
    assert module.log_prob(x, loc=loc, log_scale=-2.0).shape == (2, 3)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_values_off_the_grid_are_nan(kind):
    lp = MODULES[kind].log_prob(
        jnp.array([-1.0, 0.5, 256.0, 3.0]), loc=0.5, log_scale=-2.0, axis=()
    )
    assert np.all(np.isnan(lp[:3])) and np.isfinite(lp[3])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
@pytest.mark.parametrize("x", [0, 128, 255])
@pytest.mark.parametrize(("loc", "log_scale"), [(0.5, -3.0), (0.2, -1.0), (0.9, 1.0), (0.45, -6.0)])
def test_gradients_match_finite_differences(kind, dtype, x, loc, log_scale):
    def f(loc, log_scale):
        return MODULES[kind].log_prob(jnp.asarray(x), loc=loc, log_scale=log_scale, axis=())

    # A step of 1e-3 in float32 (not the helper's 1e-2): log P curves on the scale of
    # the bin width, and the helper's step moves a narrow bin by several scales.
    tol = {**grad_tol(dtype), "eps": 1e-3} if dtype == np.float32 else grad_tol(dtype)
    check_grads(
        f, (dtype(loc), dtype(log_scale)), order=1, modes=["rev"], eps=tol["eps"],
        atol=tol["atol"], rtol=tol["rtol"],
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_gradients_are_finite_at_the_extremes(kind, dtype):
    grid = np.array(np.meshgrid(XS, LOCS, [-30.0, *LOG_SCALES, 30.0], indexing="ij"))
    x, loc, log_scale = grid.reshape(3, -1)

    def f(loc, log_scale):
        return MODULES[kind].log_prob(x, loc=loc, log_scale=log_scale, axis=()).sum()

    value, grads = jax.value_and_grad(f, argnums=(0, 1))(loc.astype(dtype), log_scale.astype(dtype))
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_mixture_gradients(kind, dtype):
    x = jnp.array([0, 100, 255])
    args = (jnp.array([[0.3, -1.0]] * 3, dtype), jnp.array([[0.1, 0.6]] * 3, dtype),
            jnp.array([[-2.0, -4.0]] * 3, dtype))  # fmt: skip

    def f(logits, loc, log_scale):
        return MODULES[kind].mixture_log_prob(x, logits=logits, loc=loc, log_scale=log_scale)

    tol = grad_tol(dtype)
    check_grads(f, args, order=1, modes=["rev"], **tol)


def _check_frequencies(draws, probs):
    counts = np.bincount(np.asarray(draws).ravel(), minlength=256)
    n = counts.sum()
    # Every count within 5 standard deviations of its expectation, plus 3 for the rare
    # bins where the normal approximation fails (a Poisson(0.03) count of 4 has p ~ 3e-8).
    assert np.all(np.abs(counts - n * probs) <= 5.0 * np.sqrt(n * probs * (1 - probs)) + 3.0)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_sampler_frequencies_match_probabilities(kind):
    module = MODULES[kind]
    draws = module.sample(jax.random.key(0), loc=0.97, log_scale=-3.0, sample_shape=40_000)
    assert draws.dtype == jnp.int32 and draws.shape == (40_000,)
    probs = np.exp(np.asarray(module.log_prob(jnp.arange(256), loc=0.97, log_scale=-3.0, axis=())))
    _check_frequencies(draws, probs)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_mixture_sampler_frequencies_match_probabilities(kind):
    module = MODULES[kind]
    params = {
        "logits": jnp.array([0.0, 1.0, -1.0]),
        "loc": jnp.array([0.02, 0.5, 0.9]),
        "log_scale": jnp.array([-4.0, -2.5, -5.0]),
    }
    draws = module.mixture_sample(jax.random.key(1), **params, sample_shape=(200, 200))
    assert draws.shape == (200, 200) and draws.dtype == jnp.int32
    probs = np.exp(np.asarray(module.mixture_log_prob(jnp.arange(256), **params, axis=())))
    _check_frequencies(draws, probs)
    batch = module.mixture_sample(
        jax.random.key(2), logits=jnp.zeros((5, 3)), loc=0.5, log_scale=-3.0, sample_shape=2
    )
    assert batch.shape == (2, 5)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_bad_input_raises_at_trace_time_naming_the_argument(kind):
    module = MODULES[kind]
    name = f"discretized_{kind}"
    with pytest.raises(TypeError, match="`loc`"):
        jax.jit(lambda x: module.log_prob(x, loc=jnp.array([1, 2]), log_scale=0.0))(jnp.zeros(2))
    with pytest.raises(TypeError, match="`log_scale`"):
        module.log_prob(jnp.zeros(2), loc=0.5, log_scale=jnp.array([1, 2]))
    with pytest.raises(TypeError, match="`x`"):
        module.log_prob(jnp.zeros(2, jnp.complex64), loc=0.5, log_scale=0.0)
    with pytest.raises(ValueError, match=f"{name}.log_prob: shapes"):
        jax.jit(lambda x: module.log_prob(x, loc=jnp.zeros(3), log_scale=0.0))(jnp.zeros(2))
    with pytest.raises(ValueError, match="axis"):
        module.log_prob(jnp.zeros(2), loc=0.5, log_scale=0.0, axis=1)
    with pytest.raises(ValueError, match="`logits`"):
        module.mixture_log_prob(jnp.zeros(2), logits=0.0, loc=0.5, log_scale=0.0)
    with pytest.raises(TypeError, match="`logits`"):
        module.mixture_log_prob(jnp.zeros(2), logits=jnp.zeros(2, int), loc=0.5, log_scale=0.0)
    with pytest.raises(ValueError, match="x \\(with a component axis appended\\)"):
        module.mixture_log_prob(jnp.zeros(2), logits=jnp.zeros((3, 4)), loc=0.5, log_scale=0.0)
    with pytest.raises(TypeError, match="sample_shape"):
        module.sample(jax.random.key(0), loc=0.5, log_scale=0.0, sample_shape=2.0)
    with pytest.raises(TypeError, match="sample_shape"):
        module.mixture_sample(
            jax.random.key(0), logits=jnp.zeros(3), loc=0.5, log_scale=0.0, sample_shape=None
        )


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_half_precision_computes_in_float32(kind):
    lp = MODULES[kind].log_prob(
        jnp.arange(4, dtype=jnp.uint8), loc=jnp.bfloat16(0.5), log_scale=jnp.float16(-2.0)
    )
    assert lp.dtype == jnp.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_derivative_rule_matches_autodiff_of_the_value(dtype):
    # The discretised Gaussian's derivatives are given in closed form; they must equal
    # those of its own value, differentiated through erfc, the series and the selects,
    # on every branch: edge bins, narrow and wide interior bins, and the far tail.
    from genmath._src.discretized import _normal_bin_parts, normal_bin_log_prob

    grid = np.array(np.meshgrid(XS, LOCS, LOG_SCALES, indexing="ij")).reshape(3, -1)
    x, loc, log_scale = (jnp.asarray(a, dtype) for a in grid)

    def by_rule(*args):
        return jnp.sum(normal_bin_log_prob(*args))

    def by_autodiff(*args):
        return jnp.sum(_normal_bin_parts(*args)[0])

    for argnum in (0, 1, 2):
        rule = jax.jit(jax.vmap(jax.grad(by_rule, argnum)))(x, loc, log_scale)
        auto = jax.jit(jax.vmap(jax.grad(by_autodiff, argnum)))(x, loc, log_scale)
        scale = np.maximum(1.0, np.abs(np.asarray(auto)))
        err = np.abs(np.asarray(rule) - np.asarray(auto)) / scale
        assert err.max() <= 1e3 * np.finfo(dtype).eps, (argnum, grid.T[np.argmax(err)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_mixture_components_first_equals_components_last(kind, dtype, rng):
    """The mixture is evaluated with the components moved to the front and differentiated
    by its closed-form rule: same values, derivatives in both modes, broadcasting."""
    from genmath._src import discretized

    module = MODULES[kind]
    bin_log_prob = {"logistic": discretized.logistic_bin_log_prob,
                    "normal": discretized.normal_bin_log_prob}[kind]  # fmt: skip
    x = jnp.asarray(rng.integers(0, 256, (3, 7)), dtype)
    logits = jnp.asarray(rng.normal(size=(4,)), dtype)  # shared by every pixel
    loc = jnp.asarray(rng.uniform(0.0, 1.0, (3, 7, 4)), dtype)
    log_scale = jnp.asarray(-3.0, dtype)  # one scale for everything
    value = jax.jit(lambda *a: module.mixture_log_prob(x, logits=a[0], loc=a[1], log_scale=a[2]))(
        logits, loc, log_scale
    )
    shape = loc.shape
    last = jnp.sum(
        discretized._mix(
            bin_log_prob,
            x[..., None],
            logits.reshape(1, 1, 4),
            loc,
            log_scale.reshape(1, 1, 1),
            axis=-1,
        ),
        axis=-1,
    )
    assert value.shape == shape[:1]
    np.testing.assert_allclose(value, last, rtol=8 * np.finfo(dtype).eps)

    def f(logits, loc, log_scale):
        return module.mixture_log_prob(x[:1, :2], logits=logits, loc=loc, log_scale=log_scale)

    check_grads(f, (logits, loc[:1, :2], log_scale), order=1, modes=["fwd", "rev"],
                **grad_tol(dtype))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_partials_match_autodiff_of_the_value(dtype):
    # The mixture's derivative rule takes the logistic bin's partials in closed form, from
    # the value's own exponentials; they must equal autodiff of the value on every branch:
    # edge bins, the two sides of log1mexp's switch, and the extreme scales.
    from genmath._src.discretized import logistic_bin_log_prob, logistic_bin_partials

    scales = [-30.0, *LOG_SCALES, 30.0]
    grid = np.array(np.meshgrid(XS, LOCS, scales, indexing="ij")).reshape(3, -1)
    x, loc, log_scale = (jnp.asarray(a, dtype) for a in grid)
    value, d_loc, d_log_scale = jax.jit(logistic_bin_partials)(x, loc, log_scale)
    np.testing.assert_array_equal(value, jax.jit(logistic_bin_log_prob)(x, loc, log_scale))
    ones = jnp.ones_like(loc)
    for argnum, partial in ((1, d_loc), (2, d_log_scale)):
        tangents = [jnp.zeros_like(loc)] * 3
        tangents[argnum] = ones
        _, auto = jax.jit(jax.jvp, static_argnums=0)(
            logistic_bin_log_prob, (x, loc, log_scale), tuple(tangents)
        )
        scale = np.maximum(1.0, np.abs(np.asarray(auto)))
        err = np.abs(np.asarray(partial) - np.asarray(auto)) / scale
        assert err.max() <= 64 * np.finfo(dtype).eps, (argnum, grid.T[np.argmax(err)])
    off_grid = jax.jit(logistic_bin_partials)(jnp.asarray([0.5, -1.0, 256.0], dtype), 0.5, -3.0)
    assert np.all(np.isnan(off_grid[0])) and not np.any(off_grid[1]) and not np.any(off_grid[2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_mixture_rule_matches_autodiff_of_the_components_last_form(kind, dtype, rng):
    """The mixture's closed-form derivative rule (components first, coefficients moved back)
    against autodiff of the plain components-last expression: a component of zero weight,
    a logit shared by every pixel, extreme scales, each argument alone and all together,
    reverse and forward mode (the pixels too, whose tangent moves both edges)."""
    from genmath._src import discretized

    law = {"logistic": discretized.LOGISTIC, "normal": discretized.NORMAL}[kind]
    x = jnp.asarray(rng.integers(0, 256, (5, 6)), dtype).at[0, :3].set([0.0, 255.0, 128.0])
    # _mixed takes arguments of one rank: a size-1 axis is shared (broadcast).
    logits = jnp.asarray(rng.normal(size=(1, 6, 4)), dtype).at[..., 3].set(-jnp.inf)
    loc = jnp.asarray(rng.uniform(-0.2, 1.2, (5, 6, 4)), dtype)
    log_scale = jnp.asarray(rng.uniform(-8.0, 1.0, (5, 6, 4)), dtype)
    log_scale = log_scale.at[1, :, 0].set(-30.0).at[2, :, 1].set(30.0)
    args = (x, logits, loc, log_scale)

    def by_rule(x, logits, loc, log_scale):
        return discretized._mixed(law, x[..., None], logits, loc, log_scale)

    def by_autodiff(x, logits, loc, log_scale):
        return discretized._mix(law.log_prob, x[..., None], logits, loc, log_scale, axis=-1)

    def close(actual, expected):
        expected = np.asarray(expected)
        scale = np.maximum(1.0, np.abs(expected))
        err = np.abs(np.asarray(actual) - expected) / scale
        assert err.max() <= 256 * np.finfo(dtype).eps

    for argnums in ((1,), (2,), (3,), (1, 2, 3)):
        cotangent = jnp.asarray(rng.normal(size=x.shape), dtype)

        def pulled(f, argnums=argnums, cotangent=cotangent):
            return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * cotangent), argnums))(*args)

        for rule, auto in zip(pulled(by_rule), pulled(by_autodiff), strict=True):
            assert np.all(np.isfinite(rule))
            close(rule, auto)
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape), dtype) for a in args)
    tangents = (tangents[0], tangents[1].at[..., 3].set(0.0), *tangents[2:])
    value, forward = jax.jit(lambda t: jax.jvp(by_rule, args, t))(tangents)
    value_auto, forward_auto = jax.jit(lambda t: jax.jvp(by_autodiff, args, t))(tangents)
    close(value, value_auto)
    close(forward, forward_auto)


def test_materialized_arrays_are_unchanged():
    from genmath._src.discretized import _materialized, _through_buffers

    special = jnp.asarray([-0.0, 0.0, jnp.inf, -jnp.inf, jnp.nan, 1.5], jnp.float32)
    for helper in (_through_buffers, _materialized):
        out = jax.jit(helper)(special, special[::-1])
        for got, want in zip(out, (special, special[::-1]), strict=True):
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_masked_off_grid_pixels_have_zero_mixture_gradients(kind):
    # Off the grid (-1, 300, 2.5) the value is not finite; masked out, it must leave every
    # gradient 0, as the single-component log_prob does, not 0 * NaN.
    module = MODULES[kind]
    x = jnp.array([3.0, -1.0, 300.0, 2.5])

    def masked(logits, loc, log_scale):
        value = module.mixture_log_prob(x, logits=logits, loc=loc, log_scale=log_scale, axis=())
        return jnp.sum(jnp.where(jnp.isfinite(value), value, 0.0))

    args = (jnp.array([[0.0, 1.0]] * 4), jnp.full((4, 2), 0.3), jnp.full((4, 2), -2.0))
    grads = jax.jit(jax.grad(masked, (0, 1, 2)))(*args)
    for grad in grads:
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad[1:], 0.0)
        assert np.any(grad[0] != 0.0)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_empty_batches_have_empty_gradients(kind):
    module = MODULES[kind]
    x, logits, loc = jnp.zeros((0, 5)), jnp.zeros((0, 5, 3)), jnp.zeros((0, 5, 3))

    def total(logits, loc):
        return jnp.sum(module.mixture_log_prob(x, logits=logits, loc=loc, log_scale=-2.0))

    grads = jax.jit(jax.grad(total, (0, 1)))(logits, loc)
    assert grads[0].shape == grads[1].shape == (0, 5, 3)


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_samples_where_no_distribution_is_defined_are_minus_one(kind):
    module = MODULES[kind]
    key = jax.random.key(0)
    loc, log_scale = jnp.array([jnp.nan, 0.5, 0.5]), jnp.array([0.0, jnp.nan, -3.0])
    draws = module.sample(key, loc=loc, log_scale=log_scale)
    np.testing.assert_array_equal(np.asarray(draws)[:2], [-1, -1])
    assert 0 <= int(draws[2]) <= 255
    logits = jnp.array([[-jnp.inf, -jnp.inf], [jnp.nan, 0.0], [0.0, 0.0]])
    mixed = module.mixture_sample(
        key, logits=logits, loc=jnp.array([0.2, 0.8]), log_scale=-5.0, sample_shape=50
    )
    np.testing.assert_array_equal(np.asarray(mixed)[:, :2], -1)
    assert np.all((np.asarray(mixed)[:, 2] >= 0) & (np.asarray(mixed)[:, 2] <= 255))
