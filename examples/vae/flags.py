"""The VAE example's flags and how they become a :class:`~examples.vae.configs.Config`.

Shared by ``python -m examples.vae`` and ``python -m examples.distributed``. Every flag
defaults to ``None`` ("not given"): only the flags given override the preset.
"""

from __future__ import annotations

import argparse
import dataclasses

from examples import _cli
from examples.vae import configs
from models import likelihoods, mnist, networks, training, vae

# Configuration fields whose flag is not simply --field-name.
FLAGS = {"kind": "--objective", "scale": "--scale"}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the VAE's flags (model, objective, training, evaluation) to ``parser``."""
    add = parser.add_argument
    add("--preset", choices=tuple(configs.PRESETS), default="flax", help="default: flax")
    # Model.
    add("--latent-dim", type=int)
    add("--architecture", choices=vae.ARCHITECTURES, help="encoder/decoder (default: mlp)")
    add("--hidden", type=int, nargs="+", help="mlp: hidden widths, e.g. --hidden 200 200")
    add("--conv-channels", type=int, nargs="+", help="conv: 1 or 2 stride-2 layers' channels")
    add("--activation", choices=tuple(networks.ACTIVATIONS))
    add("--likelihood", choices=tuple(likelihoods.LIKELIHOODS))
    add("--fixed-variance", type=float, help="gaussian: fixed pixel variance (a scaled MSE)")
    add("--scale", choices=likelihoods.Gaussian.SCALES, help="gaussian: learned log-scale")
    add(
        "--components",
        type=int,
        help="logistic-mixture: components per pixel (default 5; the mnist-8bit-logistic "
        "preset: 3)",
    )
    add("--min-scale", type=float, help="gaussian, dequantized-gaussian: floor of the scale")
    add("--conditional", action="store_true", default=None, help="feed the label to both nets")
    add("--top-latent-dim", type=int, help="size of a second stochastic layer above z (0: none)")
    add("--top-hidden", type=int, nargs="+", help="hidden widths of the second layer's MLPs")
    add(
        "--no-output-bias-init",
        action="store_true",
        help="leave the decoder output bias at zero instead of the data's pixel logits",
    )
    # Objective.
    add("--objective", choices=vae.OBJECTIVES)
    add("--num-samples", type=int, help="K samples per example in the training objective")
    add("--kl-warmup-epochs", type=float, help="ELBO: KL weight from 0 to 1 over N epochs")
    add("--free-bits", type=float, help="ELBO: minimum KL per latent dimension, in nats")
    # Training.
    add("--seed", type=int)
    add("--epochs", type=int)
    add("--batch-size", type=int)
    add("--learning-rate", type=float)
    add("--schedule", choices=training.SCHEDULES, help="learning-rate schedule")
    add(
        "--binarization",
        choices=mnist.BINARIZATIONS,
        help="default: the likelihood's (dynamic for bernoulli, grey for gaussian, 8bit for "
        "logistic-mixture and dequantized-gaussian)",
    )
    # Evaluation.
    add(
        "--eval-samples",
        type=int,
        help="K of the test NLL (default 5000 on accelerators, 100 on CPU)",
    )
    add("--eval-seed", type=int, help="seed of the fixed test binarisation")
    add("--eval-every", type=int, help="epochs between test ELBOs (0: none)")
    add("--nll-every", type=int, help="epochs between test NLLs for the curve (0: none)")
    add("--train-examples", type=int, help="train on the first N training images only")
    add("--test-examples", type=int, help="evaluate on the first N test images only")
    add("--probe-steps", type=int, help="Adam steps of the linear probe")


def build_config(args: argparse.Namespace) -> configs.Config:
    """The preset, overridden by every flag that was given."""
    base = configs.get_config(args.preset)
    model = base.model
    options = dict(model.likelihood_options)
    if args.likelihood is not None and args.likelihood != model.likelihood:
        options = {}
    options.update(_cli.given(args, "fixed_variance", "scale", "components", "min_scale"))
    model_fields = _cli.given(
        args,
        "latent_dim",
        "architecture",
        "hidden",
        "conv_channels",
        "activation",
        "likelihood",
        "conditional",
        "top_latent_dim",
        "top_hidden",
    )
    if args.no_output_bias_init:
        model_fields["output_bias_init"] = False
    model = dataclasses.replace(model, likelihood_options=options, **model_fields)
    objective_fields = _cli.given(args, "num_samples", "kl_warmup_epochs", "free_bits")
    if args.objective is not None:
        objective_fields["kind"] = args.objective
    objective = dataclasses.replace(base.objective, **objective_fields)
    train_fields = _cli.given(args, "seed", "epochs", "batch_size", "learning_rate", "binarization")
    if args.binarization is None:
        accepted = likelihoods.LIKELIHOODS[model.likelihood].binarizations
        if base.train.binarization not in accepted:
            train_fields["binarization"] = accepted[0]
    train = dataclasses.replace(base.train, **train_fields)
    optimizer = dataclasses.replace(base.optimizer, **_cli.given(args, "schedule"))
    conv = model.architecture == "conv"
    _cli.refuse_unused(args, "hidden", not conv, "the conv architecture has no hidden widths")
    _cli.refuse_unused(args, "conv_channels", conv, "only the conv architecture has channels")
    _cli.refuse_unused(
        args, "top_hidden", model.top_latent_dim > 0, "no second layer (give --top-latent-dim)"
    )
    why = "a conditional VAE's codes are not probed (its encoder is given the label)"
    _cli.refuse_unused(args, "probe_steps", not model.conditional, why)
    fixed = "fixed_variance" in options
    for name in ("scale", "min_scale"):
        _cli.refuse_unused(args, name, not fixed, "the variance is fixed (--fixed-variance)")
    return dataclasses.replace(
        base,
        model=model,
        objective=objective,
        train=train,
        optimizer=optimizer,
        **_cli.given(
            args,
            "eval_samples",
            "eval_seed",
            "eval_every",
            "nll_every",
            "train_examples",
            "test_examples",
            "probe_steps",
        ),
    )
