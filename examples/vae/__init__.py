"""The VAE example: ``python -m examples.vae``; the library function is
:func:`examples.vae.train.train_and_evaluate`, the configurations :mod:`examples.vae.configs`."""
