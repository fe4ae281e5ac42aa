"""BM3D's two steps, vectorised: a band of reference blocks at a time.

The reference form (:mod:`nlref.denoise.bm3d.reference`) visits one reference
block at a time.  Here a *band* of reference rows is handled by a few large
array operations, on NumPy or CuPy alike:

1. block matching for the whole band by the offset loop
   (:func:`~nlref.denoise.bm3d.matching.band_distances`, ``O(pixels x window)``);
2. the groups of each size ``s`` (1, 2, 4, ..., N) gathered at once from a
   sliding-window *view* of the image, ``(C, m, s, k, k)``;
3. their 3-D transform, filter and inverse as matrix products
   (:mod:`nlref.denoise.bm3d.filtering`);
4. aggregation by ``bincount``: every pixel of every block estimate adds
   ``weight * kaiser * value`` to the numerator and ``weight * kaiser`` to the
   denominator at its flat image index.

Both steps are one function, :func:`collaborative_step`: step 1 matches on the
noisy image and hard-thresholds, step 2 matches on the basic estimate and
shrinks the noisy groups with the Wiener weights of the basic groups.

Memory: :func:`plan_bands` picks the reference rows per matching band and the
references per filtering chunk so that neither phase holds more than
``max_batch_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...backend import get_namespace
from .filtering import GroupTransform, forward_3d, inverse_3d
from .matching import band_distances, match_bytes, select_groups, window_offsets
from .profile import StepParams, reference_positions
from .transforms import kaiser_window

__all__ = ["collaborative_step", "plan_bands"]

GroupFilter = Callable[[list], tuple[Any, Any]]


def _sizes(width: int, params: StepParams, itemsize: int, n_images: int) -> dict:
    """Bytes per reference row of a matching band, per reference of a filtering chunk, and fixed."""
    k, N, p, n_win = params.block, params.max_group, params.step, params.window**2
    n_cols = -(-width // p) + 1
    return {
        # distances, masks and the offset loop's squared differences and box sums over p rows
        "row": match_bytes(n_cols, n_win, N, itemsize) + 5 * p * width * itemsize,
        # the band's group members and corners (three int64 per member), kept while it is filtered
        "members": 3 * 8 * N * n_cols,
        # gathered blocks, spectra, estimates, weights; an int64 index and two float64 per pixel
        "ref": N * k * k * ((3 * n_images + 3) * itemsize + 24),
        "fixed": 5 * k * width * itemsize,
    }


def plan_bands(n_rows: int, width: int, params: StepParams, itemsize: int, n_images: int, cap: int) -> tuple:
    """``(rows, refs)``: reference rows per matching band, references per filtering chunk.

    A band of ``r`` rows holds ``r * row + fixed`` bytes while it is matched
    (:func:`~nlref.denoise.bm3d.matching.match_bytes` per row of references,
    plus the offset loop's images) and ``r * members + c * ref`` while chunks
    of ``c`` references are filtered (see :func:`_sizes`); both stay under
    ``cap``.  ``ValueError`` if one row and one reference do not fit.
    """
    z = _sizes(width, params, itemsize, n_images)
    need = max(z["row"] + z["fixed"], z["members"] + z["ref"])
    if cap < need:
        raise ValueError(
            f"max_batch_bytes must be at least {need} (one row of reference blocks of an image {width} "
            f"pixels wide, block {params.block}, window {params.window}), received {cap}"
        )
    rows = max(1, min(n_rows, (cap - z["fixed"]) // z["row"], (cap - z["ref"]) // z["members"]))
    return rows, max(1, (cap - rows * z["members"]) // z["ref"])


def _aggregate(acc: tuple, est: Any, qy: Any, qx: Any, weight: Any, kaiser: Any, shape: tuple) -> None:
    """``num += w K est`` and ``den += w K`` at every pixel of the blocks at ``(qy, qx): (m, s)``.

    ``est: (C, m, s, k, k)``, ``weight: (C, m)``; ``num``, ``den``: ``(C H W,)``.
    """
    xp = get_namespace(est)
    num, den = acc
    C, H, W, k = est.shape[0], shape[0], shape[1], est.shape[-1]
    corner = (qy * W + qx)[None, :, :, None, None] + xp.asarray(np.arange(C) * H * W)[
        :, None, None, None, None
    ]
    flat = (corner + xp.asarray(np.arange(k)[:, None] * W + np.arange(k)[None, :])).ravel()
    wk = weight[:, :, None, None, None] * kaiser  # (C, m, 1, k, k)
    num += xp.bincount(flat, weights=(wk * est).ravel(), minlength=num.size)
    den += xp.bincount(flat, weights=xp.broadcast_to(wk, est.shape).ravel(), minlength=den.size)


def _band(images: list, guide: Any, ys: np.ndarray, xs: np.ndarray, params: StepParams, ctx: dict) -> None:
    """Match, filter and aggregate the reference blocks in rows ``ys`` (in place on ``ctx["acc"]``)."""
    xp = get_namespace(guide)
    k = params.block
    dist = band_distances(guide, ys, xs, k, params.window)  # (n_window, ny, nx)
    dist = xp.ascontiguousarray(dist.reshape(dist.shape[0], -1).T)  # (n_ref, n_window)
    members, size = select_groups(dist, params.max_group, ctx["threshold"])
    del dist
    offsets = xp.asarray(window_offsets(params.window))
    ref_y = xp.asarray(np.repeat(ys, len(xs)))[:, None]
    ref_x = xp.asarray(np.tile(xs, len(ys)))[:, None]
    qy, qx = ref_y + offsets[members, 0], ref_x + offsets[members, 1]  # (n_ref, N) block corners
    del members
    views = [xp.lib.stride_tricks.sliding_window_view(im, (k, k), axis=(1, 2)) for im in images]
    for s in ctx["transform"].hadamard:
        pick = xp.nonzero(size == s)[0]
        for start in range(0, int(pick.size), ctx["refs"]):
            chunk = pick[start : start + ctx["refs"]]
            gy, gx = qy[chunk, :s], qx[chunk, :s]  # (m, s)
            spectra = [forward_3d(v[:, gy, gx], ctx["transform"]) for v in views]  # (C, m, s, k*k)
            spec, weight = ctx["filter"](spectra)
            estimate = inverse_3d(spec, ctx["transform"])
            _aggregate(ctx["acc"], estimate, gy, gx, weight, ctx["kaiser"], guide.shape)


def collaborative_step(
    images: list,
    guide: Any,
    params: StepParams,
    threshold: float,
    group_filter: GroupFilter,
    transform: GroupTransform,
    rows: tuple,
    progress: Any = None,
) -> Any:
    """One BM3D step over the whole image, ``rows`` reference rows per band.

    Parameters
    ----------
    images : list of ndarray, (C, H, W)
        The images whose groups are filtered: ``[noisy]`` (step 1) or
        ``[noisy, basic]`` (step 2); their spectra go to ``group_filter``.
        Every channel uses the groups found on ``guide``.
    guide : ndarray, (H, W)
        The image the blocks are matched on (noisy, then basic estimate;
        the luminance of a colour image).
    params : StepParams
        The step's parameters.
    threshold : float
        ``tau_match`` as a sum of squared differences over a block.
    group_filter : callable
        ``spectra -> (filtered spectrum, weight (m,))``.
    transform : GroupTransform
        The 3-D transform.
    rows : tuple of int
        Reference rows per matching band, references per filtering chunk
        (:func:`plan_bands`).
    progress : tqdm bar, optional
        Advanced by the number of reference rows of each band.

    Returns
    -------
    ndarray, (C, H, W)
        ``sum w K est / sum w K`` over every block estimate covering a pixel.
    """
    xp = get_namespace(guide)
    H, W, k = guide.shape[0], guide.shape[1], params.block
    ys = np.array(reference_positions(H - k + 1, params.step))
    xs = np.array(reference_positions(W - k + 1, params.step))
    C = images[0].shape[0]
    acc = (xp.zeros(C * H * W), xp.zeros(C * H * W))  # float64 accumulators (bincount's type)
    kaiser = xp.asarray(kaiser_window(k, params.beta), dtype=guide.dtype)
    ctx = dict(threshold=threshold, filter=group_filter, transform=transform, kaiser=kaiser, acc=acc)
    ctx["refs"] = rows[1]
    for start in range(0, len(ys), rows[0]):
        _band(images, guide, ys[start : start + rows[0]], xs, params, ctx)
        if progress is not None:
            progress.update(len(ys[start : start + rows[0]]))
    num, den = acc
    return (num / den).reshape(C, H, W).astype(guide.dtype)
