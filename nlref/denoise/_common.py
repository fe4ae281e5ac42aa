"""Shared preparation for every non-local means implementation in nlref.

The three implementations (pixel-wise reference, offset loop, batched offset
loop) all see the image the same way: validated once here, converted to float
like scikit-image's ``img_as_float``, and laid out channel-first as
``u: (C, *S)`` (``S`` = 2 or 3 spatial axes, ``C = 1`` for grey images), so
each channel is a contiguous block of memory.  :func:`restore_layout` puts the
result back in the caller's layout.

Also here: the patch kernels (uniform box, scikit-image's Gaussian) and the
weight function ``w = exp(-max(d2 - 2 sigma^2, 0) / h^2)`` (Buades, Coll, Morel,
IPOL 2011, Sec. 2), written once so that the implementations cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_tuple, check_array, check_channel_axis, check_finite, check_positive
from ..backend import as_float_image, float_dtype_for, get_namespace

WEIGHTINGS = ("skimage", "ipol")


@dataclass(frozen=True)
class Prepared:
    """A validated image and its parameters, ready for an implementation.

    Attributes
    ----------
    u : ndarray, (C, *S)
        Float image, channel first, C-contiguous.
    patch_size, patch_distance : tuple of int
        One entry per spatial axis (odd sizes; half-widths of the search window).
    h, sigma : float
        Filtering parameter and noise standard deviation, on ``u``'s scale.
    channel_axis : int or None
        Normalised channel axis of the *input* (for :func:`restore_layout`).
    """

    u: Any
    patch_size: tuple[int, ...]
    patch_distance: tuple[int, ...]
    h: float
    sigma: float
    channel_axis: int | None


def image_layout(image: Any, channel_axis: Any) -> tuple[int | None, int]:
    """``(channel axis as a non-negative int or None, number of spatial axes)``.

    Raises ``ValueError`` unless the image has 2 or 3 spatial axes besides the
    optional channel axis (which must be in range).
    """
    ch = check_channel_axis(channel_axis, image.ndim)
    n_spatial = image.ndim - (ch is not None)
    if n_spatial not in (2, 3):
        raise ValueError(
            "image must have 2 or 3 spatial dimensions plus an optional channel axis, received shape "
            f"{tuple(image.shape)} with channel_axis={channel_axis} ({n_spatial} spatial)"
        )
    return ch, n_spatial


def prepare(
    image: Any,
    patch_size: Any,
    patch_distance: Any,
    h: Any,
    sigma: Any,
    *,
    channel_axis: Any = None,
    preserve_range: bool = False,
    weighting: str = "skimage",
) -> Prepared:
    """Validate the arguments of a non-local means call (before any work).

    Raises
    ------
    TypeError
        ``image`` not an array / of a non-real dtype; non-numeric parameters.
    ValueError
        Wrong number of dimensions, ``channel_axis`` out of range, even or
        non-positive ``patch_size``, negative ``patch_distance``, ``h <= 0``,
        ``sigma < 0``, NaN/inf pixels, an image smaller than the patch, or an
        unknown ``weighting``.  Each message names the argument.
    """
    check_array(image, "image")
    float_dtype_for(image.dtype)  # TypeError for complex / object images
    if image.ndim not in (2, 3, 4):
        raise ValueError(
            "image must have 2 or 3 spatial dimensions plus an optional channel axis, "
            f"received shape {tuple(image.shape)} ({image.ndim}-D)"
        )
    ch, n_spatial = image_layout(image, channel_axis)
    spatial_shape = tuple(n for ax, n in enumerate(image.shape) if ax != ch)
    patch = as_tuple(patch_size, n_spatial, "patch_size")
    if any(p <= 0 or p % 2 == 0 for p in patch):
        raise ValueError(f"patch_size must be odd and positive (the patch is centred), received {patch_size!r}")
    dist = as_tuple(patch_distance, n_spatial, "patch_distance")
    if any(d < 0 for d in dist):
        raise ValueError(f"patch_distance must be >= 0 (half-width of the search window), received {patch_distance!r}")
    check_positive(h, "h")
    check_positive(sigma, "sigma", strict=False)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, received {weighting!r}")
    if any(n < p for n, p in zip(spatial_shape, patch)):
        raise ValueError(
            f"image (spatial shape {spatial_shape}) is smaller than the patch (patch_size={patch}); "
            "use a smaller patch_size"
        )
    check_finite(image, "image")

    xp = get_namespace(image)
    u = as_float_image(image, preserve_range=preserve_range)
    u = u[None] if ch is None else xp.moveaxis(u, ch, 0)
    u = xp.ascontiguousarray(u)
    return Prepared(u, patch, dist, float(h), float(sigma), ch)


def restore_layout(out: Any, prep: Prepared) -> Any:
    """Move the channel axis of ``out: (C, *S)`` back where the input had it."""
    xp = get_namespace(out)
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


def weights_from_distance(d2: Any, h: float, sigma: float, scale: float = 1.0) -> Any:
    """``w = exp(-max(scale * d2 - 2 sigma^2, 0) / h^2)``, in place on ``d2``.

    ``scale * d2`` is the mean squared patch difference (over the patch kernel
    and the channels); ``scale`` lets a caller pass a plain sum and fold the
    normalisation into the one multiplication done here.  ``2 sigma^2`` is the
    expected value of that mean between two noisy copies of the same patch
    (IPOL 2011, Eq. 2; scikit-image's ``sigma``).  The exponent is never
    positive, so the exponential cannot overflow.
    """
    xp = get_namespace(d2)
    if sigma > 0:
        d2 -= d2.dtype.type(2.0 * sigma * sigma / scale)
        xp.maximum(d2, 0, out=d2)
    # 1/h^2 capped so that a tiny h cannot overflow the working dtype
    # (the weights of non-identical patches are 0 either way).
    inv_h2 = 1e30 if h * h < 1e-30 else 1.0 / (h * h)
    d2 *= d2.dtype.type(-min(inv_h2 * scale, 1e30))
    return xp.exp(d2, out=d2)
