"""nlref.nn.denoiser: the learned non-local denoiser (a DnCNN-style residual net with windowed blocks).

* :mod:`~nlref.nn.denoiser.model` -- the layer table, :func:`build_denoiser`, the forward and
  backward that predict the noise; its non-local block is :func:`nlref.nn.nl.nonlocal_block_forward`
  without BN, the window visited by offsets;
* :mod:`~nlref.nn.denoiser.weights` -- what a weights file's ``arch`` implies, the checked reader
  that inference uses (through :func:`nlref.nn.weights.read_weights`), and the upgrade of
  format_version 1 files.

Training lives in :mod:`nlref.nn.train.denoiser`; applying a model to an image tile by tile is
:func:`nlref.denoise.denoise_learned`.
"""

from __future__ import annotations

from .model import (
    DENOISER_ARCH_KEYS,
    DENOISER_LAYERS,
    build_denoiser,
    denoiser_backward,
    denoiser_forward,
    receptive_radius,
)
from .weights import denoiser_arrays, load_denoiser_weights, upgrade_v1

__all__ = [
    "DENOISER_ARCH_KEYS",
    "build_denoiser",
    "denoiser_forward",
    "denoiser_backward",
    "receptive_radius",
    "DENOISER_LAYERS",
    "denoiser_arrays",
    "load_denoiser_weights",
    "upgrade_v1",
]
