"""Non-local means over offsets: the fast algorithm (Darbon et al. 2008).

The pixel-wise definition (:mod:`nlref.denoise.pixelwise`) loops over pixels
``i`` and, inside, over the offsets ``t = j - i`` of the search window.  Swap
the two loops and each offset becomes a handful of whole-image array
operations:

1. ``D_t(x) = sum_c (v_c(x) - v_c(x + t))^2``, one squared-difference image;
2. ``d2_t(x) = sum_k g(k) D_t(x + k) / C``, the patch distance of *every* pixel
   at once: a box (or Gaussian) filter of ``D_t``, separable along the axes;
3. ``w_t = exp(-max(d2_t - 2 sigma^2, 0) / h^2)``;
4. ``num(x) += w_t(x) v(x + t)`` and ``den(x) += w_t(x)``.

Why the cost does not grow with the patch size: with the uniform kernel step 2
is a sum over a box.  An integral image ``I(x) = sum_{y <= x} D_t(y)`` gives any
box sum from ``2^n`` corners whatever the box side ``s`` (Darbon, Cunha, Chan,
Osher, Jensen, ISBI 2008); done one axis at a time it is a cumulative sum and
one difference per axis, ``O(1)`` per pixel.  So the whole algorithm costs
``O(pixels x window)``, against ``O(pixels x window x s^n)`` for the definition.
In NumPy a cumulative sum is a sequential scan, several times slower than an
addition, so :func:`window_sum` builds the box from power-of-two partial sums
instead (``s = 7``: 4 additions per axis): the same idea, ``O(log s)`` per pixel.

Symmetry halves the work: ``d2_t(x) = d2_{-t}(x + t)``, so every pair of pixels
``(x, x + t)`` is compared once and the weight is given to both of them
(scikit-image's ``fast_mode`` does the same).  Only the offsets in one half of
the window are visited.

:func:`offset_loop` is the readable form, one offset per step, and on the CPU
the fastest one.  :mod:`nlref.denoise.batched` takes ``B`` offsets per step
for a GPU, with the same arithmetic (and reuses the helpers below).  The loop
does not depend on the number of spatial axes (2-D images, volumes, videos,
volumes over time).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from ..backend import get_namespace
from ._common import patch_kernel_1d, weights_from_distance
from ._schraudolph import centre_weight

__all__ = ["offset_loop", "window_sum", "half_offsets", "offset_distance", "weight_options", "CUTOFF"]

#: scikit-image's fast mode drops every weight below ``exp(-CUTOFF)``.
CUTOFF = 5.0


def weight_options(skimage: bool) -> dict:
    """Keywords of :func:`~nlref.denoise._common.weights_from_distance` for one form of fast mode.

    scikit-image's (``skimage=True``): weights below ``exp(-CUTOFF)`` dropped and
    Schraudolph's approximate ``exp``; the textbook form: every weight, the exact ``exp``.
    """
    return {"cutoff": CUTOFF, "exp": "schraudolph"} if skimage else {"cutoff": None, "exp": "exact"}


def half_offsets(patch_distance: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Offsets ``t != 0`` of the search window whose first non-zero entry is > 0.

    Together with their opposites ``-t`` they cover the window once.
    """
    for t in itertools.product(*(range(-d, d + 1) for d in patch_distance)):
        nonzero = [c for c in t if c != 0]
        if nonzero and nonzero[0] > 0:
            yield t


