"""genmath.debug: opt-in checkify checks of values, absent from the program when off."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from genmath import (
    bernoulli,
    categorical,
    debug,
    dequantize,
    discretized_logistic,
    discretized_normal,
    mvn,
)
from genmath._src import value_checks
from tests.genmath.helpers import DTYPE

KEY = jax.random.key(0)
ROOT = pathlib.Path(__file__).resolve().parents[2]
L_BAD = jnp.array([[1.0, 0.0], [0.5, 0.0]], DTYPE)  # zero diagonal: singular covariance
L_GOOD = jnp.array([[1.0, 0.0], [0.5, -2.0]], DTYPE)  # a negative diagonal entry is allowed
L_NAN = jnp.array([[1.0, 0.0], [jnp.nan, 2.0]], DTYPE)
PIXEL_LOC = jnp.full(3, 0.5, DTYPE)
MIXTURE = {"logits": jnp.zeros((3, 2), DTYPE), "loc": jnp.full((3, 2), 0.5, DTYPE)}


# id: (function of one array, bad value, good value, the message's start, value with the
# checks off for the bad input: "nan", "-inf", "not finite" or "negative")
CASES = {
    "bernoulli.log_prob": (
        lambda x: bernoulli.log_prob(x, logits=jnp.zeros(3, DTYPE)),
        jnp.array([0.0, 1.5, 1.0], DTYPE),
        jnp.array([0.0, 0.25, 1.0], DTYPE),
        "bernoulli.log_prob: `x` must lie in [0, 1], got 1.5",
        "nan",
    ),
    "bernoulli.logits_from_probs": (
        bernoulli.logits_from_probs,
        jnp.array([0.5, -0.25], DTYPE),
        jnp.array([0.5, 1.0], DTYPE),
        "bernoulli.logits_from_probs: `probs` must lie in [0, 1], got -0.25",
        "nan",
    ),
    "bernoulli.continuous_log_prob": (
        lambda x: bernoulli.continuous_log_prob(x, logits=jnp.ones(3, DTYPE)),
        jnp.array([0.5, -0.5, 0.25], DTYPE),
        jnp.array([0.5, 0.0, 0.25], DTYPE),
        "bernoulli.continuous_log_prob: `x` must lie in [0, 1], got -0.5",
        "-inf",
    ),
    "categorical.log_prob (too large)": (
        lambda y: categorical.log_prob(y, logits=jnp.zeros((2, 4), DTYPE)),
        jnp.array([1, 4]),
        jnp.array([1, 3]),
        "categorical.log_prob: `labels` must hold class indices in [0, 4), got 4",
        "nan",
    ),
    "categorical.log_prob (negative)": (
        lambda y: categorical.log_prob(y, logits=jnp.zeros((2, 4), DTYPE), axis=-1),
        jnp.array([-1, 0]),
        jnp.array([0, 0]),
        "categorical.log_prob: `labels` must hold class indices in [0, 4), got -1",
        "nan",
    ),
    "mvn.log_prob": (
        lambda t: mvn.log_prob(jnp.ones((4, 2), DTYPE), loc=0.0, scale_tril=t),
        L_BAD,
        L_GOOD,
        "mvn.log_prob: `scale_tril` must have a non-zero diagonal (a singular covariance), got 0.0",
        "not finite",
    ),
    "mvn.entropy": (
        lambda t: mvn.entropy(scale_tril=t),
        jnp.array([[1.0, 0.0], [0.5, jnp.nan]], DTYPE),
        L_BAD,  # singular: a degenerate distribution of entropy -inf, no error
        "mvn.entropy: `scale_tril` must hold finite values, got nan",
        "nan",
    ),
    "mvn.kl": (
        lambda t: mvn.kl(loc_p=jnp.ones(2, DTYPE), scale_tril_p=L_GOOD, loc_q=0.0, scale_tril_q=t),
        L_BAD,
        L_GOOD,
        "mvn.kl: `scale_tril_q` must have a non-zero diagonal (a singular covariance), got 0.0",
        "not finite",
    ),
    "mvn.cross_entropy": (
        lambda t: mvn.cross_entropy(
            loc_p=jnp.ones(2, DTYPE), scale_tril_p=L_BAD, loc_q=0.0, scale_tril_q=t
        ),
        L_BAD,
        L_GOOD,  # a singular p is a degenerate distribution: finite H(p, q), no error
        "mvn.cross_entropy: `scale_tril_q` must have a non-zero diagonal (a singular "
        "covariance), got 0.0",
        "not finite",
    ),
    "mvn.kl (p)": (
        lambda t: mvn.kl(loc_p=jnp.ones(2, DTYPE), scale_tril_p=t, loc_q=0.0, scale_tril_q=L_GOOD),
        L_NAN,
        L_GOOD,
        "mvn.kl: `scale_tril_p` must hold finite values, got nan",
        "nan",
    ),
    "mvn.sample": (
        lambda t: mvn.sample(KEY, loc=jnp.zeros(2, DTYPE), scale_tril=t, sample_shape=3),
        L_NAN,
        L_BAD,  # singular: samples on a line, no error
        "mvn.sample: `scale_tril` must hold finite values, got nan",
        "nan",
    ),
    "discretized_logistic.log_prob": (
        lambda x: discretized_logistic.log_prob(x, loc=PIXEL_LOC, log_scale=-3.0),
        jnp.array([0.0, 3.5, 255.0], DTYPE),
        jnp.array([0.0, 3.0, 255.0], DTYPE),
        "discretized_logistic.log_prob: `x` must hold integers in 0..255, got 3.5",
        "nan",
    ),
    "discretized_normal.log_prob": (
        lambda x: discretized_normal.log_prob(x, loc=PIXEL_LOC, log_scale=-3.0),
        jnp.array([0, 256, 7]),
        jnp.array([0, 255, 7]),
        "discretized_normal.log_prob: `x` must hold integers in 0..255, got 256",
        "nan",
    ),
    "discretized_logistic.mixture_log_prob": (
        lambda x: discretized_logistic.mixture_log_prob(x, log_scale=-3.0, **MIXTURE),
        jnp.array([-1, 2, 3]),
        jnp.array([1, 2, 3]),
        "discretized_logistic.mixture_log_prob: `x` must hold integers in 0..255, got -1",
        "nan",
    ),
    "dequantize.bits_per_dim_8bit": (
        lambda lp: dequantize.bits_per_dim_8bit(lp, num_dims=784),
        jnp.array([-900.0, 88.0], DTYPE),  # 88: a negative log-likelihood given by mistake
        jnp.array([-900.0, -88.0], DTYPE),
        "dequantize.bits_per_dim_8bit: `log_prob` must be a log-probability (at most 0), got 88.0",
        "negative",
    ),
    "dequantize.uniform": (
        lambda x: dequantize.uniform(KEY, x),
        jnp.array([0.0, 300.0], DTYPE),
        jnp.array([0.0, 255.0], DTYPE),
        "dequantize.uniform: `x` must hold integers in 0..255, got 300",
        "nan",
    ),
}


def _ids():
    return sorted(CASES)


def _no_op_checks(monkeypatch):
    for name in dir(value_checks):
        if name.startswith("check_"):
            monkeypatch.setattr(value_checks, name, lambda *args, **kwargs: None)


def _check_equations(jaxpr) -> int:
    """How many `check` equations the jaxpr holds, nested jaxprs included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "check"
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                count += _check_equations(getattr(inner, "jaxpr", inner))
    return count


