"""Flax MNIST models, their data path and reporting utilities, built on genmath."""
