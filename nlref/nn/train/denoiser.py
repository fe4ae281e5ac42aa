"""Training the residual non-local denoiser on random noisy patches, with checkpoints.

The last chapter of the story (notebook 06): the network of
:mod:`nlref.nn.denoiser` learns to predict the noise ``n`` of ``y = x + n``
(DnCNN's residual learning, Zhang et al., TIP 2017) on random ``patch x
patch`` crops of :data:`nlref.data.training_images.TRAIN_IMAGES`, rotated and
flipped, with white Gaussian noise of one fixed ``sigma`` (one model per noise
level, as DnCNN-S).  Loss: ``mean((R(y) - n)^2)``; Adam (Kingma & Ba 2015).

Everything random is a function of ``(seed, step)``: the batch of step ``s``
draws from ``step_rng(seed, AUG, s)``, the video models' convention, so a run
stopped and resumed from its checkpoint follows the same path; the learning
rate is :func:`nlref.nn.train.learning_rate`; the loop is the one of
:func:`nlref.nn.train.run_loop`.  The validation patches come from a
fixed seed shared by every run, so seeds compare on the same data.

Checkpoints and weights files are the one format of :mod:`nlref.nn.weights` (kind
``"denoiser"``): a weights file is a checkpoint without ``opt/`` and ``meter/``;
:func:`nlref.nn.denoiser.load_denoiser_weights` reads both for inference.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...backend import asarray, namespace_by_name
from ...metrics import psnr
from ..denoiser.model import DENOISER_ARCH_KEYS, build_denoiser, denoiser_backward, denoiser_forward
from ..denoiser.weights import load_denoiser_weights
from ..layers.params import params_to_numpy, to_backend
from ..weights import write_weights
from .loop import Task, check_resume, run_loop
from .optim import adam_init, adam_step
from .step import AUG, VAL, learning_rate, step_rng

__all__ = [
    "DENOISER_PRESETS",
    "DenoiserConfig",
    "load_denoiser",
    "noisy_batch",
    "save_denoiser",
    "train_denoiser",
]


@dataclasses.dataclass
class DenoiserConfig:
    """A training run of the denoiser (saved as JSON in every checkpoint and weights file).

    Architecture: ``width``, ``depth``, ``nl_blocks``, ``window``, ``inner_channels``
    (:func:`nlref.nn.denoiser.build_denoiser`).  Data: ``sigma`` on the 0-255 scale,
    ``patch`` (side in pixels), ``batch_size``.  Optimisation: Adam with ``lr``,
    divided by 10 for the last ``1 - lr_drop`` fraction of ``steps``.
    ``eval_every`` steps, the validation PSNR on ``n_val`` fixed patches.  ``data``: None for the
    bundled images, else the description of a folder (:func:`nlref.data.folder.describe_folder`:
    folder name, file count, validation files, hash of the sorted (name, size) list; never a path).
    """

    width: int = 32
    depth: int = 8
    nl_blocks: int = 2
    window: int | None = 5
    inner_channels: int | None = 8
    sigma: float = 25.0
    patch: int = 32
    batch_size: int = 16
    steps: int = 2500
    lr: float = 1e-3
    lr_drop: float = 0.8
    eval_every: int = 100
    n_val: int = 16
    seed: int = 0
    dtype: str = "float32"
    data: dict | None = None

    @property
    def lr_step(self) -> int:
        """Steps before the learning rate drops (for :func:`nlref.nn.train.learning_rate`)."""
        return max(round(self.lr_drop * self.steps), 1)

    #: The drop: lr / 10 for the last ``1 - lr_drop`` of the steps.
    lr_gamma = 0.1

    def arch(self) -> dict[str, Any]:
        """The keyword arguments of :func:`build_denoiser` (what a weights file is checked against)."""
        return {k: getattr(self, k) for k in DENOISER_ARCH_KEYS}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


#: ``default``: the shipped models (two windowed blocks; sigma 25 unless ``--sigma``), 9000 steps: 46.7
#: CPU-minutes on Train400 with one BLAS thread; ``no-nl``: the same network without the blocks, given
#: the same CPU budget (a step costs 0.57 of one with the blocks, so 16000 steps: 47.0 CPU-minutes); the
#: validation PSNR every 500 steps on 128 fixed patches; ``quick``: a few steps of a tiny network, for
#: tests and the notebook's quick mode.
DENOISER_PRESETS = {
    "default": DenoiserConfig(steps=9000, eval_every=500, n_val=128),
    "no-nl": DenoiserConfig(nl_blocks=0, steps=16000, eval_every=500, n_val=128),
    "quick": DenoiserConfig(
        width=8, depth=3, window=3, patch=16, batch_size=4, steps=12, eval_every=6, n_val=4
    ),
}


def _is_int(v: Any, low: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= low


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and bool(np.isfinite(v))


def _check(cfg: DenoiserConfig, images: list | None = None) -> None:
    """The config's fields and, when given, the training images; one-line errors before any work."""
    for name in ("width", "depth", "patch", "batch_size", "steps", "eval_every", "n_val"):
        v = getattr(cfg, name)
        if not _is_int(v, 1):
            raise ValueError(f"{name} must be a positive int, received {v!r}")
    if not _is_int(cfg.seed, 0) or not _is_int(cfg.nl_blocks, 0) or cfg.nl_blocks > min(2, cfg.depth):
        raise ValueError(f"seed must be an int >= 0 and nl_blocks in 0..min(2, depth), received {cfg}")
    for name in ("window", "inner_channels"):
        if getattr(cfg, name) is not None and not _is_int(getattr(cfg, name), 1):
            raise ValueError(f"{name} must be null or a positive int, received {getattr(cfg, name)!r}")
    if not (_is_number(cfg.sigma) and cfg.sigma > 0):
        raise ValueError(f"sigma must be a positive number (0-255 scale), received {cfg.sigma!r}")
    if not (_is_number(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"lr must be a positive number, received {cfg.lr!r}")
    if not (_is_number(cfg.lr_drop) and 0 < cfg.lr_drop <= 1):
        raise ValueError(f"lr_drop must be in (0, 1], received {cfg.lr_drop!r}")
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', received {cfg.dtype!r}")
    if images is not None and (
        not images or any(getattr(im, "ndim", 0) != 2 or min(im.shape) < cfg.patch for im in images)
    ):
        raise ValueError(f"images must be a non-empty list of 2-D arrays of at least {cfg.patch} px a side")


def noisy_batch(
    images: list[np.ndarray],
    rng: np.random.Generator,
    *,
    n: int,
    patch: int,
    sigma: float,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random crops of random images, rotated by k * 90 degrees and flipped, with their noise.

    Returns
    -------
    y : (n, 1, patch, patch)
        Noisy patches ``x + noise``, ``noise ~ N(0, (sigma / 255)^2)``.
    noise : (n, 1, patch, patch)
    """
    clean = np.empty((n, 1, patch, patch), dtype=dtype)
    for k in range(n):
        img = images[rng.integers(len(images))]
        i, j = rng.integers(img.shape[0] - patch + 1), rng.integers(img.shape[1] - patch + 1)
        crop = np.rot90(img[i : i + patch, j : j + patch], k=int(rng.integers(4)))
        clean[k, 0] = crop[:, ::-1] if rng.integers(2) else crop
    noise = (rng.standard_normal(clean.shape) * (sigma / 255.0)).astype(dtype)
    return clean + noise, noise


def _evaluate(model, params, state, val) -> float:
    """PSNR of ``y - R(y)`` against the clean patches, BatchNorm in evaluation mode."""
    y, noise = val
    out, _, _ = denoiser_forward(y, params, state, model, train=False)
    return float(psnr(y - noise, y - out, data_range=1.0))


def save_denoiser(
    path: str | os.PathLike,
    *,
    params: dict,
    state: dict,
    config: DenoiserConfig,
    step: int,
    metrics: list[dict],
    opt_state: dict | None = None,
    meter: dict | None = None,
    check: dict | None = None,
) -> None:
    """Write a checkpoint (with ``opt_state`` and ``meter``) or a weights file (without), atomically.

    The one format of :mod:`nlref.nn.weights`: ``arch`` from the config, ``sigma`` on the
    [0, 1] scale, ``check`` (optional) the recorded PSNR on a held-out image.
    """
    write_weights(
        path,
        kind="denoiser",
        arch={**config.arch(), "dtype": config.dtype},
        config=dataclasses.asdict(config),
        params=params_to_numpy(params),
        state=params_to_numpy(state),
        opt_state=opt_state,
        meter=meter,
        step=step,
        metrics=metrics,
        sigma=config.sigma / 255.0,
        check=check,
    )


def load_denoiser(path: str | os.PathLike, *, with_optimizer: bool = False) -> dict[str, Any]:
    """:func:`nlref.nn.denoiser.load_denoiser_weights`, plus the training config and, for a checkpoint, Adam.

    Returns the dict of :func:`~nlref.nn.denoiser.load_denoiser_weights` with ``config`` as a
    :class:`DenoiserConfig` and, with ``with_optimizer``, ``opt_state`` checked against Adam's
    layout and ``meter`` (the running training loss since the last evaluation).
    """
    net = load_denoiser_weights(path)
    net["config"] = _recorded_config(path, net)
    if with_optimizer:
        template = adam_init(net["params"])
        found = net["opt_state"]
        for key in sorted(set(template) ^ set(found)):
            what = "missing" if key in template else "unexpected"
            raise ValueError(f"{path}: {what} key 'opt/{key}' for Adam")
        for key, t in template.items():
            if np.shape(found[key]) != np.shape(t) or found[key].dtype != np.asarray(t).dtype:
                raise ValueError(f"{path}: key 'opt/{key}' is {found[key].dtype} of shape {found[key].shape}")
        if sorted(net["meter"]) != ["loss_n", "loss_sum"] or int(net["meter"]["loss_n"]) < 0:
            raise ValueError(f"{path}: key 'meter' must hold loss_sum and loss_n >= 0")
    return net


def _recorded_config(path: str | os.PathLike, net: dict) -> DenoiserConfig:
    """The file's ``config`` as a checked :class:`DenoiserConfig`, every field present, agreeing with
    its ``arch`` and ``sigma``; one line naming the file and the key otherwise."""
    config = net["config"]
    known = {f.name for f in dataclasses.fields(DenoiserConfig)}
    for what, keys in (("unknown", set(config) - known), ("missing", known - set(config))):
        if keys:
            raise ValueError(f"{path}: key 'config' has {what} fields {sorted(keys)}")
    cfg = DenoiserConfig(**config)
    try:
        _check(cfg)
    except ValueError as exc:
        raise ValueError(f"{path}: key 'config': {exc}") from None
    if {**cfg.arch(), "dtype": cfg.dtype} != net["arch"]:
        raise ValueError(f"{path}: key 'config' disagrees with key 'arch' {net['arch']}")
    if not np.isclose(cfg.sigma / 255.0, net["sigma"], rtol=1e-9, atol=0):
        raise ValueError(
            f"{path}: key 'config' records sigma {cfg.sigma!r} (0-255), key 'sigma' {net['sigma']!r}: "
            "they disagree"
        )
    return cfg


def _start(cfg: DenoiserConfig, checkpoint: Path | None, resume: bool, xp: Any) -> dict[str, Any]:
    """The run's record: a fresh model and optimiser, or the ones saved in ``checkpoint``."""
    model, params, state = build_denoiser(**cfg.arch(), rng=cfg.seed, dtype=np.dtype(cfg.dtype), xp=xp)
    run = dict(model=model, params=params, state=state, opt_state=adam_init(params), step=0, rows=[])
    run.update(meter=_new_meter(), ckpt=checkpoint)
    if resume:
        ck = load_denoiser(checkpoint, with_optimizer=True)
        if {**dataclasses.asdict(ck["config"]), "steps": cfg.steps} != dataclasses.asdict(cfg):
            raise ValueError(
                f"cannot resume from {str(checkpoint)!r}: its config differs from the requested one"
            )
        run.update({k: to_backend(ck[k], xp) for k in ("params", "state", "meter")}, step=ck["step"])
        opt = ck["opt_state"]
        run.update(opt_state={k: (v if k == "step" else asarray(v, xp=xp)) for k, v in opt.items()})
        run["rows"] = ck["metrics"]
        print(f"resuming from step {ck['step']} ({checkpoint})", flush=True)
    return run


def _new_meter() -> dict[str, np.ndarray]:
    """The running training loss since the last evaluation (checkpointed: a resumed run writes the same)."""
    return {"loss_sum": np.array(0.0), "loss_n": np.array(0, dtype=np.int64)}


def _task(cfg: DenoiserConfig, images: list, val: list, xp: Any, checkpoint: Path | None) -> Task:
    def step(run, s):
        """One Adam step on the batch of step ``s``; the inputs are untouched."""
        batch = noisy_batch(
            images, step_rng(cfg.seed, AUG, s), n=cfg.batch_size, patch=cfg.patch, sigma=cfg.sigma,
            dtype=np.dtype(cfg.dtype),
        )  # fmt: skip
        y, noise = (asarray(a, xp=xp) for a in batch)
        out, cache, new_state = denoiser_forward(y, run["params"], run["state"], run["model"], train=True)
        diff = out - noise
        loss = float((diff * diff).mean())  # L = mean((R(y) - n)^2), dL/dR = 2 (R(y) - n) / size
        _, grads = denoiser_backward(diff * (2.0 / diff.size), cache, run["model"])
        lr = learning_rate(cfg, s)
        params, opt_state = adam_step(run["params"], grads, run["opt_state"], lr=lr)
        meter = {
            "loss_sum": np.array(float(run["meter"]["loss_sum"]) + loss),
            "loss_n": np.array(int(run["meter"]["loss_n"]) + 1, dtype=np.int64),
        }
        return dict(params=params, opt_state=opt_state, state=new_state, meter=meter), {
            "loss": loss,
            "lr": lr,
        }

    def evaluate(run, info, seconds):
        loss = float(run["meter"]["loss_sum"]) / max(int(run["meter"]["loss_n"]), 1)
        val_psnr = _evaluate(run["model"], run["params"], run["state"], val)
        return dict(step=run["step"], train_loss=loss, lr=info["lr"], val_psnr=val_psnr, time_s=seconds)

    def save(run):
        if checkpoint is not None:
            save_denoiser(
                checkpoint, params=run["params"], state=run["state"], config=cfg, step=run["step"],
                metrics=run["rows"], opt_state=run["opt_state"], meter=run["meter"],
            )  # fmt: skip

    return Task(
        steps=cfg.steps,
        step=step,
        is_eval=lambda s: s % cfg.eval_every == 0 or s == cfg.steps,
        evaluate=evaluate,
        new_meter=_new_meter,
        save=save,
        desc=f"denoiser nl={cfg.nl_blocks} sigma={cfg.sigma:g}",
    )


def train_denoiser(
    cfg: DenoiserConfig,
    images: list[np.ndarray],
    *,
    val_images: list[np.ndarray] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    backend: str = "numpy",
    progress: bool = True,
) -> dict[str, Any]:
    """Train the denoiser on the one loop of :func:`nlref.nn.train.run_loop`; return the model and metrics.

    Parameters
    ----------
    cfg : DenoiserConfig
    images : list of (H, W) float arrays in [0, 1]
        Training images (:func:`nlref.data.training_images.load_grey` of ``TRAIN_IMAGES``).
    val_images : list of (H, W) float arrays, optional
        Where the fixed validation patches come from (the validation split of
        :func:`nlref.data.folder.read_grey_folder`); default: ``images``.
    checkpoint : path-like, optional
        Written after every evaluation, at the end, and on Ctrl-C / SIGTERM.
    resume : bool
        Continue from ``checkpoint``, which must exist (same config except ``steps``).
    backend : {"numpy", "cupy"}
    progress : bool
        tqdm progress bar.

    Returns
    -------
    dict with ``params``, ``state``, ``model``, ``step``, ``metrics`` (rows: step,
    train_loss, lr, val_psnr, time_s), ``config``, ``arch``, ``sigma`` ([0, 1] scale) and ``seconds``:
    what :func:`nlref.denoise.denoise_learned` takes as ``weights``.
    """
    _check(cfg, images)
    if val_images is not None:
        _check(cfg, val_images)
    xp = namespace_by_name(backend)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    check_resume(checkpoint, resume)
    dtype = np.dtype(cfg.dtype)
    val = noisy_batch(
        images if val_images is None else val_images,
        step_rng(0, VAL, 0),
        n=cfg.n_val,
        patch=cfg.patch,
        sigma=cfg.sigma,
        dtype=dtype,
    )
    val = [asarray(a, xp=xp) for a in val]  # the same patches for every seed and run
    run = _start(cfg, checkpoint, resume, xp)
    seconds = run_loop(_task(cfg, images, val, xp, checkpoint), run, progress=progress)
    keys = ("params", "state", "model", "step")
    arch = {**cfg.arch(), "dtype": cfg.dtype}
    return {**{k: run[k] for k in keys}, "metrics": run["rows"], "config": cfg, "arch": arch,
            "sigma": cfg.sigma / 255.0, "seconds": seconds}  # fmt: skip
