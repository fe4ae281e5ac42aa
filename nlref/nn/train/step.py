"""One training step: forward, loss, backward, optimiser update -- as one pure function.

The heart of :mod:`nlref.nn.train` in a dozen lines (Wang, Girshick, Gupta,
He, CVPR 2018, Sec. 4.1: SGD with momentum 0.9, weight decay 1e-4 and a step
schedule; or Adam)::

    x: (N, C, T, H, W), y: (N,)
      -> model_forward(train=True)      logits (N, 2), cache, new BN statistics
      -> softmax_cross_entropy          loss, dlogits
      -> model_backward                 grads (same names as params)
      -> sgd_step / adam_step           new params, new optimiser state

:func:`train_step` updates nothing in place: it returns new dicts, so the
caller commits a step in one assignment and an interrupt never leaves a
half-updated model.  The update is the multi-tensor form of
:mod:`nlref.nn.train.optim`'s step (:mod:`nlref.nn.train.multi_tensor`): the same numbers bit
for bit, one flat update for the whole network instead of one per tensor (on
a GPU, a handful of kernel launches instead of hundreds); the new parameters
and optimiser state are views of flat buffers, in the per-tensor layout.

Every random draw of a run is a function of ``(seed, step)``
(:func:`step_rng`): the initialisation, each step's augmentation and dropout,
and the batch itself: batch ``s`` is clips ``s * B .. (s + 1) * B - 1`` of the
train split of :func:`nlref.data.synthetic_video.make_clips` (:func:`train_batch`),
its crop and flip drawn from ``step_rng(seed, AUG, s)``.  A run therefore
resumes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import asarray, get_namespace
from ...data.synthetic_video import make_clips
from ..layers.elementwise import softmax_cross_entropy
from ..video.models import build_model, model_backward, model_forward
from . import multi_tensor, optim
from .config import TrainConfig

__all__ = [
    "step_rng",
    "build_from_config",
    "learning_rate",
    "optimizer_init",
    "train_step",
    "random_crop_flip",
    "train_batch",
    "val_set",
]

# spawn-key tags of the per-step random streams (the data stream is synthetic_video's own)
AUG, DROPOUT, INIT, SHUFFLE, VAL = 101, 102, 103, 104, 105


def step_rng(seed: int, kind: int, step: int) -> np.random.Generator:
    """Generator of one random stream (augmentation, dropout, init) at one step.

    ``numpy.random.SeedSequence(seed, spawn_key=(kind, step))``: the same
    ``(seed, kind, step)`` always gives the same draws, on any machine.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, int(step))))


def build_from_config(cfg: TrainConfig, *, xp: Any = np) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """Build ``(model, params, state)`` for a config with :func:`nlref.nn.video.build_model`."""
    return build_model(
        cfg.arch,
        layout=cfg.layout,
        depth=None if cfg.depth is None else tuple(cfg.depth),
        width=cfg.width,
        block=cfg.block,
        in_channels=cfg.channels,
        num_classes=2,
        nl_blocks=cfg.nl_blocks,
        nl_mode=cfg.nl_mode,
        nl_subsample=cfg.nl_subsample,
        nl_space_time=cfg.nl_space_time,
        nl_init=cfg.nl_init,
        nl_window=cfg.nl_window,
        inflate=cfg.inflate,
        dropout=cfg.dropout,
        rng=step_rng(cfg.seed, INIT, 0),
        dtype=np.dtype(cfg.dtype),
        xp=xp,
    )


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The paper's step schedule: ``lr * lr_gamma ** (step // lr_step)`` (constant when lr_step = 0)."""
    return cfg.lr * cfg.lr_gamma ** (step // cfg.lr_step) if cfg.lr_step else cfg.lr


def optimizer_init(cfg: TrainConfig, params: dict[str, Any]) -> dict[str, Any]:
    """Fresh optimiser state for ``cfg.optimizer`` (zero velocity / moments, ``step = 0``)."""
    return optim.sgd_init(params) if cfg.optimizer == "sgd" else optim.adam_init(params)


def _optimizer_step(
    cfg: TrainConfig, params: dict, grads: dict, opt_state: dict, lr: float
) -> tuple[dict, dict]:
    if cfg.optimizer == "sgd":
        return multi_tensor.multi_tensor_sgd_step(
            params, grads, opt_state, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return multi_tensor.multi_tensor_adam_step(params, grads, opt_state, lr=lr, weight_decay=cfg.weight_decay)


def train_step(
    model: list[dict],
    params: dict[str, Any],
    state: dict[str, Any],
    opt_state: dict[str, Any],
    x: Any,
    y: Any,
    *,
    cfg: TrainConfig,
    lr: float,
    rng: np.random.Generator,
) -> tuple[float, int, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One optimisation step on one batch (pure: returns new dicts, updates nothing in place).

    Parameters
    ----------
    model, params, state : list, dict, dict
        A network of :mod:`nlref.nn.video.models`, its parameters and BN running statistics.
    opt_state : dict
        Optimiser state (:func:`optimizer_init`).
    x : array, shape (N, C, T, H, W)
    y : int array, shape (N,)
    cfg : TrainConfig
        Chooses the optimiser (``"sgd"``: momentum, weight decay; ``"adam"``).
    lr : float
        Learning rate of this step (:func:`learning_rate`).
    rng : numpy.random.Generator
        Dropout draws of this step.

    Returns
    -------
    loss : float
        Mean cross-entropy of the batch, before the update.
    correct : int
        Clips of the batch the network classified right, before the update.
    params, state, opt_state : dict
        New parameters, BN running statistics and optimiser state; the inputs
        are left as they were.
    """
    logits, cache, new_state = model_forward(x, params, state, model, train=True, rng=rng)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = model_backward(dlogits, cache)
    new_params, new_opt_state = _optimizer_step(cfg, params, grads, opt_state, lr)
    correct = int((logits.argmax(axis=1) == y).sum())
    return float(loss), correct, new_params, new_state, new_opt_state


# ----------------------------------------------------------------------------- the batches


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
