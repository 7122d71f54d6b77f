"""Lower-variance gradient estimators of the IWAE bound: DReG and sticking the landing.

Each function takes log-weights the caller computed with a *reparameterised* sample
:math:`z_k = g_\\phi(\\epsilon_k, x)` and returns a per-example **surrogate**: its value is the
importance-weighted bound :math:`\\mathcal L_K` of :func:`genmath.latent.iwae_bound` (so it can
be logged as is), and its gradient is the estimator's. The caller's part of the contract is
one ``jax.lax.stop_gradient``: the encoder outputs that parameterise :math:`q` are stopped
*inside* :math:`\\log q` (but not inside :math:`z`)::

    z = loc + jnp.exp(log_scale) * eps                     # reparameterised: depends on phi
    loc_sg, log_scale_sg = jax.lax.stop_gradient((loc, log_scale))
    log_q = normal.log_prob(z, loc=loc_sg, log_scale=log_scale_sg)   # phi stopped here only
    log_w = log_p_joint(x, z) - log_q                    # (K, batch)

so that the encoder parameters :math:`\\phi` reach :math:`\\log w_k` only through
:math:`z_k` (the *path* derivative) and the score-function term
:math:`-\\nabla_\\phi \\log q_\\phi(z)`, whose expectation is 0 on its own (the ELBO,
:math:`K = 1`) though not under the importance weights for :math:`K > 1` (hence STL's bias
there), and whose variance does not vanish as :math:`q` approaches the posterior, is
dropped. Written
:math:`\\tilde w_k = w_k / \\sum_j w_j` for the normalised weights, the estimators are

.. math::

    \\text{IWAE:}\\ \\ \\nabla_\\theta = \\sum_k \\tilde w_k \\nabla_\\theta \\log w_k, \\quad
    \\text{STL:}\\ \\ \\nabla_\\phi = \\sum_k \\tilde w_k
        \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial\\phi}, \\quad
    \\text{DReG:}\\ \\ \\nabla_\\phi = \\sum_k \\tilde w_k^2
        \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial\\phi}

and the decoder (model) parameters :math:`\\theta` always get the ordinary IWAE gradient.
DReG is unbiased for every :math:`K`; STL is unbiased for the ELBO (:math:`K = 1`) but
*biased* for :math:`K > 1` (Tucker et al. 2018). Their encoder gradients vanish in every
draw when :math:`q` is the exact posterior (where the plain reparameterised IWAE gradient is
still noisy), and near it they have lower variance than the IWAE gradient, DReG's lower
than STL's for :math:`K > 1` (the tests measure ratios of 0.006-0.2 at :math:`K = 8`). This
is not a guarantee far from the posterior: the path term can then be the noisier one for
some parameters (the tests show a case).

The sample axis is ``axis`` (default 0, the leading axis that a ``sample`` call with
``sample_shape=K`` prepends), as in :mod:`genmath.latent`. The normalised weights are
treated as constants (``stop_gradient``), as in the papers: first derivatives are the
estimators', second derivatives are not those of the bound.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from genmath._src import validation
from genmath._src.typing import Array, ArrayLike, Axis

__all__ = ["iwae_dreg", "iwae_dreg_encoder", "iwae_stl"]


def _checked(name: str, axis: Axis, **arrays: ArrayLike) -> tuple[list[Array], tuple[int, ...]]:
    """Promotes the log-weights, checks equal shapes and the sample axis (with ``K > 0``)."""
    values = validation.promote(name, arrays, broadcast=False)
    first, *others = arrays
    for other, value in zip(others, values[1:], strict=True):
        if value.shape != values[0].shape:
            raise ValueError(
                f"{name}: `{other}` must have the shape of `{first}`, "
                f"got {value.shape} and {values[0].shape}."
            )
    axes = validation.check_axis(name, axis, values[0].ndim)
    if math.prod(values[0].shape[a] for a in axes) == 0:
        raise ValueError(f"{name}: `{first}` has no samples along axis {axis}.")
    return values, axes


def _bound_and_weights(log_weights: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """:math:`\\mathcal L_K` and :math:`\\tilde w_k`, both without gradient."""
    log_weights = jax.lax.stop_gradient(log_weights)
    num_samples = math.prod(log_weights.shape[a] for a in axes)
    # One max and one sum serve both (a logsumexp and a log_normalize took three of each):
    # shifted by the largest log-weight, since the weights themselves under- or overflow
    # (log w ~ -500 for an MNIST image). An example whose weights are all 0 has no
    # normalised weights; its coefficients are 0 (its bound is -inf with a zero gradient,
    # as in iwae_bound).
    top = jnp.max(log_weights, axis=axes, keepdims=True)
    shift = jnp.where(jnp.isfinite(top), top, 0.0)
    # exp(-inf - 0) = 0: an example with no weight gets total 0, bound log 0 = -inf, and
    # normalised weights 0 / 1 (no mask over the samples themselves).
    unnormalised = jnp.exp(log_weights - shift)
    total = jnp.sum(unnormalised, axis=axes, keepdims=True)
    bound = jnp.log(total) + shift - math.log(num_samples)
    # One reciprocal per example and a product per sample (cheaper than a division each).
    normalised = unnormalised * (1.0 / jnp.where(total > 0, total, 1.0))
    return jnp.squeeze(bound, axes), normalised


def _coefficients(weights: Array, kind: str) -> tuple[Array, ...]:
    """The coefficient of each log-weights array's gradient: STL w~, DReG w~^2 (and, for the
    decoder's copy in iwae_dreg, w~ - w~^2)."""
    if kind == "stl":
        return (weights,)
    squared = jnp.square(weights)
    return (squared,) if kind == "dreg_encoder" else (squared, weights - squared)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _surrogate(axes: tuple[int, ...], kind: str, *log_weights: Array) -> Array:
    """The IWAE bound of ``log_weights[0]``, differentiated as the ``kind`` estimator.

    A custom JVP rather than the bound plus zero-valued terms sum_k c_k (v_k - stop(v_k)):
    the value costs a logsumexp and no more, and the weights are computed once, in the
    derivative (the zero-valued terms took 1.5-2x the time of the bound alone).
    """
    return _bound_and_weights(log_weights[0], axes)[0]


