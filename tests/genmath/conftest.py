"""Fixtures shared by the genmath tests."""

from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A fresh generator per test, reproducible from the test's name."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))
