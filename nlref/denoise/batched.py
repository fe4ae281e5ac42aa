"""The offset loop, ``B`` offsets per step: fewer, larger array operations for a GPU.

:func:`nlref.denoise.fast.offset_loop` does about 15 small array operations per
offset of the search window.  On a GPU each is a kernel launch, and for
images of a few hundred pixels a side the launches, not the arithmetic, set
the time.  Here ``B`` offsets that differ only in their last entry are
handled together along a leading array axis: their shifted copies of the
image are one sliding-window *view* ``(B, C, ...)`` of the padded image (no
copy), so the squared differences, the patch filter and the weights are one
operation each for the whole batch.  Same arithmetic as the one-offset loop,
same code on NumPy and CuPy; on a CPU it is slower (the batch pushes the
arrays out of the caches), so ``nl_means`` uses it only on CuPy or when a
memory cap is given.

How large ``B`` may be is a memory question: :func:`batch_bytes` counts every
temporary one step allocates (checked against :mod:`tracemalloc` in the
tests), and :func:`offsets_per_batch` takes the largest ``B`` under the cap.
No fused CuPy ``RawKernel`` was written: nlref only ships GPU kernels it has
tested on a GPU, and none was available when this was written.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..backend import get_namespace
from ._common import weights_from_distance
from ._schraudolph import centre_weight
from .fast import _finish, _progress, crop_grown, form_distance, grown_image, weight_options

__all__ = ["offset_loop_batched", "offsets_per_batch", "batch_bytes", "GPU_MAX_BATCH_BYTES"]


GPU_MAX_BATCH_BYTES = 256 * 2**20


def batch_bytes(shape: tuple[int, ...], itemsize: int, patch_size: tuple[int, ...], batch: int) -> int:
    """Bytes of every temporary one step of ``batch`` offsets allocates, at most.

    ``shape = (C, *S)``; ``N`` pixels, ``N_pad`` pixels of the image grown by
    half a patch on each side.  The distance phase holds the squared
    differences ``(B, C, *S_pad)``, their channel sum and the partial sums of
    :func:`window_sum` (at most ``max(5, C + 1) B N_pad`` values); the
    accumulation phase holds the weights, the weighted pixels ``(B, C, *S)``
    and their sum over the batch (``(B (1 + C) + C) N``).  In between, scikit-image's
    exponential (:func:`nlref.denoise._schraudolph.schraudolph_exp`) holds, beside the ``B N``
    distances, one bool and one integer of their size per distance: less than the
    distance phase.  One more ``N`` for
    the weights :func:`offset_loop` keeps from the previous offset, and NumPy's
    ufunc buffers for strided operands (``numpy.getbufsize()`` values for each
    of at most 4 operands).  Checked against :mod:`tracemalloc` in
    ``tests/test_denoise_limits.py``.
    """
    C, spatial = shape[0], shape[1:]
    n = math.prod(spatial)
    n_pad = math.prod(m + 2 * (p // 2) for m, p in zip(spatial, patch_size))
    values = max(max(5, C + 1) * batch * n_pad, (batch * (1 + C) + C) * n) + n + 4 * np.getbufsize()
    return values * itemsize


def offsets_per_batch(
    shape: tuple[int, ...],
    dtype: Any,
    patch_size: tuple[int, ...],
    patch_distance: tuple[int, ...],
    max_batch_bytes: int | None = None,
    *,
    on_gpu: bool = False,
) -> int:
    """How many offsets one step takes: the most whose temporaries fit ``max_batch_bytes``.

    ``shape = (C, *S)`` and ``dtype`` of the float image.  Default cap:
    256 MiB on a GPU; on a CPU one offset per step, because there a batch only
    pushes the arrays out of the caches (measured on 512 x 512: 4 offsets per
    step is ~1.8x slower than 1), while on a GPU it replaces many small kernel
    launches by few.  Memory per step: :func:`batch_bytes`.

    Raises
    ------
    ValueError
        If ``max_batch_bytes`` is below what one offset needs; the message
        names that minimum.
    """
    if max_batch_bytes is None:
        if not on_gpu:
            return 1
        max_batch_bytes = GPU_MAX_BATCH_BYTES
    itemsize = np.dtype(dtype).itemsize
    need = batch_bytes(shape, itemsize, patch_size, 1)
    if max_batch_bytes < need:
        raise ValueError(
            f"max_batch_bytes must be at least {need} (the temporaries of one offset over {shape[0]} "
            f"channel(s) of spatial shape {shape[1:]}, the image grown by the search window in fast mode, "
            f"patch {patch_size}, {np.dtype(dtype)}), "
            f"received {max_batch_bytes}; pass None for the default"
        )
    most = 2 * patch_distance[-1] + 1
    batch = 1
    while batch < most and batch_bytes(shape, itemsize, patch_size, batch + 1) <= max_batch_bytes:
        batch += 1
    return batch


def _plan_batches(patch_distance: tuple[int, ...], batch: int) -> list[tuple[tuple[int, ...], int, int]]:
    """``(a, b0, b1)``: leading offset entries ``a`` and last entries ``b in [b0, b1)``, half window."""
    d_last = patch_distance[-1]
    batches = []
    for a in itertools.product(*(range(-d, d + 1) for d in patch_distance[:-1])):
        nonzero = [c for c in a if c != 0]
        if nonzero and nonzero[0] < 0:
            continue
        first_b = -d_last if nonzero else 1  # a = 0: only b > 0 (the half window)
        for b0 in range(first_b, d_last + 1, batch):
            batches.append((a, b0, min(b0 + batch, d_last + 1)))
    return batches


def _batch_weights(padded: Any, a: tuple[int, ...], b0: int, b1: int, geo: dict) -> tuple[Any, Any]:
    """Steps 1-3 for the offsets ``(a, b0 .. b1 - 1)``: weights ``w: (B, *L, W)`` and ``patch_y``.

    ``w`` is 0 where ``x + b`` falls outside the image.  ``patch_y`` is a view
    of ``padded``: the patches around ``y = x + t``, ``(B, C, *L + 2r, W + 2r)``.
    """
    xp = get_namespace(padded)
    lo, hi, r, width, d_last = geo["lo"], geo["hi"], geo["r"], geo["width"], geo["d_last"]
    pad_x = tuple(slice(p, q + 2 * ri) for p, q, ri in zip(lo, hi, r[:-1]))
    pad_y = tuple(slice(p + ak, q + ak + 2 * ri) for p, q, ak, ri in zip(lo, hi, a, r[:-1]))
    # 1. squared differences for the whole batch: (B, *L + 2r, W + 2r)
    patch_x = padded[(slice(None),) + pad_x + (slice(d_last, d_last + width + 2 * r[-1]),)]
    window = width + 2 * r[-1]
    shifted = xp.lib.stride_tricks.sliding_window_view(padded[(slice(None),) + pad_y], window, axis=-1)
    patch_y = xp.moveaxis(shifted[..., d_last + b0 : d_last + b1, :], -2, 0)  # (B, C, *L + 2r, W + 2r)
    C = patch_y.shape[1]
    # 2.-3. patch distances and weights: (B, *L, W)
    D, scale = form_distance(patch_x, patch_y, geo["patch_size"], geo["patch_weights"], geo["form"], 1)
    w = weights_from_distance(D, geo["h"], geo["sigma"], scale / C, **geo["weights"])
    # x + b outside the image: no pair, weight 0.  The (B, W) mask is built on the host and
    # sent once, so a batch costs one transfer and one multiply, not two writes per offset.
    x_b = np.arange(width) + np.arange(b0, b1)[:, None]
    valid = ((x_b >= 0) & (x_b < width)).reshape((b1 - b0,) + (1,) * (w.ndim - 2) + (width,))
    w *= xp.asarray(valid, dtype=w.dtype)
    return w, patch_y


def _batch_step(
    u: Any, padded: Any, acc: tuple[Any, Any, Any], a: tuple[int, ...], b0: int, b1: int, geo: dict
) -> None:
    """One batch of offsets: weights, then step 4 on both pixels of every pair (in place on ``acc``)."""
    xp = get_namespace(u)
    num, den, w_max = acc
    shape, r, width, d_last = u.shape[1:], geo["r"], geo["width"], geo["d_last"]
    lo = [max(0, -ak) for ak in a]
    hi = [min(m, m - ak) for m, ak in zip(shape, a)]
    if any(q <= p for p, q in zip(lo, hi)):
        return
    w, patch_y = _batch_weights(padded, a, b0, b1, {**geo, "lo": lo, "hi": hi})
    row = slice(d_last, d_last + width)  # image columns in num/den
    all_ = (slice(None),)
    lead_x = tuple(slice(p, q) for p, q in zip(lo, hi))
    lead_y = tuple(slice(p + ak, q + ak) for p, q, ak in zip(lo, hi, a))
    # 4. x side: x receives w_t(x) v(x + t), one reduction over the batch
    centre_y = (slice(None), slice(None)) + tuple(slice(ri, -ri or None) for ri in r[:-1])
    v_y = patch_y[centre_y + (slice(r[-1], r[-1] + width),)]  # (B, C, *L, W)
    den[lead_x + (row,)] += w.sum(axis=0)
    num[all_ + lead_x + (row,)] += (w[:, None] * v_y).sum(axis=0)
    # 4'. y side: y = x + t receives w_t(x) v(x), one shifted slice per offset
    wv = w[:, None] * u[all_ + lead_x]  # (B, C, *L, W)
    for k in range(b1 - b0):
        at_y = lead_y + (slice(d_last + b0 + k, d_last + b0 + k + width),)
        den[at_y] += w[k]
        num[all_ + at_y] += wv[k]
    if w_max is not None:
        xp.maximum(w_max[lead_x + (row,)], w.max(axis=0), out=w_max[lead_x + (row,)])
        for k in range(b1 - b0):
            at_y = lead_y + (slice(d_last + b0 + k, d_last + b0 + k + width),)
            xp.maximum(w_max[at_y], w[k], out=w_max[at_y])


def offset_loop_batched(
    u: Any,
    patch_size: tuple[int, ...],
    patch_distance: tuple[int, ...],
    h: float,
    sigma: float = 0.0,
    *,
    patch_weights: str = "uniform",
    centre: str = "one",
    form: str = "patch",
    batch: int = 1,
    progress: bool = False,
) -> Any:
    """The offset loop of :func:`offset_loop`, ``batch`` offsets per step.

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
    u, patch_size, patch_distance, h, sigma, patch_weights, centre, form, progress
        As in :func:`offset_loop`.
    batch : int
        Offsets per step (:func:`offsets_per_batch` picks it from a memory cap;
        temporaries of one step: :func:`batch_bytes`).

    Returns
    -------
    ndarray, (C, *S)
        Equal to :func:`offset_loop` up to float rounding.
    """
    xp = get_namespace(u)
    skimage = form == "skimage" and patch_weights == "uniform"
    grow = tuple(patch_distance) if skimage else (0,) * len(patch_size)
    padded, u = grown_image(u, patch_size, grow)  # from here on u is the grown image
    C, shape = u.shape[0], u.shape[1:]
    width, d_last = shape[-1], patch_distance[-1]
    r = [s // 2 for s in patch_size]
    # d_last zero columns each side, so x + b can always be read; weight 0 there
    padded = xp.pad(padded, [(0, 0)] * len(shape) + [(d_last, d_last)])  # (C, *S + 2r, W + 2r + 2 d)
    row = slice(d_last, d_last + width)  # image columns in num/den
    wide = shape[:-1] + (width + 2 * d_last,)
    num, den = xp.zeros((C,) + wide, dtype=u.dtype), xp.zeros(wide, dtype=u.dtype)
    w_max = xp.zeros(wide, dtype=u.dtype) if centre == "max" else None
    weights = weight_options(skimage)
    if centre == "one":  # the offset t = 0: weight exp(0)
        w0 = centre_weight(weights["exp"])
        num[..., row] = w0 * u
        den[..., row] = w0
    geo = dict(r=r, width=width, d_last=d_last, patch_size=patch_size, patch_weights=patch_weights, h=h)
    geo.update(sigma=sigma, form=form, weights=weights)
    batches = _plan_batches(patch_distance, batch)
    for a, b0, b1 in _progress(batches, len(batches), progress):
        _batch_step(u, padded, (num, den, w_max), a, b0, b1, geo)
    out = _finish(u, num[..., row], den[..., row], None if w_max is None else w_max[..., row])
    return crop_grown(out, grow)
