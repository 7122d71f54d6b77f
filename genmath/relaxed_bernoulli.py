"""The binary Concrete (relaxed Bernoulli) distribution, parameterised by logits.

A relaxed Bernoulli sample is :math:`y = \\sigma(x)` with :math:`x = (\\ell + L)/\\lambda`,
where :math:`\\ell` is the logit of the Bernoulli it relaxes, :math:`L = \\log u - \\log(1-u)`
logistic noise (:math:`u \\sim \\mathcal U(0, 1)`) and :math:`\\lambda > 0` the temperature.
:math:`y \\in (0, 1)` is differentiable in :math:`\\ell` and :math:`\\lambda`; as
:math:`\\lambda \\to 0` it tends to the hard sample :math:`\\mathbb 1[\\ell + L > 0]`, which is
:math:`\\mathrm{Bernoulli}(\\sigma(\\ell))`.

Two random variables, two densities, kept apart by their names: :func:`sample` and
:func:`log_prob` are about :math:`y` (the relaxed value, in :math:`(0, 1)`),
:func:`logit_sample` and :func:`logit_log_prob` about its logit :math:`x = \\log y -
\\log(1-y)`, which is logistic with location :math:`\\ell/\\lambda` and scale
:math:`1/\\lambda`. The logit form is the one to train with (Maddison et al. 2017, App. C):
at small temperatures :math:`y` rounds to exactly 0 or 1, where its density is only a limit,
while :math:`x` stays finite. Since :math:`\\log p(y) = \\log p(x) - \\log y - \\log(1-y)`, the
two differ by a term that does not depend on the parameters, and a KL estimate
:math:`\\log q - \\log p` of two relaxed Bernoullis is the same in either form.

:func:`straight_through` and :func:`straight_through_sample` give the hard value
:math:`\\mathbb 1[y > 1/2]` forward and the relaxed sample's gradient backward.

Temperatures are checked when they are concrete (``ValueError`` for a non-positive one); under
``jax.jit`` a non-positive temperature gives NaN. Logits :math:`\\pm\\infty` are point masses
at 1 and 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genmath._src import relaxed, sampling, validation
from genmath._src.typing import Array, ArrayLike, Axis, Key, SampleShape

__all__ = [
    "log_prob",
    "logit_log_prob",
    "logit_sample",
    "sample",
    "straight_through",
    "straight_through_sample",
]


def _parameters(name: str, data: dict, logits: ArrayLike, temperature: ArrayLike) -> list[Array]:
    arrays = validation.promote(name, {"logits": logits, "temperature": temperature}, data)
    relaxed.check_temperature(name, arrays[-1])
    return arrays


def _logit_terms(x: Array, logits: Array, temperature: Array) -> Array:
    """Elementwise :math:`\\log p(x)` of the logistic with location :math:`\\ell/\\lambda` and
    scale :math:`1/\\lambda`; a point mass (:math:`\\ell = \\pm\\infty`) gives
    :math:`+\\infty` at its atom :math:`x = \\ell` and :math:`-\\infty` elsewhere."""
    raw = jax.lax.stop_gradient(temperature * x - logits)
    finite = jnp.isfinite(raw)
    # Double where, on the inputs: an infinite x or logit would give the temperature (or x)
    # a gradient of inf * 0 = NaN; such elements are evaluated at 0 and overwritten (density
    # 0 off an atom, a Dirac at it).
    shifted = temperature * jnp.where(finite, x, 0.0) - jnp.where(finite, logits, 0.0)
    density = jnp.log(temperature) + relaxed.logistic_log_density(shifted)
    atom = jnp.isinf(logits) & (x == logits)
    limit = jnp.where(atom, jnp.inf, -jnp.inf)
    value = jnp.where(finite, density, jnp.where(jnp.isnan(raw) & ~atom, jnp.nan, limit))
    return relaxed.nan_unless_positive(temperature, value)


def logit_log_prob(
    x: ArrayLike, *, logits: ArrayLike, temperature: ArrayLike, axis: Axis = -1
) -> Array:
    """Log-density of the logit :math:`x` of a relaxed Bernoulli sample, summed.

    .. math::

        \\log p(x \\mid \\ell, \\lambda) = \\sum_i \\Big[\\log\\lambda - |u_i|
        - 2\\log\\big(1 + e^{-|u_i|}\\big)\\Big], \\qquad u_i = \\lambda x_i - \\ell_i

    the logistic density with location :math:`\\ell/\\lambda` and scale :math:`1/\\lambda`,
    written in :math:`|u|` so that nothing overflows (a logit of :math:`10^4` at
    :math:`\\lambda = 10^{-3}` is fine). :math:`x = \\pm\\infty` has density 0
    (:math:`-\\infty`). A logit :math:`\\pm\\infty` is a point mass at :math:`x = \\pm\\infty`:
    :math:`+\\infty` there, :math:`-\\infty` elsewhere, with zero gradients.

    Args:
        x: logits of relaxed samples, :math:`x = \\log y - \\log(1 - y)` (what
            :func:`logit_sample` returns), floating, broadcastable with the parameters.
        logits: :math:`\\ell`, floating; :math:`\\pm\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with ``logits``.
        axis: event axis or axes of the broadcast shape to sum over.

    Returns:
        The log-density with the event axes summed out, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> lp = relaxed_bernoulli.logit_log_prob(jnp.array([0.0]), logits=jnp.array([0.0]),
        ...                                       temperature=2.0)
        >>> print(round(float(lp), 4))  # log(2 / 4): the logistic density at its centre
        -0.6931

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, §3.4 and App. C.
    """
    name = "relaxed_bernoulli.logit_log_prob"
    x, logits, temperature = _parameters(name, {"x": x}, logits, temperature)
    terms = _logit_terms(x, logits, temperature)
    return jnp.sum(terms, axis=validation.check_axis(name, axis, terms.ndim))


def log_prob(y: ArrayLike, *, logits: ArrayLike, temperature: ArrayLike, axis: Axis = -1) -> Array:
    """Log-density of a relaxed Bernoulli sample :math:`y \\in (0, 1)`, summed.

    .. math::

        p(y \\mid \\ell, \\lambda) = \\frac{\\lambda\\, e^\\ell\\, y^{-\\lambda - 1}
        (1 - y)^{-\\lambda - 1}}{\\big(e^\\ell y^{-\\lambda} + (1 - y)^{-\\lambda}\\big)^2},
        \\qquad
        \\log p(y) = \\log p_{\\mathrm{logit}}(x) - \\log y - \\log(1 - y),
        \\ x = \\log y - \\log(1-y)

    computed through :func:`logit_log_prob` (in log space: the powers
    :math:`y^{-\\lambda}` overflow). Outside :math:`[0, 1]` the density is 0
    (:math:`-\\infty`). At :math:`y = 0` and :math:`y = 1` it is the limit:
    :math:`\\log\\lambda \\mp \\ell` for :math:`\\lambda = 1`, :math:`+\\infty` for
    :math:`\\lambda < 1` and :math:`-\\infty` for :math:`\\lambda > 1`.
    Samples drawn at small temperatures round to exactly 0 or 1; prefer
    :func:`logit_sample` with :func:`logit_log_prob` for training. A logit
    :math:`\\pm\\infty` is a point mass at 1 (0): :math:`+\\infty` there, :math:`-\\infty`
    elsewhere.

    Args:
        y: relaxed samples in :math:`[0, 1]` (what :func:`sample` returns), floating,
            broadcastable with the parameters.
        logits: :math:`\\ell`, floating; :math:`\\pm\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with ``logits``.
        axis: event axis or axes of the broadcast shape to sum over.

    Returns:
        The log-density with the event axes summed out, in the compute dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> lp = relaxed_bernoulli.log_prob(jnp.array([0.25]), logits=jnp.array([0.0]),
        ...                                 temperature=1.0)
        >>> print(round(float(lp), 4) + 0.0)  # lambda = 1, l = 0: uniform on (0, 1)
        0.0

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, eq. (4) with n = 2 and App. C.
    """
    name = "relaxed_bernoulli.log_prob"
    y, logits, temperature = _parameters(name, {"y": y}, logits, temperature)
    terms = _log_prob_terms(y, logits, temperature)
    return jnp.sum(terms, axis=validation.check_axis(name, axis, terms.ndim))


def _with_ends(y: Array, logits: Array, temperature: Array, inside: Array) -> Array:
    """``inside`` (the log-density on (0, 1)) completed with the limits at the ends, -inf
    outside [0, 1] and NaN for NaN data or a non-positive temperature."""
    # The limits at the ends: log(lambda) -/+ l + (lambda - 1) log(y or 1 - y) as it -> 0.
    power = jnp.where(temperature < 1, jnp.inf, jnp.where(temperature > 1, -jnp.inf, 0.0))
    end = jnp.log(temperature) + jnp.where(y == 0, -logits, logits) + power
    # A point mass (l = +-inf) at 1 (0): a Dirac there, density 0 at the other end.
    atom = jnp.where(logits > 0, 1.0, 0.0)
    end = jnp.where(jnp.isinf(logits), jnp.where(y == atom, jnp.inf, -jnp.inf), end)
    interior = (y > 0) & (y < 1)
    terms = jnp.where(interior, inside, jnp.where((y == 0) | (y == 1), end, -jnp.inf))
    return jnp.where(jnp.isnan(y), jnp.nan, relaxed.nan_unless_positive(temperature, terms))


@jax.custom_jvp
def _log_prob_terms(y: Array, logits: Array, temperature: Array) -> Array:
    """Elementwise log-density of :func:`log_prob`, limits and special values included.

    Never differentiated itself (the rule below differentiates
    :func:`_differentiable_terms`), so plain arithmetic does: log 0 at the ends gives -inf
    or NaN there, and those elements are overwritten with the limits; an infinite logit
    gives an infinite ``u`` and, through the even logistic density, -inf (density 0 off
    the atom), which is right in (0, 1).
    """
    log_y, log_not_y = jnp.log(y), jnp.log1p(-y)
    shifted = temperature * (log_y - log_not_y) - logits
    inside = jnp.log(temperature) + relaxed.logistic_log_density(shifted) - log_y - log_not_y
    return _with_ends(y, logits, temperature, inside)


def _differentiable_terms(y: Array, logits: Array, temperature: Array) -> Array:
    """The same values as :func:`_log_prob_terms`, in a form safe to differentiate."""
    interior = (y > 0) & (y < 1)
    # Double where: log 0 at the ends would put inf - inf into the value and the gradient.
    safe_y = jnp.where(interior, y, 0.5)
    log_y, log_not_y = jnp.log(safe_y), jnp.log1p(-safe_y)
    inside = _logit_terms(log_y - log_not_y, logits, temperature) - log_y - log_not_y
    return _with_ends(y, logits, temperature, inside)


@_log_prob_terms.defjvp
def _log_prob_terms_jvp(primals, tangents):
    # The forward pass alone runs the plain form (the double wheres cost 20 % there); a
    # derivative differentiates the guarded one, at no cost over differentiating it alone.
    return jax.jvp(_differentiable_terms, primals, tangents)


def logit_sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised samples of the logit :math:`x` of a relaxed Bernoulli.

    .. math::

        x = \\frac{\\ell + \\log u - \\log(1 - u)}{\\lambda}, \\qquad u \\sim \\mathcal U(0, 1)

    Finite at every finite logit and temperature (:math:`\\ell = 10^4` at
    :math:`\\lambda = 10^{-3}` is :math:`10^7`), with gradients :math:`1/\\lambda` to ``logits``
    and :math:`-x/\\lambda` to ``temperature``. A logit :math:`\\pm\\infty` gives
    :math:`x = \\pm\\infty` with zero gradients. :math:`\\sigma(x)` is :func:`sample`, and
    :math:`x > 0` happens with probability :math:`\\sigma(\\ell)`.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating; :math:`\\pm\\infty` allowed.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with ``logits``.
        sample_shape: shape of the independent draws, prepended to the broadcast shape of
            ``logits`` and ``temperature``: an int ``n`` (meaning ``(n,)``) or a tuple.

    Returns:
        Samples of shape ``sample_shape + broadcast shape``, in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> x = relaxed_bernoulli.logit_sample(jax.random.key(0), logits=jnp.zeros(3),
        ...                                    temperature=0.5, sample_shape=4)
        >>> x.shape
        (4, 3)

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017, App. C.
    """
    name = "relaxed_bernoulli.logit_sample"
    logits, temperature = _parameters(name, {}, logits, temperature)
    shape = validation.sample_shape(name, sample_shape) + jnp.broadcast_shapes(
        logits.shape, temperature.shape
    )
    # Both tails to about +-44: a hard sample 1[l + L > 0] is then Bernoulli(sigmoid(l))
    # to 2^-64, where jax.random.logistic's float32 tails cut it off near logit +-16.
    noise = sampling.logistic_noise(key, shape, logits.dtype)
    infinite = jnp.isinf(logits)
    # Double where: (inf + L) / lambda would give the temperature a gradient of -inf * 0.
    finite_part = (jnp.where(infinite, 0.0, logits) + noise) / temperature
    # A point mass does not move with its logit: zero derivative there, as documented.
    sample = jnp.where(infinite, jax.lax.stop_gradient(logits), finite_part)
    return relaxed.nan_unless_positive(temperature, sample)


def sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised relaxed Bernoulli samples :math:`y \\in [0, 1]`.

    .. math::

        y = \\sigma\\Big(\\frac{\\ell + \\log u - \\log(1 - u)}{\\lambda}\\Big),
        \\qquad u \\sim \\mathcal U(0, 1)

    The sigmoid of :func:`logit_sample`'s :math:`x`, so it never overflows; at small
    temperatures it rounds to exactly 0 or 1 (:math:`|x| > 17` in float32), where the
    gradient is 0. The hard value :math:`\\mathbb 1[y > 1/2]` is
    :math:`\\mathrm{Bernoulli}(\\sigma(\\ell))`.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating; :math:`\\pm\\infty` give always 1 / always 0.
        temperature: :math:`\\lambda > 0`, floating, broadcastable with ``logits``.
        sample_shape: shape of the independent draws, prepended to the broadcast shape of
            ``logits`` and ``temperature``: an int ``n`` (meaning ``(n,)``) or a tuple.

    Returns:
        Samples in :math:`[0, 1]` of shape ``sample_shape + broadcast shape``, in the compute
        dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> y = relaxed_bernoulli.sample(jax.random.key(0), logits=jnp.zeros(3),
        ...                              temperature=0.5, sample_shape=4)
        >>> y.shape, bool(jnp.all((y >= 0) & (y <= 1)))
        ((4, 3), True)

    References:
        C. J. Maddison, A. Mnih and Y. W. Teh, "The Concrete Distribution: A Continuous
        Relaxation of Discrete Random Variables", ICLR 2017; E. Jang, S. Gu and B. Poole,
        "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017.
    """
    name = "relaxed_bernoulli.sample"
    # The checks name this function; logit_sample then repeats them on valid arguments.
    logits, temperature = _parameters(name, {}, logits, temperature)
    validation.sample_shape(name, sample_shape)
    x = logit_sample(key, logits=logits, temperature=temperature, sample_shape=sample_shape)
    return relaxed.keep_nan(jax.nn.sigmoid, x)


def straight_through(y: ArrayLike) -> Array:
    """Straight-through estimator: the hard value :math:`\\mathbb 1[y > 1/2]` forward, the
    gradient of :math:`y` backward.

    .. math::

        h = \\mathbb 1[y > 1/2] + y - \\operatorname{stop\\_gradient}(y),
        \\qquad \\frac{\\partial h}{\\partial y} = 1

    The value is exactly 0 or 1 (:math:`y - \\operatorname{stop\\_gradient}(y)` is exactly 0),
    so a downstream model sees binary inputs, while gradients flow as if it had seen
    :math:`y`: a biased but low-variance gradient (Bengio et al. 2013).

    Args:
        y: relaxed samples in :math:`[0, 1]`, floating (from :func:`sample`).

    Returns:
        0 and 1 with the shape of ``y``, in the compute dtype; NaN where ``y`` is NaN.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> y = jnp.array([0.2, 0.7])
        >>> print(relaxed_bernoulli.straight_through(y))
        [0. 1.]
        >>> print(jax.grad(lambda y: relaxed_bernoulli.straight_through(y).sum())(y))
        [1. 1.]

    References:
        Y. Bengio, N. Léonard and A. Courville, "Estimating or Propagating Gradients Through
        Stochastic Neurons for Conditional Computation", arXiv 2013; E. Jang, S. Gu and
        B. Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017, §2.2.
    """
    (y,) = validation.promote("relaxed_bernoulli.straight_through", {"y": y})
    hard = jnp.where(y > 0.5, 1.0, 0.0).astype(y.dtype)
    return hard + (y - jax.lax.stop_gradient(y))


def straight_through_sample(
    key: Key,
    *,
    logits: ArrayLike,
    temperature: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Hard Bernoulli samples with the relaxed sample's gradient (straight-through
    Gumbel-softmax).

    .. math::

        h = \\mathbb 1[x > 0] + y - \\operatorname{stop\\_gradient}(y), \\qquad
        y = \\sigma(x), \\ x = \\frac{\\ell + L}{\\lambda}

    :func:`straight_through` of :func:`sample`, with the hard value taken as
    :math:`\\mathbb 1[x > 0]` from the logit :math:`x` of :math:`y` (exactly
    :math:`\\mathbb 1[\\ell + L > 0]`, where :math:`y` itself may round to 1/2): the values are
    :math:`\\mathrm{Bernoulli}(\\sigma(\\ell))` samples, exactly 0 or 1, the same for every
    temperature with the same key, and the gradients those of :math:`y`.

    Args:
        key: a ``jax.random`` key.
        logits: :math:`\\ell`, floating; :math:`\\pm\\infty` allowed.
        temperature: :math:`\\lambda > 0` of the relaxation that gives the gradients, floating,
            broadcastable with ``logits``.
        sample_shape: shape of the independent draws, prepended to the broadcast shape.

    Returns:
        0 and 1 of shape ``sample_shape + broadcast shape``, in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import relaxed_bernoulli
        >>> h = relaxed_bernoulli.straight_through_sample(
        ...     jax.random.key(0), logits=jnp.zeros(3), temperature=0.5, sample_shape=4)
        >>> h.shape, bool(jnp.all((h == 0) | (h == 1)))
        ((4, 3), True)

    References:
        E. Jang, S. Gu and B. Poole, "Categorical Reparameterization with Gumbel-Softmax",
        ICLR 2017, §2.2.
    """
    name = "relaxed_bernoulli.straight_through_sample"
    logits, temperature = _parameters(name, {}, logits, temperature)
    validation.sample_shape(name, sample_shape)
    x = logit_sample(key, logits=logits, temperature=temperature, sample_shape=sample_shape)
    y = relaxed.keep_nan(jax.nn.sigmoid, x)
    # The hard value from the sign of x, not from y > 1/2: sigma(x) rounds to 1/2 for
    # |x| < 3e-8 in float32, and x > 0 exactly when l + L > 0, whatever the temperature.
    hard = jnp.where(x > 0, 1.0, 0.0).astype(y.dtype)
    return hard + (y - jax.lax.stop_gradient(y))
