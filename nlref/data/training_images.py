"""Which images the learned denoiser trains on, and which it never sees.

All are scikit-image's bundled sample images (``skimage.data``, no download),
turned grey with the ITU-R 601 luma weights of ``skimage.color.rgb2gray`` and
scaled to [0, 1].  The held-out images are the three grey images that the
rest of nlref already denoises (:data:`nlref.data.SAMPLE_IMAGES`); they are
used only for testing (benchmarks, notebook 06, the shipped model's recorded
PSNR), never for training or for choosing anything during training.

Training: astronaut, coffee, chelsea, rocket, brick, grass, gravel, clock,
page, text, cell, immunohistochemistry, hubble_deep_field (13 images, photos,
textures, text and microscopy).  Held out: camera, coins, moon.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HELD_OUT_IMAGES", "TRAIN_IMAGES", "load_grey"]

TRAIN_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "clock",
    "page",
    "text",
    "cell",
    "immunohistochemistry",
    "hubble_deep_field",
)
HELD_OUT_IMAGES = ("camera", "coins", "moon")
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray


def load_grey(name: str, *, dtype=np.float32) -> np.ndarray:
    """A bundled scikit-image picture as a grey (H, W) image in [0, 1].

    Parameters
    ----------
    name : str
        One of :data:`TRAIN_IMAGES` or :data:`HELD_OUT_IMAGES`.
    dtype : floating dtype

    Returns
    -------
    numpy.ndarray, shape (H, W)
    """
    if name not in TRAIN_IMAGES + HELD_OUT_IMAGES:
        raise ValueError(f"name must be one of {TRAIN_IMAGES + HELD_OUT_IMAGES}, received {name!r}")
    import skimage.data

    image = getattr(skimage.data, name)() / 255.0
    if image.ndim == 3:
        image = image[..., :3] @ _LUMA
    return image.astype(dtype)
