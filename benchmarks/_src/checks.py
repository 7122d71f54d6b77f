"""Accuracy against a float64 reference, so that a fast wrong answer shows up."""

from __future__ import annotations

import numpy as np

# Largest acceptable max relative error, by the dtype of the inputs. With float32
# inputs every row (sums of up to ~1000 terms, triangular solves of condition
# number ~10) is good to a few 1e-6; 1e-4 leaves room for honest rounding and still
# catches any wrong formula or numerically unsafe parameterisation. bfloat16 inputs
# are compared with a reference computed from the same rounded inputs; 1e-2 allows
# computing in bfloat16 (8 mantissa bits) but not a wrong answer.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10, "bfloat16": 1e-2}


def max_relative_error(value, reference: np.ndarray) -> float:
    """max over rows of |value - reference| / max(|reference|, 1).

    The denominator is floored at 1 so that rows whose true value is near zero (a
    KL between almost equal distributions) are judged by their absolute error.
    Returns inf for a wrong shape or any non-finite value.
    """
    value = np.asarray(value, dtype=np.float64)
    if value.shape != reference.shape or not np.all(np.isfinite(value)):
        return float("inf")
    error = np.abs(value - reference) / np.maximum(np.abs(reference), 1.0)
    return float(np.max(error)) if error.size else 0.0


def is_correct(error: float, dtype: str) -> bool:
    return error <= TOLERANCE[dtype]
