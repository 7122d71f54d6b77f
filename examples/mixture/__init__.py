"""The mixture-of-Bernoullis example: ``python -m examples.mixture``; the library function is
:func:`examples.mixture.train.train_and_evaluate`, the configuration
:mod:`examples.mixture.configs`."""
