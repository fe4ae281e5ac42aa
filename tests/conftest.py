"""Shared fixtures: the ``xp`` backend fixture and the ``gpu`` marker; the fuzz profiles.

Every algorithm test takes ``xp`` and runs once per backend; the CuPy case is
skipped, with the reason, when CuPy is not installed or no CUDA device exists.

Hypothesis profiles of the fuzz suite (``tests/test_fuzz_*.py``, marker ``fuzz``):
``quick`` (the default, used by ``make test``: 100 examples per test, derandomized so that
CI is deterministic; the fuzz suite adds about 20 s on 2 cores) and
``thorough`` (``pytest -m fuzz --hypothesis-profile=thorough``: 650 examples
per test; 21,531 calls in 179 s on 2 cores beside two training runs on 2026-12-07; 600 examples
gave 19,930 to 20,455 calls, below the 20,000 of issue 28 in one run).
Set ``NLREF_FUZZ_COUNTS=folder`` to get the per-API outcome counts of :mod:`fuzz_harness`
written there as JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import fuzz_harness
import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from nlref.backend import cupy_available, namespace_by_name
from nlref.data import load_image

os.environ.setdefault("NLREF_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "quick", max_examples=100, deadline=None, derandomize=True, suppress_health_check=_FUZZ_HEALTH
)
settings.register_profile(
    "thorough", max_examples=650, deadline=None, derandomize=False, suppress_health_check=_FUZZ_HEALTH
)
settings.load_profile("quick")  # --hypothesis-profile=thorough overrides it


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
def camera_png(tmp_path):
    """A 64 x 64 8-bit crop of scikit-image's camera as a PNG file: the CLI tests' input."""
    path = tmp_path / "camera.png"
    iio.imwrite(path, load_image("camera", dtype=None)[200:264, 200:264])
    return path


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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the fuzz outcome counts of this process (and save them when NLREF_FUZZ_COUNTS is set)."""
    if not fuzz_harness.COUNTS:
        return
    terminalreporter.write_sep("-", "fuzz outcomes (tests/fuzz_harness.py)")
    terminalreporter.write_line(fuzz_harness.table(fuzz_harness.COUNTS))


def pytest_sessionfinish(session, exitstatus):
    folder = os.environ.get("NLREF_FUZZ_COUNTS")
    if folder and fuzz_harness.COUNTS:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(folder).mkdir(parents=True, exist_ok=True)
        data = {api: dict(c) for api, c in fuzz_harness.COUNTS.items()}
        (Path(folder) / f"counts-{worker}.json").write_text(json.dumps(data, indent=1))
