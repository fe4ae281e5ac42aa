"""Max, average and global average pooling for 1-D, 2-D and 3-D feature maps.

The C2D/I3D backbones of Wang et al. (CVPR 2018, Table 1) pool with a max over
3x3x3 windows at stride 2 (pool1) and over 3x1x1 windows at stride (2, 1, 1)
(pool2, time only); the non-local block subsamples phi and g with a (1, 2, 2)
max-pool (Sec. 3.3); the network ends with a global average pool.  The max-pool sees
all windows at once, as a strided view of the padded input gathered with one
copy (:func:`nlref.nn.layers._common.windows`); its backward sends each output's
gradient to the arg-max of its window with one scatter-add.  The average pool
visits one kernel offset at a time, each offset a dense strided slice of the
padded input (see :mod:`nlref.nn.layers.conv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace
from ._common import (
    check_layer_input,
    inner_slices,
    offsets,
    output_shape,
    pad_spatial,
    window_config,
    window_index,
    window_slices,
    windows,
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
        Holds the arg-max of every window, ``(N, C, *O)`` integers; the forward
        briefly holds every window, ``(prod(kernel_size), N, C, *O)``.
    """
    k, s, p, d, o_shape = _pool_config(x, kernel_size, stride, padding, "max_pool_forward", check)
    x_pad = pad_spatial(x, p, value=-np.inf)
    xp, n = get_namespace(x), len(k)
    win = windows(x_pad, k, s, d, o_shape)  # (N, C, *O, *k) view
    # (K, N, C, *O), one copy: offsets first, so the max and arg-max below run across whole arrays
    win = win.transpose(tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2 + n))).reshape(
        (-1,) + win.shape[: 2 + n]
    )
    out = win.max(axis=0)
    # arg-max, the first maximum on ties (kernel offsets in C order): K - 1 minus the largest
    # K - 1 - k over the offsets k that reach the max (NumPy's argmax loop is 4x slower than this)
    K = win.shape[0]
    rev = xp.arange(K - 1, -1, -1, dtype=np.int32).reshape((K,) + (1,) * out.ndim)
    arg = (K - 1) - ((win == out) * rev).max(axis=0)
    return out, (x_pad.shape, arg, tuple(x.shape), k, s, p, d, o_shape)


def max_pool_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """Route ``dout`` to the arg-max of each window (the first one on ties).

    ``dx_pad[i * s + k*] += dout[i]`` with ``k*`` the first offset where
    ``x_pad[i * s + k] == out[i]``, so ties never double the gradient.  The flat
    index of every window element is that element of the windows of
    ``arange(x_pad.size)``: the window's first index plus the offset of ``k*``;
    overlapping windows add up in one scatter-add.

    Returns
    -------
    dx : ndarray, shape (N, C, *S)
    grads : dict
        Empty: pooling has no parameters.
    """
    pad_shape, arg, x_shape, k, s, p, d, o_shape = cache
    xp, n = get_namespace(dout), len(k)
    index = window_index(xp, pad_shape, k, s, d, o_shape)  # (N, C, *O, *k)
    first = index[(Ellipsis,) + (0,) * n]  # (N, C, *O): flat index of each window's first element
    step = index[(0,) * (2 + n)].reshape(-1)  # (K,): flat offset of each kernel offset from the first
    dx_pad = xp.zeros(pad_shape, dtype=dout.dtype)
    xp.add.at(dx_pad.reshape(-1), first + step[arg], dout)
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