def test_checks_are_off_by_default():
    assert not debug.checks_enabled()
    with debug.checks():
        assert debug.checks_enabled()
        with debug.checks(enabled=False):
            assert not debug.checks_enabled()
    assert not debug.checks_enabled()


@pytest.mark.parametrize("case", _ids())
def test_bad_value_raises_under_jit_naming_the_argument(case):
    fn, bad, _, message, _ = CASES[case]
    with pytest.raises(checkify.JaxRuntimeError) as raised:
        debug.checked(fn)(bad)
    assert str(raised.value).startswith(message), str(raised.value)


@pytest.mark.parametrize("case", _ids())
def test_valid_value_passes_and_gives_the_unchecked_result(case):
    fn, _, good, _, _ = CASES[case]
    checked = debug.checked(fn)(good)
    plain = jax.jit(fn)(good)
    assert not bool(jnp.any(jnp.isnan(checked)))  # (probability 1 is a logit of +inf)
    np.testing.assert_array_equal(np.asarray(checked), np.asarray(plain))


@pytest.mark.parametrize("case", _ids())
def test_checks_off_leave_the_program_unchanged_and_the_documented_value(case, monkeypatch):
    fn, bad, _, _, documented = CASES[case]
    off = str(jax.make_jaxpr(fn)(bad))
    with debug.checks():
        on = jax.make_jaxpr(fn)(bad)
    assert _check_equations(on.jaxpr) >= 1
    # Zero cost: with the checks off the program is exactly the one traced with every
    # check helper replaced by a no-op.
    _no_op_checks(monkeypatch)
    assert off == str(jax.make_jaxpr(fn)(bad))
    assert "check" not in off.split()
    value = np.asarray(jax.jit(fn)(bad), np.float64)
    if documented == "nan":
        assert np.isnan(value).any()
    elif documented == "-inf":
        assert (value == -np.inf).any()
    elif documented == "not finite":
        assert not np.isfinite(value).all()
    elif documented == "negative":
        assert (value < 0).any()


