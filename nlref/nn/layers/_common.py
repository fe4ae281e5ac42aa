"""Argument checks and window-slicing helpers shared by the nlref.nn layers.

Every layer validates its arguments once, at its public forward, with the
checks below; the backward trusts the cache its forward built.  The window
helpers turn "kernel offset k, stride s, dilation d" into plain slices, or
into one strided view of every window at once (:func:`windows`), which is how
conv and pooling visit a window without per-pixel Python loops; the windows of
``arange`` give the flat index of every window element (:func:`window_index`),
for the scatter-adds of the backwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..._validation import as_tuple, check_array
from ...backend import get_namespace

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "replicate")


def check_float(x: Any, name: str) -> None:
    """Require a float32 or float64 NumPy/CuPy array (float16 is rejected)."""
    check_array(x, name)
    if np.dtype(x.dtype) not in _FLOATS:
        raise TypeError(
            f"{name} must be float32 or float64, received dtype {x.dtype}"
            + (
                "; float16 is not supported by nlref.nn, cast with .astype('float32')"
                if x.dtype == np.float16
                else ""
            )
        )


def check_layer_input(x: Any, name: str = "x", *, min_spatial: int = 1, max_spatial: int = 3) -> int:
    """Validate ``x: (N, C, *S)`` and return the number of spatial axes ``len(S)``."""
    check_float(x, name)
    lo, hi = 2 + min_spatial, 2 + max_spatial
    if not lo <= x.ndim <= hi:
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with {min_spatial} to {max_spatial} spatial axes "
            f"({lo}-D to {hi}-D), received shape {tuple(x.shape)} ({x.ndim}-D)"
        )
    # one pass over x, only at the public boundary (the models call the layers with check=False)
    if not bool(get_namespace(x).isfinite(x).all()):
        raise ValueError(f"{name} must be finite, received an array with NaN or inf")
    return x.ndim - 2


def check_param(
    params: Any, key: str, shape: tuple[int, ...] | None, dtype: Any, layer: str, *, required: bool = True
) -> Any:
    """Fetch ``params[key]``, requiring the given shape (None: any) and dtype; None if optional and absent."""
    if not isinstance(params, dict):
        raise TypeError(f"{layer}: params must be a dict of arrays, received {type(params).__name__}")
    if key not in params or params[key] is None:
        if required:
            raise ValueError(f"{layer}: params must contain {key!r}, received keys {sorted(params)}")
        return None
    a = params[key]
    check_float(a, f"params[{key!r}]")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(
            f"{layer}: params[{key!r}] must have shape {tuple(shape)}, received {tuple(a.shape)}"
        )
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{layer}: params[{key!r}] must have the dtype of x ({dtype}), received {a.dtype}")
    return a


def same_backend(*arrays: Any) -> Any:
    """Namespace of the arrays; TypeError on a NumPy/CuPy mix (see nlref.backend)."""
    return get_namespace(*arrays)


def window_config(
    n: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Expand int-or-tuple window arguments to ``n``-tuples and check their signs."""
    k = as_tuple(kernel_size, n, "kernel_size")
    s = as_tuple(stride, n, "stride")
    p = as_tuple(padding, n, "padding")
    d = as_tuple(dilation, n, "dilation")
    for name, vals, low in (("kernel_size", k, 1), ("stride", s, 1), ("dilation", d, 1), ("padding", p, 0)):
        if any(v < low for v in vals):
            raise ValueError(f"{name} must be >= {low} on every axis, received {vals}")
    return k, s, p, d


