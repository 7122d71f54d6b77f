"""Benchmarks of genmath: kernels (``python -m benchmarks.kernels``) and, later, training."""