def test_eager_call_with_checks_on_raises_at_once():
    with debug.checks(), pytest.raises(checkify.JaxRuntimeError, match="`probs`"):
        bernoulli.logits_from_probs(jnp.array([2.0], DTYPE))


def test_the_switch_is_part_of_the_jit_cache_key():
    """A function jitted with the checks off is traced again when called with them on."""
    fn = checkify.checkify(jax.jit(bernoulli.logits_from_probs))
    bad = jnp.array([0.5, 2.0], DTYPE)
    error, value = fn(bad)
    assert error.get() is None and np.isnan(np.asarray(value)[1])
    with debug.checks():
        error, _ = fn(bad)
    assert "`probs` must lie in [0, 1], got 2.0" in error.get()
    error, _ = fn(bad)
    assert error.get() is None


def test_enable_checks_for_the_process():
    runtime_errors = value_checks.RUNTIME_ERRORS.value
    debug.enable_checks(True)
    try:
        assert debug.checks_enabled()
        error, _ = checkify.checkify(jax.jit(bernoulli.logits_from_probs))(jnp.array([-1.0]))
        assert "`probs`" in error.get()
        # A plain jitted function, as an existing script has it, runs and raises.
        plain = jax.jit(bernoulli.logits_from_probs)
        np.testing.assert_array_equal(plain(jnp.array([0.5], DTYPE)), [0.0])
        with pytest.raises(jax.errors.JaxRuntimeError, match="`probs` must lie in"):
            plain(jnp.array([-1.0], DTYPE))
    finally:
        debug.enable_checks(False)
    assert not debug.checks_enabled()
    assert value_checks.RUNTIME_ERRORS.value == runtime_errors  # restored


@pytest.mark.parametrize("case", _ids())
def test_plain_jit_inside_checks_runs_and_raises_naming_the_argument(case):
    # Before, any jax.jit of genmath code failed to compile with the checks on, even on
    # valid input ("Cannot abstractly evaluate a checkify.check which was not
    # functionalized"): the checks are now lowered to run-time errors there.
    fn, bad, good, message, _ = CASES[case]
    plain = jax.jit(fn)
    with debug.checks():
        np.testing.assert_array_equal(plain(good), jax.jit(fn)(good))
        with pytest.raises(jax.errors.JaxRuntimeError) as raised:
            jax.block_until_ready(plain(bad))
    # JAX's message carries the callback's traceback, then the check's own message.
    last_line = str(raised.value).rstrip().splitlines()[-1]
    assert message in last_line, str(raised.value)[-300:]
    assert not value_checks.RUNTIME_ERRORS.value  # restored on leaving the context


