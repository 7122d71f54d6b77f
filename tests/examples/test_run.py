"""The set-up shared by the examples: data selection errors name the option."""

from __future__ import annotations

import dataclasses

import pytest

from examples import _cli, _run
from examples.mixture import configs as mixture_configs
from examples.vae import configs as vae_configs
from examples.vae.train import train_and_evaluate
from models.training import ConfigError, NonFiniteLossError


def test_counts_are_cut_and_checked(synthetic_mnist):
    config = dataclasses.replace(vae_configs.flax(), train_examples=300, test_examples=100)
    data = _run.select_data(config, synthetic_mnist, None)
    assert data.train_images.shape[0] == 300 and data.test_labels.shape[0] == 100
    num_train = synthetic_mnist.train_images.shape[0]
    for field, count in (("train_examples", num_train + 1), ("test_examples", 10**6)):
        with pytest.raises(ConfigError, match=f"`{field}` must be at most"):
            _run.select_data(
                dataclasses.replace(vae_configs.flax(), **{field: count}), synthetic_mnist, None
            )


def test_a_batch_larger_than_the_training_set_is_a_config_error(synthetic_mnist, tmp_path):
    base = vae_configs.flax()
    config = dataclasses.replace(
        base, train_examples=100, train=dataclasses.replace(base.train, batch_size=128)
    )
    with pytest.raises(ConfigError, match="`batch_size` must not exceed the 100 training"):
        _run.select_data(config, synthetic_mnist, None)
    # Before any training: the VAE example checks its data the same way.
    with pytest.raises(ConfigError, match="`batch_size`"):
        train_and_evaluate(config, tmp_path, data=synthetic_mnist, progress=False)
    # Full-data training (the mixture's EM) does not use the batch size.
    em = dataclasses.replace(
        mixture_configs.Config(algorithm="em"), train_examples=100, test_examples=100
    )
    assert (
        _run.select_data(em, synthetic_mnist, None, minibatches=False).train_images.shape[0] == 100
    )


def test_diverged_training_is_one_line_not_a_traceback():
    def diverging():
        raise NonFiniteLossError("non-finite loss or gradient at step 0 (...); training stopped.")

    with pytest.raises(SystemExit) as exit_info:
        _cli.run_or_exit(diverging)
    message = str(exit_info.value.code)
    assert message.startswith("error: non-finite loss") and "learning rate" in message
