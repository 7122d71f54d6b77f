"""Lower-triangular solves as blocked matrix products, for XLA:CPU.

On CPU, ``jax.scipy.linalg.solve_triangular`` is one LAPACK ``trsm`` call per matrix of
the batch, with column-major copies around it. For a batch of small factors each solved
against about as many columns as it has rows (the KL of full-covariance Gaussians: 256
pairs at D = 64) XLA's batched matrix products do the same work faster.
:func:`solve_lower` splits the factor recursively into halves,

.. math::

    \\begin{pmatrix} A & 0 \\\\ C & B \\end{pmatrix}
    \\begin{pmatrix} Z_1 \\\\ Z_2 \\end{pmatrix}
    = \\begin{pmatrix} R_1 \\\\ R_2 \\end{pmatrix}:
    \\quad Z_1 = A^{-1} R_1, \\quad Z_2 = B^{-1}(R_2 - C Z_1),

down to diagonal blocks of at most :data:`BLOCK` rows, whose inverses are formed once by
forward substitution on the identity and applied as products. This is blocked forward
substitution (the algorithm inside LAPACK's ``trsm``) written in batched ``matmul``.

Its derivative is given in closed form (``custom_jvp``): with :math:`Z = L^{-1}R`,

.. math::

    \\dot Z = L^{-1}\\big(\\dot R - \\operatorname{tril}(\\dot L)\\,Z\\big),

which reuses the diagonal-block inverses, so forward and reverse mode are a few more
products rather than a differentiation through the substitution loop. Reverse mode is
JAX's transpose of these products: a blocked back substitution with :math:`L^\\top`.

Measured on one quiet core of a 2-core AMD EPYC (jax 0.9.2, ``benchmarks/mvn_speed.py``),
it is faster than LAPACK for the KL's solves (256 factors, 65 columns each) and, against
the identity, for the inverse that :func:`genmath.mvn.log_prob` applies when a factor has
at least as many columns as rows; with fewer columns per factor (16 per factor at
D = 64) it lost to LAPACK with gradients, so ``log_prob`` keeps LAPACK there.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from genmath._src.typing import Array

# Diagonal blocks of at most 16 rows: for the KL of 256 pairs at D = 64 on one XLA:CPU
# core, 8 was 5 % faster forward but 20-30 % slower with gradients; 32 leaves too much to
# the unrolled substitution loop, 4 too much to tiny matrix products.
BLOCK = 16


def _leaves(start: int, stop: int) -> list[tuple[int, int]]:
    """The diagonal blocks ``[start, stop)`` of the recursive halving, in order."""
    if stop - start <= BLOCK:
        return [(start, stop)]
    middle = start + (stop - start) // 2
    return _leaves(start, middle) + _leaves(middle, stop)


def _small_inverse(tril: Array) -> Array:
    """Inverse of small lower-triangular matrices by forward substitution on the identity.

    With :math:`L = D_r N` (rows divided by the diagonal, so :math:`N` has a unit
    diagonal), row :math:`j` of :math:`N^{-1}` is final once rows :math:`< j` are
    eliminated; :math:`L^{-1} = N^{-1} D_r^{-1}` scales its columns.
    """
    size = tril.shape[-1]
    diagonal = jnp.diagonal(tril, axis1=-2, axis2=-1)
    strict = jnp.tril(tril / diagonal[..., :, None], -1)
    inverse = jnp.broadcast_to(jnp.eye(size, dtype=tril.dtype), tril.shape)
    for j in range(size - 1):
        # Only rows below j change: column j of `strict` is zero on and above the diagonal.
        inverse = inverse - strict[..., :, j, None] * inverse[..., None, j, :]
    return inverse / diagonal[..., None, :]


def _block_inverses(tril: Array) -> list[Array]:
    return [_small_inverse(tril[..., a:b, a:b]) for a, b in _leaves(0, tril.shape[-1])]


def _solve_blocks(tril: Array, inverses: list[Array], rhs: Array) -> list[Array]:
    """Blocked forward substitution given the diagonal-block inverses (see module): the
    rows of :math:`L^{-1}R` as one block per leaf, in order."""
    leaves = _leaves(0, tril.shape[-1])

    def solve(first: int, last: int, rhs: Array) -> list[Array]:
        # Leaves first..last-1 (indices into `leaves`); rhs holds their rows.
        if last - first == 1:
            return [jnp.matmul(inverses[first], rhs)]
        middle = first + (last - first) // 2
        top, split, bottom = leaves[first][0], leaves[middle][0], leaves[last - 1][1]
        upper = solve(first, middle, rhs[..., : split - top, :])
        coupling = tril[..., split:bottom, top:split]
        solved_upper = jnp.concatenate(upper, axis=-2) if len(upper) > 1 else upper[0]
        shifted = rhs[..., split - top :, :] - jnp.matmul(coupling, solved_upper)
        return upper + solve(middle, last, shifted)

    return solve(0, len(leaves), rhs)


def _solve(tril: Array, inverses: list[Array], rhs: Array) -> Array:
    blocks = _solve_blocks(tril, inverses, rhs)
    return jnp.concatenate(blocks, axis=-2) if len(blocks) > 1 else blocks[0]


def _solve_transposed(tril: Array, inverses: list[Array], rhs: Array) -> Array:
    """:math:`L^{-\\top}R`: blocked back substitution with the same diagonal-block inverses
    (those of :math:`L^\\top` are their transposes),

    .. math::

        \\begin{pmatrix} A^\\top & C^\\top \\\\ 0 & B^\\top \\end{pmatrix}
        \\begin{pmatrix} Z_1 \\\\ Z_2 \\end{pmatrix}
        = \\begin{pmatrix} R_1 \\\\ R_2 \\end{pmatrix}:
        \\quad Z_2 = B^{-\\top} R_2, \\quad Z_1 = A^{-\\top}(R_1 - C^\\top Z_2).

    The transposes are only contraction orders of the products (no copies).
    """
    leaves = _leaves(0, tril.shape[-1])

    def solve(first: int, last: int, rhs: Array) -> Array:
        if last - first == 1:
            return jnp.einsum("...ji,...jk->...ik", inverses[first], rhs)
        middle = first + (last - first) // 2
        top, split, bottom = leaves[first][0], leaves[middle][0], leaves[last - 1][1]
        lower = solve(middle, last, rhs[..., split - top :, :])
        coupling = tril[..., split:bottom, top:split]
        shifted = rhs[..., : split - top, :] - jnp.einsum("...ji,...jk->...ik", coupling, lower)
        return jnp.concatenate([solve(first, middle, shifted), lower], axis=-2)

    return solve(0, len(leaves), rhs)


@jax.custom_jvp
def solve_lower(tril: Array, rhs: Array) -> Array:
    """:math:`L^{-1}R` for lower-triangular ``tril`` ``(..., D, D)`` and ``rhs`` ``(..., D, K)``.

    Only the lower triangle of ``tril`` is read; batch axes must already agree (no
    broadcasting). The result matches ``solve_triangular(tril, rhs, lower=True)`` to
    rounding (the diagonal blocks are applied as explicit inverses, so the error grows
    with the condition number like the substitution's; see ``genmath.mvn``).
    """
    return _solve(tril, _block_inverses(tril), rhs)


@solve_lower.defjvp
def _solve_lower_jvp(primals, tangents):
    tril, rhs = primals
    tril_dot, rhs_dot = tangents
    inverses = _block_inverses(tril)
    solved = _solve(tril, inverses, rhs)
    # d(L^-1 R) = L^-1 (dR - dL L^-1 R); only the lower triangle of L is read, so only
    # that of dL counts.
    solved_dot = _solve(tril, inverses, rhs_dot - jnp.matmul(jnp.tril(tril_dot), solved))
    return solved, solved_dot


@jax.custom_jvp
def strict_lower_squares(tril: Array, rhs: Array) -> Array:
    """:math:`\\sum_{i>j} (L^{-1}R)_{ij}^2` for every matrix of the batch, shape ``(...)``.

    The Frobenius norm of the strict lower triangle of the solve, as the KL of
    full-covariance Gaussians needs it (:math:`R = L_p - L_q`). Forward, each leaf's block
    of rows is reduced where it is produced, over the columns left of the block's end only
    (where the strict lower triangle of those rows lies): no array of the whole solve is
    assembled. For 256 pairs at D = 64 on one XLA:CPU core the KL forward took 0.84x the
    time it took through :func:`solve_lower`. Its derivative rule is in closed form (below).
    """
    leaves = _leaves(0, tril.shape[-1])
    blocks = _solve_blocks(tril, _block_inverses(tril), rhs)
    total = jnp.zeros(jnp.broadcast_shapes(tril.shape[:-2], rhs.shape[:-2]), rhs.dtype)
    for (start, stop), block in zip(leaves, blocks, strict=True):
        below = jnp.arange(start, stop)[:, None] > jnp.arange(stop)[None, :]
        total = total + jnp.sum(jnp.square(jnp.where(below, block[..., :stop], 0.0)), (-2, -1))
    return total


@functools.partial(strict_lower_squares.defjvp, symbolic_zeros=True)
def _strict_lower_squares_jvp(primals, tangents):
    tril, rhs = primals
    tril_dot, rhs_dot = tangents
    inverses = _block_inverses(tril)
    solved = _solve(tril, inverses, rhs)
    strict = jnp.tril(solved, -1)
    value = jnp.sum(jnp.square(strict), axis=(-2, -1))
    # With Z = L^-1 R, G = 2 tril(Z, -1) and U = L^-T G (one back substitution):
    # d value = sum G * dZ = sum U * (dR - tril(dL) Z) = sum U * dR - sum tril(dL) * U Z^T,
    # linear in the tangents with the coefficients U and U Z^T, so that reverse mode is
    # these products and masks instead of the transpose of every step of the solve.
    adjoint = _solve_transposed(tril, inverses, 2.0 * strict)
    tangent = jnp.zeros_like(value)
    if not isinstance(rhs_dot, SymbolicZero):
        tangent = tangent + jnp.sum(adjoint * rhs_dot, axis=(-2, -1))
    if not isinstance(tril_dot, SymbolicZero):
        outer = jnp.einsum("...ik,...jk->...ij", adjoint, solved)
        lower = jnp.where(jnp.tri(tril.shape[-1], dtype=bool), tril_dot, 0.0)
        tangent = tangent - jnp.sum(lower * outer, axis=(-2, -1))
    return value, tangent
