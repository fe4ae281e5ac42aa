"""nlref.nn.denoiser: the learned non-local denoiser (a DnCNN-style residual net with windowed blocks).

* :mod:`~nlref.nn.denoiser.model` -- the layer table, :func:`build_denoiser`, the forward and
  backward that predict the noise, and the windowed non-local block.

Training lives in :mod:`nlref.nn.train.denoiser`; applying a model to an image tile by tile is
:func:`nlref.denoise.denoise_learned`.
"""

from __future__ import annotations

from .model import (
    DENOISER_ARCH_KEYS,
    build_denoiser,
    denoiser_backward,
    denoiser_forward,
    receptive_radius,
    windowed_nonlocal_backward,
    windowed_nonlocal_forward,
)

__all__ = [
    "DENOISER_ARCH_KEYS",
    "build_denoiser",
    "denoiser_forward",
    "denoiser_backward",
    "receptive_radius",
    "windowed_nonlocal_forward",
    "windowed_nonlocal_backward",
]
