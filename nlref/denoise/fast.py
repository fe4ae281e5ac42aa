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

Two versions live here, to be read side by side:

* :func:`offset_loop` -- one offset per step; the readable form, and on the CPU
  the fastest one.
* :func:`offset_loop_batched` -- ``B`` offsets per step along a leading array
  axis (shifted copies taken as one sliding-window *view*, no copy), so a GPU
  runs a few large kernels per batch instead of ~15 small ones per offset.
  Same arithmetic, same code on NumPy and CuPy.  No fused CuPy ``RawKernel`` was
  written: nlref only ships GPU kernels it has tested on a GPU, and none was
  available when this was written.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

from ..backend import get_namespace, is_cupy_array
from ._common import patch_kernel_1d, weights_from_distance

__all__ = ["offset_loop", "offset_loop_batched", "offsets_per_batch", "window_sum", "half_offsets"]


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


def _patch_filter(D: Any, patch_size: tuple[int, ...], patch_weights: str, first_axis: int) -> tuple[Any, float]:
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


def _progress(iterable: Any, total: int, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="nl_means offsets", unit="offset")


def _start_accumulators(u: Any, centre: str) -> tuple[Any, Any, Any]:
    """``num: (C, *S)``, ``den: (*S)`` and, for IPOL's centre weight, ``w_max``."""
    xp = get_namespace(u)
    if centre == "one":  # the offset t = 0 has d2 = 0, hence weight 1
        return u.copy(), xp.ones(u.shape[1:], dtype=u.dtype), None
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
    progress : bool
        Show a tqdm bar over the offsets.

    Returns
    -------
    ndarray, (C, *S)
        ``sum_t w_t(x) u(x + t) / sum_t w_t(x)`` over the search window
        clipped to the image (patches completed by reflection).
    """
    xp = get_namespace(u)
    C, shape = u.shape[0], u.shape[1:]
    r = [s // 2 for s in patch_size]
    padded = xp.pad(u, [(0, 0)] + [(ri, ri) for ri in r], mode="reflect")  # (C, *S + 2r)
    num, den, w_max = _start_accumulators(u, centre)
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
        patch_y = padded[(slice(None),) + tuple(slice(a + tk, b + tk + 2 * ri) for a, b, tk, ri in zip(lo, hi, t, r))]
        D = patch_x - patch_y
        D *= D
        D = D[0] if C == 1 else D.sum(axis=0)                      # (*region + 2r)
        D, scale = _patch_filter(D, patch_size, patch_weights, 0)   # (*region)
        w = weights_from_distance(D, h, sigma, scale / C)
        # the pair (x, y) gives w to both pixels
        den[at_x] += w
        den[at_y] += w
        num[(slice(None),) + at_x] += w * u[(slice(None),) + at_y]
        num[(slice(None),) + at_y] += w * u[(slice(None),) + at_x]
        if w_max is not None:
            xp.maximum(w_max[at_x], w, out=w_max[at_x])
            xp.maximum(w_max[at_y], w, out=w_max[at_y])
    return _finish(u, num, den, w_max)


GPU_MAX_BATCH_BYTES = 256 * 2**20


def offsets_per_batch(u: Any, patch_distance: tuple[int, ...], max_batch_bytes: int | None = None) -> int:
    """How many offsets :func:`offset_loop_batched` takes per step.

    About ``4 B C N`` values of temporary memory for ``B`` offsets (``N``
    pixels, ``C`` channels).  Default cap: 256 MiB for CuPy arrays; for NumPy
    one offset per step, because on a CPU a batch only pushes the arrays out
    of the caches (measured on 512 x 512: 4 offsets per step is ~1.8x slower
    than 1), while on a GPU it replaces many small kernel launches by few.
    """
    if max_batch_bytes is None:
        if not is_cupy_array(u):
            return 1
        max_batch_bytes = GPU_MAX_BATCH_BYTES
    per_offset = 4 * int(u.size) * u.dtype.itemsize
    return int(max(1, min(2 * patch_distance[-1] + 1, max_batch_bytes // per_offset)))


def offset_loop_batched(
    u: Any,
    patch_size: tuple[int, ...],
    patch_distance: tuple[int, ...],
    h: float,
    sigma: float = 0.0,
    *,
    patch_weights: str = "uniform",
    centre: str = "one",
    max_batch_bytes: int | None = None,
    progress: bool = False,
) -> Any:
    """The offset loop of :func:`offset_loop`, ``B`` offsets per step.

    A batch holds the offsets ``t = (a, b)`` that share their leading entries
    ``a`` (all axes but the last) and have consecutive last entries
    ``b in [b0, b0 + B)``.  The ``B`` shifted copies of the image are one
    sliding-window view ``(B, C, ...)`` (no copy), so steps 1-3 and the
    ``x`` side of step 4 are one array operation each for the whole batch; only
    the symmetric ``x + t`` side adds ``B`` shifted slices.  Along the last
    axis the batch uses the whole image row and zero weights where ``x + b``
    falls outside the image, instead of clipping each offset.

    Parameters
    ----------
    u, patch_size, patch_distance, h, sigma, patch_weights, centre, progress
        As in :func:`offset_loop`.
    max_batch_bytes : int, optional
        Cap on the temporary memory of one batch, see :func:`offsets_per_batch`.

    Returns
    -------
    ndarray, (C, *S)
        Equal to :func:`offset_loop` up to float rounding.
    """
    xp = get_namespace(u)
    C, shape = u.shape[0], u.shape[1:]
    n, width, d_last = len(shape), shape[-1], patch_distance[-1]
    r = [s // 2 for s in patch_size]
    lead_r, r_last = r[:-1], r[-1]
    padded = xp.pad(u, [(0, 0)] + [(ri, ri) for ri in r], mode="reflect")
    # d_last zero columns each side, so x + b can always be read; weight 0 there
    padded = xp.pad(padded, [(0, 0)] * n + [(d_last, d_last)])       # (C, *S + 2r, W + 2r + 2 d)
    row = slice(d_last, d_last + width)                              # image columns in num/den

    def zeros(*lead: int) -> Any:
        return xp.zeros(lead + shape[:-1] + (width + 2 * d_last,), dtype=u.dtype)

    num, den = zeros(C), zeros()
    w_max = zeros() if centre == "max" else None
    if centre == "one":
        num[..., row] = u
        den[..., row] = 1

    batch = offsets_per_batch(u, patch_distance, max_batch_bytes)
    batches = []
    for a in itertools.product(*(range(-d, d + 1) for d in patch_distance[:-1])):
        nonzero = [c for c in a if c != 0]
        if nonzero and nonzero[0] < 0:
            continue
        first_b = -d_last if nonzero else 1       # a = 0: only b > 0 (the half window)
        for b0 in range(first_b, d_last + 1, batch):
            batches.append((a, b0, min(b0 + batch, d_last + 1)))

    x_valid = xp.arange(width)
    for a, b0, b1 in _progress(batches, len(batches), progress):
        lo = [max(0, -ak) for ak in a]
        hi = [min(m, m - ak) for m, ak in zip(shape, a)]
        if any(q <= p for p, q in zip(lo, hi)):
            continue
        B = b1 - b0
        lead_x = tuple(slice(p, q) for p, q in zip(lo, hi))
        lead_y = tuple(slice(p + ak, q + ak) for p, q, ak in zip(lo, hi, a))
        pad_x = tuple(slice(p, q + 2 * ri) for p, q, ri in zip(lo, hi, lead_r))
        pad_y = tuple(slice(p + ak, q + ak + 2 * ri) for p, q, ak, ri in zip(lo, hi, a, lead_r))
        all_ = (slice(None),)
        # 1. squared differences for the whole batch: (B, *L + 2r, W + 2r)
        patch_x = padded[all_ + pad_x + (slice(d_last, d_last + width + 2 * r_last),)]
        shifted = xp.lib.stride_tricks.sliding_window_view(padded[all_ + pad_y], width + 2 * r_last, axis=-1)
        patch_y = xp.moveaxis(shifted[..., d_last + b0:d_last + b1, :], -2, 0)  # (B, C, *L + 2r, W + 2r)
        D = patch_x - patch_y
        D *= D
        D = D[:, 0] if C == 1 else D.sum(axis=1)
        # 2.-3. patch distances and weights: (B, *L, W); 0 where x + b is outside the image
        D, scale = _patch_filter(D, patch_size, patch_weights, 1)
        w = weights_from_distance(D, h, sigma, scale / C)
        b = xp.arange(b0, b1).reshape((B,) + (1,) * n)
        w *= ((x_valid + b >= 0) & (x_valid + b < width)).astype(w.dtype)
        # 4. x side: x receives w_t(x) v(x + t), one reduction over the batch
        centre_y = (slice(None), slice(None)) + tuple(slice(ri, -ri or None) for ri in lead_r)
        v_y = patch_y[centre_y + (slice(r_last, r_last + width),)]              # (B, C, *L, W)
        den[lead_x + (row,)] += w.sum(axis=0)
        num[all_ + lead_x + (row,)] += (w[:, None] * v_y).sum(axis=0)
        # 4'. y side: y = x + t receives w_t(x) v(x), one shifted slice per offset
        wv = w[:, None] * u[all_ + lead_x]                                      # (B, C, *L, W)
        for k in range(B):
            at_y = lead_y + (slice(d_last + b0 + k, d_last + b0 + k + width),)
            den[at_y] += w[k]
            num[all_ + at_y] += wv[k]
        if w_max is not None:
            xp.maximum(w_max[lead_x + (row,)], w.max(axis=0), out=w_max[lead_x + (row,)])
            for k in range(B):
                at_y = lead_y + (slice(d_last + b0 + k, d_last + b0 + k + width),)
                xp.maximum(w_max[at_y], w[k], out=w_max[at_y])
    num, den = num[..., row], den[..., row]
    return _finish(u, num, den, None if w_max is None else w_max[..., row])