def test_a_training_loop_under_scan_raises_at_the_bad_step():
    def step(total, x):
        return total + bernoulli.log_prob(x, logits=jnp.zeros(2, DTYPE)), None

    run = jax.jit(lambda xs: jax.lax.scan(step, jnp.zeros((), DTYPE), xs)[0])
    xs = jnp.zeros((4, 2), DTYPE)
    with debug.checks():
        np.testing.assert_allclose(run(xs), 8 * np.log(0.5), rtol=1e-6)
        with pytest.raises(jax.errors.JaxRuntimeError, match=r"`x` must lie in \[0, 1\], got 3"):
            jax.block_until_ready(run(xs.at[2, 1].set(3.0)))


def test_the_environment_variable_checks_a_plain_jitted_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import jax, jax.numpy as jnp\n"
        "from genmath import bernoulli, debug\n"
        "assert debug.checks_enabled()\n"
        "f = jax.jit(lambda x: bernoulli.log_prob(x, logits=jnp.zeros(2)))\n"
        "print(float(f(jnp.array([1.0, 0.0]))))\n"
        "f(jnp.array([1.0, 1.5])).block_until_ready()\n"
    )
    env = {**os.environ, "GENMATH_VALUE_CHECKS": "1", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    np.testing.assert_allclose(float(result.stdout), 2 * np.log(0.5), rtol=1e-6)
    assert "bernoulli.log_prob: `x` must lie in [0, 1], got 1.5" in result.stderr, result.stderr


def test_checked_is_the_outermost_wrapper():
    fn = lambda x: bernoulli.log_prob(x, logits=jnp.zeros(2, DTYPE))
    x = jnp.array([1.0, 0.0], DTYPE)
    np.testing.assert_array_equal(debug.checked(jax.jit(fn))(x), jax.jit(fn)(x))
    with pytest.raises(checkify.JaxRuntimeError, match="`x` must lie"):
        debug.checked(jax.jit(fn))(x.at[1].set(2.0))
    with pytest.raises(TypeError, match=r"debug\.checked: .*traced values"):
        jax.jit(debug.checked(fn))(x)
    # Eager transformations of the checked function work, and raise on a bad value.
    rows = jnp.stack([x, x])
    np.testing.assert_array_equal(jax.vmap(debug.checked(fn))(rows), jax.vmap(fn)(rows))
    with pytest.raises(checkify.JaxRuntimeError, match="`x` must lie"):
        jax.vmap(debug.checked(fn))(rows.at[1, 0].set(-1.0))
    grad = jax.grad(lambda x: debug.checked(fn)(x).sum())
    np.testing.assert_allclose(grad(x), jax.grad(lambda x: fn(x).sum())(x), rtol=1e-6)


def test_enable_checks_inside_a_checks_block_stays_on_after_it():
    assert not value_checks.RUNTIME_ERRORS.value
    plain = jax.jit(bernoulli.logits_from_probs)
    try:
        with debug.checks():
            debug.enable_checks(True)
        assert debug.checks_enabled()
        np.testing.assert_array_equal(plain(jnp.array([0.5], DTYPE)), [0.0])
        with pytest.raises(jax.errors.JaxRuntimeError, match="`probs` must lie in"):
            plain(jnp.array([-1.0], DTYPE))
    finally:
        debug.enable_checks(False)
    # Turned off again by the call that turned the checks off: nothing leaks to later code.
    assert not debug.checks_enabled() and not value_checks.RUNTIME_ERRORS.value


def test_masked_out_values_are_not_checked():
    x = jnp.array([1.0, jnp.nan, 7.0], DTYPE)
    where = jnp.array([True, False, False])
    value = debug.checked(lambda x: bernoulli.log_prob(x, logits=jnp.zeros(3, DTYPE), where=where))(
        x
    )
    np.testing.assert_allclose(value, -np.log(2.0), rtol=1e-6)


def test_under_vmap():
    def row(x):
        return bernoulli.log_prob(x, logits=jnp.zeros(2, DTYPE))

    batched = jax.vmap(row)
    good = jnp.array([[0.0, 1.0], [0.5, 0.5]], DTYPE)
    np.testing.assert_array_equal(debug.checked(batched)(good), jax.jit(batched)(good))
    with pytest.raises(checkify.JaxRuntimeError, match=r"bernoulli\.log_prob: `x`"):
        debug.checked(batched)(jnp.array([[0.0, 1.0], [0.5, -3.0]], DTYPE))
    # Labels checked per vmapped row.
    labels = jax.vmap(lambda y: categorical.log_prob(y, logits=jnp.zeros(5, DTYPE)))
    with pytest.raises(checkify.JaxRuntimeError, match="got 5"):
        debug.checked(labels)(jnp.array([0, 5, 2]))


def test_under_grad():
    def loss(tril, x):
        return jnp.sum(mvn.log_prob(x, loc=0.0, scale_tril=tril))

    x = jnp.ones((3, 2), DTYPE)
    grad = jax.grad(loss)
    np.testing.assert_allclose(
        debug.checked(grad)(L_GOOD, x), jax.jit(grad)(L_GOOD, x), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(checkify.JaxRuntimeError, match=r"mvn\.log_prob: `scale_tril`"):
        debug.checked(grad)(L_BAD, x)
    value_and_grad = jax.value_and_grad(lambda p: jnp.sum(bernoulli.logits_from_probs(p)))
    with pytest.raises(checkify.JaxRuntimeError, match="`probs` must lie in"):
        debug.checked(value_and_grad)(jnp.array([0.5, 1.25], DTYPE))


def test_checked_without_jit():
    fn = debug.checked(bernoulli.logits_from_probs, jit=False)
    np.testing.assert_array_equal(fn(jnp.array([0.5], DTYPE)), [0.0])
    with pytest.raises(checkify.JaxRuntimeError, match="`probs`"):
        fn(jnp.array([1.5], DTYPE))


def test_checked_keeps_keyword_options_static():
    logits = jnp.zeros((2, 3), DTYPE)
    checked = debug.checked(bernoulli.log_prob)
    x = jnp.array([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]], DTYPE)
    for axis in (-1, 0, (0, 1)):
        np.testing.assert_array_equal(
            checked(x, logits=logits, axis=axis), bernoulli.log_prob(x, logits=logits, axis=axis)
        )
    with pytest.raises(checkify.JaxRuntimeError, match=r"got 2\.0"):
        checked(x.at[1, 2].set(2.0), logits=logits, axis=0)
    draws = debug.checked(mvn.sample)(KEY, loc=0.0, scale_tril=L_GOOD, sample_shape=4)
    assert draws.shape == (4, 2)


def test_checked_takes_list_options_and_keeps_equal_values_of_other_types_apart():
    x = jnp.array([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]], DTYPE)
    logits = jnp.zeros((2, 3), DTYPE)
    checked = debug.checked(bernoulli.log_prob)
    np.testing.assert_array_equal(
        checked(x, logits=logits, axis=[0, 1]), bernoulli.log_prob(x, logits=logits, axis=(0, 1))
    )
    sample = debug.checked(mvn.sample)
    assert sample(KEY, loc=0.0, scale_tril=L_GOOD, sample_shape=[2]).shape == (2, 2)
    assert sample(KEY, loc=0.0, scale_tril=L_GOOD, sample_shape=2).shape == (2, 2)
    # 2.0 == 2 as a dictionary key: it must still get its own trace, and its error.
    with pytest.raises(TypeError, match="`sample_shape` must be an int"):
        sample(KEY, loc=0.0, scale_tril=L_GOOD, sample_shape=2.0)


def test_without_the_private_jax_switch_checks_are_off_and_turning_them_on_says_why(
    monkeypatch,
):
    # A jax release without config.bool_state must not break `import genmath`: the checks
    # are then unavailable, reported off, and asking for them raises naming the function.
    monkeypatch.setattr(value_checks, "ENABLED", None)
    assert not debug.checks_enabled()
    with pytest.raises(RuntimeError, match=r"debug\.checks: .*bool_state"):
        with debug.checks():
            pass
    with pytest.raises(RuntimeError, match=r"debug\.enable_checks: .*bool_state"):
        debug.enable_checks(True)
