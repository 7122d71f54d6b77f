"""The conventions every genmath module shares: signatures, ``sample_shape``, type aliases."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genmath
from genmath._src import typing as gm_typing

MODULES = [getattr(genmath, name) for name in genmath.__all__]
PUBLIC_FUNCTIONS = [
    pytest.param(getattr(module, name), id=f"{module.__name__}.{name}")
    for module in MODULES
    for name in module.__all__
    if inspect.isfunction(getattr(module, name))
]

# Every sampler with parameters of batch shape (2, 3) and the event shape it appends.
SAMPLERS = {
    "bernoulli.sample": (
        lambda key, s: genmath.bernoulli.sample(key, logits=jnp.zeros((2, 3)), sample_shape=s),
        (2, 3),
    ),
    "bernoulli.continuous_sample": (
        lambda key, s: genmath.bernoulli.continuous_sample(
            key, logits=jnp.zeros((2, 3)), sample_shape=s
        ),
        (2, 3),
    ),
    "normal.sample": (
        lambda key, s: genmath.normal.sample(
            key, loc=jnp.zeros((2, 3)), log_scale=0.0, sample_shape=s
        ),
        (2, 3),
    ),
    "mvn.sample": (
        lambda key, s: genmath.mvn.sample(
            key, loc=jnp.zeros((2, 3, 4)), scale_tril=jnp.eye(4), sample_shape=s
        ),
        (2, 3, 4),
    ),
    "categorical.sample": (
        lambda key, s: genmath.categorical.sample(key, logits=jnp.zeros((2, 3, 5)), sample_shape=s),
        (2, 3),
    ),
}


@pytest.mark.parametrize("fn", PUBLIC_FUNCTIONS)
def test_data_positional_and_options_keyword_only(fn):
    # Data (and the random key) are positional without defaults; every parameter with a
    # default (an option such as `axis`, `where`, `sample_shape`) is keyword-only.
    for param in inspect.signature(fn).parameters.values():
        if param.default is not inspect.Parameter.empty:
            assert param.kind is inspect.Parameter.KEYWORD_ONLY, (fn.__name__, param.name)
        assert param.kind is not inspect.Parameter.VAR_POSITIONAL
    assert "shape" not in inspect.signature(fn).parameters, fn.__name__


# mixture.sample picks among samples the caller already drew, so their shape (sample axes
# included) is its sample shape: no `sample_shape` of its own.
TAKES_ITS_SHAPE_FROM_ITS_INPUT = {"genmath.mixture.sample"}
SAMPLER_FUNCTIONS = [
    pytest.param(getattr(module, name), id=f"{module.__name__}.{name}")
    for module in MODULES
    for name in module.__all__
    if (name == "sample" or name.endswith("_sample"))
    and f"{module.__name__}.{name}" not in TAKES_ITS_SHAPE_FROM_ITS_INPUT
]


@pytest.mark.parametrize("fn", SAMPLER_FUNCTIONS)
def test_every_sampler_takes_a_key_and_sample_shape(fn):
    # The distrax / TFP convention for every sampler of every module: the key first,
    # `sample_shape=()` keyword-only.
    params = inspect.signature(fn).parameters
    assert next(iter(params)) == "key", fn.__name__
    assert params["sample_shape"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["sample_shape"].default == ()


def test_the_samplers_tested_below_exist():
    names = {
        f"{fn.__module__.split('.')[-1]}.{fn.__name__}"
        for fn in (p.values[0] for p in SAMPLER_FUNCTIONS)
    }
    assert set(SAMPLERS) <= names, set(SAMPLERS) - names


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize(
    ("sample_shape", "prefix"),
    [
        ((), ()),
        (3, (3,)),
        ((3,), (3,)),
        ((2, 4), (2, 4)),
        ([2, 4], (2, 4)),
        (0, (0,)),
        (np.int64(3), (3,)),
    ],
)
def test_sample_shape_is_prepended_to_the_batch_shape(name, sample_shape, prefix):
    draw, batch = SAMPLERS[name]
    # Traced as under jit, without compiling (only the shape is checked here).
    x = jax.eval_shape(lambda key: draw(key, sample_shape), jax.random.key(0))
    assert x.shape == (*prefix, *batch)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_default_sample_shape_is_one_draw_and_an_int_equals_its_tuple(name):
    draw, batch = SAMPLERS[name]
    key = jax.random.key(1)
    jitted = jax.jit(draw, static_argnums=1)
    np.testing.assert_array_equal(jitted(key, 3), jitted(key, (3,)))
    assert draw(key, ()).shape == batch
    # The default: `sample_shape` left out.
    fn = {
        "bernoulli.sample": genmath.bernoulli.sample,
        "categorical.sample": genmath.categorical.sample,
    }.get(name)
    if fn is not None:
        assert fn(key, logits=jnp.zeros((2, 3, 5))).shape[:2] == (2, 3)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_bad_sample_shape_raises_naming_it(name):
    draw, _ = SAMPLERS[name]
    key = jax.random.key(0)
    for bad in (None, 2.0, True, (2, 1.5), "3"):
        with pytest.raises(TypeError, match="sample_shape"):
            draw(key, bad)
    for bad in (-1, (2, -3)):
        with pytest.raises(ValueError, match="sample_shape"):
            draw(key, bad)


def test_modules_share_the_typing_aliases():
    # One definition of each alias, in genmath._src.typing, imported everywhere.
    for module in MODULES:
        for alias in ("Array", "ArrayLike", "Axis"):
            if hasattr(module, alias):
                assert getattr(module, alias) is getattr(gm_typing, alias), (module, alias)
        source = inspect.getsource(module)
        assert "= jax.typing.ArrayLike" not in source and "Axis = int" not in source


@pytest.mark.parametrize("axis", [1.0, (0, 1.5), True, None, "0"])
def test_a_bad_event_axis_is_a_type_error_naming_it(axis):
    for call in (
        lambda: genmath.bernoulli.log_prob(jnp.zeros((2, 3)), logits=jnp.zeros(3), axis=axis),
        lambda: genmath.normal.kl_standard(loc=jnp.zeros(3), log_scale=jnp.zeros(3), axis=axis),
    ):
        with pytest.raises(TypeError, match="`axis` must be an int or a tuple of ints"):
            call()


def test_numpy_integer_axes_are_ints():
    x = jnp.zeros((2, 3))
    expected = genmath.bernoulli.log_prob(x, logits=x, axis=(0, 1))
    got = genmath.bernoulli.log_prob(x, logits=x, axis=(np.int64(0), np.int32(-1)))
    np.testing.assert_array_equal(got, expected)


SINGLE_AXIS_CALLS = {
    "mixture.select": lambda axis: genmath.mixture.select(
        jnp.arange(6.0).reshape(2, 3), jnp.array([0, 2]), axis=axis
    ),
    "mixture.mean": lambda axis: genmath.mixture.mean(
        jnp.arange(6.0).reshape(2, 3), logits=jnp.zeros((2, 3)), axis=axis
    ),
    "relaxed_categorical.log_prob": lambda axis: genmath.relaxed_categorical.log_prob(
        jnp.full((2, 3), 1 / 3), logits=jnp.zeros((2, 3)), temperature=0.5, axis=axis
    ),
}


@pytest.mark.parametrize("name", sorted(SINGLE_AXIS_CALLS))
def test_a_single_axis_may_be_a_numpy_integer(name):
    call = SINGLE_AXIS_CALLS[name]
    np.testing.assert_array_equal(call(np.int64(-1)), call(-1))
    np.testing.assert_array_equal(call(np.int32(1)), call(1))
    for bad in ((1,), True, 1.0):
        with pytest.raises(TypeError, match="`axis` must be an int"):
            call(bad)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: genmath.bernoulli.log_prob([1.0, 0.0], logits=jnp.zeros(2)), "x"),
        (lambda: genmath.bernoulli.log_prob(jnp.ones(2), logits=[0.0, 1.0]), "logits"),
        (lambda: genmath.normal.log_prob(jnp.ones(2), loc=None, log_scale=0.0), "loc"),
        (lambda: genmath.categorical.log_prob([1, 0], logits=jnp.zeros((2, 3))), "labels"),
    ],
)
def test_a_list_or_none_is_refused_naming_the_argument(call, argument):
    # As jax.numpy refuses lists; the error came from jnp.result_type without a name.
    with pytest.raises(TypeError, match=rf"`{argument}` must be an array or a scalar"):
        call()


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: genmath.mixture.select([1.0, 2.0], jnp.array(0)), "component_values"),
        (lambda: genmath.mixture.select(jnp.ones(2), [0]), "index"),
        (
            lambda: genmath.mixture.sample(
                jax.random.key(0), logits=jnp.zeros(2), component_samples=[1.0, 2.0]
            ),
            "component_samples",
        ),
        (
            lambda: genmath.relaxed_categorical.log_prob(
                [0.5, 0.5], logits=jnp.zeros(2), temperature=0.5
            ),
            "y",
        ),
    ],
)
def test_a_list_is_refused_naming_the_argument_outside_promote_too(call, argument):
    with pytest.raises(TypeError, match=rf"`{argument}` must be an array or a scalar"):
        call()
