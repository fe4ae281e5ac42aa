"""Pictures of where a non-local block looks (Wang et al., CVPR 2018, Fig. 3).

The paper shows, for one query position of a video, the positions it attends
to most in every frame of the clip: the evidence that the block relates
far-apart places in space *and* time.  :func:`attention_map` draws that from
the affinity that :func:`nlref.nn.nonlocal_block_forward` returns with
``return_attention=True`` (or one row of it from
:func:`nlref.nn.attention_weights`), over a sequence, an image, or the frames
of a clip, as heat maps with a colour bar, optionally beside the input frames.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state) and
saved as PNG atomically (:func:`nlref.io.atomic_path`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .io import atomic_path

__all__ = ["attention_map"]


def _as_index_tuple(query, shape):
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        query = (int(query),)
    try:
        query = tuple(int(q) for q in query)
    except TypeError:
        raise TypeError(
            f"query must be a tuple of ints (a position in the map), received {query!r}"
        ) from None
    if len(query) != len(shape) or not all(0 <= q < s for q, s in zip(query, shape)):
        raise ValueError(f"query must be a position inside query_shape {tuple(shape)}, received {query}")
    return query


def attention_map(
    attention: Any,
    *,
    query: Any,
    query_shape: tuple[int, ...],
    key_shape: tuple[int, ...] | None = None,
    frames: Any = None,
    batch: int = 0,
    path: str | Path | None = None,
    title: str | None = None,
    max_frames: int = 8,
    cmap: str = "inferno",
) -> Any:
    """Draw where one query position attends: a line (1-D), an image (2-D) or one panel per frame (3-D).

    The weights are a heat map (opaque, from 0 to the largest weight, colour bar
    beside it), so uniform attention looks uniform; the input frames, when
    given, are drawn in their own row above the maps, never under them.

    Parameters
    ----------
    attention : ndarray (NumPy or CuPy)
        ``(N, P, P')`` as returned by ``nonlocal_block_forward(..., return_attention=True)``,
        ``(P, P')`` for one sample, or ``(P',)``: the row of the query already.
    query : tuple of int
        The query position in the block's input map, e.g. ``(t, y, x)`` or ``(y, x)``.
    query_shape : tuple of int
        Spatial shape S of the block's input: ``(L,)``, ``(H, W)`` or ``(T, H, W)``; P = prod(S).
    key_shape : tuple of int, optional
        Spatial shape S' of the key positions (after subsampling, e.g. ``(T, H/2, W/2)``);
        default ``query_shape``.  P' = prod(S').
    frames : ndarray, optional
        Input shown above the maps: ``(H, W)`` / ``(H, W, 3)`` for an image,
        ``(T, H, W)`` / ``(T, H, W, 3)`` for a clip, at any resolution (the maps
        are drawn on the same axes extent).  A clip of ``k`` times the map's
        steps labels step ``t`` with its input frames ``k t .. k t + k - 1`` and
        draws frame ``k t`` above it.
    batch : int
        Sample shown when ``attention`` is (N, P, P').
    path : str or path-like, optional
        Save a PNG there (atomically) and return the path; otherwise return the figure.
    title : str, optional
        Figure title (default says which query is shown).
    max_frames : int
        At most this many frames of a clip are drawn (evenly spaced, always
        including the query's frame).
    cmap : str
        Colour map of the weights.

    Returns
    -------
    pathlib.Path or matplotlib.figure.Figure
        The path when ``path`` is given, else the figure.
    """
    from matplotlib.figure import Figure

    query_shape = tuple(int(s) for s in query_shape)
    key_shape = query_shape if key_shape is None else tuple(int(s) for s in key_shape)
    if len(query_shape) not in (1, 2, 3) or len(key_shape) != len(query_shape):
        raise ValueError(
            f"query_shape and key_shape must have the same 1 to 3 axes, received {query_shape}, {key_shape}"
        )
    query = _as_index_tuple(query, query_shape)
    weights = _query_row(attention, query, query_shape, key_shape, batch).reshape(key_shape)
    label = title or f"non-local attention of query position {query}"
    if len(query_shape) == 1:
        fig = Figure(figsize=(6, 3), layout="constrained")
        ax = fig.add_subplot()
        pos = (np.arange(key_shape[0]) + 0.5) * query_shape[0] / key_shape[0]
        ax.bar(pos, weights[:], width=query_shape[0] / key_shape[0], color="tab:orange")
        ax.axvline(query[0] + 0.5, color="tab:blue", linestyle="--", label="query")
        ax.set(xlabel="position", ylabel="attention weight f / C", title=label, xlim=(0, query_shape[0]))
        ax.legend()
        return _finish(fig, path)
    background = None if frames is None else _background(frames, len(query_shape))
    fig = _draw_maps(Figure, weights, query, query_shape, background, max_frames, cmap)
    fig.suptitle(label + ("  (x: the query)" if len(query_shape) == 3 else ""))
    return _finish(fig, path)


def _query_row(attention, query, query_shape, key_shape, batch):
    """The (P',) row of the query, as float64 on the host (a figure is host work: one row is cheap)."""
    att = to_numpy(attention)
    if att.ndim == 3:
        if not 0 <= batch < att.shape[0]:
            raise ValueError(f"batch must lie in [0, {att.shape[0]}), received {batch}")
        att = att[batch]
    if att.ndim == 2:
        if att.shape[0] != math.prod(query_shape):
            raise ValueError(
                f"attention has {att.shape[0]} query rows but query_shape {query_shape} "
                f"has {math.prod(query_shape)} positions"
            )
        att = att[np.ravel_multi_index(query, query_shape)]
    if att.ndim != 1 or att.size != math.prod(key_shape):
        raise ValueError(
            f"attention row must have prod(key_shape) = {math.prod(key_shape)} entries, "
            f"received shape {att.shape}"
        )
    return att.astype(np.float64)


def _background(frames, n):
    """Frames as (T, H, W[, 3]) in the display range [0, 1]."""
    background = to_numpy(frames).astype(np.float64)
    if n == 2:
        background = background[None]
    if background.ndim not in (3, 4) or (background.ndim == 4 and background.shape[3] not in (1, 3)):
        raise ValueError(
            f"frames must be (H, W[, 3]) for an image or (T, H, W[, 3]) for a clip, "
            f"received {to_numpy(frames).shape}"
        )
    if background.ndim == 4 and background.shape[3] == 1:
        background = background[..., 0]
    lo, hi = background.min(), background.max()
    return (background - lo) / (hi - lo if hi > lo else 1.0)


def _draw_maps(figure_cls, weights, query, query_shape, background, max_frames, cmap):
    """One heat-map panel per shown frame (colour bar beside them); the input frames in a row above, if given.

    The heat maps are drawn opaque from 0 to the largest weight, so that uniform
    attention (every weight 1/P') shows as one flat colour.
    """
    clip = weights if len(query_shape) == 3 else weights[None]  # (T', H', W')
    q_t, q_yx = (query[0], query[1:]) if len(query_shape) == 3 else (0, query)
    q_hw, is_clip = query_shape[-2:], len(query_shape) == 3
    img_hw = background.shape[1:3] if background is not None else q_hw
    t_key = q_t * clip.shape[0] // (query_shape[0] if is_clip else 1)  # key frame holding the query
    spaced = np.linspace(0, clip.shape[0] - 1, min(max_frames, clip.shape[0])).round().astype(int)
    shown = sorted(set(spaced.tolist()) | {t_key})
    rows = 1 if background is None else 2
    if is_clip or rows == 1:  # a row of inputs above a row of maps
        fig = figure_cls(figsize=(2.6 * len(shown) + 1.0, 3.0 * rows), layout="constrained")
        axes = fig.subplots(rows, len(shown), squeeze=False)
    else:  # an image: input and map side by side, axes[0] the input, axes[-1] the map
        fig = figure_cls(figsize=(6.2, 3.0), layout="constrained")
        axes = fig.subplots(1, 2, squeeze=False).reshape(2, 1)
    extent = (0, img_hw[1], img_hw[0], 0)
    marker = ((q_yx[1] + 0.5) * img_hw[1] / q_hw[1], (q_yx[0] + 0.5) * img_hw[0] / q_hw[0])
    vmax = float(weights.max()) or 1.0
    per = background.shape[0] // clip.shape[0] if is_clip and background is not None else 1
    for col, t in enumerate(shown):  # map step t covers input frames t * per .. t * per + per - 1
        name = (f"frames {t * per}-{t * per + per - 1}" if per > 1 else f"frame {t}") if is_clip else "image"
        if background is not None:
            ax = axes[0, col]
            ax.imshow(
                background[min(t * background.shape[0] // clip.shape[0], background.shape[0] - 1)],
                cmap="gray",
                extent=extent,
                vmin=0,
                vmax=1,
            )
            ax.set(xlabel="x", ylabel="y", title=f"input, frame {t * per}" if is_clip else f"input, {name}")
        ax = axes[-1, col]
        im = ax.imshow(clip[t], cmap=cmap, extent=extent, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set(xlabel="x", ylabel="y", title=name if background is None else f"attention, {name}")
        for a in axes[:, col] if t == t_key else ():
            a.plot(*marker, marker="x", color="cyan", markersize=10, mew=2)
    fig.colorbar(im, ax=list(axes[-1]), label="attention weight f / C", shrink=0.85)
    return fig


def _finish(fig, path):
    """Return the figure, or save it as a PNG atomically and return the path."""
    if path is None:
        return fig
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
