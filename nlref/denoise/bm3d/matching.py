"""Block matching for a band of reference blocks, by the offset loop of non-local means.

For every reference block ``R`` (top-left corner on the grid of
:func:`~nlref.denoise.bm3d.profile.reference_positions`) BM3D needs the
distance ``||R - Q||^2`` to every block ``Q`` whose corner lies in the ``n x n``
search window around ``R``'s (clipped to the image).  That is NLM's patch
distance, and the offset loop of :mod:`nlref.denoise.fast` computes it the same
way: for each offset ``t`` of the window, one squared-difference image and a
``k x k`` box sum give the distance of *every* block to its ``t``-shifted
partner (:func:`nlref.denoise.fast.offset_distance`); the reference grid reads
its entries.  Cost ``O(pixels x window)``, whatever ``k``.

Then the group (Lebrun, IPOL 2012, Sec. 2.2): the reference block first, then
the other blocks with ``||R - Q||^2 < tau`` in the order (distance, scan
order) -- ties go to the block met first in a row-major scan of the image --,
at most ``N`` of them, cut down to a power of 2.  Distances are compared after
:func:`rounded_distance`: two distances equal to 20 fraction bits (16 in
float32) are a tie.  A distance is a sum of ``k^2`` squared differences, and
summed in another order (box sums here, one block at a time in
:mod:`nlref.denoise.bm3d.reference`) it differs in its last bits, so without
the rounding a tie that is exact on paper would be broken by round-off, in
different ways by the two forms.

Memory of one band of ``n_ref`` reference blocks: the distances
``(n_window, n_ref)`` and their transposed copy, three boolean masks and an
``int16`` running count of the same shape (:func:`match_bytes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace
from ..fast import offset_distance

__all__ = ["window_offsets", "band_distances", "select_groups", "match_bytes", "rounded_distance"]

#: fraction bits a distance keeps for comparisons, by the float's size in bytes
TIE_BITS = {8: 20, 4: 16}


def rounded_distance(d: Any) -> Any:
    """``d`` rounded, in place, to :data:`TIE_BITS` fraction bits (``0``, ``-1`` and ``inf`` unchanged).

    The relative error of a sum of ``k^2`` non-negative terms is at most
    ``k^2 eps`` (``7e-15`` for ``k = 8`` in float64), far below the rounding
    step (``2^-20 = 1e-6``), so both forms of BM3D round a tie to the same value
    but when it falls within that error of a rounding boundary.  Rounding is
    half away from zero on the IEEE bits: add half a unit of the last kept bit,
    then clear the bits below it (a carry moves into the exponent, as it should).
    """
    xp = get_namespace(d)
    d = xp.asarray(d)  # a 0-d input stays an array
    size = d.dtype.itemsize
    drop = int(np.finfo(d.dtype).nmant) - TIE_BITS[size]  # fraction bits cleared
    bits = d.view(xp.int64 if size == 8 else xp.int32)
    bits += 1 << (drop - 1)
    bits &= ~((1 << drop) - 1)
    return d


def window_offsets(window: int) -> np.ndarray:
    """Offsets ``(dy, dx)`` of the ``window x window`` search window in row-major (scan) order, ``(n, 2)``."""
    half = window // 2
    d = np.arange(-half, half + 1)
    return np.stack(np.meshgrid(d, d, indexing="ij"), axis=-1).reshape(-1, 2)


def _valid(refs: np.ndarray, shift: int, n_positions: int) -> tuple[int, int]:
    """``[a0, a1)``: the entries of the sorted ``refs`` with ``refs + shift`` a block position."""
    ok = np.nonzero((refs + shift >= 0) & (refs + shift < n_positions))[0]
    return (int(ok[0]), int(ok[-1]) + 1) if ok.size else (0, 0)


def _reads(refs: np.ndarray, shift: int, n_positions: int) -> tuple[slice, np.ndarray]:
    """The references ``refs[sl]`` whose partner ``refs + shift`` is a block position, and where the
    box sums of the offset ``-shift`` are read for them (``refs[sl] + shift``)."""
    a0, a1 = _valid(refs, shift, n_positions)
    return slice(a0, a1), refs[a0:a1] + shift


def band_distances(guide: Any, ys: np.ndarray, xs: np.ndarray, k: int, window: int) -> Any:
    """``dist: (n_window, len(ys), len(xs))``: ``||R - Q||^2`` of each reference and each offset.

    ``inf`` where the offset leaves the image; ``-1`` at offset 0, so that the
    reference block sorts first (it is at distance 0 from itself).  Rounded by
    :func:`rounded_distance`.  As in
    :func:`nlref.denoise.fast.offset_loop`, one offset serves two: the box sums
    ``S_t(x) = ||B(x) - B(x + t)||^2`` give ``d_t(R) = S_t(R)`` and
    ``d_-t(R) = S_t(R - t)``, so only half of the window is visited.
    """
    xp = get_namespace(guide)
    P, Q = guide.shape[0] - k + 1, guide.shape[1] - k + 1
    offsets = window_offsets(window)
    n = len(offsets)
    dist = xp.full((n, len(ys), len(xs)), np.inf, dtype=guide.dtype)
    dist[n // 2] = -1  # offset 0: the reference itself
    for o, (dy, dx) in enumerate(offsets[: n // 2].tolist()):  # the opposite of offset o is n - 1 - o
        # rows/columns of the references that read S_t at R (offset t) and at R - t (offset -t)
        (ra, ya), (ca, xa) = _reads(ys, dy, P), _reads(xs, dx, Q)
        (rb, yb), (cb, xb) = _reads(ys, -dy, P), _reads(xs, -dx, Q)
        ya, xa = ya - dy, xa - dx  # block positions x where S_t is read: R for t, R - t for -t
        rows, cols = np.concatenate([ya, yb]), np.concatenate([xa, xb])
        if not rows.size or not cols.size:
            continue
        y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        at_x = guide[None, y0 : y1 + k - 1, x0 : x1 + k - 1]
        at_y = guide[None, y0 + dy : y1 + dy + k - 1, x0 + dx : x1 + dx + k - 1]
        S, _ = offset_distance(at_x, at_y, (k, k))  # (y1 - y0, x1 - x0): every block in the range
        if ya.size and xa.size:
            dist[o, ra, ca] = S[xp.asarray(ya - y0)[:, None], xp.asarray(xa - x0)[None, :]]
        if yb.size and xb.size:
            dist[n - 1 - o, rb, cb] = S[xp.asarray(yb - y0)[:, None], xp.asarray(xb - x0)[None, :]]
    return rounded_distance(dist)


def select_groups(dist: Any, max_group: int, threshold: float) -> tuple[Any, Any]:
    """Group members and sizes from ``dist: (n_ref, n_window)`` (offsets in scan order).

    Returns ``(members, size)``: ``members: (n_ref, N')`` offset indices
    ordered by (distance, scan order), ``N' = min(N, n_window)``; ``size:
    (n_ref,)`` the largest power of 2 at most ``N`` and at most the number of
    blocks with distance below ``threshold`` (the reference counts).
    """
    xp = get_namespace(dist)
    n_ref, n_off = dist.shape
    N = min(max_group, n_off)
    # the N smallest distances, ties at the N-th value taken in scan order
    v = xp.partition(dist, N - 1, axis=1)[:, N - 1 : N]
    less, tie = dist < v, dist == v
    need = N - less.sum(axis=1, keepdims=True)
    chosen = less | (tie & (xp.cumsum(tie, axis=1, dtype=xp.int16) <= need))
    members = xp.nonzero(chosen)[1].reshape(n_ref, N)  # in scan order
    d = xp.take_along_axis(dist, members, axis=1)
    # rank by (distance, scan order): a permutation, so any sort of it is exact
    j = xp.arange(N)
    before = (d[:, None, :] < d[:, :, None]) | ((d[:, None, :] == d[:, :, None]) & (j[None, :] < j[:, None]))
    order = xp.argsort(before.sum(axis=2), axis=1)
    members = xp.take_along_axis(members, order, axis=1)
    count = (dist < dist.dtype.type(min(threshold, float(np.finfo(dist.dtype).max)))).sum(axis=1)
    size = xp.ones(n_ref, dtype=xp.int64)
    s = 2
    while s <= N:
        size = xp.where(count >= s, s, size)
        s *= 2
    return members, size


def match_bytes(n_ref: int, n_window: int, max_group: int, itemsize: int) -> int:
    """Bytes :func:`band_distances` and :func:`select_groups` hold for ``n_ref`` references, at most."""
    N = min(max_group, n_window)
    per_ref = n_window * (2 * itemsize + 3 + 2) + N * N + N * (2 * itemsize + 3 * 8)
    return n_ref * per_ref
