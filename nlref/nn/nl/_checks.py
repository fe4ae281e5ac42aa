"""Argument checks of the non-local operation and block, run once at their public boundary.

:func:`nlref.nn.nl.nonlocal_op_forward` calls :func:`validate_op_args`, and
:func:`nlref.nn.nl.nonlocal_block_forward` calls :func:`check_block_options` and
:func:`check_block_params`, before any work (unless ``check=False``); then they
trust their inputs, down to the non-local operation.  Each check raises a
``ValueError``/``TypeError`` naming the argument, what was expected and what was
received.  The constants here are the vocabulary of the operation and the block
(public in :mod:`nlref.nn.nl`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import as_tuple, check_array
from ...backend import get_namespace
from ..layers._common import check_layer_input
from .window import as_window

__all__ = [
    "NONLOCAL_MODES",
    "MEMORY_FORMS",
    "EXP_MODES",
    "AUTO_DENSE_MAX_ELEMENTS",
    "DEFAULT_CHUNK_SIZE",
    "validate_op_args",
    "POOL_ORDERS",
    "BLOCK_MEMORY_FORMS",
    "check_block_options",
    "check_block_params",
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


# ----------------------------------------------------------------------------- the block

POOL_ORDERS = ("before_conv", "after_conv")
#: The block's memory forms: the operation's, plus ``"offsets"``, the window visited offset by
#: offset (:mod:`nlref.nn.nl.offsets`; Gaussian modes, a window, no subsampling).
BLOCK_MEMORY_FORMS = MEMORY_FORMS + ("offsets",)


def check_block_params(x: Any, params: dict, state: dict, mode: str) -> bool:
    """Keys, shapes and dtypes of params/state against x and mode; returns whether the block has BN."""
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise TypeError(
            f"params and state must be dicts of arrays, "
            f"received {type(params).__name__}, {type(state).__name__}"
        )
    get_namespace(x, *params.values(), *state.values())  # TypeError on a NumPy/CuPy mix
    c = x.shape[1]
    if "g.w" not in params or getattr(params["g.w"], "ndim", 0) != 2:
        raise ValueError(
            f"params must contain 'g.w' of shape (inner_channels, {c}), received keys {sorted(params)}"
        )
    ci = params["g.w"].shape[0]
    bn = "bn.gamma" in params
    expected = {"g.w": (ci, c), "w_z.w": (c, ci), "g.b": (ci,), "w_z.b": (c,)}
    if mode != "gaussian":
        expected.update({"theta.w": (ci, c), "phi.w": (ci, c), "theta.b": (ci,), "phi.b": (ci,)})
    if mode == "concatenation":
        expected["concat.w"] = (2 * ci,)
    if bn:
        expected.update({"bn.gamma": (c,), "bn.beta": (c,)})
    missing = sorted(set(expected) - set(params) - {"g.b", "w_z.b", "theta.b", "phi.b"})
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(
            f"params do not match mode={mode!r}: missing {missing}, unexpected {extra} "
            "(build them with init_nonlocal_params(channels, mode=...))"
        )
    for key, shape in expected.items():
        a = params.get(key)
        if a is not None and tuple(a.shape) != shape:
            raise ValueError(
                f"params[{key!r}] must have shape {shape} for x with {c} channels "
                f"and inner_channels={ci}, received {tuple(a.shape)}"
            )
        if a is not None and a.dtype != x.dtype:
            raise TypeError(f"params[{key!r}] must have the dtype of x ({x.dtype}), received {a.dtype}")
    for key in ("bn.running_mean", "bn.running_var") if bn else ():
        if key not in state or tuple(state[key].shape) != (c,):
            got = tuple(state[key].shape) if key in state else "missing"
            raise ValueError(f"state[{key!r}] must have shape ({c},), received {got}")
    return bn


def check_block_options(
    x: Any, mode: str, subsample: Any, pool_order: str, scale: Any, memory: str, chunk_size: Any, window: Any
) -> tuple[int, ...] | None:
    """The block's options; returns the subsampling kernel (or None)."""
    n_spatial = check_layer_input(x, "x", min_spatial=1, max_spatial=3)
    for v, name, allowed in (
        (mode, "mode", NONLOCAL_MODES),
        (pool_order, "pool_order", POOL_ORDERS),
        (memory, "memory", BLOCK_MEMORY_FORMS),
    ):
        if v not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, received {v!r}")
    if scale is not None and not mode.endswith("gaussian"):
        raise ValueError(
            f"scale applies to the Gaussian modes only, received scale={scale!r} with mode={mode!r}"
        )
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale)
    ):
        raise TypeError(f"scale must be None or a finite real number, received {scale!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, received {chunk_size!r}")
    if window is not None:
        as_window(window, n_spatial)
        if mode == "dot_product" and memory == "chunked":
            raise ValueError(
                "window with mode='dot_product' needs memory='dense' or 'auto': the chunked dot "
                "product query (key^T value) / N' cannot apply a window"
            )
    if memory == "offsets" and (window is None or mode not in EXP_MODES or subsample is not None):
        raise ValueError(
            "memory='offsets' visits a window offset by offset: it needs a window, a Gaussian mode and no "
            f"subsample, received window={window!r}, mode={mode!r}, subsample={subsample!r}"
        )
    if subsample is None:
        return None
    kernel = as_tuple(subsample, n_spatial, "subsample")
    if any(k < 1 for k in kernel):
        raise ValueError(f"subsample must be >= 1 on every axis, received {subsample!r}")
    if any(k > s for k, s in zip(kernel, x.shape[2:])):
        raise ValueError(
            f"subsample kernel {kernel} is larger than the feature map {tuple(x.shape[2:])} on some axis"
        )
    return kernel
