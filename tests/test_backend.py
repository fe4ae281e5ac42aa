"""Specification of nlref.backend: namespaces, conversions, dtype policy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from skimage import img_as_float

from nlref import backend
from nlref.backend import (
    PeakMemory,
    as_float_image,
    asarray,
    backend_report,
    cupy_available,
    float_dtype_for,
    get_namespace,
    ndimage_for,
    to_numpy,
)

PACKAGE = Path(backend.__file__).resolve().parent


def test_get_namespace_of_numpy_arrays_is_numpy():
    assert get_namespace(np.zeros(3), np.ones((2, 2))) is np


def test_get_namespace_ignores_scalars_and_none():
    assert get_namespace(None, 3, 2.5, np.float32(1), np.zeros(2)) is np
    assert get_namespace() is np


def test_get_namespace_returns_backend_of_device_arrays(xp):
    assert get_namespace(xp.zeros(3), None, 1.0) is xp


@pytest.mark.gpu
def test_get_namespace_rejects_mixed_backends(xp):
    if xp is np:
        pytest.skip("needs a CuPy array to mix with NumPy")
    with pytest.raises(TypeError, match=r"numpy\.ndarray.*cupy"):
        get_namespace(np.zeros(2), xp.zeros(2))


def test_mixed_backend_error_names_both_types(fake_cupy_array):
    # a stand-in whose type lives in module "cupy" exercises the check without a GPU
    with pytest.raises(TypeError) as info:
        get_namespace(np.zeros(2), fake_cupy_array(np.zeros(2, np.float32)))
    message = str(info.value)
    assert "numpy.ndarray" in message and "cupy.ndarray" in message


def test_ndimage_for_numpy_is_scipy_ndimage():
    assert ndimage_for(np) is scipy.ndimage


def test_ndimage_for_backend_filters_like_scipy(xp):
    image = np.arange(25, dtype=np.float64).reshape(5, 5)
    got = to_numpy(ndimage_for(xp).uniform_filter(xp.asarray(image), size=3, mode="reflect"))
    np.testing.assert_allclose(got, scipy.ndimage.uniform_filter(image, size=3, mode="reflect"))


def test_to_numpy_returns_numpy_from_any_backend(xp):
    out = to_numpy(xp.arange(4))
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, np.arange(4))


def test_to_numpy_accepts_lists():
    np.testing.assert_array_equal(to_numpy([1, 2]), np.array([1, 2]))


def test_asarray_moves_to_requested_backend(xp):
    out = asarray(np.arange(3), xp=xp, dtype=np.float32)
    assert get_namespace(out) is xp and out.dtype == np.float32
    back = asarray(out, xp="numpy")
    assert type(back) is np.ndarray


def test_asarray_rejects_unknown_backend_name():
    with pytest.raises(ValueError, match="'numpy' or 'cupy'"):
        asarray([1], xp="torch")


def test_cupy_available_is_a_bool():
    assert isinstance(cupy_available(), bool)


def test_backend_report_lists_versions():
    report = backend_report()
    assert report["numpy"] == np.__version__
    assert "scipy" in report and "cupy" in report and "python" in report
    if not cupy_available():
        assert report["cupy"] in ("not installed",) or report["gpu"] == "no CUDA device found"


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.uint8, np.float64),
        (np.uint16, np.float64),
        (np.int16, np.float64),
        (np.bool_, np.float64),
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
    ],
)
def test_float_dtype_policy(dtype, expected):
    assert float_dtype_for(dtype) == expected


def test_float_dtype_rejects_complex():
    with pytest.raises(TypeError, match="complex"):
        float_dtype_for(np.complex64)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int8, np.float32])
def test_as_float_image_matches_skimage_img_as_float(xp, dtype, rng):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        image = rng.random((6, 7)).astype(dtype)
    else:
        image = rng.integers(info.min, info.max, size=(6, 7), endpoint=True).astype(dtype)
    got = to_numpy(as_float_image(xp.asarray(image)))
    want = img_as_float(image)
    assert got.dtype == float_dtype_for(dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_as_float_image_preserve_range_keeps_values(xp):
    image = xp.asarray(np.array([[0, 128, 255]], dtype=np.uint8))
    got = to_numpy(as_float_image(image, preserve_range=True))
    np.testing.assert_array_equal(got, [[0.0, 128.0, 255.0]])


def test_peak_memory_sees_a_large_allocation(xp):
    with PeakMemory(xp) as pm:
        a = xp.ones(2_000_000, dtype=xp.float64)
        del a
    assert pm.peak >= 16_000_000


def test_only_backend_imports_cupy():
    pattern = re.compile(r"^\s*(import\s+cupy|from\s+cupy|import\s+cupyx|from\s+cupyx)", re.M)
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "backend.py" and pattern.search(p.read_text())
    ]
    assert offenders == [], f"only nlref/backend.py may import cupy; found in {offenders}"


def test_package_imports_without_cupy():
    code = (
        "import sys; sys.modules['cupy'] = None; sys.modules['cupyx'] = None\n"
        "import nlref, nlref.backend\n"
        "assert nlref.backend.cupy_available() is False\n"
        "assert nlref.backend.get_namespace(__import__('numpy').zeros(1)).__name__ == 'numpy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_blas_threads_reads_threadpoolctl_or_else_the_environment(monkeypatch):
    import builtins
    import os

    from nlref.backend import blas_threads

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert blas_threads() == (os.cpu_count() or 1)  # OpenBLAS's default: every core
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert blas_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # read first by OpenBLAS
    assert blas_threads() == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "many")  # not a count: the next variable
    assert blas_threads() == 3
