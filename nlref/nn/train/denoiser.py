"""Training the residual non-local denoiser on random noisy patches, with checkpoints.

The last chapter of the story (notebook 06): the network of
:mod:`nlref.nn.denoiser` learns to predict the noise ``n`` of ``y = x + n``
(DnCNN's residual learning, Zhang et al., TIP 2017) on random ``patch x
patch`` crops of :data:`nlref.data.training_images.TRAIN_IMAGES`, rotated and
flipped, with white Gaussian noise of one fixed ``sigma`` (one model per noise
level, as DnCNN-S).  Loss: ``mean((R(y) - n)^2)``; Adam (Kingma & Ba 2015).

Everything random is a function of ``(seed, step)``: the batch of step ``s``
draws from ``default_rng([seed, 101, s])``, so a run stopped and resumed from
its checkpoint follows the same path.  The validation patches come from a
fixed seed shared by every run, so seeds compare on the same data.

A checkpoint is one ``.npz`` written atomically: ``param/<name>``,
``state/<name>`` (BatchNorm running statistics), ``opt/<name>`` (Adam
moments), ``step``, ``config`` and ``metrics`` (JSON strings in 0-d unicode
arrays: nothing is pickled; read with ``allow_pickle=False``).  A *weights
file* is the same without ``opt/``: :func:`nlref.denoise.learned.load_weights`
reads both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...backend import asarray, namespace_by_name
from ...io import save_npz_atomic
from ...metrics import psnr
from ..denoiser.model import DENOISER_ARCH_KEYS, build_denoiser, denoiser_backward, denoiser_forward
from ..layers.params import params_to_numpy
from .optim import adam_init, adam_step
from .records import sigterm_raises

__all__ = [
    "DENOISER_PRESETS",
    "DenoiserConfig",
    "load_denoiser",
    "noisy_batch",
    "save_denoiser",
    "train_denoiser",
]

WEIGHTS_FORMAT = "nlref-denoiser-v1"
_BATCH, _VAL = 101, 202


@dataclasses.dataclass
class DenoiserConfig:
    """A training run of the denoiser (saved as JSON in every checkpoint and weights file).

    Architecture: ``width``, ``depth``, ``nl_blocks``, ``window``, ``inner_channels``
    (:func:`nlref.nn.denoiser.build_denoiser`).  Data: ``sigma`` on the 0-255 scale,
    ``patch`` (side in pixels), ``batch_size``.  Optimisation: Adam with ``lr``,
    divided by 10 for the last ``1 - lr_drop`` fraction of ``steps``.
    ``eval_every`` steps, the validation PSNR on ``n_val`` fixed patches.
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

    def arch(self) -> dict[str, Any]:
        """The keyword arguments of :func:`build_denoiser` (what a weights file is checked against)."""
        return {k: getattr(self, k) for k in DENOISER_ARCH_KEYS}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


#: ``default``: the shipped models (two windowed blocks; sigma 25 unless ``--sigma``); ``no-nl``: the same
#: network without them;
#: ``quick``: a few steps of a tiny network, for tests and the notebook's quick mode.
DENOISER_PRESETS = {
    "default": DenoiserConfig(),
    "no-nl": DenoiserConfig(nl_blocks=0),
    "quick": DenoiserConfig(
        width=8, depth=3, window=3, patch=16, batch_size=4, steps=12, eval_every=6, n_val=4
    ),
}


def _check(cfg: DenoiserConfig, images: list | None = None) -> None:
    """The config's fields and, when given, the training images; one-line errors before any work."""
    for name in ("width", "depth", "patch", "batch_size", "steps", "eval_every", "n_val"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, received {v!r}")
    if not (np.isfinite(cfg.sigma) and cfg.sigma > 0):
        raise ValueError(f"sigma must be a positive number (0-255 scale), received {cfg.sigma!r}")
    if not 0 < cfg.lr_drop <= 1:
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
    extra: dict | None = None,
) -> None:
    """Write a checkpoint (with ``opt_state``) or a weights file (without), atomically, with no pickles.

    ``extra`` adds JSON entries (e.g. ``check``: the recorded PSNR on a held-out image).
    """
    arrays = {f"param/{k}": v for k, v in params_to_numpy(params).items()}
    arrays.update({f"state/{k}": v for k, v in params_to_numpy(state).items()})
    if opt_state is not None:
        arrays.update({f"opt/{k}": np.asarray(v) for k, v in params_to_numpy(opt_state).items()})
    arrays.update(
        format=np.array(WEIGHTS_FORMAT),
        step=np.array(step, dtype=np.int64),
        config=np.array(config.to_json()),
        metrics=np.array(json.dumps(metrics)),
    )
    for key, value in (extra or {}).items():
        arrays[key] = np.array(json.dumps(value))
    save_npz_atomic(path, arrays)


