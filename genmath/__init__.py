"""genmath: the mathematics of deep generative models as pure, jit-compiled JAX functions."""

__version__ = "0.1.0"