@_surrogate.defjvp
def _surrogate_jvp(axes, kind, primals, tangents):
    bound, weights = _bound_and_weights(primals[0], axes)
    tangent = 0.0
    for coefficient, values, dv in zip(
        _coefficients(weights, kind), primals, tangents, strict=True
    ):
        # An entry of -inf (a zero weight, c_k = 0) or another non-finite one contributes 0:
        # its coefficient is set to 0 (in reverse mode, where the cotangent is the
        # coefficient times the output's, that is the same as masking the tangent, and it
        # leaves one array to keep for the backward pass instead of two).
        finite = jnp.isfinite(jax.lax.stop_gradient(values))
        tangent = tangent + jnp.sum(jnp.where(finite, coefficient, 0.0) * dv, axis=axes)
    return bound, tangent


def iwae_stl(log_weights: ArrayLike, *, axis: Axis = 0) -> Array:
    """Sticking-the-landing surrogate of the IWAE bound (the ELBO for :math:`K = 1`).

    .. math::

        \\nabla_\\phi \\approx \\sum_{k=1}^K \\tilde w_k
        \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial \\phi},
        \\qquad
        \\nabla_\\theta \\approx \\sum_{k=1}^K \\tilde w_k \\nabla_\\theta \\log w_k,
        \\qquad \\tilde w_k = \\frac{w_k}{\\sum_j w_j}

    The value is :math:`\\mathcal L_K = \\log\\frac1K\\sum_k w_k` and the gradient that of
    :math:`\\mathcal L_K` as a function of ``log_weights``: the estimator is made by the
    caller's ``log_weights``, computed with the parameters of :math:`q` stopped inside
    :math:`\\log q` (module docstring), which removes the score-function term. One surrogate
    serves both parameter sets: the decoder gets the ordinary IWAE gradient, the encoder the
    STL one. For :math:`K = 1` it is the STL gradient of the ELBO, unbiased, with zero
    variance when :math:`q` is the exact posterior. For :math:`K > 1` the dropped term no
    longer has expectation zero and the encoder gradient is **biased** (Tucker et al. 2018);
    use :func:`iwae_dreg` for an unbiased one.

    Args:
        log_weights: :math:`\\log w_k = \\log p_\\theta(x, z_k) - \\log q_{\\bar\\phi}(z_k \\mid
            x)` with :math:`z_k` reparameterised and :math:`\\bar\\phi` the stopped encoder
            outputs, floating, the :math:`K` samples along ``axis``.
        axis: the sample axis, or a tuple of axes (:math:`K` is the product of their sizes);
            it is reduced.

    Returns:
        The surrogate, equal to :math:`\\mathcal L_K`, with ``axis`` removed, in the compute
        dtype. :math:`-\\infty` (gradient 0) where every weight is 0.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import estimators, latent
        >>> log_w = jnp.log(jnp.array([[0.1], [0.3]]))  # K = 2 samples, batch of 1
        >>> stl, bound = estimators.iwae_stl(log_w), latent.iwae_bound(log_w)
        >>> print(round(float(stl[0]), 4), round(float(bound[0]), 4))
        -1.6094 -1.6094
        >>> grad = jax.grad(lambda lw: estimators.iwae_stl(lw).sum())(log_w)
        >>> print([round(float(g), 4) for g in grad.ravel()])
        [0.25, 0.75]

    References:
        G. Roeder, Y. Wu and D. Duvenaud, "Sticking the Landing: Simple, Lower-Variance
        Gradient Estimators for Variational Inference", NeurIPS 2017; G. Tucker, D. Lawson,
        S. Gu and C. J. Maddison, "Doubly Reparameterized Gradient Estimators for Monte Carlo
        Objectives", ICLR 2019 (arXiv 2018).
    """
    (log_weights,), axes = _checked("estimators.iwae_stl", axis, log_weights=log_weights)
    return _surrogate(axes, "stl", log_weights)


