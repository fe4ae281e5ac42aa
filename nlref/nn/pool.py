"""Max, average and global average pooling for 1-D, 2-D and 3-D feature maps.

The C2D/I3D backbones of Wang et al. (CVPR 2018, Table 1) pool with a max over
3x3x3 windows at stride 2 (pool1) and over 3x1x1 windows at stride (2, 1, 1)
(pool2, time only); the non-local block subsamples phi and g with a (1, 2, 2)
max-pool (Sec. 3.3); the network ends with a global average pool.  Windows are
visited one kernel offset at a time, each offset a dense strided slice of the
padded input, so there is no per-pixel loop and the backward needs no
scatter-add (see :mod:`nlref.nn.conv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_namespace
from ._common import (
    check_layer_input,
    inner_slices,
    offsets,
    output_shape,
    pad_spatial,
    window_config,
    window_slices,
)

__all__ = [
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
]


def _pool_config(x: Any, kernel_size: Any, stride: Any, padding: Any, layer: str, check: bool):
    n = check_layer_input(x, "x") if check else x.ndim - 2
    k, s, p, d = window_config(n, kernel_size, kernel_size if stride is None else stride, padding)
    if check and any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(
            f"{layer}: padding must be at most half the kernel size on every axis, "
            f"received padding {p} for kernel_size {k}"
        )
    return k, s, p, d, output_shape(x.shape[2:], k, s, p, d)


def max_pool_forward(
    x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0, check: bool = True
) -> tuple[Any, tuple]:
    """Max over windows: ``out[n, c, i] = max_k x_pad[n, c, i * s + k]``.

    Parameters
    ----------
    x : ndarray, shape (N, C, *S), 1 to 3 spatial axes
    kernel_size : int or tuple
        Window size per spatial axis, e.g. ``(3, 3, 3)`` or ``(3, 1, 1)``.
    stride : int or tuple, optional
        Default: ``kernel_size`` (non-overlapping windows).
    padding : int or tuple
        Padded with ``-inf``, so padding never wins the max; at most half the
        kernel size (as in PyTorch), so no window is padding only.
    check : bool
        Validate the arguments (the default); False when the caller already did.

    Returns
    -------
    out : ndarray, shape (N, C, *O)
    cache : tuple
    """
    k, s, p, d, o_shape = _pool_config(x, kernel_size, stride, padding, "max_pool_forward", check)
    x_pad = pad_spatial(x, p, value=-np.inf)
    xp = get_namespace(x)
    out = None
    for off in offsets(k):
        window = x_pad[window_slices(off, o_shape, s, d)]
        out = window.copy() if out is None else xp.maximum(out, window, out=out)
    return out, (x_pad, out, tuple(x.shape), k, s, p, d, o_shape)


def max_pool_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """Route ``dout`` to the arg-max of each window (the first one on ties).

    ``dx_pad[i * s + k] += dout[i]`` for the first offset ``k`` with
    ``x_pad[i * s + k] == out[i]``; found offset by offset with a mask of the
    windows already served, so ties never double the gradient.

    Returns
    -------
    dx : ndarray, shape (N, C, *S)
    grads : dict
        Empty: pooling has no parameters.
    """
    x_pad, out, x_shape, k, s, p, d, o_shape = cache
    xp = get_namespace(dout)
    dx_pad = xp.zeros(x_pad.shape, dtype=dout.dtype)
    taken = xp.zeros(out.shape, dtype=bool)
    for off in offsets(k):
        sl = window_slices(off, o_shape, s, d)
        mask = (x_pad[sl] == out) & ~taken
        dx_pad[sl] += dout * mask
        taken |= mask
    return xp.ascontiguousarray(dx_pad[inner_slices(x_shape[2:], p)]), {}


def avg_pool_forward(
    x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0, check: bool = True
) -> tuple[Any, tuple]:
    """Mean over windows, ``out[n, c, i] = 1/K sum_k x_pad[n, c, i * s + k]``.

    Zero padding counts in the mean (``K = prod(kernel_size)`` always; PyTorch's
    ``count_include_pad=True``).  Arguments as in :func:`max_pool_forward`.
    """
    k, s, p, d, o_shape = _pool_config(x, kernel_size, stride, padding, "avg_pool_forward", check)
    x_pad = pad_spatial(x, p)
    out = get_namespace(x).zeros(tuple(x.shape[:2]) + o_shape, dtype=x.dtype)
    for off in offsets(k):
        out += x_pad[window_slices(off, o_shape, s, d)]
    out *= x.dtype.type(1.0 / np.prod(k))
    return out, (tuple(x.shape), x_pad.shape, k, s, p, d, o_shape)


def avg_pool_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """``dx_pad[i * s + k] += dout[i] / K`` for every offset ``k``; returns ``(dx, {})``."""
    x_shape, pad_shape, k, s, p, d, o_shape = cache
    xp = get_namespace(dout)
    dx_pad = xp.zeros(pad_shape, dtype=dout.dtype)
    share = dout * dout.dtype.type(1.0 / np.prod(k))
    for off in offsets(k):
        dx_pad[window_slices(off, o_shape, s, d)] += share
    return xp.ascontiguousarray(dx_pad[inner_slices(x_shape[2:], p)]), {}


def global_avg_pool_forward(x: Any, *, check: bool = True) -> tuple[Any, tuple]:
    """Mean over all spatial positions: ``(N, C, *S) -> (N, C)``; ``check=False`` skips validating ``x``."""
    n = check_layer_input(x, "x") if check else x.ndim - 2
    return x.mean(axis=tuple(range(2, 2 + n))), (tuple(x.shape),)


def global_avg_pool_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """``dx[n, c, i] = dout[n, c] / P`` (P spatial positions); returns ``(dx, {})``."""
    (x_shape,) = cache
    xp = get_namespace(dout)
    P = int(np.prod(x_shape[2:]))
    scaled = (dout * dout.dtype.type(1.0 / P)).reshape(x_shape[:2] + (1,) * (len(x_shape) - 2))
    return xp.broadcast_to(scaled, x_shape).copy(), {}
