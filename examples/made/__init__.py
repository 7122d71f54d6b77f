"""The MADE example: ``python -m examples.made``; the library function is
:func:`examples.made.train.train_and_evaluate`, the configurations :mod:`examples.made.configs`."""