def iwae_dreg_encoder(log_weights: ArrayLike, *, axis: Axis = 0) -> Array:
    """DReG surrogate for the **encoder** parameters only: gradient
    :math:`\\sum_k \\tilde w_k^2 \\nabla \\log w_k`.

    .. math::

        \\nabla_\\phi \\mathcal L_K \\approx \\sum_{k=1}^K \\tilde w_k^2
        \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial \\phi},
        \\qquad \\tilde w_k = \\frac{w_k}{\\sum_j w_j}

    The value is :math:`\\mathcal L_K`. Every path into ``log_weights`` gets the squared
    weights, so differentiate this surrogate with respect to the encoder parameters
    :math:`\\phi` **only**: through the decoder parameters it would give
    :math:`\\sum_k \\tilde w_k^2 \\nabla_\\theta \\log w_k`, a biased decoder gradient. Take
    :math:`\\theta`'s gradient from :func:`genmath.latent.iwae_bound` of the same
    ``log_weights`` (one forward pass, two backward passes through ``jax.vjp``), or use
    :func:`iwae_dreg`, one surrogate for both at the cost of a second decoder pass.
    Unbiased for every :math:`K`; for :math:`K = 1` it is the STL gradient of the ELBO.

    Args:
        log_weights: :math:`\\log w_k = \\log p_\\theta(x, z_k) - \\log q_{\\bar\\phi}(z_k \\mid
            x)` with :math:`z_k` reparameterised and :math:`\\bar\\phi` the stopped encoder
            outputs, floating, the :math:`K` samples along ``axis``.
        axis: the sample axis, or a tuple of axes; it is reduced.

    Returns:
        The surrogate, equal to :math:`\\mathcal L_K`, with ``axis`` removed, in the compute
        dtype. :math:`-\\infty` (gradient 0) where every weight is 0.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import estimators
        >>> log_w = jnp.log(jnp.array([[0.1], [0.3]]))
        >>> grad = jax.grad(lambda lw: estimators.iwae_dreg_encoder(lw).sum())(log_w)
        >>> print([round(float(g), 4) for g in grad.ravel()])
        [0.0625, 0.5625]

    References:
        G. Tucker, D. Lawson, S. Gu and C. J. Maddison, "Doubly Reparameterized Gradient
        Estimators for Monte Carlo Objectives", ICLR 2019 (arXiv 2018), §3.
    """
    (log_weights,), axes = _checked("estimators.iwae_dreg_encoder", axis, log_weights=log_weights)
    return _surrogate(axes, "dreg_encoder", log_weights)


