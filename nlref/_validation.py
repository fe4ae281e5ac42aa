"""Shared argument checks used at nlref's public boundaries.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the
argument, says what was expected and what was received.  Internal helpers
trust their inputs; only public functions call these, once, before any work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import get_namespace


def check_array(x: Any, name: str) -> None:
    """Require a NumPy or CuPy ndarray."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be a NumPy or CuPy array, received {type(x).__name__}")


def check_ndim(x: Any, name: str, allowed: Sequence[int]) -> None:
    """Require ``x.ndim`` to be one of ``allowed``."""
    if x.ndim not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ValueError(f"{name} must have {want} dimensions, received shape {tuple(x.shape)} ({x.ndim}-D)")


def check_finite(x: Any, name: str) -> None:
    """Require every element of a floating array to be finite (no NaN/inf)."""
    if x.dtype.kind in "fc":
        xp = get_namespace(x)
        if not bool(xp.isfinite(x).all()):
            n_bad = int((~xp.isfinite(x)).sum())
            raise ValueError(f"{name} must be finite, received {n_bad} NaN/inf value(s)")


def check_positive(value: Any, name: str, *, strict: bool = True) -> None:
    """Require a real number > 0 (or >= 0 with ``strict=False``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, received {type(value).__name__}")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        want = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be finite and {want}, received {value!r}")


def as_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints to a tuple of ``n`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    try:
        vals = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, received {value!r}") from None
    if len(vals) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, received {value!r}")
    return tuple(int(v) for v in vals)


def check_channel_axis(channel_axis: Any, ndim: int, name: str = "channel_axis") -> int | None:
    """Normalise ``channel_axis`` (None or an int in [-ndim, ndim)) to a positive int."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
        raise TypeError(f"{name} must be None or an int, received {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"{name}={channel_axis} is out of range for an image with {ndim} dimensions")
    return int(channel_axis) % ndim
