"""Image grids, JSON, device description and curve plots."""

from __future__ import annotations

import datetime
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from models import reporting
from models.reporting import device_description, plot_curves, save_image_grid, write_json


@pytest.mark.parametrize(
    ("count", "flat", "ncols"),
    [(1, False, None), (10, True, None), (16, False, 4), (7, True, 3), (5, False, 8)],
)
def test_image_grid_size_and_tiles(tmp_path, count, flat, ncols):
    images = np.random.default_rng(count).random((count, 28, 28))
    path = tmp_path / "sub" / "grid.png"
    shown = images.reshape(count, 784) if flat else jnp.asarray(images)
    save_image_grid(path, shown, ncols=ncols)
    columns = min(count, ncols or math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "L"
        assert png.size == (columns * 28 + (columns - 1) * 2, rows * 28 + (rows - 1) * 2)
        pixels = np.asarray(png)
    last = count - 1
    top, left = (last // columns) * 30, (last % columns) * 30
    expected = np.round(np.asarray(shown, np.float64).reshape(count, 28, 28)[last] * 255.0)
    np.testing.assert_array_equal(pixels[top : top + 28, left : left + 28], expected)
    if columns > 1:
        np.testing.assert_array_equal(pixels[:28, 28:30], 128)  # the gap between tiles


def test_image_grid_clips_and_rejects_bad_images(tmp_path):
    path = tmp_path / "grid.png"
    save_image_grid(path, np.array([[[-0.5, 1.5]]]), gap=0)
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), [[0, 255]])
    with pytest.raises(ValueError, match="NaN"):
        save_image_grid(path, np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="square number of pixels"):
        save_image_grid(path, np.zeros((2, 783)))
    with pytest.raises(ValueError, match="non-empty"):
        save_image_grid(path, np.zeros((0, 28, 28)))
    with pytest.raises(ValueError, match="ncols must be a positive int"):
        save_image_grid(path, np.zeros((2, 28, 28)), ncols=0)


def test_json_round_trips_numpy_and_jax_values(tmp_path):
    data = {
        "numpy_float": np.float32(0.25),
        "numpy_int": np.int64(7),
        "numpy_bool": np.bool_(True),
        "jax_scalar": jnp.float32(1.5),
        "jax_array": jnp.arange(3),
        "nested": {"values": [np.float64(2.0), jax.numpy.int32(3)], "name": "vae"},
        "path": tmp_path / "x",
    }
    path = tmp_path / "deep" / "dir" / "metrics.json"
    write_json(path, data)
    text = path.read_text()
    assert text.startswith("{\n  ") and text.endswith("}\n")  # indented, newline-terminated
    assert json.loads(text) == {
        "numpy_float": 0.25,
        "numpy_int": 7,
        "numpy_bool": True,
        "jax_scalar": 1.5,
        "jax_array": [0, 1, 2],
        "nested": {"values": [2.0, 3], "name": "vae"},
        "path": str(tmp_path / "x"),
    }


def test_json_rejects_unknown_values(tmp_path):
    with pytest.raises(TypeError, match="cannot write object"):
        write_json(tmp_path / "bad.json", {"thing": object()})


def test_device_description_names_platform_and_jax():
    description = device_description()
    assert description.startswith(jax.devices()[0].platform + ": ")
    assert f"jax {jax.__version__}" in description


def test_plot_curves_writes_a_png(tmp_path):
    path = tmp_path / "plots" / "loss.png"
    plot_curves(
        path,
        {"train": ([1, 2, 3], [3.0, 2.0, 1.5]), "test": (np.arange(3), jnp.ones(3))},
        xlabel="epoch",
        ylabel="nats",
        title="VAE",
    )
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (640, 400)
        assert len(np.unique(np.asarray(png.convert("L")))) > 2  # something was drawn


def test_plot_curves_rejects_bad_curves(tmp_path):
    with pytest.raises(ValueError, match="curves is empty"):
        plot_curves(tmp_path / "a.png", {}, xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="'train' needs 1-d x and y of equal length"):
        plot_curves(tmp_path / "a.png", {"train": ([1, 2], [1.0])}, xlabel="x", ylabel="y")


def test_device_description_names_the_processor_and_its_cores():
    description = device_description()
    if jax.devices()[0].platform == "cpu":
        cores = len(os.sched_getaffinity(0))
        assert description.startswith(f"cpu: {cores} of {os.cpu_count()} cores, ")
        assert reporting.cpu_model() in description


def test_run_stamp_gives_device_and_a_utc_date():
    stamp = reporting.run_stamp()
    assert stamp["device"] == device_description()
    date = datetime.datetime.fromisoformat(stamp["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - date) < datetime.timedelta(minutes=5)
