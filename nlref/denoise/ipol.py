"""The IPOL 2011 variant of non-local means and its parameter table.

Buades, Coll and Morel's IPOL article ("Non-Local Means Denoising", Image
Processing On Line 1, 2011) fixes what the CVPR 2005 paper left open:

* the patch distance is the plain mean of the squared differences over the
  patch and the colour channels (uniform patch kernel);
* the expected distance between two noisy copies of a patch, ``2 sigma^2``, is
  subtracted: ``w = exp(-max(d2 - 2 sigma^2, 0) / h^2)``;
* the centre pixel gets the largest weight of the other pixels of the window
  (weight 1 would over-weight it: every other weight is < 1);
* patch size, search window and ``h`` are chosen from ``sigma`` by a table.

nlref implements the *pixel-wise* form of the article (each pixel is the
weighted mean of centre pixels), with ``nl_means(..., weighting="ipol")``.
"""

from __future__ import annotations

from typing import Any

from .._validation import check_array, check_channel_axis, check_positive
from .api import nl_means

__all__ = ["IPOL_TABLE", "ipol_parameters", "nl_means_ipol"]

#: ``(sigma_max, patch side, search window side, h / sigma)`` with sigma on the
#: 0-255 scale, for grey and colour images (IPOL 2011, Sec. 3, Tables 1 and 2).
IPOL_TABLE = {
    "grey": [(15, 3, 21, 0.40), (30, 5, 21, 0.40), (45, 7, 35, 0.35), (75, 9, 35, 0.35), (100, 11, 35, 0.30)],
    "colour": [(25, 3, 21, 0.55), (55, 5, 35, 0.40), (100, 7, 35, 0.35)],
}


def ipol_parameters(sigma: float, *, colour: bool = False) -> dict[str, float | int]:
    """``patch_size``, ``patch_distance`` and ``h`` recommended for a noise level.

    Parameters
    ----------
    sigma : float
        Noise standard deviation on the image's float scale, [0, 1] for
        8-bit images read as floats.  The article's table is written for the
        0-255 scale, so its rows are looked up with ``255 * sigma``; ``h`` is
        returned on the float scale (``h = factor * sigma``).  Above the table
        (``255 * sigma > 100``) the last row is used.
    colour : bool
        Use the colour table (the distance averages over the channels).

    Returns
    -------
    dict
        ``{"patch_size": s, "patch_distance": (window - 1) // 2, "h": h}``.

    Examples
    --------
    >>> ipol_parameters(20 / 255)
    {'patch_size': 5, 'patch_distance': 10, 'h': 0.03137254901960784}
    """
    check_positive(sigma, "sigma")
    sigma255 = 255.0 * float(sigma)
    rows = IPOL_TABLE["colour" if colour else "grey"]
    for sigma_max, side, window, factor in rows:  # noqa: B007 (the row found is used below)
        if sigma255 <= sigma_max:
            break
    return {"patch_size": side, "patch_distance": (window - 1) // 2, "h": factor * float(sigma)}


def nl_means_ipol(image: Any, sigma: float, *, channel_axis: int | None = None, **kwargs: Any) -> Any:
    """Non-local means with the IPOL 2011 weights and parameters.

    ``w(i, j) = exp(-max(d2(i, j) - 2 sigma^2, 0) / h^2)`` with ``d2`` the mean
    squared difference over the ``s x s`` patch and the channels, the centre
    weight the largest other weight, and ``s``, the search window and ``h``
    taken from :func:`ipol_parameters` (grey or colour table).

    Parameters
    ----------
    image : ndarray (NumPy or CuPy)
        Noisy image, grey or with a channel axis (2-D, 3-D or 4-D).
    sigma : float
        Noise standard deviation on the image's float scale ([0, 1] for
        integer images, which are scaled like ``img_as_float``).  Use
        :func:`nlref.denoise.estimate_sigma` when it is unknown.
    channel_axis : int or None
        Axis of the colour channels; selects the colour table.
    **kwargs
        Other keywords of :func:`nlref.denoise.nl_means` (``preserve_range``,
        ``progress``, ``max_batch_bytes``); they may also override
        ``patch_size``, ``patch_distance`` or ``h``.

    Returns
    -------
    ndarray
        Denoised image, same shape and backend.

    References
    ----------
    A. Buades, B. Coll, J.-M. Morel, "Non-Local Means Denoising", Image
    Processing On Line 1 (2011), pp. 208-212, doi:10.5201/ipol.2011.bcm_nlm.
    """
    check_array(image, "image")
    check_channel_axis(channel_axis, image.ndim)
    params = {**ipol_parameters(sigma, colour=channel_axis is not None), **kwargs}
    params.setdefault("fast_mode", True)
    params.setdefault("distance_scale", "patch")  # IPOL's d2 is the true patch mean
    return nl_means(image, sigma=sigma, channel_axis=channel_axis, weighting="ipol", **params)
