"""What the benchmark ran on: backend, device name, a file-name slug, versions."""

from __future__ import annotations

import datetime
import os
import platform
import re

import jax
import jaxlib

from models.reporting import cpu_model


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def describe() -> dict:
    """The backend and device JAX found, and the host, for the results file."""
    device = jax.devices()[0]
    backend = jax.default_backend()
    cores = cpu_cores()
    if backend == "cpu":
        name = f"{cpu_model()} ({cores} cores)"
        slug = f"cpu-{cores}core"
    else:
        name = f"{device.device_kind} ×{jax.device_count()}"
        slug = f"{backend}-{_slugify(device.device_kind)}"
    return {
        "backend": backend,
        "device": name,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "slug": slug,
        "host_cpu": cpu_model(),
        "host_cores": cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: how busy the shared machine was."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
