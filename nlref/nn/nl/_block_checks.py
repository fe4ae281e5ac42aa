"""Argument checks of the non-local block, run once at its public boundary.

:func:`nlref.nn.nonlocal_block_forward` calls these before any work (unless
``check=False``) and then trusts its inputs, down to the non-local operation.
Each check raises a ``ValueError``/``TypeError`` naming the argument, what was
expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import as_tuple
from ...backend import get_namespace
from ..layers._common import check_layer_input
from ._checks import MEMORY_FORMS, NONLOCAL_MODES
from .window import as_window

__all__ = ["POOL_ORDERS", "check_block_options", "check_block_params"]

POOL_ORDERS = ("before_conv", "after_conv")


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
        (memory, "memory", MEMORY_FORMS),
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
