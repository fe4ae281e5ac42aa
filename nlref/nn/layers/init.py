"""Parameter initialisers: He (MSRA) normal, Gaussian, zeros, ones.

The video networks of Wang et al. (CVPR 2018) initialise their convolutions
with He et al.'s MSRA normal (ICCV 2015, ``std = sqrt(2 / fan_in)``), the
non-local block's 1x1x1 convolutions with a Gaussian of std 0.01, and the
BatchNorm after W_z with gamma = 0 (Sec. 3.3; the official Caffe2 code).
Random numbers are drawn on the host from a ``numpy.random.Generator`` and then
moved to the requested backend, so a seed gives the same weights on NumPy and
CuPy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ...backend import asarray

__all__ = ["as_generator", "he_normal", "gaussian", "zeros", "ones"]


def as_generator(rng: Any) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a generator (returned as is) or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, received {type(rng).__name__}")


def _float_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, received {dt}")
    return dt


def _shape(shape: Any) -> tuple[int, ...]:
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must have non-negative sizes, received {shape}")
    return shape


def gaussian(shape: Any, std: float, rng: Any, *, dtype: Any = np.float32, xp: ModuleType = np) -> Any:
    """Array of ``N(0, std^2)`` samples (e.g. ``std=0.01`` for the non-local block's convs)."""
    shape, dt = _shape(shape), _float_dtype(dtype)
    if not np.isfinite(std) or std < 0:
        raise ValueError(f"std must be finite and >= 0, received {std!r}")
    return asarray((as_generator(rng).standard_normal(shape) * std).astype(dt), xp=xp)


def he_normal(
    shape: Any, rng: Any, *, fan_in: int | None = None, dtype: Any = np.float32, xp: ModuleType = np
) -> Any:
    """MSRA / He normal: ``N(0, 2 / fan_in)``, keeping ReLU activations' variance (He et al., ICCV 2015).

    ``fan_in`` defaults to ``prod(shape[1:])`` (C_in times the kernel size for a
    conv kernel ``(C_out, C_in, *k)``).
    """
    shape = _shape(shape)
    if fan_in is None:
        if len(shape) < 2:
            raise ValueError(f"he_normal: pass fan_in for a shape with fewer than 2 axes, received {shape}")
        fan_in = int(np.prod(shape[1:]))
    if fan_in <= 0:
        raise ValueError(f"fan_in must be > 0, received {fan_in}")
    return gaussian(shape, float(np.sqrt(2.0 / fan_in)), rng, dtype=dtype, xp=xp)


def zeros(shape: Any, *, dtype: Any = np.float32, xp: ModuleType = np) -> Any:
    """Array of zeros (biases, BN beta, the non-local block's zero-init BN gamma)."""
    return xp.zeros(_shape(shape), dtype=_float_dtype(dtype))


def ones(shape: Any, *, dtype: Any = np.float32, xp: ModuleType = np) -> Any:
    """Array of ones (BN gamma, running variance)."""
    return xp.ones(_shape(shape), dtype=_float_dtype(dtype))