def _take(x: Any, axis: int, start: int, length: int) -> Any:
    """``x[..., start:start + length, ...]`` along ``axis`` (a view)."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, start + length)
    return x[tuple(index)]


def window_sum(x: Any, size: int, axis: int) -> Any:
    """Sums of ``size`` consecutive entries of ``x`` along ``axis`` ("valid" part).

    ``out[k] = x[k] + ... + x[k + size - 1]``, so ``out`` is ``size - 1`` shorter.
    Binary doubling: ``block`` holds sums of ``width`` entries and doubles
    (``width = 1, 2, 4, ...``); the window is assembled from the blocks whose
    width is a binary digit of ``size``.  About ``2 log2(size)`` additions.
    """
    length = x.shape[axis] - size + 1
    total = None
    start, width, block = 0, 1, x
    while size:
        if size & 1:  # this power of two is part of the window
            part = _take(block, axis, start, length)
            if total is None:
                total = part.copy()
            else:
                total += part
            start += width
        size >>= 1
        if size:
            m = block.shape[axis] - width
            block = _take(block, axis, 0, m) + _take(block, axis, width, m)
            width *= 2
    return total


def _patch_filter(
    D: Any, patch_size: tuple[int, ...], patch_weights: str, first_axis: int
) -> tuple[Any, float]:
    """Filter ``D`` with the separable patch kernel over the trailing spatial axes.

    Returns ``(S, scale)`` with ``scale * S`` the kernel-weighted mean: the box
    is left as a plain sum (``scale = 1 / s^n``) so that the normalisation joins
    the multiplication of :func:`weights_from_distance`.
    """
    scale = 1.0
    for ax, s in enumerate(patch_size, start=first_axis):
        if s == 1:
            continue
        if patch_weights == "uniform":
            D = window_sum(D, s, ax)
            scale /= s
        else:  # Gaussian: s shifted multiply-adds (still separable)
            g = patch_kernel_1d(s, patch_weights)
            length = D.shape[ax] - s + 1
            out = _take(D, ax, 0, length) * D.dtype.type(g[0])
            for k in range(1, s):
                out += _take(D, ax, k, length) * D.dtype.type(g[k])
            D = out
    return D, scale


def offset_distance(
    patch_x: Any,
    patch_y: Any,
    patch_size: tuple[int, ...],
    patch_weights: str = "uniform",
    channel_axis: int = 0,
) -> tuple[Any, float]:
    """Steps 1-2 for one offset: the patch distance of every pixel from two shifted views.

    ``D = sum_c (patch_x - patch_y)^2`` over ``channel_axis``, then the patch
    filter over the spatial axes that follow it: ``scale * S`` is the mean
    squared difference of the patches (kernel-weighted), ``S`` has ``patch - 1``
    fewer entries per axis than the views ("valid" part).  Non-local means
    weighs pixels with it; BM3D's block matching (:mod:`nlref.denoise.bm3d`)
    ranks blocks with it -- block matching *is* NLM's patch distance.
    """
    D = patch_x - patch_y
    D *= D
    if D.shape[channel_axis] == 1:
        D = D.squeeze(axis=channel_axis)
    else:
        D = D.sum(axis=channel_axis)
    return _patch_filter(D, patch_size, patch_weights, channel_axis)


def form_distance(
    patch_x: Any,
    patch_y: Any,
    patch_size: tuple[int, ...],
    patch_weights: str,
    form: str,
    channel_axis: int = 0,
) -> tuple[Any, float]:
    """:func:`offset_distance` of fast mode's ``form``, from views holding the whole ``s``-patches.

    ``"patch"``: the centred ``s x s`` patch.  ``"skimage"`` (uniform kernel only): the
    ``(s - 1) x (s - 1)`` box ``(x - r, x + r]`` that scikit-image's integral image sums
    (``_fast_nl_means_denoising_2d``), one pixel off the centre; its mean, so that the front
    door's ``h / sqrt(rho)`` (:func:`nlref.denoise._common.scaled_h`) gives scikit-image's weight.
    """
    if form == "skimage" and patch_weights == "uniform":
        cut = (Ellipsis,) + tuple(slice(1, None) if s > 1 else slice(None) for s in patch_size)
        patch_x, patch_y = patch_x[cut], patch_y[cut]
        patch_size = tuple(max(s - 1, 1) for s in patch_size)
    return offset_distance(patch_x, patch_y, patch_size, patch_weights, channel_axis)


def grown_image(u: Any, patch_size: tuple[int, ...], grow: tuple[int, ...]) -> tuple[Any, Any]:
    """``(padded, v)``: ``u: (C, *S)`` reflected by ``r + grow`` per axis, and ``v`` (grown by ``grow``).

    ``grow = 0``: the search window is clipped to the image and only patches are completed by
    reflection.  ``grow = patch_distance`` (scikit-image's fast mode): every pixel's window is
    whole, completed by reflection too; the loops run over ``v`` and the caller crops.  One
    reflection of ``u`` gives both (``numpy.pad(mode="reflect")``, repeated on a thin axis).
    """
    xp = get_namespace(u)
    r = [s // 2 for s in patch_size]
    padded = xp.pad(u, [(0, 0)] + [(ri + g, ri + g) for ri, g in zip(r, grow)], mode="reflect")
    if not any(grow):
        return padded, u
    inner = (slice(None),) + tuple(slice(ri, padded.shape[k + 1] - ri) for k, ri in enumerate(r))
    return padded, xp.ascontiguousarray(padded[inner])


def crop_grown(out: Any, grow: tuple[int, ...]) -> Any:
    """The image part of a result computed on :func:`grown_image`'s ``v``."""
    if not any(grow):
        return out
    return out[(slice(None),) + tuple(slice(g, out.shape[k + 1] - g) for k, g in enumerate(grow))]


def _progress(iterable: Any, total: int, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="nl_means offsets", unit="offset")


def _start_accumulators(u: Any, centre: str, exp: str = "exact") -> tuple[Any, Any, Any]:
    """``num: (C, *S)``, ``den: (*S)`` and, for IPOL's centre weight, ``w_max``."""
    xp = get_namespace(u)
    if centre == "one":  # the offset t = 0 has d2 = 0, hence weight exp(0)
        w0 = u.dtype.type(centre_weight(exp))
        return w0 * u, xp.full(u.shape[1:], w0, dtype=u.dtype), None
    return xp.zeros_like(u), xp.zeros(u.shape[1:], dtype=u.dtype), xp.zeros(u.shape[1:], dtype=u.dtype)


def _finish(u: Any, num: Any, den: Any, w_max: Any) -> Any:
    """Add the centre term (IPOL: the largest other weight, 1 if there is none) and divide."""
    xp = get_namespace(u)
    if w_max is not None:
        w_c = xp.where(w_max > 0, w_max, 1)
        num += w_c * u
        den += w_c
    num /= den
    return num


def offset_loop(
    u: Any,
    patch_size: tuple[int, ...],
    patch_distance: tuple[int, ...],
    h: float,
    sigma: float = 0.0,
    *,
    patch_weights: str = "uniform",
    centre: str = "one",
    form: str = "patch",
    progress: bool = False,
) -> Any:
    """Non-local means of ``u: (C, *S)`` by the offset loop, one offset per step.

    Parameters
    ----------
    u : ndarray, (C, *S)
        Float image, channel first (see :func:`nlref.denoise._common.prepare`).
    patch_size, patch_distance : tuple of int
        Per spatial axis.
    h, sigma : float
        As in :func:`nlref.denoise.nl_means`.
    patch_weights : {"uniform", "gaussian"}
        Patch kernel ``g``.
    centre : {"one", "max"}
        Weight of ``j = i``: 1, or the largest other weight (IPOL 2011).
    form : {"patch", "skimage"}
        ``"patch"``: the centred patch, every weight, the window clipped to the
        image.  ``"skimage"``: scikit-image's fast mode: the box of
        :func:`form_distance`, weights below ``exp(-CUTOFF)`` dropped, its
        approximate exponential (:func:`nlref.denoise._schraudolph.schraudolph_exp`),
        and the window completed by reflection at the borders (:func:`grown_image`).
    progress : bool
        Show a tqdm bar over the offsets.

    Returns
    -------
    ndarray, (C, *S)
        ``sum_t w_t(x) u(x + t) / sum_t w_t(x)`` over the search window
        (patches completed by reflection).
    """
    skimage = form == "skimage" and patch_weights == "uniform"
    grow = tuple(patch_distance) if skimage else (0,) * len(patch_size)
    padded, u = grown_image(u, patch_size, grow)  # from here on u is the grown image
    xp = get_namespace(u)
    C, shape = u.shape[0], u.shape[1:]
    r = [s // 2 for s in patch_size]
    weights = weight_options(skimage)
    num, den, w_max = _start_accumulators(u, centre, weights["exp"])
    offsets = list(half_offsets(patch_distance))
    for t in _progress(offsets, len(offsets), progress):
        # pixels x with x and x + t both in the image: x in [lo, hi) per axis
        lo = [max(0, -tk) for tk in t]
        hi = [min(n, n - tk) for n, tk in zip(shape, t)]
        if any(b <= a for a, b in zip(lo, hi)):
            continue
        at_x = tuple(slice(a, b) for a, b in zip(lo, hi))
        at_y = tuple(slice(a + tk, b + tk) for a, b, tk in zip(lo, hi, t))
        # patches of x and of y = x + t, in padded coordinates (+ r on each side)
        patch_x = padded[(slice(None),) + tuple(slice(a, b + 2 * ri) for a, b, ri in zip(lo, hi, r))]
        patch_y = padded[
            (slice(None),) + tuple(slice(a + tk, b + tk + 2 * ri) for a, b, tk, ri in zip(lo, hi, t, r))
        ]
        D, scale = form_distance(patch_x, patch_y, patch_size, patch_weights, form)  # (*region)
        w = weights_from_distance(D, h, sigma, scale / C, **weights)
        # the pair (x, y) gives w to both pixels
        den[at_x] += w
        den[at_y] += w
        num[(slice(None),) + at_x] += w * u[(slice(None),) + at_y]
        num[(slice(None),) + at_y] += w * u[(slice(None),) + at_x]
        if w_max is not None:
            xp.maximum(w_max[at_x], w, out=w_max[at_x])
            xp.maximum(w_max[at_y], w, out=w_max[at_y])
    return crop_grown(_finish(u, num, den, w_max), grow)