def iwae_dreg(log_weights: ArrayLike, decoder_log_weights: ArrayLike, *, axis: Axis = 0) -> Array:
    """DReG surrogate of the IWAE bound: DReG gradient for the encoder, IWAE for the decoder.

    .. math::

        \\nabla_\\phi \\approx \\sum_{k=1}^K \\tilde w_k^2
        \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial \\phi},
        \\qquad
        \\nabla_\\theta \\approx \\sum_{k=1}^K \\tilde w_k \\nabla_\\theta \\log w_k

    One surrogate for both parameter sets, from two evaluations of the same log-weights:
    ``log_weights`` through the reparameterised :math:`z_k` (the encoder path) and
    ``decoder_log_weights`` at ``stop_gradient(z_k)`` (the decoder path only). The
    surrogate is

    .. math::

        \\mathcal L_K + \\sum_k \\bar{\\tilde w}_k^2 \\big(\\log w_k - \\overline{\\log w_k}\\big)
        + \\sum_k \\big(\\bar{\\tilde w}_k - \\bar{\\tilde w}_k^2\\big)
        \\big(\\log w^{\\mathrm{dec}}_k - \\overline{\\log w^{\\mathrm{dec}}_k}\\big)

    (a bar: ``stop_gradient``), so :math:`\\theta`, which reaches both arrays directly, gets
    :math:`\\tilde w_k^2 + (\\tilde w_k - \\tilde w_k^2) = \\tilde w_k`, and :math:`\\phi`, which
    reaches only the first through :math:`z_k`, gets :math:`\\tilde w_k^2`. Unbiased for every
    :math:`K`; for :math:`K = 1` it is the STL gradient of the ELBO. The decoder runs twice
    (forward and backward); :func:`iwae_dreg_encoder` with :func:`genmath.latent.iwae_bound`
    needs one forward pass and two backward passes instead.

    Args:
        log_weights: :math:`\\log p_\\theta(x, z_k) - \\log q_{\\bar\\phi}(z_k \\mid x)` with
            :math:`z_k` reparameterised and :math:`\\bar\\phi` the stopped encoder outputs,
            floating, the :math:`K` samples along ``axis``.
        decoder_log_weights: the same log-weights recomputed at
            ``jax.lax.stop_gradient(z)`` (and with :math:`\\bar\\phi` in :math:`\\log q`), so
            that only the decoder parameters reach them; same shape. Its value does not
            enter the result, but a non-finite entry (a sample of weight 0) drops that
            sample's decoder coefficient, as in the other surrogates.
        axis: the sample axis, or a tuple of axes; it is reduced.

    Returns:
        The surrogate, equal to :math:`\\mathcal L_K`, with ``axis`` removed, in the compute
        dtype. :math:`-\\infty` (gradient 0) where every weight is 0.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import estimators
        >>> log_w = jnp.log(jnp.array([[0.1], [0.3]]))
        >>> grads = jax.grad(lambda a, b: estimators.iwae_dreg(a, b).sum(), (0, 1))(log_w, log_w)
        >>> print([[round(float(g), 4) for g in grad.ravel()] for grad in grads])  # w^2, w - w^2
        [[0.0625, 0.5625], [0.1875, 0.1875]]

    References:
        G. Tucker, D. Lawson, S. Gu and C. J. Maddison, "Doubly Reparameterized Gradient
        Estimators for Monte Carlo Objectives", ICLR 2019 (arXiv 2018), §3.
    """
    (log_weights, decoder_log_weights), axes = _checked(
        "estimators.iwae_dreg",
        axis,
        log_weights=log_weights,
        decoder_log_weights=decoder_log_weights,
    )
    return _surrogate(axes, "dreg", log_weights, decoder_log_weights)
