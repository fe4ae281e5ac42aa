"""NumPy / CuPy backend layer: the one module of nlref that knows about CuPy.

Every algorithm in nlref starts with ``xp = get_namespace(x, ...)`` and then
uses only the API that NumPy and CuPy share, so the same lines of code run on
the CPU and on the GPU.  ``scipy.ndimage`` and ``cupyx.scipy.ndimage`` are
reached through :func:`ndimage_for`.  Nothing else in the package imports
``cupy``; a test scans the source tree to keep it so.

Data is never moved between devices silently: :func:`get_namespace` refuses a
mix of NumPy and CuPy arrays, and only :func:`to_numpy` / :func:`asarray` copy
across, when a caller asks for it.
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "get_namespace",
    "ndimage_for",
    "to_numpy",
    "asarray",
    "cupy_available",
    "is_cupy_array",
    "backend_report",
    "blas_threads",
    "float_dtype_for",
    "as_float_image",
    "synchronize",
    "available_backends",
    "namespace_by_name",
]


@functools.lru_cache(maxsize=1)
def _import_cupy() -> ModuleType | None:
    """Import CuPy once; ``None`` when it is not installed or fails to load."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # ImportError, or a CUDA library that fails to load
        return None


def is_cupy_array(x: Any) -> bool:
    """True when ``x`` is a ``cupy.ndarray`` (without importing CuPy needlessly)."""
    return type(x).__module__.split(".")[0] == "cupy"


def get_namespace(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) of the given arrays.

    Parameters
    ----------
    *arrays : array_like or scalar or None
        NumPy arrays, CuPy arrays, Python/NumPy scalars or ``None``.  Scalars
        and ``None`` carry no backend and are ignored.

    Returns
    -------
    module
        ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Raises
    ------
    TypeError
        If NumPy and CuPy arrays are mixed: nlref never moves data between
        devices behind the caller's back.
    """
    seen_numpy: type | None = None
    seen_cupy: type | None = None
    for a in arrays:
        if a is None or isinstance(a, (bool, int, float, complex, np.generic)):
            continue
        if is_cupy_array(a):
            seen_cupy = type(a)
        elif isinstance(a, np.ndarray):
            seen_numpy = type(a)
    if seen_cupy is not None and seen_numpy is not None:
        raise TypeError(
            "mixed array backends: expected all arrays on one device, received "
            f"both {seen_numpy.__module__}.{seen_numpy.__name__} and "
            f"{seen_cupy.__module__}.{seen_cupy.__name__}; move them explicitly "
            "with nlref.backend.asarray(x, xp=...) or nlref.backend.to_numpy(x)"
        )
    if seen_cupy is not None:
        return _import_cupy()  # type: ignore[return-value]
    return np


def namespace_by_name(name: str) -> ModuleType:
    """Return ``numpy`` or ``cupy`` from its name (``"numpy"`` / ``"cupy"``).

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For ``"cupy"`` when CuPy or a CUDA device is not available.
    """
    if name in ("numpy", "np", "cpu"):
        return np
    if name in ("cupy", "cp", "gpu", "cuda"):
        if not cupy_available():
            raise RuntimeError(
                "backend 'cupy' requested but CuPy or a CUDA device is not available; "
                "install the 'gpu' extra (pip install 'nlref[gpu]') on a machine with an NVIDIA GPU"
            )
        return _import_cupy()  # type: ignore[return-value]
    raise ValueError(f"backend must be 'numpy' or 'cupy', received {name!r}")


def ndimage_for(xp: ModuleType) -> ModuleType:
    """Return ``scipy.ndimage`` for NumPy or ``cupyx.scipy.ndimage`` for CuPy."""
    if xp is np:
        import scipy.ndimage

        return scipy.ndimage
    import cupyx.scipy.ndimage  # type: ignore[import-not-found]

    return cupyx.scipy.ndimage


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array, copying from the GPU when it is a CuPy array."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def asarray(x: Any, xp: ModuleType | str | None = None, dtype: Any = None) -> Any:
    """Convert ``x`` to an array of the namespace ``xp`` (explicit device move).

    Parameters
    ----------
    x : array_like
        NumPy array, CuPy array, list or scalar.
    xp : module or {"numpy", "cupy"}, optional
        Target namespace; default keeps ``x``'s own backend (NumPy for lists).
    dtype : dtype, optional
        Target dtype.
    """
    if isinstance(xp, str):
        xp = namespace_by_name(xp)
    if xp is None:
        xp = get_namespace(x)
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


@functools.lru_cache(maxsize=1)
def cupy_available() -> bool:
    """True when CuPy imports *and* at least one CUDA device is present."""
    cp = _import_cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def available_backends() -> list[str]:
    """Names of the backends usable on this machine (``"numpy"`` always first)."""
    return ["numpy"] + (["cupy"] if cupy_available() else [])


def synchronize(xp: ModuleType) -> None:
    """Wait for queued GPU work to finish (no-op for NumPy); used by timers."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


