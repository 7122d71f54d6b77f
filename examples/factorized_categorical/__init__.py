"""The factorized categorical example on 8-bit MNIST: ``python -m examples.factorized_categorical``;
the library function is :func:`examples.factorized_categorical.train.train_and_evaluate`, the
configuration :mod:`examples.factorized_categorical.configs`."""
