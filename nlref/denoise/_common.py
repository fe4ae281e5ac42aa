"""Shared preparation for every non-local means implementation in nlref.

The three implementations (pixel-wise reference, offset loop, batched offset
loop) all see the image the same way: checked once here
(:func:`check_arguments`, which holds the one patch-geometry check of the
package), converted to float like scikit-image's ``img_as_float``, and laid
out channel-first as ``u: (C, *S)`` (``S`` = 2, 3 or 4 spatial axes, ``C = 1``
for grey images), so each channel is a contiguous block of memory.
:func:`restore_layout` puts the result back in the caller's layout.

Also here: the patch kernels (uniform box, scikit-image's Gaussian) and the
weight function ``w = exp(-max(d2 - 2 sigma^2, 0) / h^2)`` (Buades, Coll, Morel,
IPOL 2011, Sec. 2), written once so that the implementations cannot drift.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_tuple, check_array, check_channel_axis, check_finite, check_positive
from ..backend import as_float_image, float_dtype_for, get_namespace
from ._schraudolph import schraudolph_exp

WEIGHTINGS = ("skimage", "ipol")
DISTANCE_SCALES = ("skimage", "patch")
SPATIAL_DIMS = (2, 3, 4)
#: A patch radius up to this many pixels is accepted whatever the image's extent
#: (scikit-image denoises a 1 x 1 image with its default patch of 7); beyond it,
#: the radius may not exceed the extent, so that padding stays bounded by the image.
MAX_FREE_RADIUS = 7
#: scikit-image's fast mode searches the whole window of the image padded by reflection, even
#: when the window is wider than the image; nlref does so, for 2-D images, up to this half-width
#: (scikit-image's default ``patch_distance``) or the extent, whichever is larger.  In 3-D and 4-D
#: the window stays within ``extent - 1`` (a 23^4 window on a tiny 4-D image would be 10^11 steps).
MAX_FREE_DISTANCE = 11


class UnsupportedDimensionError(ValueError, NotImplementedError):
    """An image with a number of spatial axes nlref does not handle (not 2, 3 or 4).

    Derives from ``ValueError`` (nlref's convention for bad input) and from
    ``NotImplementedError`` (what scikit-image raises in this case), so callers
    written for either library catch it.
    """


@dataclass(frozen=True)
class Geometry:
    """Where the channels are and how large patches and search windows are.

    Attributes
    ----------
    channel_axis : int or None
        Normalised channel axis of the input.
    spatial_shape : tuple of int
        Shape of the spatial axes, ``S``.
    patch_size : tuple of int
        Odd patch side per spatial axis (may exceed the image's extent).
    patch_distance : tuple of int
        Half-width of the search window per spatial axis, clipped to
        ``extent - 1``: offsets beyond cannot pair two pixels of the image.
    reflected_distance : tuple of int
        The half-width of the window completed by reflection (fast mode's
        scikit-image form), clipped to ``max(extent - 1, MAX_FREE_DISTANCE)``
        for 2-D images, to ``extent - 1`` for volumes.
    """

    channel_axis: int | None
    spatial_shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    patch_distance: tuple[int, ...]
    reflected_distance: tuple[int, ...]


@dataclass(frozen=True)
class Prepared:
    """A validated image and its parameters, ready for an implementation.

    Attributes
    ----------
    u : ndarray, (C, *S)
        Float image, channel first, C-contiguous, divided by ``2**exponent``.
    patch_size, patch_distance : tuple of int
        As in :class:`Geometry`.
    h, sigma : float
        Filtering parameter and noise standard deviation, on ``u``'s scale.
    channel_axis : int or None
        Normalised channel axis of the *input* (for :func:`restore_layout`).
    exponent : int
        ``u`` is the image divided by ``2**exponent`` (0 unless the image's
        values are so large or so small that squared differences would
        overflow or underflow).
    bound : float
        ``max |u|``: a weighted mean lies within it, so :func:`restore_layout`
        clips to it before scaling back (round-off cannot push it past the
        dtype's largest value).
    """

    u: Any
    patch_size: tuple[int, ...]
    patch_distance: tuple[int, ...]
    h: float
    sigma: float
    channel_axis: int | None
    exponent: int = 0
    bound: float = 0.0


def _channel_hint(shape: tuple[int, ...], channel_axis: Any) -> str:
    """A suggestion to pass ``channel_axis=-1`` when the last axis looks like colour."""
    if channel_axis is None and len(shape) >= 3 and 2 <= shape[-1] <= 4:
        return f"; if the last axis holds {shape[-1]} colour channels, pass channel_axis=-1"
    return ""


def image_layout(image: Any, channel_axis: Any) -> tuple[int | None, int]:
    """``(channel axis as a non-negative int or None, number of spatial axes)``.

    Raises :class:`UnsupportedDimensionError` unless the image has 2, 3 or 4
    spatial axes besides the optional channel axis (which must be in range).
    """
    ch = check_channel_axis(channel_axis, image.ndim)
    n_spatial = image.ndim - (ch is not None)
    if n_spatial not in SPATIAL_DIMS:
        raise UnsupportedDimensionError(
            "image must have 2, 3 or 4 spatial dimensions plus an optional channel axis, received shape "
            f"{tuple(image.shape)} with channel_axis={channel_axis} ({n_spatial} spatial)"
            + _channel_hint(tuple(image.shape), channel_axis)
        )
    return ch, n_spatial


def check_geometry(image: Any, patch_size: Any, patch_distance: Any, channel_axis: Any) -> Geometry:
    """The one check of the image layout, ``patch_size`` and ``patch_distance``.

    ``patch_size`` must be odd and positive.  It may exceed the image (a 5 x 5
    image with the default patch of 7, as scikit-image allows): the patches are
    then completed by repeated reflection (``numpy.pad(mode="reflect")``).  So
    that the work stays bounded by the image, the patch radius may not exceed
    ``max(extent, MAX_FREE_RADIUS)`` on any axis (a patch of 10**9 is refused,
    where scikit-image would try to pad by half a billion pixels).  A last axis of 2-4 entries that is thinner
    than the patch, without ``channel_axis``, is probably colour: denoised as a
    spatial axis (scikit-image's reading) with a ``UserWarning`` saying so.
    ``patch_distance`` must be >= 0; it is clipped to ``extent - 1`` per axis,
    which changes no result (an offset as long as the image pairs no two
    pixels of it) and bounds the work by the image, whatever its value.
    """
    ch, n_spatial = image_layout(image, channel_axis)
    shape = tuple(int(n) for ax, n in enumerate(image.shape) if ax != ch)
    if math.prod(image.shape) == 0:
        raise ValueError(f"image must not be empty, received shape {tuple(image.shape)}")
    patch = as_tuple(patch_size, n_spatial, "patch_size")
    if any(p <= 0 or p % 2 == 0 for p in patch):
        raise ValueError(
            f"patch_size must be odd and positive (the patch is centred), received {patch_size!r}"
        )
    dist = as_tuple(patch_distance, n_spatial, "patch_distance")
    if any(d < 0 for d in dist):
        raise ValueError(
            f"patch_distance must be >= 0 (half-width of the search window), received {patch_distance!r}"
        )
    if any(p // 2 > max(n, MAX_FREE_RADIUS) for n, p in zip(shape, patch)):
        raise ValueError(
            f"patch_size={patch_size!r} is too large for an image of spatial shape {shape}: each patch "
            f"radius (patch_size // 2) must be at most max(extent, {MAX_FREE_RADIUS}), so that the work "
            "stays bounded by the image"
        )
    hint = _channel_hint(tuple(image.shape), channel_axis)
    if hint and shape[-1] < patch[-1]:
        warnings.warn(
            f"image of shape {tuple(image.shape)} is denoised as a volume whose last axis is thinner "
            f"than the patch (patch_size={patch}){hint}",
            UserWarning,
            stacklevel=4,
        )
    clipped = tuple(min(d, n - 1) for d, n in zip(dist, shape))
    free = MAX_FREE_DISTANCE if len(shape) == 2 else 0
    reflected = tuple(min(d, max(n - 1, free)) for d, n in zip(dist, shape))
    return Geometry(ch, shape, patch, clipped, reflected)


def check_arguments(
    image: Any,
    patch_size: Any,
    patch_distance: Any,
    h: Any,
    sigma: Any,
    *,
    channel_axis: Any = None,
    weighting: str = "skimage",
    distance_scale: str = "skimage",
) -> Geometry:
    """Validate the arguments of a non-local means call (before any work).

    Raises
    ------
    TypeError
        ``image`` not an array / of a non-real dtype; non-numeric parameters.
    UnsupportedDimensionError
        Not 2, 3 or 4 spatial axes (a ``ValueError`` and a ``NotImplementedError``).
    ValueError
        ``channel_axis`` out of range, even or non-positive ``patch_size``,
        negative ``patch_distance``, ``h <= 0``, ``sigma < 0``, NaN/inf
        pixels, or an unknown ``weighting`` or ``distance_scale``.
        Each message names the argument.
    """
    check_array(image, "image")
    float_dtype_for(image.dtype)  # TypeError for complex / object images
    geometry = check_geometry(image, patch_size, patch_distance, channel_axis)
    check_positive(h, "h")
    check_positive(sigma, "sigma", strict=False)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, received {weighting!r}")
    if not isinstance(distance_scale, str) or distance_scale not in DISTANCE_SCALES:
        raise ValueError(f"distance_scale must be one of {DISTANCE_SCALES}, received {distance_scale!r}")
    check_finite(image, "image")
    return geometry


def safe_exponent(max_abs: float, growth: float, dtype: Any) -> int:
    """``k`` such that an image with ``max |x| = max_abs``, divided by ``2**k``, cannot over- or underflow.

    ``growth * max(m, m^2)`` bounds every intermediate of the computation
    (squared differences summed over a patch and the channels, sums of
    weighted pixels); ``m^2`` is the scale of the squared differences.  If the
    first stays below half the dtype's largest value and the second keeps the
    dtype's full precision (above ``tiny * 2**nmant``, so no squared difference
    is subnormal), ``k = 0`` and nothing changes; otherwise ``k`` brings ``m``
    into ``[0.5, 1)`` (``k < 0`` multiplies a tiny image up).  Scaling by a
    power of two is exact, so the weights are the same and only the bits the
    dtype cannot hold at the original scale are lost.
    """
    info = np.finfo(dtype)
    too_large = growth * max(max_abs, max_abs * max_abs) > float(info.max) / 2
    too_small = 0 < max_abs < math.sqrt(float(info.tiny) * 2.0**info.nmant)
    return math.frexp(max_abs)[1] if too_large or too_small else 0


def _ldexp_capped(x: float, k: int) -> float:
    """``x * 2**k``, or the largest float where that overflows: a tiny image (say one chunk of
    ``nl_means_dask``) scaled up with an ``h`` that is already huge next to it keeps ``h`` huge,
    so every weight stays 1, as it is at the original scale."""
    try:
        return math.ldexp(x, k)
    except OverflowError:
        return float(np.finfo(np.float64).max)


def prepare(
    image: Any, geometry: Geometry, h: float, sigma: float, *, preserve_range: bool = False
) -> Prepared:
    """Float, channel-first ``u: (C, *S)`` and parameters on its scale (arguments already checked).

    Finite images near the dtype's largest value or so small that their
    squared differences would be subnormal are scaled by a power of two
    (:func:`safe_exponent`), ``h`` and ``sigma`` with them, and
    :func:`restore_layout` multiplies back: the result stays finite.
    """
    xp = get_namespace(image)
    ch = geometry.channel_axis
    u = as_float_image(image, preserve_range=preserve_range)
    u = u[None] if ch is None else xp.moveaxis(u, ch, 0)
    u = xp.ascontiguousarray(u)
    n_window = math.prod(2 * d + 1 for d in geometry.patch_distance)
    growth = 4.0 * u.shape[0] * max(math.prod(geometry.patch_size), n_window)
    max_abs = float(xp.abs(u).max()) if u.size else 0.0
    k = safe_exponent(max_abs, growth, u.dtype)
    if k:
        u = xp.ldexp(u, -k)
        h, sigma = _ldexp_capped(h, -k), _ldexp_capped(sigma, -k)
    bound = math.ldexp(max_abs, -k)
    return Prepared(u, geometry.patch_size, geometry.patch_distance, float(h), float(sigma), ch, k, bound)


def restore_layout(out: Any, prep: Prepared) -> Any:
    """Move the channel axis of ``out: (C, *S)`` back where the input had it (and undo the scaling)."""
    xp = get_namespace(out)
    if prep.exponent:
        bound = out.dtype.type(prep.bound)
        out = xp.ldexp(xp.clip(out, -bound, bound), prep.exponent)
    if prep.channel_axis is None:
        return out[0]
    return xp.ascontiguousarray(xp.moveaxis(out, 0, prep.channel_axis))


def patch_kernel_1d(size: int, kind: str, dtype: Any = np.float64) -> np.ndarray:
    """One axis of the patch kernel, normalised to sum 1 (a NumPy array).

    ``"uniform"``: every pixel of the patch counts the same (IPOL 2011; the
    integral-image algorithm).  ``"gaussian"``: scikit-image's slow-mode kernel
    ``exp(-k^2 / (2 A^2))`` with ``A = (size - 1) / 4`` (CVPR 2005 uses a
    Gaussian-weighted distance ``||v(N_i) - v(N_j)||^2_{2,a}``).  The 2-D/3-D
    kernel is the outer product of the 1-D ones, so the Gaussian distance is a
    separable filter too.
    """
    if kind == "uniform" or size == 1:
        k = np.ones(size)
    elif kind == "gaussian":
        a = (size - 1) / 4.0
        x = np.arange(size) - size // 2
        k = np.exp(-(x * x) / (2 * a * a))
    else:
        raise ValueError(f"patch_weights must be 'uniform' or 'gaussian', received {kind!r}")
    return (k / k.sum()).astype(dtype)


def scaled_h(h: float, patch_size: tuple[int, ...], kernel: str, distance_scale: str) -> float:
    """The ``h`` that gives the chosen distance scale with the true-patch mean ``d2``.

    ``"patch"`` (or a Gaussian kernel): ``h`` itself, ``w = exp(-max(d2 - 2 sigma^2, 0) / h^2)``
    with ``d2`` the mean over the whole ``s_1 x ... x s_n`` patch.  ``"skimage"`` with
    the uniform kernel: ``w = exp(-max(d2 - 2 sigma^2, 0) rho / h^2)`` with
    ``rho = prod_k (s_k - 1) / s_k`` (axes with ``s_k = 1`` count 1), which is
    ``h / sqrt(rho)`` in the first form.  ``rho`` is scikit-image's effective
    scale: its fast mode (Darbon et al. 2008 integral images) sums the squared
    differences over ``(s - 1)^n`` pixels, the box ``(x - r, x + r]`` of the
    integral image, but divides by ``s^n``.  Capped at the float maximum.
    """
    if distance_scale == "patch" or kernel != "uniform":
        return float(h)
    rho = math.prod((s - 1) / s for s in patch_size if s > 1)
    return min(float(h) / math.sqrt(rho), float(np.finfo(np.float64).max))


def weights_from_distance(
    d2: Any, h: float, sigma: float, scale: float = 1.0, *, cutoff: float | None = None, exp: str = "exact"
) -> Any:
    """``w = exp(-max(scale * d2 - 2 sigma^2, 0) / h^2)``, in place on ``d2``; 0 below ``exp(-cutoff)``.

    ``scale * d2`` is the mean squared patch difference (over the patch kernel
    and the channels); ``scale`` lets a caller pass a plain sum and fold the
    normalisation into the one multiplication done here.  ``2 sigma^2`` is the
    expected value of that mean between two noisy copies of the same patch
    (IPOL 2011, Eq. 2; scikit-image's ``sigma``).  The exponent is never
    positive, so the exponential cannot overflow.  ``cutoff`` (scikit-image's fast mode: 5)
    sets the weights of exponents below ``-cutoff`` to exactly 0.  ``exp="schraudolph"``
    (scikit-image's fast mode) takes :func:`~nlref.denoise._schraudolph.schraudolph_exp` instead of
    the exact exponential.
    """
    xp = get_namespace(d2)
    if sigma > 0:
        # capped at the dtype's largest value: beyond it every weight is 1 either way
        d2 -= d2.dtype.type(min(2.0 * sigma * sigma / scale, float(np.finfo(d2.dtype).max)))
        xp.maximum(d2, 0, out=d2)
    # factor = scale / h^2, capped at the dtype's largest value so that a tiny h
    # cannot make it inf (0 * inf = NaN for identical patches).  Below the cap it
    # is exact; above it every d2 > 0 gives a weight that underflows to 0 either way.
    big = float(np.finfo(d2.dtype).max)
    factor = scale / (h * h) if h * h > scale / big else big
    with np.errstate(over="ignore"):  # d2 * factor -> -inf gives exp = 0, as it should
        d2 *= d2.dtype.type(-factor)
    if exp == "schraudolph":  # scikit-image's fast mode: its exp, weights below exp(-5) skipped
        return schraudolph_exp(d2, None if cutoff is None else d2 >= -cutoff)
    if cutoff is not None:
        d2[d2 < -cutoff] = -np.inf
    return xp.exp(d2, out=d2)
