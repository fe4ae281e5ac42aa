"""``nl_means``: the public front door, a drop-in for scikit-image's ``denoise_nl_means``.

It takes scikit-image's exact positional call, validates every argument once
(:func:`nlref.denoise._common.check_arguments`), checks the memory cap, and
then picks the implementation: the offset loop of :mod:`nlref.denoise.fast`,
one offset per step (NumPy) or a batch of offsets per step (CuPy, or a
``max_batch_bytes`` cap), on whatever backend the image lives on.  The patch
kernel comes from ``fast_mode``, the centre weight from ``weighting``.  The
pixel-wise definition (:func:`nlref.denoise.nl_means_pixelwise`) computes the
same numbers and is what the tests compare against.

The front door also picks the form of fast mode's patch distance
(``distance_scale``): scikit-image's by default, so that its ``h`` means what it
means there, or the true patch; BM3D's block matching shares the offset
loop's distance step and always uses the true patch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._validation import check_positive
from ..backend import float_dtype_for, is_cupy_array
from ._common import check_arguments, prepare, restore_layout, scaled_h
from .batched import offset_loop_batched, offsets_per_batch
from .fast import offset_loop

__all__ = ["nl_means"]


def nl_means(
    image: Any,
    patch_size: Any = 7,
    patch_distance: Any = 11,
    h: float = 0.1,
    fast_mode: bool = True,
    sigma: float = 0.0,
    *,
    preserve_range: bool = False,
    channel_axis: int | None = None,
    weighting: str = "skimage",
    distance_scale: str = "skimage",
    max_batch_bytes: int | None = None,
    progress: bool = False,
) -> Any:
    """Non-local means denoising on NumPy or CuPy (scikit-image's API).

    ``NL(v)(i) = sum_j w(i, j) v(j) / sum_j w(i, j)`` with
    ``w(i, j) = exp(-max(d2(i, j) - 2 sigma^2, 0) rho / h^2)``, ``d2`` the mean
    squared difference of the patches around ``i`` and ``j`` (over the patch
    kernel and the channels), ``j`` in the search window of ``i`` (Buades,
    Coll, Morel, CVPR 2005; IPOL 2011), and ``rho`` the distance scale: 1, or
    in fast mode scikit-image's ``prod_k (s_k - 1) / s_k`` (``distance_scale``).

    Parameters
    ----------
    image : ndarray (NumPy or CuPy)
        2-D, 3-D (a volume, or a video ``(T, H, W)``) or 4-D (a volume over
        time) image, grey or with a channel axis holding any number of
        channels.  An ``(M, N, 3)`` colour image needs ``channel_axis=-1``.
    patch_size : int or tuple of int
        Odd side of the patches; a tuple gives one side per spatial axis
        (e.g. ``(1, 7, 7)`` for frame-wise patches of a video).  At most the
        image's extent on every axis (``ValueError`` otherwise).
    patch_distance : int or tuple of int
        Half-width of the search window (scikit-image's meaning): the window
        is ``2 * patch_distance + 1`` pixels wide.  A tuple searches each axis
        differently, e.g. ``(2, 10, 10)`` for 2 frames before and after.
        Clipped to ``extent - 1`` per axis (for 2-D images to
        ``max(extent - 1, 11)`` in fast mode's default form, whose window is
        completed by reflection),
        so any value costs work bounded by the image.
    h : float
        Cut-off distance (> 0) on the image's float scale; larger is smoother.
        With ``sigma`` given, start near ``0.6 sigma`` (fast mode) to
        ``0.8 sigma``; without, near ``0.8 sigma`` (see Notes).
    fast_mode : bool
        True: uniform ``s x s`` patch kernel (the integral-image algorithm).
        False: scikit-image's slow-mode Gaussian kernel, ``A = (s - 1) / 4``.
        Both run the same offset loop here, so ``False`` costs only about
        ``s`` times more per offset, not ``s^n``.
    sigma : float
        Standard deviation of the noise; ``2 sigma^2`` is subtracted from
        ``d2`` before the exponential.  When unknown, estimate it
        (:func:`nlref.denoise.estimate_sigma`; see Notes for how it differs
        from scikit-image's estimate).
    preserve_range : bool
        Integer images are scaled to [0, 1] (``img_as_float``) unless True.
    channel_axis : int or None
        Axis of the channels; None for grey images.
    weighting : {"skimage", "ipol"}
        Weight of the centre pixel: 1 (scikit-image), or the largest weight
        of the other pixels of the window (IPOL 2011).
    distance_scale : {"skimage", "patch"}
        The form of fast mode's patch distance.  ``"skimage"`` (default):
        scikit-image's fast mode (its ``_fast_nl_means_denoising_2d``, the same
        output to float rounding): ``d2`` is the mean over the box ``(x - r, x + r]`` of
        ``s - 1`` pixels per axis, scaled by ``rho = prod_k (s_k - 1) / s_k``
        (``(4/5)^2 = 0.64`` for ``patch_size=5`` in 2-D); weights below
        ``exp(-5)`` are dropped, the others computed by scikit-image's
        approximate ``exp`` (:func:`nlref.denoise._schraudolph.schraudolph_exp`,
        within 4 %, 0.971 at 0); the search window is whole, completed by
        reflection beyond the image (up to a half-width of
        ``max(extent - 1, 11)`` in 2-D, ``extent - 1`` in 3-D and 4-D).
        ``"patch"``: the true mean over the
        centred ``s x s`` patch, ``rho = 1``, the exact ``exp``, every weight, the window
        clipped to the image (IPOL's definition, used by
        :func:`nlref.denoise.nl_means_ipol`).  Slow mode has one form: the
        Gaussian kernel, normalised as in scikit-image, the window clipped.
    max_batch_bytes : int, optional
        Memory cap of the temporaries of one batch of offsets (every array a
        step allocates; the padded image and the accumulators, about
        ``(2 C + 2) x pixels`` values, live through the call and are not
        counted).  A cap below what one offset needs raises ``ValueError``
        naming that minimum.  Default: one offset per step on
        NumPy (:func:`nlref.denoise.fast.offset_loop`, fastest on a CPU) and
        batches of up to 256 MiB on CuPy
        (:func:`nlref.denoise.batched.offset_loop_batched`, fewer kernel
        launches); see :func:`nlref.denoise.batched.offsets_per_batch`.
    progress : bool
        Show a tqdm progress bar over the offsets.

    Returns
    -------
    ndarray
        Denoised image, same shape and backend as ``image``; float32 for
        float32/float16 input, float64 otherwise (like scikit-image).  Finite
        for finite input, even near the dtype's largest value (such images are
        divided by a power of two inside and multiplied back).

    Raises
    ------
    TypeError, ValueError
        Bad arguments, each named in the message (see
        :func:`nlref.denoise._common.check_arguments`).
    UnsupportedDimensionError
        Not 2, 3 or 4 spatial axes; derives from ``ValueError`` and
        ``NotImplementedError`` (scikit-image's type).

    Notes
    -----
    Difference from scikit-image, on purpose: slow mode uses the exact ``exp``
    (scikit-image's slow mode uses Schraudolph's approximation, as its fast
    mode does).  Like scikit-image's slow mode it clips the search window to
    the image.  Patches are completed by reflection in both modes.

    Against scikit-image, the same call in the same test
    (``tests/test_denoise_skimage_psnr.py``): fast mode by default gives the
    same image (to 1e-12 in float64, 2e-6 in float32; 2-D, colour, 3-D), so
    the same PSNR on issue 28's grid of 384 calls (its gallery example and grey
    crops of astronaut, coins, moon; patch 5, 7; distance 6, 11; ``h``
    0.6-1.15 sigma; sigma given or not; noise seeds 0-2;
    ``benchmarks/bench_nlm_grid.py``).  ``distance_scale="patch"`` loses up to
    4.4 dB at small ``h`` without ``sigma`` and gains up to 0.6 dB with
    ``sigma`` given and ``h >= 0.8 sigma``.  Slow mode (64 x 64 crops,
    ``h = 0.6 sigma``) is within 0.05 dB.

    Examples
    --------
    >>> import numpy as np
    >>> from nlref.data import load_image, add_gaussian_noise
    >>> clean = load_image("camera")[:64, :64]
    >>> noisy = add_gaussian_noise(clean, 20 / 255, seed=0)
    >>> out = nl_means(noisy, patch_size=7, patch_distance=10, h=0.8 * 20 / 255, sigma=20 / 255)
    >>> out.shape == clean.shape
    True
    """
    if max_batch_bytes is not None:
        check_positive(max_batch_bytes, "max_batch_bytes")
    options = dict(channel_axis=channel_axis, weighting=weighting, distance_scale=distance_scale)
    geometry = check_arguments(image, patch_size, patch_distance, h, sigma, **options)
    n_channels = 1 if geometry.channel_axis is None else int(image.shape[geometry.channel_axis])
    form = "skimage" if fast_mode and distance_scale == "skimage" else "patch"
    if form == "skimage":  # the window completed by reflection, not clipped to the image
        geometry = dataclasses.replace(geometry, patch_distance=geometry.reflected_distance)
    grow = geometry.patch_distance if form == "skimage" else (0,) * len(geometry.spatial_shape)
    batch = offsets_per_batch(
        (n_channels,) + tuple(n + 2 * g for n, g in zip(geometry.spatial_shape, grow)),
        float_dtype_for(image.dtype),
        geometry.patch_size,
        geometry.patch_distance,
        max_batch_bytes,
        on_gpu=is_cupy_array(image),
    )
    kernel = "uniform" if fast_mode else "gaussian"
    h = scaled_h(h, geometry.patch_size, kernel, distance_scale)
    prep = prepare(image, geometry, h, sigma, preserve_range=preserve_range)
    centre = "max" if weighting == "ipol" else "one"
    if batch > 1:
        out = offset_loop_batched(
            prep.u,
            prep.patch_size,
            prep.patch_distance,
            prep.h,
            prep.sigma,
            patch_weights=kernel,
            centre=centre,
            form=form,
            batch=batch,
            progress=progress,
        )
    else:
        out = offset_loop(
            prep.u,
            prep.patch_size,
            prep.patch_distance,
            prep.h,
            prep.sigma,
            patch_weights=kernel,
            centre=centre,
            form=form,
            progress=progress,
        )
    return restore_layout(out, prep)
