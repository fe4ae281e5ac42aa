"""Local windows: restrict the keys j of a non-local operation to a neighbourhood of i.

    y_i = 1/C(x) * sum_{j in W(i)} f(x_i, x_j) g(x_j)

Non-local means has always worked this way (its *search window*, Buades, Coll,
Morel, CVPR 2005); Wang et al. (CVPR 2018) drop the window and let j run over
every position.  Putting it back, as a boolean (P, P') mask handed to
:func:`nlref.nn.nonlocal_op_forward`, is how one measures what non-locality buys
(a window of 0 frames in time is a space-only block, a window of 1 pixel is
almost a 3x3 convolution), and it is NLM's search window for the bridge
(:func:`nlref.nn.nl.search_window_mask`).

Positions of the key grid: with subsampling by a max-pool of kernel = stride s
(floor mode), key j stands for the input positions ``j*s ... j*s + s - 1`` that
were pooled into it.  Key j is in the window of query i when one of those
positions lies within the window, i.e. on every restricted axis
``j*s <= i + k`` and ``j*s + s - 1 >= i - k``.  Without subsampling (s = 1) this
is ``|j - i| <= k``; with it, ``k = 0`` means "the key cell that contains i".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["local_window_mask", "as_window"]


def as_window(window: Any, ndim: int) -> tuple[int | None, ...]:
    """Expand ``window`` (an int >= 0, or a tuple of ``ndim`` ints >= 0 / None) to a per-axis tuple.

    Raises ``TypeError``/``ValueError`` naming ``window`` otherwise.
    """

    def is_int(k):
        return isinstance(k, (int, np.integer)) and not isinstance(k, bool)

    try:
        items = (window,) * ndim if is_int(window) else tuple(window)
    except TypeError:
        raise TypeError(
            f"window must be an int or a tuple of {ndim} ints/None, received {window!r}"
        ) from None
    if len(items) != ndim or not all(k is None or (is_int(k) and k >= 0) for k in items):
        raise ValueError(
            f"window must be an int >= 0 or a tuple of {ndim} ints >= 0 or None "
            f"(one per spatial axis), received {window!r}"
        )
    return tuple(None if k is None else int(k) for k in items)


def local_window_mask(query_shape: Any, window: Any, *, stride: Any = 1, xp: Any = np) -> Any:
    """Boolean (P, P') mask, True where key j lies in the local window of query i.

    Parameters
    ----------
    query_shape : tuple of int
        Spatial shape S of the query grid, e.g. ``(T, H, W)``; P = prod(S).
    window : int or tuple of (int or None)
        Half-width k per axis: keys with ``|t_j - t_i| <= k_t``, ``|y_j - y_i| <= k_y``, ...
        (in input coordinates, see the module docstring for subsampled keys).
        ``None`` on an axis leaves it unrestricted: ``(1, None, None)`` is "+-1
        frame, whole frame".
    stride : int or tuple of int
        Subsampling kernel (= stride) of the key grid; its shape is
        ``S' = S // stride`` (floor mode, as :func:`nlref.nn.max_pool_forward`).
    xp : module
        ``numpy`` or ``cupy``: where the mask is built.

    Returns
    -------
    bool ndarray, shape (P, P')
        One byte per (query, key) pair: the mask itself is quadratic in memory.

    Raises
    ------
    ValueError
        For a bad window or stride, or when some query position would see no
        key (possible with subsampling when the pooling drops the end of an axis
        and the window is too small to reach back).
    """
    shape = tuple(int(s) for s in query_shape)
    win = as_window(window, len(shape))
    strides = (stride,) * len(shape) if isinstance(stride, (int, np.integer)) else tuple(stride)
    if len(strides) != len(shape) or any(int(s) < 1 for s in strides):
        raise ValueError(f"stride must be an int >= 1 or a tuple of {len(shape)}, received {stride!r}")
    key_shape = tuple(n // int(s) for n, s in zip(shape, strides))
    if 0 in key_shape:
        raise ValueError(f"stride {strides} is larger than the grid {shape} on some axis: no key position")
    q_coords = xp.indices(shape).reshape(len(shape), -1)  # (ndim, P)
    k_coords = xp.indices(key_shape).reshape(len(shape), -1)  # (ndim, P')
    mask = xp.ones((math.prod(shape), math.prod(key_shape)), dtype=bool)
    for axis, (k, s) in enumerate(zip(win, strides)):
        if k is None:
            continue
        i, j = xp.arange(shape[axis])[:, None], xp.arange(key_shape[axis])[None, :]
        axis_mask = (j * int(s) <= i + k) & (j * int(s) + int(s) - 1 >= i - k)  # (S_a, S'_a)
        if not bool(axis_mask.any(axis=1).all()):
            raise ValueError(
                f"window {window!r} leaves query positions on axis {axis} without a key: the "
                f"subsampled key grid {key_shape} (stride {strides}) does not reach them; "
                f"widen the window on that axis"
            )
        mask &= axis_mask[q_coords[axis][:, None], k_coords[axis][None, :]]
    return mask
