"""Data and model of a training run: clips of the synthetic task, augmentation, the network.

Beside the loop of :mod:`nlref.nn.train`: a :class:`~nlref.nn.config.TrainConfig` says
which network (:func:`nlref.nn.step.build_from_config` -> :func:`nlref.nn.models.build_model`) and which
clips (:func:`nlref.data.synthetic_video.make_clips`).  Batch ``s`` is clips
``s * B .. (s + 1) * B - 1`` of the train split, its crop and flip draw from
``step_rng(seed, AUG, s)``: a function of ``(seed, step)`` only, so a run resumes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import asarray, get_namespace
from ...data.synthetic_video import make_clips
from .config import TrainConfig
from .step import AUG, SHUFFLE, step_rng

__all__ = ["random_crop_flip", "train_batch", "val_set"]


def random_crop_flip(x: Any, rng: np.random.Generator, *, pad: int = 0, flip: bool = True) -> Any:
    """Random spatial crop (after zero padding by ``pad``) and horizontal flip of each clip.

    ``x``: (N, C, T, H, W) -> same shape.  The same crop and flip apply to all
    frames of a clip (as in the paper's training); offsets and flips are drawn
    on the host from ``rng``.  Both keep the synthetic label: colours and
    frames are untouched.
    """
    n, _, _, h, w = x.shape
    if pad == 0 and not flip:
        return x
    xp = get_namespace(x)
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    if pad:
        x = xp.pad(x, ((0, 0), (0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = xp.empty((n, *x.shape[1:3], h, w), dtype=x.dtype)
    for i in range(n):
        dy, dx = (int(v) for v in offsets[i])
        clip = x[i, :, :, dy : dy + h, dx : dx + w]
        out[i] = clip[..., ::-1] if flips[i] else clip
    return out


def train_batch(cfg: TrainConfig, step: int, xp: Any, dtype: Any) -> tuple[Any, Any]:
    first = step * cfg.batch_size
    indices = np.arange(first, first + cfg.batch_size)
    if cfg.n_train:  # a fixed training set, in a new order every epoch
        epochs, slots = np.divmod(indices, cfg.n_train)
        perms = {e: step_rng(cfg.seed, SHUFFLE, e).permutation(cfg.n_train) for e in set(epochs.tolist())}
        indices = np.array([perms[e][j] for e, j in zip(epochs.tolist(), slots.tolist())])
    x, y = make_clips(
        cfg.batch_size,
        seed=cfg.seed,
        split="train",
        indices=indices,
        n_frames=cfg.n_frames,
        size=cfg.size,
        channels=cfg.channels,
        noise=cfg.noise,
        dtype=dtype,
    )
    x = random_crop_flip(x, step_rng(cfg.seed, AUG, step), pad=cfg.crop_pad, flip=cfg.flip)
    return asarray(x, xp), asarray(y, xp)


def val_set(cfg: TrainConfig, xp: Any, dtype: Any) -> tuple[Any, Any]:
    x, y = make_clips(
        cfg.n_val,
        seed=cfg.seed,
        split="val",
        n_frames=cfg.n_frames,
        size=cfg.size,
        channels=cfg.channels,
        noise=cfg.noise,
        dtype=dtype,
    )
    return asarray(x, xp), asarray(y, xp)