def _json_entry(data, key: str, path: str):
    try:
        return json.loads(str(data[key][()]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"weights file {path!r}: entry {key!r} is missing or not JSON text ({exc})"
        ) from None


def load_denoiser(path: str | os.PathLike, *, with_optimizer: bool = False) -> dict[str, Any]:
    """Read a weights file or checkpoint with ``allow_pickle=False`` and check it against its architecture.

    The ``config`` entry names the architecture; :func:`build_denoiser` makes a
    template of it, and every ``param/`` and ``state/`` array must match the
    template's keys, shapes and floating dtype.

    Returns
    -------
    dict with ``params``, ``state`` (NumPy arrays), ``model``, ``config``
    (:class:`DenoiserConfig`), ``step``, ``metrics``, ``check`` (the recorded
    PSNR check or None) and, with ``with_optimizer``, ``opt_state``.

    Raises
    ------
    ValueError
        Not an ``.npz``, pickled (object) arrays, unknown format, missing,
        unexpected or mis-shaped arrays: the message names the file and the key.
    """
    path = str(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"weights file {path!r} is not a readable .npz file ({exc})") from None
    with npz:
        data = {}
        for key in npz.files:
            try:
                data[key] = npz[key]
            except ValueError:
                raise ValueError(
                    f"weights file {path!r}: entry {key!r} holds pickled objects, "
                    "which are never loaded (allow_pickle=False)"
                ) from None
    if str(data.get("format", np.array(""))[()]) != WEIGHTS_FORMAT:
        raise ValueError(f"weights file {path!r}: entry 'format' must be {WEIGHTS_FORMAT!r}")
    raw = _json_entry(data, "config", path)
    known = {f.name for f in dataclasses.fields(DenoiserConfig)}
    if not isinstance(raw, dict) or set(raw) - known:
        raise ValueError(f"weights file {path!r}: entry 'config' has unknown keys {sorted(set(raw) - known)}")
    cfg = DenoiserConfig(**raw)
    model, t_params, t_state = build_denoiser(**cfg.arch(), dtype=np.dtype(cfg.dtype))
    out = {
        "model": model,
        "config": cfg,
        "step": int(data["step"]),
        "metrics": _json_entry(data, "metrics", path),
        "check": _json_entry(data, "check", path) if "check" in data else None,
    }
    groups = [("param", "params", t_params), ("state", "state", t_state)]
    if with_optimizer:
        groups.append(("opt", "opt_state", adam_init(t_params)))
    for prefix, name, template in groups:
        found = {k[len(prefix) + 1 :]: v for k, v in data.items() if k.startswith(prefix + "/")}
        for key in sorted(set(template) ^ set(found)):
            what = "missing" if key in template else "unexpected"
            raise ValueError(
                f"weights file {path!r}: {what} array {prefix}/{key} for the recorded architecture "
                f"{cfg.arch()}"
            )
        for key, t in template.items():
            a = found[key]
            if a.shape != np.shape(t) or (a.dtype.kind != "f" and key != "step"):
                raise ValueError(
                    f"weights file {path!r}: array {prefix}/{key} has shape {a.shape} dtype {a.dtype}, "
                    f"expected shape {np.shape(t)} floating for {cfg.arch()}"
                )
        out[name] = found
    return out


def _start(cfg: DenoiserConfig, checkpoint: Any, xp: Any, dtype: Any) -> tuple:
    """A fresh model and optimiser, or the ones saved in ``checkpoint`` (when given and present)."""
    model, params, state = build_denoiser(**cfg.arch(), rng=cfg.seed, dtype=dtype, xp=xp)
    if checkpoint is None or not Path(checkpoint).exists():
        return model, params, state, adam_init(params), 0, []
    ck = load_denoiser(checkpoint, with_optimizer=True)
    if {**json.loads(ck["config"].to_json()), "steps": cfg.steps} != json.loads(cfg.to_json()):
        raise ValueError(f"cannot resume from {str(checkpoint)!r}: its config differs from the requested one")
    params = {k: asarray(v, xp=xp) for k, v in ck["params"].items()}
    state = {k: asarray(v, xp=xp) for k, v in ck["state"].items()}
    opt = {k: (v if k == "step" else asarray(v, xp=xp)) for k, v in ck["opt_state"].items()}
    return model, params, state, opt, ck["step"], ck["metrics"]


def _train_step(cfg, images, model, params, state, opt, step, xp) -> tuple:
    """One Adam step on the batch of ``step``: ``(params, opt, state, loss, lr)``, inputs untouched."""
    batch = noisy_batch(
        images,
        np.random.default_rng([cfg.seed, _BATCH, step]),
        n=cfg.batch_size,
        patch=cfg.patch,
        sigma=cfg.sigma,
        dtype=np.dtype(cfg.dtype),
    )
    y, noise = (asarray(a, xp=xp) for a in batch)
    out, cache, new_state = denoiser_forward(y, params, state, model, train=True)
    diff = out - noise
    loss = float((diff * diff).mean())  # L = mean((R(y) - n)^2), dL/dR = 2 (R(y) - n) / size
    _, grads = denoiser_backward(diff * (2.0 / diff.size), cache, model)
    lr = cfg.lr * (0.1 if step >= cfg.lr_drop * cfg.steps else 1.0)
    new_params, new_opt = adam_step(params, grads, opt, lr=lr)
    return new_params, new_opt, new_state, loss, lr


def train_denoiser(
    cfg: DenoiserConfig,
    images: list[np.ndarray],
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    backend: str = "numpy",
    progress: bool = True,
) -> dict[str, Any]:
    """Train the denoiser; return its ``params``, ``state``, ``model``, ``metrics`` and timing.

    Parameters
    ----------
    cfg : DenoiserConfig
    images : list of (H, W) float arrays in [0, 1]
        Training images (:func:`nlref.data.training_images.load_grey` of ``TRAIN_IMAGES``).
    checkpoint : path-like, optional
        Written after every evaluation, at the end, and on Ctrl-C / SIGTERM.
    resume : bool
        Continue from ``checkpoint`` when it exists (same config except ``steps``).
    backend : {"numpy", "cupy"}
    progress : bool
        tqdm progress bar with the loss and the last validation PSNR.

    Returns
    -------
    dict with ``params``, ``state``, ``model``, ``step``, ``metrics`` (rows: step,
    train_loss, val_psnr, time_s), ``config`` and ``seconds``.
    """
    _check(cfg, images)
    xp = namespace_by_name(backend)
    dtype = np.dtype(cfg.dtype)
    model, params, state, opt, step, rows = _start(cfg, checkpoint if resume else None, xp, dtype)
    val_rng = np.random.default_rng([_VAL])  # the same patches for every seed and run
    val = noisy_batch(images, val_rng, n=cfg.n_val, patch=cfg.patch, sigma=cfg.sigma, dtype=dtype)
    val = [asarray(a, xp=xp) for a in val]

    def save() -> None:
        if checkpoint is not None:
            save_denoiser(
                checkpoint, params=params, state=state, config=cfg, step=step, metrics=rows, opt_state=opt
            )

    t0, loss_sum, loss_n = time.perf_counter(), 0.0, 0
    desc = f"denoiser nl={cfg.nl_blocks} sigma={cfg.sigma:g}"
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, unit="step", desc=desc, leave=False)
    with sigterm_raises():
        try:
            while step < cfg.steps:
                new = _train_step(cfg, images, model, params, state, opt, step, xp)
                new_params, new_opt, new_state, loss, lr = new
                # commit the step in one assignment: an interrupt never leaves a half-updated model
                params, opt, state, step = new_params, new_opt, new_state, step + 1
                loss_sum, loss_n = loss_sum + loss, loss_n + 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.2e}", val=f"{rows[-1]['val_psnr']:.2f} dB" if rows else "-")
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    val_psnr, seconds = _evaluate(model, params, state, val), time.perf_counter() - t0
                    row = dict(step=step, train_loss=loss_sum / loss_n, lr=lr, val_psnr=val_psnr)
                    rows.append(dict(row, time_s=seconds))
                    loss_sum, loss_n = 0.0, 0
                    save()
        except KeyboardInterrupt:
            bar.close()
            save()
            where = (
                f"; checkpoint saved to {checkpoint} (resume with --resume)" if checkpoint is not None else ""
            )
            print(f"interrupted after step {step}{where}")
            raise  # SIGTERM arrives as TrainingInterrupted (exit status 143), Ctrl-C as itself (130)
    bar.close()
    save()
    return {
        "params": params,
        "state": state,
        "model": model,
        "step": step,
        "metrics": rows,
        "config": cfg,
        "seconds": time.perf_counter() - t0,
    }
