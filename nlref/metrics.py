"""Image quality metrics for the denoising experiments: PSNR and SSIM.

Both accept NumPy or CuPy arrays (the pair must share a backend, else
``TypeError``: nothing moves between devices silently).  PSNR is computed
where the data lives; SSIM is scikit-image's ``structural_similarity`` on the
CPU, and CuPy inputs are copied to the host explicitly for it (documented
below), since a metric is evaluated once per experiment, not inside a loop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_array, check_channel_axis, check_finite, check_positive
from .backend import get_namespace, to_numpy

__all__ = ["psnr", "ssim", "default_data_range"]


def _check_pair(reference: Any, image: Any) -> Any:
    """Both real, non-empty, finite arrays of one shape on one backend; returns their namespace."""
    check_array(reference, "reference")
    check_array(image, "image")
    xp = get_namespace(reference, image)  # TypeError for a NumPy/CuPy mix
    for a, name in ((reference, "reference"), (image, "image")):
        kind = np.dtype(a.dtype).kind
        if kind == "c":
            raise TypeError(f"{name} must be a real image, received complex dtype {a.dtype}")
        if kind not in "biuf":
            raise TypeError(f"{name} must have a boolean, integer or floating dtype, received {a.dtype}")
        if a.size == 0:
            raise ValueError(f"{name} must not be empty, received shape {tuple(a.shape)}")
    if tuple(reference.shape) != tuple(image.shape):
        raise ValueError(
            f"image must have the shape of reference {tuple(reference.shape)}, received {tuple(image.shape)}"
        )
    check_finite(reference, "reference")
    check_finite(image, "image")
    return xp


def default_data_range(reference: Any) -> float:
    """The data range ``skimage.metrics.peak_signal_noise_ratio`` assumes when none is given.

    scikit-image takes the range ``[dmin, dmax]`` of the reference's dtype
    (``skimage.util.dtype_range``: the integer dtype's limits, ``[-1, 1]`` for
    floats, ``[0, 1]`` for booleans) and returns ``dmax`` when the reference has
    no negative value, else ``dmax - dmin``: 255 for uint8, 32767 for a
    non-negative int16 image and 65535 for an int16 image with negative values,
    1 for floats in [0, 1] and 2 for floats in [-1, 1].  Floating values outside
    [-1, 1] raise ``ValueError`` asking for an explicit ``data_range`` (as
    scikit-image does).
    """
    dtype = np.dtype(reference.dtype)
    lo, hi = float(reference.min()), float(reference.max())
    if dtype.kind in "ui":
        dmin, dmax = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
    elif dtype.kind == "b":
        dmin, dmax = 0.0, 1.0
    else:
        dmin, dmax = -1.0, 1.0
        if lo < dmin or hi > dmax:
            raise ValueError(
                "data_range must be given for a floating reference outside [-1, 1], "
                f"received values in [{lo:g}, {hi:g}]"
            )
    return dmax if lo >= 0 else dmax - dmin


def _ssim_default_data_range(reference: Any) -> float:
    """``skimage.metrics.structural_similarity``'s default: the integer dtype's full range.

    scikit-image's SSIM refuses floats without a ``data_range``; nlref then
    falls back to :func:`default_data_range` (1 or 2).
    """
    dtype = np.dtype(reference.dtype)
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max) - float(np.iinfo(dtype).min)
    return 1.0 if dtype.kind == "b" else default_data_range(reference)


def psnr(reference: Any, image: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    reference, image : ndarray (NumPy or CuPy, same backend and shape)
        Clean image and its estimate.
    data_range : float, optional
        Peak-to-peak range of the signal; default :func:`default_data_range`,
        which is scikit-image's default (``peak_signal_noise_ratio``) for every dtype.

    Returns
    -------
    float
        PSNR in dB (``inf`` for identical images).  Computed in float64 on the
        arrays' own device; only the scalar comes back.

    Raises
    ------
    TypeError
        For non-arrays, complex or non-numeric dtypes, a NumPy/CuPy mix.
    ValueError
        For different shapes, empty arrays, NaN/inf values, or a ``data_range``
        that is not > 0 (or cannot be defaulted: floats outside [-1, 1]).

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0), 6)
    20.0
    """
    xp = _check_pair(reference, image)
    if data_range is None:
        data_range = default_data_range(reference)
    check_positive(data_range, "data_range")
    return 20.0 * math.log10(data_range) - 10.0 * _log10_mse(xp, reference, image)


def _log10_mse(xp: Any, reference: Any, image: Any) -> float:
    """``log10(mean((reference - image)^2))`` without over- or underflow (-inf for identical images).

    Images with values of ``2**1020`` or more are divided by ``2**k`` (exact) so
    that the difference cannot overflow, and the squares are taken of the difference divided by its
    largest magnitude ``m``, so none overflows or underflows:
    ``MSE = (2**k m)^2 mean((d / m)^2)``, summed in logarithms.
    """
    ref, img = reference.astype(xp.float64), image.astype(xp.float64)
    k = max(0, math.frexp(max(float(xp.abs(ref).max()), float(xp.abs(img).max())))[1] - 1020)
    d = xp.ldexp(ref, -k) - xp.ldexp(img, -k) if k else ref - img
    m = float(xp.abs(d).max())
    if m == 0:
        return -math.inf
    q = d / m
    return 2.0 * (math.log10(m) + k * math.log10(2.0)) + math.log10(float((q * q).mean()))


