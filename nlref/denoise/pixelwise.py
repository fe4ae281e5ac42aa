"""Non-local means, pixel by pixel: the definition, written to be read.

This is the first of nlref's three implementations and the oracle for the
other two (the offset loop in :mod:`nlref.denoise.fast`, batched or not).
For every pixel ``i`` it takes the patches of every pixel ``j`` of the search
window, compares them with the patch of ``i`` and averages the centre pixels
with weights that decay with the patch distance:

    NL(v)(i) = sum_j w(i, j) v(j) / sum_j w(i, j)
    w(i, j)  = exp(-max(d2(i, j) - 2 sigma^2, 0) / h^2)
    d2(i, j) = sum_k g(k) sum_c (v_c(i + k) - v_c(j + k))^2 / C

(Buades, Coll, Morel, CVPR 2005, Eq. 1-2; IPOL 2011, Sec. 2).  It costs
``O(pixels x window x patch)``: fine for the small images it checks.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from ..backend import get_namespace
from ._common import (
    check_arguments,
    patch_kernel_1d,
    prepare,
    restore_layout,
    scaled_h,
    weights_from_distance,
)
from .fast import weight_options

__all__ = ["nl_means_pixelwise"]


def nl_means_pixelwise(
    image: Any,
    patch_size: Any = 7,
    patch_distance: Any = 11,
    h: float = 0.1,
    *,
    sigma: float = 0.0,
    patch_weights: str = "gaussian",
    weighting: str = "skimage",
    distance_scale: str = "skimage",
    preserve_range: bool = False,
    channel_axis: int | None = None,
) -> Any:
    """Non-local means by its definition, one pixel at a time (reference).

    Parameters
    ----------
    image : ndarray (NumPy or CuPy), (*S) or with a channel axis
        2-D, 3-D or 4-D image (grey), optionally with a channel axis.
    patch_size : int or tuple of int
        Odd side of the patch, per spatial axis if a tuple.
    patch_distance : int or tuple of int
        Half-width of the search window: ``j`` runs over the pixels with
        ``|j - i| <= patch_distance`` on every axis *that lie in the image*
        (so values beyond the image's extent change nothing), or beyond it
        by reflection with ``distance_scale="skimage"`` and the uniform kernel.
    h : float
        Filtering parameter (> 0), on the image's float scale.
    sigma : float
        Noise standard deviation; ``2 sigma^2`` is subtracted from ``d2``.
    patch_weights : {"gaussian", "uniform"}
        Patch kernel ``g``: scikit-image's slow-mode Gaussian
        (``A = (patch_size - 1) / 4``) or the uniform box of the fast algorithm.
    weighting : {"skimage", "ipol"}
        Centre weight ``w(i, i)``: 1 (scikit-image) or the largest weight of the
        other pixels of the window (IPOL 2011).
    distance_scale : {"skimage", "patch"}
        As in :func:`nlref.denoise.nl_means`.  With the uniform kernel,
        ``"skimage"`` is scikit-image's fast mode written out: ``d2`` is the
        mean over the box ``(i - r, i + r]`` of ``s - 1`` pixels per axis
        (kernel ``g`` with a zero first entry), times ``rho = prod_k (s_k - 1) / s_k``;
        weights below ``exp(-5)`` are 0, the others are scikit-image's approximate
        ``exp`` (:func:`nlref.denoise._schraudolph.schraudolph_exp`, so ``w(i, i) = 0.971``);
        the window is whole, completed by
        reflection beyond the image.  ``"patch"``: the true patch mean, every
        weight, the window clipped to the image.  The Gaussian kernel ignores it.
    preserve_range : bool
        Keep integer values as they are instead of scaling them to [0, 1].
    channel_axis : int or None
        Axis of the colour channels (``d2`` averages over them).

    Returns
    -------
    ndarray
        Same shape and backend as ``image``; float32 for float32 input,
        float64 otherwise.

    Notes
    -----
    Borders: patches that cross the image border are completed by reflection
    (``mode="reflect"``), and the search window is clipped to the image, as in
    scikit-image's slow mode.  The loop runs in Python over the pixels; each
    step is vectorised over the search window with a sliding-window view, so
    the code shows the formula, not a performance trick.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> v = 0.5 + 0.1 * rng.standard_normal((16, 16))
    >>> out = nl_means_pixelwise(v, patch_size=3, patch_distance=2, h=0.1)
    >>> out.shape, bool(out.std() < v.std())
    ((16, 16), True)
    """
    options = dict(channel_axis=channel_axis, weighting=weighting, distance_scale=distance_scale)
    geometry = check_arguments(image, patch_size, patch_distance, h, sigma, **options)
    if patch_weights not in ("gaussian", "uniform"):
        raise ValueError(f"patch_weights must be 'gaussian' or 'uniform', received {patch_weights!r}")
    h = scaled_h(h, geometry.patch_size, patch_weights, distance_scale)
    skimage = patch_weights == "uniform" and distance_scale == "skimage"
    if skimage:  # the window completed by reflection, not clipped to the image
        geometry = dataclasses.replace(geometry, patch_distance=geometry.reflected_distance)
    prep = prepare(image, geometry, h, sigma, preserve_range=preserve_range)
    u = prep.u  # (C, *S)
    xp = get_namespace(u)
    n = u.ndim - 1
    r = [p // 2 for p in prep.patch_size]
    d = prep.patch_distance
    # scikit-image's fast mode: the box (x - r, x + r], weights below exp(-5) dropped, its exp, and
    # the window completed by reflection (the image grown by d; 0 elsewhere: the window clipped)
    grow = d if skimage else (0,) * n

    # g: (*patch), the separable patch kernel, sum 1
    g = 1.0
    for ax, p in enumerate(prep.patch_size):
        k = patch_kernel_1d(p, patch_weights, u.dtype)
        if skimage and p > 1:
            k = np.concatenate([[0.0], np.full(p - 1, 1.0 / (p - 1))]).astype(u.dtype)
        g = g * k.reshape((1,) * ax + (p,) + (1,) * (n - ax - 1))
    g = xp.asarray(g) / u.shape[0]  # also averages over the C channels

    padded = xp.pad(u, [(0, 0)] + [(ri + e, ri + e) for ri, e in zip(r, grow)], mode="reflect")
    v = padded[(slice(None),) + tuple(slice(ri, m - ri) for ri, m in zip(r, padded.shape[1:]))]  # grown
    # patches[:, i1, i2, k1, k2] = padded[:, i1 + k1, i2 + k2]: the patch of pixel i of v
    patches = xp.lib.stride_tricks.sliding_window_view(padded, prep.patch_size, axis=tuple(range(1, n + 1)))
    out = xp.empty_like(u)
    patch_axes = (0,) + tuple(range(n + 1, 2 * n + 1))
    for i in itertools.product(*(range(s) for s in u.shape[1:])):
        i_v = tuple(ia + e for ia, e in zip(i, grow))  # pixel i in v
        window = tuple(slice(max(0, ia - da), min(m, ia + da + 1)) for ia, da, m in zip(i_v, d, v.shape[1:]))
        p_i = patches[(slice(None),) + i_v]  # (C, *patch)
        p_j = patches[(slice(None),) + window]  # (C, *window, *patch)
        diff = p_j - p_i.reshape(p_i.shape[:1] + (1,) * n + p_i.shape[1:])
        d2 = (g * diff * diff).sum(axis=patch_axes)  # (*window)
        w = weights_from_distance(d2, prep.h, prep.sigma, **weight_options(skimage))
        if weighting == "ipol":
            centre = tuple(ia - s.start for ia, s in zip(i_v, window))
            w[centre] = 0
            w_max = w.max()
            w[centre] = xp.where(w_max > 0, w_max, 1)
        v_j = v[(slice(None),) + window]  # (C, *window)
        out[(slice(None),) + i] = (w * v_j).reshape(u.shape[0], -1).sum(axis=1) / w.sum()
    return restore_layout(out, prep)