def output_shape(
    spatial: Sequence[int], k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int]
) -> tuple[int, ...]:
    """``O = floor((S + 2p - d (k - 1) - 1) / s) + 1`` per axis; ValueError if the window does not fit."""
    out = []
    for axis, (S, ki, si, pi, di) in enumerate(zip(spatial, k, s, p, d)):
        span = di * (ki - 1) + 1
        if span > S + 2 * pi:
            raise ValueError(
                f"kernel larger than the padded input on spatial axis {axis}: dilated kernel spans {span} "
                f"but the padded input has {S + 2 * pi} (size {S} + 2 x padding {pi})"
            )
        out.append((S + 2 * pi - span) // si + 1)
    return tuple(out)


def offsets(k: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """All kernel offsets ``(k_0, k_1, ...)`` in C order."""
    return itertools.product(*(range(ki) for ki in k))


def window_slices(
    offset: Sequence[int], out_shape: Sequence[int], s: Sequence[int], d: Sequence[int]
) -> tuple[slice, ...]:
    """Slices of the padded input seen by kernel offset ``offset`` at every output position.

    Output position ``o`` reads padded input ``o * s + offset * d``, so along each
    axis the positions form the strided slice ``[offset*d : offset*d + s*(O-1) + 1 : s]``.
    """
    return (slice(None), slice(None)) + tuple(
        slice(oi * di, oi * di + si * (O - 1) + 1, si) for oi, O, si, di in zip(offset, out_shape, s, d)
    )


def windows(x_pad: Any, k: Sequence[int], s: Sequence[int], d: Sequence[int], o_shape: Sequence[int]) -> Any:
    """Every window of ``x_pad: (A, B, *S_pad)`` as a view ``(A, B, *O, *k)``: no copy.

    ``windows(...)[a, b, i, kk] = x_pad[a, b, i * s + kk * d]``; the same numbers
    as the :func:`window_slices` of every offset, stacked on the last axes.  A
    reshape of it to ``(..., prod(k))`` gathers them with one copy (im2col).
    """
    xp, n = get_namespace(x_pad), len(k)
    span = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
    view = xp.lib.stride_tricks.sliding_window_view(x_pad, span, axis=tuple(range(2, 2 + n)))
    positions = tuple(slice(0, si * (O - 1) + 1, si) for si, O in zip(s, o_shape))
    return view[(slice(None), slice(None)) + positions + tuple(slice(None, None, di) for di in d)]


def window_index(
    xp: Any,
    pad_shape: Sequence[int],
    k: Sequence[int],
    s: Sequence[int],
    d: Sequence[int],
    o_shape: Sequence[int],
) -> Any:
    """Flat index into an array of ``pad_shape`` of every window element: :func:`windows` of ``arange``.

    ``(A, B, *O, *k)`` integers; ``xp.add.at(dx_pad.reshape(-1), index, values)``
    adds every window element back onto the position it was read from (col2im
    as one scatter-add; overlapping windows add up).
    """
    return windows(xp.arange(int(np.prod(pad_shape))).reshape(tuple(pad_shape)), k, s, d, o_shape)


def pad_spatial(x: Any, p: Sequence[int], value: float = 0.0) -> Any:
    """Pad the spatial axes of ``x: (N, C, *S)`` by ``p`` on both sides with ``value``."""
    if not any(p):
        return x
    xp = get_namespace(x)
    shape = tuple(x.shape[:2]) + tuple(S + 2 * pi for S, pi in zip(x.shape[2:], p))
    out = xp.full(shape, value, dtype=x.dtype)
    out[inner_slices(x.shape[2:], p)] = x
    return out


def padding_modes(padding_mode: Any, n: int) -> tuple[str, ...]:
    """Expand ``padding_mode`` (one of :data:`PADDING_MODES`, or one per spatial axis) to an ``n``-tuple."""
    modes = (padding_mode,) * n if isinstance(padding_mode, str) else padding_mode
    if not isinstance(modes, (tuple, list)) or len(modes) != n or any(m not in PADDING_MODES for m in modes):
        raise ValueError(
            f"padding_mode must be one of {PADDING_MODES} or a tuple of {n} of them (one per "
            f"spatial axis), received {padding_mode!r}"
        )
    return tuple(modes)


def _along(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    """``[:, ..., start:stop]`` on ``axis`` of an array."""
    return (slice(None),) * axis + (slice(start, stop),)


def replicate_borders(x_pad: Any, p: Sequence[int], modes: Sequence[str]) -> Any:
    """Overwrite, in place, the padding of each "replicate" axis of ``(., ., *S_pad)`` with its edge slice.

    ``x_pad`` is zero-padded on every axis first; axis by axis, the ``p`` slices
    before the first and after the last real one become copies of it, so corners
    repeat the corner value (``numpy.pad(mode="edge")`` on those axes).
    """
    for axis, (pi, mode) in enumerate(zip(p, modes)):
        if mode == "replicate" and pi:
            a, end = 2 + axis, x_pad.shape[2 + axis] - pi  # real slices are pi .. end - 1
            x_pad[_along(a, 0, pi)] = x_pad[_along(a, pi, pi + 1)]
            x_pad[_along(a, end, end + pi)] = x_pad[_along(a, end - 1, end)]
    return x_pad


def fold_replicated_borders(dx_pad: Any, p: Sequence[int], modes: Sequence[str]) -> Any:
    """Adjoint of :func:`replicate_borders`, in place: each border's gradient is added onto its edge slice.

    The axes are visited in reverse order, mirroring the forward; what lands in
    the padding of another axis is cropped away afterwards with the padding.
    """
    for axis in reversed(range(len(p))):
        pi = p[axis]
        if modes[axis] == "replicate" and pi:
            a, end = 2 + axis, dx_pad.shape[2 + axis] - pi
            dx_pad[_along(a, pi, pi + 1)] += dx_pad[_along(a, 0, pi)].sum(axis=a, keepdims=True)
            dx_pad[_along(a, end - 1, end)] += dx_pad[_along(a, end, end + pi)].sum(axis=a, keepdims=True)
    return dx_pad


def inner_slices(spatial: Sequence[int], p: Sequence[int]) -> tuple[slice, ...]:
    """Slices that cut the unpadded interior out of a padded ``(N, C, *S)`` array."""
    return (slice(None), slice(None)) + tuple(slice(pi, pi + S) for S, pi in zip(spatial, p))


def channel_shape(ndim: int) -> tuple[int, ...]:
    """Broadcast shape of a per-channel vector against ``(N, C, *S)``: ``(1, -1, 1, ...)``."""
    return (1, -1) + (1,) * (ndim - 2)