def ssim(
    reference: Any,
    image: Any,
    *,
    data_range: float | None = None,
    channel_axis: int | None = None,
    **kwargs: Any,
) -> float:
    """Structural similarity (Wang et al., TIP 2004), scikit-image's implementation.

    Parameters
    ----------
    reference, image : ndarray (NumPy or CuPy, same backend and shape)
        Clean image and its estimate.
    data_range : float, optional
        Default: scikit-image's SSIM default for integer and boolean images (the
        dtype's full range, e.g. 65535 for int16); :func:`default_data_range`
        (1 or 2) for floats, where scikit-image requires one.
    channel_axis : int or None
        Axis of the colour channels, in ``[-ndim, ndim)``.
    **kwargs
        Passed to :func:`skimage.metrics.structural_similarity`: ``win_size``
        (odd, >= 3, at most the smallest spatial side), ``gaussian_weights``,
        ``sigma``, ``use_sample_covariance``, ``K1``, ``K2``; checked here.

    Returns
    -------
    float
        Mean SSIM.

    Raises
    ------
    TypeError
        For non-arrays, complex or non-numeric dtypes, a NumPy/CuPy mix, a
        non-int ``channel_axis``, an unknown keyword.
    ValueError
        For different shapes, empty arrays, NaN/inf values, an out-of-range
        ``channel_axis``, a ``data_range`` that is not > 0 or is more than
        ``1e60`` times smaller than the values, a ``win_size`` that is even or
        larger than the image.

    Notes
    -----
    Backend choice: SSIM is always computed by scikit-image on the CPU.  CuPy
    inputs are copied to the host explicitly with :func:`nlref.backend.to_numpy`
    (one copy per call; a metric is not in any inner loop), so the number is
    the same on both backends.
    """
    _check_pair(reference, image)
    # caught here, with nlref's message, rather than deep inside scikit-image
    channel_axis = check_channel_axis(channel_axis, reference.ndim, "channel_axis")
    if data_range is None:
        data_range = _ssim_default_data_range(reference)
    check_positive(data_range, "data_range")
    _check_ssim_options(tuple(n for ax, n in enumerate(reference.shape) if ax != channel_axis), kwargs)
    from skimage.metrics import structural_similarity

    ref = to_numpy(reference).astype(np.float64)
    img = to_numpy(image).astype(np.float64)
    largest = max(float(np.abs(ref).max()), float(np.abs(img).max()))
    if largest > 1e60 * data_range:  # SSIM multiplies two (co)variances: values^4 must stay finite
        raise ValueError(
            f"data_range={data_range!r} is too small for images with values up to {largest:g} "
            "(SSIM's variances would overflow); pass the images' peak-to-peak range"
        )
    # SSIM is unchanged when both images and data_range are divided by one number: 2**k with
    # data_range / 2**k in [0.5, 1) keeps scikit-image's constants (K L)^2 and the (co)variances finite
    k = math.frexp(data_range)[1]
    value = structural_similarity(
        np.ldexp(ref, -k),
        np.ldexp(img, -k),
        data_range=math.ldexp(data_range, -k),
        channel_axis=channel_axis,
        **kwargs,
    )
    return float(value)


_SSIM_OPTIONS = ("win_size", "gaussian_weights", "sigma", "use_sample_covariance", "K1", "K2")


def _check_ssim_options(spatial: tuple[int, ...], kwargs: dict) -> None:
    """The options passed on to scikit-image, checked here so that no error surfaces from inside it."""
    unknown = sorted(set(kwargs) - set(_SSIM_OPTIONS))
    if unknown:
        raise TypeError(f"ssim: unexpected keyword {unknown[0]!r}; accepted: {', '.join(_SSIM_OPTIONS)}")
    for name in ("gaussian_weights", "use_sample_covariance"):
        if name in kwargs and not isinstance(kwargs[name], (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, received {kwargs[name]!r}")
    for name in ("sigma", "K1", "K2"):
        if name in kwargs:
            check_positive(kwargs[name], name)
    win = kwargs.get("win_size")
    if win is None:  # scikit-image's default: 7, or 11 with Gaussian weights at sigma 1.5
        sigma = kwargs.get("sigma", 1.5)
        win = 2 * int(3.5 * sigma + 0.5) + 1 if kwargs.get("gaussian_weights", False) else 7
    elif isinstance(win, bool) or not isinstance(win, (int, np.integer)) or win < 3 or win % 2 == 0:
        raise ValueError(f"win_size must be an odd int >= 3, received {win!r}")
    if win > min(spatial):
        raise ValueError(
            f"win_size={win} is larger than the smallest side of the images (spatial shape {spatial}); "
            "pass a smaller odd win_size, or channel_axis for colour images"
        )
