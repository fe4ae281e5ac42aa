"""Argument checks of the non-local operation, run once at its public boundary.

:func:`nlref.nn.nonlocal_op_forward` calls :func:`validate_op_args` before any
work (unless ``check=False``) and then trusts its inputs.  The constants here are
the operation's vocabulary; :mod:`nlref.nn.nonlocal_op` re-exports them.
"""

from __future__ import annotations

import numpy as np

from ..._validation import check_array
from ...backend import get_namespace

__all__ = [
    "NONLOCAL_MODES",
    "MEMORY_FORMS",
    "EXP_MODES",
    "AUTO_DENSE_MAX_ELEMENTS",
    "DEFAULT_CHUNK_SIZE",
    "validate_op_args",
]

#: The four instantiations of f (Sec. 3.2); also the block's ``mode``.
NONLOCAL_MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
MEMORY_FORMS = ("auto", "dense", "chunked")
EXP_MODES = ("gaussian", "embedded_gaussian")
#: ``memory="auto"`` switches to the chunked form above this many affinity entries
#: (N * Nq * Nk): 2**24 entries are 64 MiB in float32, 128 MiB in float64.
AUTO_DENSE_MAX_ELEMENTS = 2**24
#: Side of the (queries x keys) tiles of the chunked form: each working buffer
#: holds N * chunk_size**2 entries (4 MiB per batch element in float32).
DEFAULT_CHUNK_SIZE = 1024


def validate_op_args(query, key, value, f, normalize, scale, key_bias, mask, w_f, memory, chunk_size):
    """All the checks of :func:`nlref.nn.nonlocal_op_forward`, before any work; returns ``xp``."""
    for a, name in ((query, "query"), (key, "key"), (value, "value")):
        check_array(a, name)
        if a.ndim != 3:
            raise ValueError(f"{name} must be 3-D (N, positions, channels), received shape {tuple(a.shape)}")
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating array, received dtype {a.dtype}")
    xp = get_namespace(query, key, value, key_bias, mask, w_f)  # TypeError on mixed backends
    for v, name, allowed in ((f, "f", NONLOCAL_MODES), (memory, "memory", MEMORY_FORMS)):
        if v not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, received {v!r}")
    n, nq, d = query.shape
    nk = key.shape[1]
    if tuple(key.shape) != (n, nk, d) or tuple(value.shape[:2]) != (n, nk):
        raise ValueError(
            f"key (N, Nk, d) and value (N, Nk, c) must match query (N, Nq, d) = "
            f"{tuple(query.shape)}, received key {tuple(key.shape)}, value {tuple(value.shape)}"
        )
    if nk == 0:
        raise ValueError(
            f"key and value must have at least one position (Nk >= 1), received key shape {tuple(key.shape)}"
        )
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            f"query, key, value must share one dtype, received {query.dtype}, {key.dtype}, {value.dtype}"
        )
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, received {normalize!r}")
    if f in EXP_MODES and not normalize:
        raise ValueError(
            "normalize=False is not allowed for the Gaussian functions: the raw sum of exp overflows"
        )
    if f not in EXP_MODES and (scale is not None or key_bias is not None):
        raise ValueError(f"scale and key_bias apply to the Gaussian functions only, received f={f!r}")
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale)
    ):
        raise TypeError(f"scale must be None or a finite real number, received {scale!r}")
    if (f == "concatenation") != (w_f is not None):
        raise ValueError(
            f"w_f, the (2 d,) weight of ReLU(w_f^T [query_i, key_j]), is required by "
            f"f='concatenation' and used by it only; received f={f!r}, w_f={type(w_f).__name__}"
        )
    _check_optional_arrays(query, key, f, key_bias, mask, w_f, memory)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, received {chunk_size!r}")
    return xp


def _check_optional_arrays(query, key, f, key_bias, mask, w_f, memory):
    """Shapes and dtypes of key_bias (N, Nk), mask (Nq, Nk) and w_f (2 d,); a mask keeps a key per row."""
    n, nq, d = query.shape
    nk = key.shape[1]
    optional = (
        (key_bias, "key_bias", (n, nk), query.dtype),
        (mask, "mask", (nq, nk), bool),
        (w_f, "w_f", (2 * d,), query.dtype),
    )
    for a, name, shape, dtype in optional:
        if a is not None:
            check_array(a, name)
            if tuple(a.shape) != shape or a.dtype != dtype:
                raise ValueError(
                    f"{name} must have shape {shape} and dtype {np.dtype(dtype)}, "
                    f"received shape {tuple(a.shape)} dtype {a.dtype}"
                )
    if mask is not None and not bool(mask.any(axis=1).all()):
        raise ValueError("mask must allow at least one key position for every query position")
    if mask is not None and f == "dot_product" and memory == "chunked":
        raise ValueError(
            "memory='chunked' computes the dot product as query (key^T value) / Nk, "
            "which cannot apply a mask: use memory='dense' or 'auto' with a mask"
        )
