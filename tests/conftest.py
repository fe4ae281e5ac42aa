"""Shared fixtures: the ``xp`` backend fixture and the ``gpu`` marker.

Every algorithm test takes ``xp`` and runs once per backend; the CuPy case is
skipped, with the reason, when CuPy is not installed or no CUDA device exists.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from nlref.backend import cupy_available, namespace_by_name

os.environ.setdefault("NLREF_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _cupy_skip_reason() -> str | None:
    if cupy_available():
        return None
    try:
        import cupy  # noqa: F401
    except Exception:
        return "CuPy is not installed (pip install 'nlref[gpu]')"
    return "CuPy is installed but no CUDA device is available"


_GPU_SKIP = _cupy_skip_reason()


@pytest.fixture(
    params=[pytest.param("numpy", id="numpy"), pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)]
)
def xp(request):
    """The array namespace under test: ``numpy``, then ``cupy`` when a GPU is present."""
    if request.param == "cupy" and _GPU_SKIP is not None:
        pytest.skip(_GPU_SKIP)
    return namespace_by_name(request.param)


def pytest_collection_modifyitems(config, items):
    if _GPU_SKIP is None:
        return
    skip = pytest.mark.skip(reason=_GPU_SKIP)
    for item in items:
        # tests marked gpu without the xp fixture (whole-GPU tests) skip too
        if "gpu" in item.keywords and "xp" not in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def rng():
    """A seeded generator: every random test input is reproducible."""
    return np.random.default_rng(12345)


class _FakeCupyArray:
    """Looks like a ``cupy.ndarray`` to nlref.backend (its type lives in module "cupy").

    Lets the mixed-backend errors be tested on machines without CuPy or a GPU.
    """

    __module__ = "cupy"

    def __init__(self, a):
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim


_FakeCupyArray.__name__ = _FakeCupyArray.__qualname__ = "ndarray"


@pytest.fixture
def fake_cupy_array():
    """Factory: ``fake_cupy_array(a)`` is a stand-in CuPy array with ``a``'s shape and dtype."""
    return _FakeCupyArray