#: The variables that set the BLAS thread count, in the order OpenBLAS reads them (first set wins).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def blas_threads() -> int:
    """The number of threads NumPy's BLAS uses, as recorded next to every figure and in every run.

    From ``threadpoolctl`` when it is installed (the largest ``num_threads`` of the loaded
    BLAS libraries); otherwise from the environment, the first of :data:`BLAS_THREAD_VARS`
    that holds a positive int; otherwise ``os.cpu_count()``, OpenBLAS's default.  The
    variables are read by the BLAS when NumPy is imported, so set them before starting Python
    (``make test`` sets all three to 1).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        counts = [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"]
        if counts:
            return max(counts)
    for var in BLAS_THREAD_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def backend_report() -> dict[str, Any]:
    """Versions and devices of the available backends, as a plain dict.

    Used by ``nlref info``.  Never raises: missing pieces are reported as such.
    """
    import scipy

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas_threads": blas_threads(),
        "cupy": None,
        "gpu": None,
    }
    try:
        import skimage

        report["scikit-image"] = skimage.__version__
    except Exception:  # pragma: no cover - core dependency
        report["scikit-image"] = None
    cp = _import_cupy()
    if cp is None:
        report["cupy"] = "not installed"
        return report
    report["cupy"] = cp.__version__
    if not cupy_available():
        report["gpu"] = "no CUDA device found"
        return report
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    free, total = cp.cuda.runtime.memGetInfo()
    name = props["name"]
    report["gpu"] = {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "device_id": int(dev.id),
        "compute_capability": str(dev.compute_capability),
        "memory_total_gib": round(total / 2**30, 2),
        "memory_free_gib": round(free / 2**30, 2),
        "cuda_runtime": int(cp.cuda.runtime.runtimeGetVersion()),
    }
    return report


def float_dtype_for(dtype: Any) -> np.dtype:
    """Floating dtype that nlref computes in for an input of ``dtype``.

    float32 stays float32 and float64 stays float64 (float16 is promoted to
    float32); integers and booleans become float64, as scikit-image's
    ``img_as_float`` does.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 or dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind == "f":
        return np.dtype(np.float64)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"image dtype must be boolean, integer or floating, received {dtype}")


def as_float_image(image: Any, *, preserve_range: bool = False) -> Any:
    """Convert an image to floating point following scikit-image's conventions.

    Parameters
    ----------
    image : ndarray (NumPy or CuPy)
        Input image of any real dtype.
    preserve_range : bool
        If False (default), integer images are rescaled like ``img_as_float``:
        unsigned types to [0, 1], signed types to [-1, 1], booleans to {0, 1}.
        If True, values are kept as they are and only the dtype changes.

    Returns
    -------
    ndarray
        float32 for float16/float32 input, float64 otherwise; same backend.
    """
    xp = get_namespace(image)
    dtype = image.dtype
    out_dtype = float_dtype_for(dtype)
    if dtype.kind == "f" or preserve_range or dtype.kind == "b":
        return image.astype(out_dtype, copy=False)
    info = np.iinfo(dtype)
    out = image.astype(out_dtype)
    if dtype.kind == "u":
        return out / out_dtype.type(info.max)
    # signed: map [min, max] to [-1, 1] like skimage.img_as_float
    return xp.maximum(out / out_dtype.type(info.max), out_dtype.type(-1.0))


class PeakMemory:
    """Context manager measuring the peak bytes allocated inside its block.

    NumPy: allocations traced by :mod:`tracemalloc` (NumPy reports its data
    buffers to it).  CuPy: a wrapper around the default memory pool's allocator
    that records the largest number of bytes in use.  ``peak`` holds the
    result (bytes above what was in use when the block started).

    Examples
    --------
    >>> import numpy as np
    >>> with PeakMemory(np) as pm:
    ...     a = np.ones(1_000_000)
    >>> pm.peak >= 8_000_000
    True
    """

    def __init__(self, xp: ModuleType):
        self.xp = xp
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.xp is np:
            import tracemalloc

            self._was_tracing = tracemalloc.is_tracing()
            if not self._was_tracing:
                tracemalloc.start()
            tracemalloc.reset_peak()
            self._base = tracemalloc.get_traced_memory()[0]
        else:
            cp = self.xp
            synchronize(cp)
            pool = cp.get_default_memory_pool()
            self._pool = pool
            self._base = pool.used_bytes()
            self._max = self._base
            tracker = self

            def _malloc(size: int):  # records the running maximum of used bytes
                mem = pool.malloc(size)
                used = pool.used_bytes()
                if used > tracker._max:
                    tracker._max = used
                return mem

            cp.cuda.set_allocator(_malloc)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.xp is np:
            import tracemalloc

            self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
            if not self._was_tracing:
                tracemalloc.stop()
        else:
            synchronize(self.xp)
            self.xp.cuda.set_allocator(self._pool.malloc)
            self.peak = max(0, self._max - self._base)


__all__.append("PeakMemory")
