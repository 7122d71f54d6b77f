"""Multivariate Gaussian with full covariance, parameterised by its Cholesky factor.

The distribution is :math:`\\mathcal N(\\mu, \\Sigma)` with :math:`\\Sigma = L L^\\top`,
where ``scale_tril`` is :math:`L`, lower-triangular with shape ``(..., D, D)``; only its
lower triangle (diagonal included) is ever read. The event axis is the last axis of
``x`` and ``loc``; every leading axis is a batch axis, and batch axes broadcast between
points and distributions: ``x`` of shape ``(4096, D)`` against one distribution, or
``x`` of shape ``(16, 256, D)`` against 256 distributions (``loc`` ``(256, D)``,
``scale_tril`` ``(256, D, D)``).

Everything goes through triangular solves and sums of squares, never the Cholesky factor
of a product. When several points share one distribution, they are solved together as the
columns of one right-hand side instead of repeating the matrix for every point.

Speed (``benchmarks/mvn_speed.py``; ``benchmarks/results/mvn-speed-cpu-1core.json``, one
core of a 2-core Intel Xeon, float32, D = 64, against the textbook form with LAPACK's
triangular solve). :func:`log_prob` of a factor shared by at least as many points as it
has rows inverts the factor once (the blocked solve of ``genmath._src.triangular`` against
the identity) and applies the inverse as one matrix product: 4096 points of one
distribution, 3.0x faster forward and 2.8x with gradients. With fewer points per factor it
solves with LAPACK from the right, the points staying rows and the factor read in place
(its row-major memory is :math:`L^\\top` column-major), differentiated by a closed-form
rule for the squared norms: 256 distributions x 16 points, 2.0x forward and 1.7x with
gradients. :func:`kl` and :func:`cross_entropy` solve with the blocked solve, reduce the
squares of its strict lower triangle block by block, and differentiate that sum by a
closed-form rule (one blocked back substitution): 256 pairs, 2.3x forward and 2.5x with
gradients. PyTorch's ``MultivariateNormal`` (one thread) took 2.8-4.2x genmath's time on
every workload in that run.

Conditioning: a triangular solve loses up to about :math:`\\kappa(L)\\,\\varepsilon` of
relative accuracy, and the inverse route a little more. Against 40-digit mpmath, for
Cholesky factors of covariances with :math:`\\kappa(L)` from 1e2 to 1e8 (D = 32, points
drawn from the distribution), the relative error of :func:`log_prob` with 4 points (the
solve) grew from 4.5e-7 to 2.3e-2 in float32 (4.2e-6 at :math:`\\kappa(L) = 10^4`) and from
4e-15 to 5e-11 in float64; with 64 points (the inverse) it was 9.6e-6 at :math:`10^4`,
within 4x of the textbook solve's error up to :math:`10^6` and 3-14x beyond (in float32 one
correct digit at :math:`10^7`, none at :math:`10^8`); that of :func:`kl` stayed below 2.3e-6
(float32) and 3.5e-15 (float64). Results are within :math:`\\kappa(L)\\,\\varepsilon` up to
:math:`\\kappa(L) = 10^4` (tested); in float32, factors of :math:`\\kappa(L) > 10^5`
(covariances beyond 1e10) leave fewer than four correct digits: use float64 there.

Numerical conventions:

* :math:`\\log|\\det L|` is defined as :math:`\\sum_i \\log|L_{ii}|`. A negative diagonal
  entry is therefore harmless (:math:`L` and :math:`L` with that column negated give the
  same :math:`\\Sigma`, and every function here agrees for both). A zero on the diagonal
  means a singular :math:`\\Sigma`: :func:`log_prob` and :func:`kl` return non-finite
  values (``inf`` or NaN) and :func:`entropy` returns ``-inf``.
* Diagonal entries as small as ``1e-30`` (anything representable) give finite values and
  gradients whenever the result itself is representable.
* :func:`scale_tril_from_covariance` of a covariance that is not positive definite
  returns NaN (``jnp.linalg.cholesky`` semantics) rather than raising, since the check
  would need the values; everything computed from that factor is then NaN too.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from genmath._src import special, validation, value_checks
from genmath._src.triangular import solve_lower, strict_lower_squares
from genmath._src.typing import Array, ArrayLike, Key, SampleShape, Shape

_LOG_TWO_PI = math.log(2.0 * math.pi)

__all__ = [
    "cross_entropy",
    "entropy",
    "kl",
    "log_prob",
    "sample",
    "scale_tril_from_covariance",
]


# ---------------------------------------------------------------------------------------
# Shape checks (static, so they fire at trace time).


def _check_square(caller: str, name: str, matrix: Array) -> int:
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(
            f"{caller}: `{name}` must be a square matrix (or a batch of them) with shape "
            f"(..., D, D), got shape {matrix.shape}."
        )
    return matrix.shape[-1]


def _check_event(caller: str, name: str, value: Array, size: int, *, allow_scalar: bool) -> None:
    if allow_scalar and value.ndim == 0:
        return
    if value.ndim == 0 or value.shape[-1] != size:
        raise ValueError(
            f"{caller}: `{name}` must have the event size D = {size} of `scale_tril` in its "
            f"last axis, got shape {value.shape}."
        )


def _batch_shape(value: Array, event_ndim: int) -> Shape:
    return value.shape[: max(value.ndim - event_ndim, 0)]


# ---------------------------------------------------------------------------------------
# Batched triangular algebra with broadcasting.


def _column_groups(num_columns: int) -> int:
    """How many groups the columns that share one matrix are solved in.

    XLA's SPMD partitioner splits a triangular solve only along its batch dimensions, so
    points sharded over devices but solved as the columns of one right-hand side would be
    gathered onto every device. Splitting the columns into ``G`` groups, with ``G`` a
    batch dimension of the solve, lets ``N`` points sharded over ``S`` devices (``S``
    dividing ``G``) reshape into sharded groups without communication, at the cost of
    ``G`` copies of the matrix. On one CPU device one wide solve is faster (grouping by 64
    cost 1.5-2x at D = 64, N = 4096), so ``G`` is the device count (when it divides the
    columns), which gives each device one group, and 1 (no grouping) on a single device.
    The values are the same either way: every column is solved on its own.
    """
    return math.gcd(num_columns, jax.device_count())


def _as_columns(tril: Array, vectors: Array, *, rows: bool = False, offset: Array | None = None):
    """Arranges vectors as the columns of per-matrix right-hand sides.

    ``tril`` has shape ``(*T, D, D)`` and ``vectors`` ``(*V, D)``. Batch axes where the
    matrix has size 1 but the vectors do not are moved into the columns, so a matrix is
    never repeated for the points it is shared by; the remaining batch axes are broadcast
    (each matrix there meets its own vectors anyway). The ``K`` columns of a matrix are
    split, in order, into ``G`` groups of ``K / G`` along a new batch axis when
    :func:`_column_groups` says so (``G > 1``), so that a sharded leading column axis
    stays sharded.

    With ``offset`` (``(*O, D)``, broadcasting with the vectors) the right-hand sides are
    ``vectors - offset``. When the offset is shared by the columns (size 1 on every column
    axis, as a mean is by the points of its distribution) it is subtracted after the
    arrangement, so that its cotangent is a sum over the columns in the solve's layout
    rather than over the vectors transposed back (5 % of ``log_prob`` with gradients at
    256 factors x 16 points, D = 64, on one XLA:CPU core).

    Returns:
        ``(tril, rhs, restore)``: ``tril`` of shape ``(*P, D, D)``, ``rhs`` of shape
        ``(*P, D, K / G)`` (``(*P, K / G, D)``, the vectors as rows, with ``rows=True``),
        and ``restore(y, event)`` mapping a result of shape ``(*P, K / G)``
        (``event=False``) or ``(*P, D, K / G)`` (``event=True``, columns only) back to the
        broadcast batch order ``(*B)`` or ``(*B, D)``; ``P`` is the kept batch shape,
        followed by ``G`` when the columns are grouped.
    """
    d = tril.shape[-1]
    if offset is not None and offset.ndim == 0:
        offset = jnp.broadcast_to(offset, (d,))
    offset_shape = () if offset is None else offset.shape[:-1]
    vector_shape = jnp.broadcast_shapes(vectors.shape[:-1], offset_shape)
    batch = jnp.broadcast_shapes(tril.shape[:-2], vector_shape)
    n = len(batch)

    def padded(shape: Shape) -> Shape:
        return (1,) * (n - len(shape)) + shape

    tril_batch = padded(tril.shape[:-2])
    vector_batch = padded(vector_shape)
    column_axes = tuple(i for i in range(n) if tril_batch[i] == 1 and vector_batch[i] > 1)
    shared_offset = offset is not None and all(padded(offset_shape)[i] == 1 for i in column_axes)
    if offset is not None and not shared_offset:
        vectors, offset = vectors - offset, None
    batch_axes = tuple(i for i in range(n) if i not in column_axes)
    kept = tuple(batch[i] for i in batch_axes)
    columns = tuple(batch[i] for i in column_axes)
    num_columns = math.prod(columns)
    groups = _column_groups(num_columns)

    tril_target = tuple(batch[i] if i in batch_axes else 1 for i in range(n))
    tril = jnp.broadcast_to(tril.reshape((*tril_batch, d, d)), (*tril_target, d, d))
    tril = tril.reshape((*kept, d, d))
    group = (groups,) if groups > 1 else ()
    if groups > 1:
        tril = jnp.broadcast_to(tril[..., None, :, :], (*kept, groups, d, d))
    vectors = jnp.broadcast_to(vectors, (*batch, d))
    # Columns first, then one reshape into (groups, columns per group) and a swap of the
    # last two axes: the leading column axis only ever splits, never moves data across
    # groups.
    rhs = jnp.transpose(vectors, (*batch_axes, *column_axes, n))
    rhs = rhs.reshape((*kept, *group, num_columns // groups, d))
    if offset is not None:
        # Only the kept axes of the offset are not 1 (columns and groups share it).
        offset = jnp.broadcast_to(offset, (*padded(offset_shape), d))
        offset = jnp.squeeze(offset, axis=column_axes) if column_axes else offset
        offset = jnp.broadcast_to(offset, (*kept, d)).reshape((*kept, *(1,) * len(group), 1, d))
        rhs = rhs - offset
    if not rows:
        rhs = jnp.swapaxes(rhs, -1, -2)

    def restore(y: Array, event: bool) -> Array:
        if event:
            y = jnp.swapaxes(y, -1, -2).reshape((*kept, *columns, d))
            order = (*batch_axes, *column_axes, n)
        else:
            y = y.reshape(kept + columns)
            order = batch_axes + column_axes
        return jnp.transpose(y, tuple(order.index(i) for i in range(len(order))))

    return tril, rhs, restore


def _inverse(tril: Array) -> Array:
    """:math:`L^{-1}`, by the blocked solve against the identity."""
    eye = jnp.broadcast_to(jnp.eye(tril.shape[-1], dtype=tril.dtype), tril.shape)
    return solve_lower(tril, eye)


def _rows_squared_norms(tril: Array, rows: Array) -> Array:
    """:math:`\\|L^{-1}v\\|^2` for vectors ``rows`` of shape ``(..., K, D)``, by the faster
    route for K.

    With at least as many vectors as rows of the factor the inverse (:math:`D^3/3`
    multiply-adds, once per factor) is shared by the vectors and applied as one matrix
    product: for 4096 points of one factor at D = 64 on one XLA:CPU core, 3.0x faster than
    the textbook LAPACK solve forward and 2.8x with gradients (``benchmarks/mvn_speed.py``),
    and faster at every shape tried from 64 points per factor up. With fewer it costs more
    than the solve, and LAPACK solves from the right (:func:`_lapack_squared_norms`).
    """
    if rows.shape[-2] >= rows.shape[-1]:
        solved = jnp.matmul(rows, jnp.swapaxes(_inverse(tril), -1, -2))
        return jnp.sum(jnp.square(solved), axis=-1)
    return _lapack_squared_norms(tril, rows)


def _points_minor(solved: Array) -> Array:
    """The rows of a :func:`_trsm_right` result as columns, ``(..., D, K)``: LAPACK leaves
    them column-major, so behind the barrier this is a bitcast, and a sum over ``D`` runs
    with the points in the vector lanes (XLA would otherwise copy to rows first: 10 % of
    the forward at 256 factors x 16 points, D = 64, on one XLA:CPU core)."""
    return jax.lax.optimization_barrier(jnp.swapaxes(solved, -1, -2))


def _trsm_right(tril: Array, rows: Array, *, transpose: bool = False) -> Array:
    """:math:`V L^{-\\top}` (or :math:`V L^{-1}` with ``transpose``) by one LAPACK ``trsm``
    per factor, the vectors staying rows."""
    # LAPACK reads column-major matrices, and L's row-major memory is L^T column-major:
    # solving with the transpose as an upper factor makes the operand a bitcast instead
    # of a copy of every factor (1.4x faster forward at 256 factors x 16 points).
    return jax.lax.linalg.triangular_solve(
        jnp.swapaxes(tril, -1, -2), rows, left_side=False, lower=False, transpose_a=transpose
    )


@jax.custom_jvp
def _lapack_squared_norms(tril: Array, rows: Array) -> Array:
    """:math:`\\|z\\|^2` for the rows :math:`z = L^{-1}v` of :func:`_trsm_right`, with the
    derivative rule below.

    For 256 factors x 16 points at D = 64 on one XLA:CPU core, 2.0x faster forward than
    the textbook solve from the left on the vectors transposed into columns, and 1.7x with
    gradients (``benchmarks/mvn_speed.py``; 1.4x with the rule written for the solve).
    """
    return jnp.sum(jnp.square(_points_minor(_trsm_right(tril, rows))), axis=-2)


@functools.partial(_lapack_squared_norms.defjvp, symbolic_zeros=True)
def _lapack_squared_norms_jvp(primals, tangents):
    tril, rows = primals
    tril_dot, rows_dot = tangents
    solved = _trsm_right(tril, rows)
    # With w = 2 L^-T z: d||z||^2 = w . (dv - tril(dL) z). Linear in the tangents with the
    # coefficients w and z, so reverse mode is one more trsm (for w) and, for dL, one batched
    # product contracting the points, -sum_k w_k z_k^T; only the argument differentiated
    # gets its term. The trsm overwrites its right-hand side: solving for 2z, a fresh
    # array, spares a copy of z.
    adjoint = _trsm_right(tril, 2.0 * solved, transpose=True)
    solved_t = _points_minor(solved)
    value = jnp.sum(jnp.square(solved_t), axis=-2)
    tangent = jnp.zeros_like(value)
    if not isinstance(rows_dot, SymbolicZero):
        tangent = tangent + jnp.sum(adjoint * rows_dot, axis=-1)
    if not isinstance(tril_dot, SymbolicZero):
        # Both operands with the points minor, as LAPACK leaves them: the product then runs
        # as A B^T (0.47 against 0.68 ms at 256 x 64 x 64 x 16); without the barrier XLA
        # folds the transposes back into the product and copies the operands instead.
        adjoint_t = _points_minor(adjoint)
        lower = jnp.where(jnp.tri(tril.shape[-1], dtype=bool), tril_dot, 0.0)
        tangent = tangent - jnp.einsum("...ik,...ij,...jk->...k", adjoint_t, lower, solved_t)
    return value, tangent


def _squared_solve_norm(
    tril: Array, vectors: Array, *, offset: Array | None = None, solve=None
) -> Array:
    """:math:`\\|L^{-1} (v - o)\\|^2` for every vector (``o = 0`` without ``offset``), with
    batch broadcasting.

    ``solve(tril, columns)`` if given (the KL's blocked solve), else
    :func:`_rows_squared_norms`.
    """
    if offset is not None and solve is not None:
        vectors, offset = vectors - offset, None
    if solve is None:
        tril, rows, restore = _as_columns(tril, vectors, rows=True, offset=offset)
        return restore(_rows_squared_norms(tril, rows), event=False)
    tril, rhs, restore = _as_columns(tril, vectors)
    solved = solve(tril, rhs)
    return restore(jnp.sum(jnp.square(solved), axis=-2), event=False)


def _tril_matvec(tril: Array, vectors: Array) -> Array:
    """:math:`L v` for every vector (``tril`` already masked), with batch broadcasting."""
    tril, rhs, restore = _as_columns(tril, vectors)
    return restore(jnp.matmul(tril, rhs), event=True)


@jax.custom_jvp
def _diagonal(matrix: Array) -> Array:
    """The diagonal of square matrices, whose derivative is a masked sum: its transpose is
    then elementwise and joins the other terms of a factor's cotangent in one loop,
    where the gather's transpose is a scatter into a separate zero-filled array (0.3 ms of
    ``log_prob``'s 3.5 with gradients at 256 factors of D = 64 on one XLA:CPU core)."""
    return jnp.diagonal(matrix, axis1=-2, axis2=-1)


@_diagonal.defjvp
def _diagonal_jvp(primals, tangents):
    ((matrix,), (matrix_dot,)) = primals, tangents
    eye = jnp.eye(matrix.shape[-1], dtype=bool)
    return _diagonal(matrix), jnp.sum(jnp.where(eye, matrix_dot, 0.0), axis=-1)


def _log_abs_diagonal(tril: Array) -> Array:
    return jnp.log(jnp.abs(_diagonal(tril)))


def _pair_terms(name: str, loc_p, scale_tril_p, loc_q, scale_tril_q):
    """Checks a pair of Gaussians and returns the pieces shared by KL and cross-entropy.

    Returns ``(r, off_diagonal, mean, log_det_q)``: :math:`r_i = 2(\\log|L_{p,ii}| -
    \\log|L_{q,ii}|)` of shape ``(..., D)``, :math:`\\sum_{i>j} M_{ij}^2` with
    :math:`M = L_q^{-1}L_p`, :math:`\\|L_q^{-1}(\\mu_p-\\mu_q)\\|^2` and
    :math:`\\sum_i\\log|L_{q,ii}|`, each with its batch shape.
    """
    loc_p, scale_tril_p, loc_q, scale_tril_q = validation.promote(
        name,
        {
            "loc_p": loc_p,
            "scale_tril_p": scale_tril_p,
            "loc_q": loc_q,
            "scale_tril_q": scale_tril_q,
        },
        broadcast=False,
    )
    d = _check_square(name, "scale_tril_p", scale_tril_p)
    d_q = _check_square(name, "scale_tril_q", scale_tril_q)
    if d_q != d:
        raise ValueError(
            f"{name}: `scale_tril_p` {scale_tril_p.shape} and `scale_tril_q` "
            f"{scale_tril_q.shape} have different event sizes."
        )
    _check_event(name, "loc_p", loc_p, d, allow_scalar=True)
    _check_event(name, "loc_q", loc_q, d, allow_scalar=True)
    validation.check_broadcast(
        name,
        {
            "loc_p (batch)": _batch_shape(loc_p, 1),
            "scale_tril_p (batch)": _batch_shape(scale_tril_p, 2),
            "loc_q (batch)": _batch_shape(loc_q, 1),
            "scale_tril_q (batch)": _batch_shape(scale_tril_q, 2),
        },
    )
    value_checks.check_scale_tril(name, "scale_tril_p", scale_tril_p, inverted=False)
    value_checks.check_scale_tril(name, "scale_tril_q", scale_tril_q, inverted=True)
    scale_tril_p = jnp.tril(scale_tril_p)
    scale_tril_q = jnp.tril(scale_tril_q)

    log_diagonal_q = _log_abs_diagonal(scale_tril_q)
    r = 2.0 * (_log_abs_diagonal(scale_tril_p) - log_diagonal_q)

    # The strict lower triangle of M = Lq^-1 Lp equals that of Lq^-1 (Lp - Lq) = M - I,
    # which is exactly 0 when Lp = Lq (no cancellation).
    pair_batch = jnp.broadcast_shapes(scale_tril_p.shape[:-2], scale_tril_q.shape[:-2])
    tril_q = jnp.broadcast_to(scale_tril_q, (*pair_batch, d, d))
    difference = jnp.broadcast_to(scale_tril_p - scale_tril_q, (*pair_batch, d, d))
    # The blocked solve (genmath._src.triangular): at D = 64 on one XLA:CPU core of a
    # 2-core Intel Xeon it took 0.6-0.8x the time of LAPACK's trsm (even with the factor
    # passed without a copy) from 1 to 256 pairs, forward and with gradients.
    off_diagonal = strict_lower_squares(tril_q, difference)

    mean = _squared_solve_norm(scale_tril_q, loc_p - loc_q, solve=solve_lower)
    return r, off_diagonal, mean, jnp.sum(log_diagonal_q, axis=-1)


# ---------------------------------------------------------------------------------------
# Public API.


def log_prob(x: ArrayLike, *, loc: ArrayLike, scale_tril: ArrayLike) -> Array:
    """Log-density of a full-covariance Gaussian given the Cholesky factor of its covariance.

    .. math::

        \\log \\mathcal N(x; \\mu, LL^\\top) = -\\tfrac D2 \\log 2\\pi - \\sum_i \\log|L_{ii}|
        - \\tfrac12 \\big\\|L^{-1}(x-\\mu)\\big\\|^2

    :math:`L^{-1}(x-\\mu)` is one triangular solve; points that share a distribution are
    solved together as the columns of one right-hand side, or, when there are at least
    :math:`D` of them, multiplied by :math:`L^{-1}` formed once (see the module notes).

    Args:
        x: points of shape ``(..., D)``, any real numeric dtype.
        loc: mean :math:`\\mu` of shape ``(..., D)`` (or a scalar), floating.
        scale_tril: :math:`L` of shape ``(..., D, D)``, floating; only the lower triangle
            is read. The batch shapes of ``x``, ``loc`` and ``scale_tril`` broadcast.

    Returns:
        The log-density with the broadcast batch shape, in the compute dtype.

    Raises:
        ValueError: ``scale_tril`` is not square, or ``x`` / ``loc`` do not have its
            event size, or batch shapes do not broadcast.
        TypeError: ``loc`` or ``scale_tril`` is not floating.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> L = jnp.array([[1.0, 0.0], [0.5, 2.0]])
        >>> v = mvn.log_prob(jnp.array([1.0, 1.0]), loc=jnp.zeros(2), scale_tril=L)
        >>> print(round(float(v), 4))
        -3.0623

    References:
        C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer 2006, §2.3;
        G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., 2013, §4.2.
    """
    name = "mvn.log_prob"
    x, loc, scale_tril = validation.promote(
        name, {"loc": loc, "scale_tril": scale_tril}, {"x": x}, broadcast=False
    )
    d = _check_square(name, "scale_tril", scale_tril)
    _check_event(name, "x", x, d, allow_scalar=False)
    _check_event(name, "loc", loc, d, allow_scalar=True)
    validation.check_broadcast(
        name,
        {
            "x (batch)": _batch_shape(x, 1),
            "loc (batch)": _batch_shape(loc, 1),
            "scale_tril (batch)": _batch_shape(scale_tril, 2),
        },
    )
    value_checks.check_scale_tril(name, "scale_tril", scale_tril, inverted=True)
    squared_norm = _squared_solve_norm(scale_tril, x, offset=loc)
    log_det = jnp.sum(_log_abs_diagonal(scale_tril), axis=-1)
    return -0.5 * d * _LOG_TWO_PI - log_det - 0.5 * squared_norm


def entropy(*, scale_tril: ArrayLike) -> Array:
    """Differential entropy of a full-covariance Gaussian, in nats.

    .. math::

        H[\\mathcal N(\\mu, LL^\\top)] = \\tfrac D2 (1 + \\log 2\\pi) + \\sum_i \\log|L_{ii}|

    Args:
        scale_tril: :math:`L` of shape ``(..., D, D)``, floating (only the diagonal is read;
            the debug checks of :mod:`genmath.debug` still ask the whole lower triangle to
            be finite, as for every function of a factor).

    Returns:
        The entropy with the batch shape ``(...)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> print(round(float(mvn.entropy(scale_tril=jnp.eye(3))), 4))
        4.2568

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed.,
        Wiley 2006, Theorem 8.4.1.
    """
    name = "mvn.entropy"
    (scale_tril,) = validation.promote(name, {"scale_tril": scale_tril})
    d = _check_square(name, "scale_tril", scale_tril)
    value_checks.check_scale_tril(name, "scale_tril", scale_tril, inverted=False)
    return 0.5 * d * (1.0 + _LOG_TWO_PI) + jnp.sum(_log_abs_diagonal(scale_tril), axis=-1)


def kl(
    *,
    loc_p: ArrayLike,
    scale_tril_p: ArrayLike,
    loc_q: ArrayLike,
    scale_tril_q: ArrayLike,
) -> Array:
    """KL divergence :math:`\\mathrm{KL}(p\\,\\|\\,q)` between two full-covariance Gaussians.

    With :math:`M = L_q^{-1} L_p` (lower-triangular, :math:`M_{ii} = L_{p,ii}/L_{q,ii}`),

    .. math::

        \\mathrm{KL}(p\\,\\|\\,q) = \\tfrac12 \\Big[ \\sum_i \\big(e^{r_i} - 1 - r_i\\big)
        + \\sum_{i>j} M_{ij}^2 + \\big\\|L_q^{-1}(\\mu_p - \\mu_q)\\big\\|^2 \\Big],
        \\qquad r_i = 2(\\log|L_{p,ii}| - \\log|L_{q,ii}|),

    which is :math:`\\tfrac12[\\operatorname{tr}(\\Sigma_q^{-1}\\Sigma_p) - D +
    \\log\\det\\Sigma_q - \\log\\det\\Sigma_p + \\text{Mahalanobis}]` rearranged so that
    nothing cancels: the off-diagonal of :math:`M` is taken from
    :math:`L_q^{-1}(L_p - L_q)`, exactly zero when :math:`L_p = L_q`, and
    :math:`e^{r}-1-r` is evaluated without cancellation. Hence ``kl(p, p)`` is exactly 0
    with a zero gradient, and with diagonal factors the result equals
    :func:`genmath.normal.kl`.

    Args:
        loc_p, scale_tril_p: mean ``(..., D)`` (or scalar) and Cholesky factor
            ``(..., D, D)`` of :math:`p`, floating.
        loc_q, scale_tril_q: the same for :math:`q`. All batch shapes broadcast.

    Returns:
        The divergence in nats, with the broadcast batch shape.

    Raises:
        ValueError: a factor is not square, event sizes differ, or batch shapes do not
            broadcast.
        TypeError: an argument is not floating.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> v = mvn.kl(loc_p=jnp.ones(2), scale_tril_p=jnp.eye(2),
        ...            loc_q=jnp.zeros(2), scale_tril_q=jnp.eye(2))
        >>> print(round(float(v), 4))
        1.0

    References:
        S. Kullback, *Information Theory and Statistics*, Wiley 1959;
        J. Duchi, "Derivations for Linear Algebra and Optimization", 2007.
    """
    name = "mvn.kl"
    diagonal, off_diagonal, mean, _ = _pair_terms(name, loc_p, scale_tril_p, loc_q, scale_tril_q)
    return 0.5 * (jnp.sum(special.expm1_minus_identity(diagonal), axis=-1) + off_diagonal + mean)


def cross_entropy(
    *,
    loc_p: ArrayLike,
    scale_tril_p: ArrayLike,
    loc_q: ArrayLike,
    scale_tril_q: ArrayLike,
) -> Array:
    """Cross-entropy :math:`H(p, q) = -\\mathbb E_p[\\log q]` of two full-covariance Gaussians.

    With :math:`M = L_q^{-1} L_p` and :math:`r_i = 2(\\log|L_{p,ii}| - \\log|L_{q,ii}|)`,

    .. math::

        H(p, q) = \\tfrac D2 \\log 2\\pi + \\sum_i \\log|L_{q,ii}|
        + \\tfrac12 \\Big[ \\sum_i e^{r_i} + \\sum_{i>j} M_{ij}^2
        + \\big\\|L_q^{-1}(\\mu_p - \\mu_q)\\big\\|^2 \\Big],

    which is :math:`\\tfrac12[D\\log 2\\pi + \\log\\det\\Sigma_q +
    \\operatorname{tr}(\\Sigma_q^{-1}\\Sigma_p) + \\text{Mahalanobis}]` computed from the
    same triangular solves as :func:`kl` (:math:`\\|M\\|_F^2` split into its diagonal
    :math:`e^{r_i}` and the strict lower triangle of :math:`L_q^{-1}(L_p - L_q)`), so that
    it equals ``entropy(scale_tril=scale_tril_p) + kl(...)`` to rounding, and
    ``entropy(scale_tril=scale_tril_q)`` when :math:`p = q`.

    Args:
        loc_p, scale_tril_p: mean ``(..., D)`` (or scalar) and Cholesky factor
            ``(..., D, D)`` of :math:`p`, floating.
        loc_q, scale_tril_q: the same for :math:`q`. All batch shapes broadcast.

    Returns:
        :math:`H(p, q)` in nats, with the broadcast batch shape.

    Raises:
        ValueError: a factor is not square, event sizes differ, or batch shapes do not
            broadcast.
        TypeError: an argument is not floating.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> h = mvn.cross_entropy(loc_p=jnp.ones(2), scale_tril_p=jnp.eye(2),
        ...                       loc_q=jnp.zeros(2), scale_tril_q=jnp.eye(2))
        >>> print(round(float(h), 4))  # entropy 2.8379 + KL 1
        3.8379

    References:
        T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley
        2006, §2.3 and §8.6; C. M. Bishop, *Pattern Recognition and Machine Learning*,
        Springer 2006, §2.3.
    """
    name = "mvn.cross_entropy"
    diagonal, off_diagonal, mean, log_det_q = _pair_terms(
        name, loc_p, scale_tril_p, loc_q, scale_tril_q
    )
    d = diagonal.shape[-1]
    trace = jnp.sum(jnp.exp(diagonal), axis=-1) + off_diagonal
    return 0.5 * d * _LOG_TWO_PI + log_det_q + 0.5 * (trace + mean)


def sample(
    key: Key,
    *,
    loc: ArrayLike,
    scale_tril: ArrayLike,
    sample_shape: SampleShape = (),
) -> Array:
    """Reparameterised samples :math:`x = \\mu + L\\varepsilon`, :math:`\\varepsilon \\sim
    \\mathcal N(0, I)`.

    .. math::

        x = \\mu + L\\varepsilon \\sim \\mathcal N(\\mu, LL^\\top)

    Gradients flow to ``loc`` and to the lower triangle of ``scale_tril``.

    Args:
        key: a ``jax.random`` key.
        loc: mean of shape ``(..., D)`` (or a scalar), floating.
        scale_tril: :math:`L` of shape ``(..., D, D)``, floating; only the lower triangle
            is read.
        sample_shape: shape of the independent draws, prepended to the broadcast batch
            shape: an int ``n`` (meaning ``(n,)``) or a tuple; ``()`` draws one sample.

    Returns:
        Samples of shape ``sample_shape + batch + (D,)`` in the compute dtype.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> x = mvn.sample(jax.random.key(0), loc=jnp.zeros(2), scale_tril=jnp.eye(2),
        ...                sample_shape=5)
        >>> x.shape
        (5, 2)

    References:
        D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014, §2.4.
    """
    name = "mvn.sample"
    loc, scale_tril = validation.promote(
        name, {"loc": loc, "scale_tril": scale_tril}, broadcast=False
    )
    d = _check_square(name, "scale_tril", scale_tril)
    _check_event(name, "loc", loc, d, allow_scalar=True)
    batch = validation.check_broadcast(
        name,
        {
            "loc (batch)": _batch_shape(loc, 1),
            "scale_tril (batch)": _batch_shape(scale_tril, 2),
        },
    )
    sample_shape = validation.sample_shape(name, sample_shape)
    value_checks.check_scale_tril(name, "scale_tril", scale_tril, inverted=False)
    noise = jax.random.normal(key, sample_shape + batch + (d,), scale_tril.dtype)
    return loc + _tril_matvec(jnp.tril(scale_tril), noise)


def scale_tril_from_covariance(covariance: ArrayLike) -> Array:
    """The lower Cholesky factor :math:`L` of a covariance matrix, :math:`\\Sigma = LL^\\top`.

    .. math::

        L = \\operatorname{chol}\\big(\\tfrac12(\\Sigma + \\Sigma^\\top)\\big)

    The input is symmetrised first (as ``jnp.linalg.cholesky`` does). A matrix that is
    not positive definite gives NaN entries instead of an error, because checking would
    need its values.

    Args:
        covariance: symmetric positive-definite matrices of shape ``(..., D, D)``, floating.

    Returns:
        Lower-triangular factors of the same shape, with a positive diagonal.

    Example:
        >>> import jax.numpy as jnp
        >>> from genmath import mvn
        >>> print(mvn.scale_tril_from_covariance(jnp.array([[4.0, 2.0], [2.0, 2.0]])))
        [[2. 0.]
         [1. 1.]]

    References:
        G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., 2013, §4.2.
    """
    name = "mvn.scale_tril_from_covariance"
    (covariance,) = validation.promote(name, {"covariance": covariance})
    _check_square(name, "covariance", covariance)
    return jnp.linalg.cholesky(covariance)
