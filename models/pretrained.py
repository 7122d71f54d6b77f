"""Pretrained VAEs shipped with the repository: load them, or export a trained one.

Each lives in ``models/pretrained/<name>/``: ``record.json`` (the :class:`VAEConfig`, how it
was trained, and its measured test figures) and ``params/`` (the parameters as an orbax
checkpoint: array files and JSON metadata, no pickle).

>>> sorted(available())  # doctest: +SKIP
['vae-burda-fast']
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from models import vae

#: Where the shipped weights live.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def available(directory: str | os.PathLike = PRETRAINED_DIR) -> list[str]:
    """Names of the pretrained models in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if (p / "record.json").is_file())


def load_pretrained(
    name: str, *, directory: str | os.PathLike = PRETRAINED_DIR
) -> tuple[vae.VAE, dict[str, Any]]:
    """The pretrained VAE ``name`` and its record (config, training, measured figures).

    Raises:
      ValueError: no pretrained model is called ``name``.
    """
    path = Path(directory) / name
    if not (path / "record.json").is_file():
        raise ValueError(
            f"load_pretrained: `name` must be one of {available(directory)}, got {name!r}."
        )
    record = json.loads((path / "record.json").read_text())
    config = vae_config_from_dict(record["model_config"])
    model = vae.make_vae(config, rngs=nnx.Rngs(params=jax.random.key(0)))
    params = nnx.state(model, nnx.Param)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, params)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore((path / "params").resolve(), abstract)
    nnx.update(model, restored)
    return model, record


def export_pretrained(
    model: vae.VAE,
    config: vae.VAEConfig,
    name: str,
    record: dict[str, Any],
    *,
    directory: str | os.PathLike = PRETRAINED_DIR,
) -> Path:
    """Writes ``model``'s parameters and ``record`` as the pretrained model ``name``."""
    path = Path(directory) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    params = jax.device_get(nnx.state(model, nnx.Param))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save((path / "params").resolve(), params)
    full = {"name": name, "model_config": dataclasses.asdict(config), **record}
    (path / "record.json").write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
    return path


def vae_config_from_dict(fields: dict[str, Any]) -> vae.VAEConfig:
    """A :class:`VAEConfig` from its ``dataclasses.asdict`` form (lists back to tuples)."""
    fields = dict(fields)
    fields["likelihood_options"] = tuple(tuple(pair) for pair in fields["likelihood_options"])
    return vae.VAEConfig(**fields)
