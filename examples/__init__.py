"""Scripts that train the MNIST models: ``python -m examples.<name>``."""
