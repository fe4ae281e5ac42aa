"""Sample images and seeded noise for the denoising examples, tests and benchmarks.

The images are scikit-image's bundled ones (nothing large is committed):
``camera`` (512 x 512 grey), ``astronaut`` (512 x 512 RGB), ``coins``
(303 x 384 grey) and ``moon`` (512 x 512 grey).  Noise is additive white
Gaussian noise drawn from a seeded :class:`numpy.random.Generator`, so the same
seed gives the same noisy image on every machine and backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_array, check_positive
from ..backend import asarray, get_namespace

__all__ = ["SAMPLE_IMAGES", "load_image", "add_gaussian_noise"]

#: Names accepted by :func:`load_image`, with the layout of each image.
SAMPLE_IMAGES = {
    "camera": "grey, 512 x 512",
    "astronaut": "RGB, 512 x 512 x 3 (channel_axis=-1)",
    "coins": "grey, 303 x 384",
    "moon": "grey, 512 x 512",
}


def load_image(name: str, *, dtype: Any = np.float32) -> np.ndarray:
    """A scikit-image sample image, as floats in [0, 1] (or its original uint8).

    Parameters
    ----------
    name : {"camera", "astronaut", "coins", "moon"}
        Which image.
    dtype : dtype or None
        Floating dtype of the result (``img_as_float`` scaling); None keeps
        the original ``uint8`` values.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for grey images, ``(H, W, 3)`` for ``astronaut``.

    Examples
    --------
    >>> load_image("camera").shape, load_image("astronaut").shape
    ((512, 512), (512, 512, 3))
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"name must be one of {sorted(SAMPLE_IMAGES)}, received {name!r}")
    import skimage.data

    image = getattr(skimage.data, name)()
    if dtype is None:
        return image
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype or None, received {dtype}")
    return (image / 255.0).astype(dtype)


def add_gaussian_noise(image: Any, sigma: float, seed: int | np.random.Generator | None = 0) -> Any:
    """``image + sigma * n`` with ``n ~ N(0, 1)`` i.i.d., from a seeded generator.

    Parameters
    ----------
    image : ndarray (NumPy or CuPy), floating
        Clean image on its float scale (e.g. [0, 1]).
    sigma : float
        Noise standard deviation on the same scale (``20 / 255`` for "sigma 20").
    seed : int or numpy.random.Generator
        Seed of the noise.  The noise is always drawn by NumPy (then copied to
        the GPU for CuPy input, explicitly), so a seed gives the same noise on
        both backends.

    Returns
    -------
    ndarray
        Same shape, dtype and backend as ``image``; not clipped.
    """
    check_array(image, "image")
    if image.dtype.kind != "f":
        raise TypeError(f"image must be floating (use load_image), received dtype {image.dtype}")
    check_positive(sigma, "sigma", strict=False)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(image.shape)).astype(image.dtype)
    noise *= image.dtype.type(sigma)
    xp = get_namespace(image)
    return image + asarray(noise, xp)
