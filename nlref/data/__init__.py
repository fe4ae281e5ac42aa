"""Data for nlref: scikit-image's sample images with seeded noise (denoising).

Synthetic videos for the non-local network experiments are generated on the
fly from a seed as well; nothing large is stored in the repository.
"""

from __future__ import annotations

from . import synthetic_video
from .images import SAMPLE_IMAGES, add_gaussian_noise, load_image
from .synthetic_video import make_clips, palette, same_colour_clip, temporal_gap

__all__ = ["SAMPLE_IMAGES", "load_image", "add_gaussian_noise", "synthetic_video", "make_clips", "same_colour_clip", "palette", "temporal_gap"]
