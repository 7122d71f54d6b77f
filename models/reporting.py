"""Small helpers that write what examples and benchmarks report: image grids, JSON, curves."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from pathlib import Path

import numpy as np


def save_image_grid(
    path: str | os.PathLike,
    images,
    *,
    ncols: int | None = None,
    gap: int = 2,
) -> None:
    """Writes greyscale images as one PNG grid, tiles separated by ``gap`` grey pixels.

    Args:
        path: the PNG file to write; missing parent folders are created.
        images: (N, H, W) or (N, H * H) values in [0, 1] (numpy or jax); values outside
            are clipped, non-finite values raise ``ValueError``.
        ncols: tiles per row, by default ``ceil(sqrt(N))``.
        gap: pixels between neighbouring tiles.

    The PNG is ``ncols * W + (ncols - 1) * gap`` pixels wide and
    ``nrows * H + (nrows - 1) * gap`` high, with ``nrows = ceil(N / ncols)``.
    """
    from PIL import Image  # imported on use: only reporting needs pillow

    tiles = _as_tiles(images)
    count, height, width = tiles.shape
    ncols = math.ceil(math.sqrt(count)) if ncols is None else _positive_int("ncols", ncols)
    ncols = min(ncols, count)
    gap = int(gap)
    if gap < 0:
        raise ValueError(f"save_image_grid: gap must be non-negative, got {gap}.")
    nrows = math.ceil(count / ncols)
    canvas = np.full(
        (nrows * height + (nrows - 1) * gap, ncols * width + (ncols - 1) * gap), 128, np.uint8
    )
    pixels = np.round(tiles * 255.0).astype(np.uint8)
    for index, tile in enumerate(pixels):
        top = (index // ncols) * (height + gap)
        left = (index % ncols) * (width + gap)
        canvas[top : top + height, left : left + width] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas, mode="L").save(path, format="PNG")


def enlarge(images, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(N, H, W)`` images, for pictures of parameters.

    >>> enlarge(np.eye(2)[None], 2)[0].astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    return np.repeat(np.repeat(np.asarray(images), factor, axis=-2), factor, axis=-1)


def _as_tiles(images) -> np.ndarray:
    tiles = np.asarray(images, dtype=np.float64)
    if tiles.ndim == 2:
        side = math.isqrt(tiles.shape[1])
        if side * side != tiles.shape[1]:
            raise ValueError(
                "save_image_grid: flat images must have a square number of pixels, got shape "
                f"{tiles.shape}; pass (N, H, W) for non-square images."
            )
        tiles = tiles.reshape(tiles.shape[0], side, side)
    if tiles.ndim != 3 or tiles.shape[0] == 0:
        raise ValueError(
            f"save_image_grid: images must be a non-empty (N, H, W) or (N, H * H) array, "
            f"got shape {tiles.shape}."
        )
    if not np.all(np.isfinite(tiles)):
        raise ValueError("save_image_grid: images contain NaN or infinite values.")
    return np.clip(tiles, 0.0, 1.0)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"save_image_grid: {name} must be a positive int, got {value!r}.")
    return int(value)


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Writes ``data`` as indented JSON; numpy/jax scalars and arrays become numbers/lists.

    Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=_to_json)
    path.write_text(text + "\n", encoding="utf-8")


def _to_json(value):
    """Converts what ``json`` cannot: numpy/jax scalars and arrays, paths."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__array__"):  # numpy and jax scalars and arrays
        return np.asarray(value).tolist()
    raise TypeError(f"write_json: cannot write {type(value).__name__} value {value!r} as JSON.")


def cpu_model() -> str:
    """The processor's name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    """Where JAX computes, e.g. ``"cpu: 1 of 2 cores, Intel(R) Xeon(R) Processor (jax
    0.9.2)"`` (the cores this process may use, of the host's) or ``"gpu: NVIDIA H100 ..."``."""
    import jax

    devices = jax.devices()
    platform_name = devices[0].platform
    version = f"jax {jax.__version__}"
    if platform_name == "cpu":
        host_cores = os.cpu_count()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else host_cores
        return f"cpu: {cores} of {host_cores} cores, {cpu_model()} ({version})"
    kinds = sorted({device.device_kind for device in devices})
    count = f"{len(devices)} x " if len(devices) > 1 else ""
    return f"{platform_name}: {count}{', '.join(kinds)} ({version})"


def run_stamp() -> dict[str, str]:
    """``device`` (:func:`device_description`) and ``date`` (UTC, to the second) for a
    results file, so that every figure taken from it can name where and when it was made."""
    date = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"device": device_description(), "date": date.isoformat()}


def plot_curves(
    path: str | os.PathLike,
    curves: dict[str, tuple[list, list]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
) -> None:
    """Plots named (x, y) curves in one PNG (matplotlib's Agg renderer, no display needed).

    Args:
        path: the PNG file to write; missing parent folders are created.
        curves: legend label -> (x values, y values) of equal length.
        xlabel, ylabel, title: axis labels and an optional title.
    """
    # The object-oriented API renders with Agg without touching pyplot's global backend.
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_curves: curves is empty.")
    figure = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for label, (xs, ys) in curves.items():
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape:
            raise ValueError(
                f"plot_curves: curve {label!r} needs 1-d x and y of equal length, got shapes "
                f"{xs.shape} and {ys.shape}."
            )
        axes.plot(xs, ys, label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title is not None:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
