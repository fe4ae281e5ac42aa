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

from ._validation import check_array, check_positive
from .backend import get_namespace, to_numpy

__all__ = ["psnr", "ssim", "default_data_range"]


def _check_pair(reference: Any, image: Any) -> Any:
    check_array(reference, "reference")
    check_array(image, "image")
    xp = get_namespace(reference, image)  # TypeError for a NumPy/CuPy mix
    if tuple(reference.shape) != tuple(image.shape):
        raise ValueError(
            f"image must have the shape of reference {tuple(reference.shape)}, received {tuple(image.shape)}"
        )
    return xp


def default_data_range(reference: Any) -> float:
    """The data range scikit-image assumes when none is given.

    Integer dtypes: the dtype's range (255 for uint8).  Floating images:
    1 when ``reference >= 0`` (images in [0, 1]), 2 when it has negative values
    (images in [-1, 1]).  Floating values outside [-1, 1] raise ``ValueError``
    asking for an explicit ``data_range``.
    """
    dtype = np.dtype(reference.dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.max) if dtype.kind == "u" else float(info.max) - float(info.min)
    if dtype.kind == "b":
        return 1.0
    lo, hi = float(reference.min()), float(reference.max())
    if lo < -1 or hi > 1:
        raise ValueError(
            f"data_range must be given for a floating reference outside [-1, 1], received values in [{lo:g}, {hi:g}]"
        )
    return 1.0 if lo >= 0 else 2.0


def psnr(reference: Any, image: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    reference, image : ndarray (NumPy or CuPy, same backend and shape)
        Clean image and its estimate.
    data_range : float, optional
        Peak-to-peak range of the signal; default :func:`default_data_range`.

    Returns
    -------
    float
        PSNR in dB (``inf`` for identical images).  Computed in float64 on the
        arrays' own device; only the scalar comes back.

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
    diff = reference.astype(xp.float64) - image.astype(xp.float64)
    mse = float((diff * diff).mean())
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


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
        Default :func:`default_data_range` (scikit-image needs it for floats).
    channel_axis : int or None
        Axis of the colour channels.
    **kwargs
        Passed to :func:`skimage.metrics.structural_similarity`
        (``win_size``, ``gaussian_weights``, ...).

    Returns
    -------
    float
        Mean SSIM.

    Notes
    -----
    Backend choice: SSIM is always computed by scikit-image on the CPU.  CuPy
    inputs are copied to the host explicitly with :func:`nlref.backend.to_numpy`
    (one copy per call; a metric is not in any inner loop), so the number is
    the same on both backends.
    """
    _check_pair(reference, image)
    if data_range is None:
        data_range = default_data_range(reference)
    check_positive(data_range, "data_range")
    from skimage.metrics import structural_similarity

    ref = to_numpy(reference).astype(np.float64)
    img = to_numpy(image).astype(np.float64)
    return float(structural_similarity(ref, img, data_range=data_range, channel_axis=channel_axis, **kwargs))
