"""Training C2D / I3D / non-local networks on the synthetic video task, with checkpoints.

The last step of the video story (Wang, Girshick, Gupta, He, CVPR 2018,
Section 4): take a network from :mod:`nlref.nn.models`, a stream of clips from
:mod:`nlref.data.synthetic_video`, and run the paper's recipe scaled down --
SGD with momentum 0.9, weight decay 1e-4 and a step schedule (lr / 10 every
``lr_step`` steps), random crop + horizontal flip, BatchNorm in train mode,
held-out validation -- or Adam.  SGD (lr 0.1) is the default: on 16 x 16
clips NL C2D left chance after about 250 steps with either optimiser and SGD
was ahead at step 400 (val. accuracy 0.89 vs 0.77, seed 0); Adam lr 1e-3 is
preset "tiny-nl-c2d-adam".

Everything random is a function of ``(seed, step)``: the batch of step ``s`` is
clips ``s * B .. (s + 1) * B - 1`` of the train split, its augmentation and
dropout draw from ``SeedSequence(seed, spawn_key=(kind, s))``.  A run stopped
at any step and resumed from its checkpoint therefore follows exactly the same
path as an uninterrupted one (bit-identical on NumPy).

A checkpoint is one ``.npz`` written atomically (a failed save never clobbers
the previous one): ``param/<name>``, ``opt/<name>``, ``state/<name>`` (BN
running statistics), ``meter/<name>`` (the running training averages),
``step`` and ``config`` (a JSON string in a 0-d unicode array -- nothing is
pickled, and :func:`load_checkpoint` reads with ``allow_pickle=False``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backend import asarray, get_namespace, namespace_by_name, to_numpy
from ..io import atomic_path, save_npz_atomic

# ``train`` itself is left out of __all__: nlref.nn star-imports this module, and exporting
# a function named ``train`` would hide the module ``nlref.nn.train`` behind it.
__all__ = [
    "TrainConfig",
    "PRESETS",
    "get_preset",
    "load_config",
    "save_checkpoint",
    "load_checkpoint",
    "random_crop_flip",
    "step_rng",
    "build_from_config",
    "evaluate",
    "train_summary",
]

CHECKPOINT_FORMAT = "nlref-checkpoint-v1"
_GROUPS = {"param": "params", "opt": "opt_state", "state": "state", "meter": "meter"}
# spawn-key tags of the per-step random streams (the data stream is synthetic_video's own)
_AUG, _DROPOUT, _INIT, _SHUFFLE = 101, 102, 103, 104


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as JSON in each checkpoint).

    Model: ``arch`` ("c2d" | "i3d"), ``layout`` ("tiny" | "resnet50"),
    ``depth`` / ``width`` / ``block`` (None: the layout's default), ``nl_*``,
    ``inflate``, ``dropout``.  Data: the synthetic task's clip shape and noise.
    Optimisation: ``optimizer`` ("sgd": momentum + weight decay + step
    schedule, the paper's recipe; "adam"), ``lr``, ``lr_step`` (divide by
    ``1 / lr_gamma`` every ``lr_step`` steps; 0 = constant), ``batch_size``,
    ``steps``; ``eval_every`` steps (an "epoch" of the metrics files) on
    ``n_val`` held-out clips; ``crop_pad`` (random crop after zero padding,
    pixels; 0 = none) and ``flip``.
    """

    arch: str = "c2d"
    layout: str = "tiny"
    depth: list | None = None
    width: int | None = 8
    block: str | None = None
    nl_blocks: int = 0
    nl_mode: str = "embedded_gaussian"
    nl_subsample: bool = False
    nl_space_time: str = "spacetime"
    inflate: str = "3x3x3"
    dropout: float = 0.0
    n_frames: int = 16
    size: int = 32
    channels: int = 3
    noise: float = 0.1
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 750
    lr_gamma: float = 0.1
    batch_size: int = 32
    n_train: int = 0
    steps: int = 1000
    eval_every: int = 100
    n_val: int = 500
    crop_pad: int = 0
    flip: bool = True
    seed: int = 0
    dtype: str = "float32"

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (unknown names raise ValueError)."""
        return _config_from_dict({**dataclasses.asdict(self), **changes})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _config_from_dict(d: dict[str, Any]) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown training config key(s) {unknown}; expected some of {sorted(names)}")
    cfg = TrainConfig(**d)
    if cfg.depth is not None:
        cfg.depth = [int(v) for v in cfg.depth]
    _check_config(cfg)
    return cfg


def _check_config(cfg: TrainConfig) -> None:
    if cfg.arch not in ("c2d", "i3d"):
        raise ValueError(f"arch must be 'c2d' or 'i3d', received {cfg.arch!r}")
    if cfg.optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {cfg.optimizer!r}")
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', received {cfg.dtype!r}")
    for name in ("batch_size", "steps", "eval_every", "n_val"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, received {v!r}")
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise ValueError(f"lr must be > 0, received {cfg.lr!r}")
    if cfg.crop_pad < 0 or cfg.lr_step < 0 or cfg.n_train < 0:
        raise ValueError(f"crop_pad, lr_step and n_train must be >= 0, received {cfg.crop_pad}, {cfg.lr_step}, "
                         f"{cfg.n_train}")


# the paper's recipe scaled down: SGD, momentum 0.9, weight decay 1e-4, lr / 10 after 3/4 of the steps
_TINY = dict(layout="tiny", width=8, optimizer="sgd", lr=0.1, weight_decay=1e-4, lr_step=750, batch_size=32,
             steps=1000, eval_every=100)
_ADAM = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, lr_step=0)
#: Named configurations for ``nlref train --preset NAME``.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-c2d": dict(_TINY, arch="c2d"),
    "tiny-nl-c2d": dict(_TINY, arch="c2d", nl_blocks=1),
    "tiny-i3d": dict(_TINY, arch="i3d"),
    "tiny-nl-i3d": dict(_TINY, arch="i3d", nl_blocks=1),
    # Adam lr 1e-3 (PAPER_NOTES' setting)
    "tiny-nl-c2d-adam": dict(_TINY, **_ADAM, arch="c2d", nl_blocks=1),
    # a few seconds on a CPU (smoke tests, CI): memorises 16 fixed clips, so the loss visibly falls
    "quick": dict(_TINY, **dict(_ADAM, lr=3e-3), arch="c2d", nl_blocks=1, width=4, size=16, batch_size=8,
                  n_train=16, steps=30, eval_every=10, n_val=32),
    # the paper's C2D ResNet-50 layout (needs a GPU and real time)
    "resnet50-nl-c2d": dict(arch="c2d", layout="resnet50", width=64, nl_blocks=5, dropout=0.5, optimizer="sgd",
                            lr=0.01, weight_decay=1e-4, lr_step=15000, steps=40000, batch_size=8,
                            n_frames=32, size=112, eval_every=1000),
}


def get_preset(name: str, **overrides: Any) -> TrainConfig:
    """The configuration of a named preset (see :data:`PRESETS`), with overrides."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, received {name!r}")
    return _config_from_dict({**PRESETS[name], **overrides})


def load_config(path: str | os.PathLike, **overrides: Any) -> TrainConfig:
    """Read a JSON training config; a ``"preset"`` key starts from that preset."""
    d = json.loads(Path(path).read_text())
    if not isinstance(d, dict):
        raise ValueError(f"config file {str(path)!r} must hold a JSON object, received {type(d).__name__}")
    preset = d.pop("preset", None)
    base = PRESETS[preset] if preset is not None else {}
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, received {preset!r}")
    return _config_from_dict({**base, **d, **overrides})


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, *, params: dict, opt_state: dict, state: dict, step: int,
                    config: TrainConfig | dict | str, meter: dict | None = None) -> None:
    """Write a training checkpoint atomically as ``.npz`` (no pickles).

    Arrays are copied to the host (:func:`nlref.backend.to_numpy`).  The file
    appears under ``path`` only once it is complete; if anything fails the old
    checkpoint (if any) is left untouched.
    """
    if isinstance(config, TrainConfig):
        config = config.to_json()
    elif isinstance(config, dict):
        config = json.dumps(config, sort_keys=True)
    arrays = {"format": np.array(CHECKPOINT_FORMAT), "step": np.array(int(step), dtype=np.int64),
              "config": np.array(str(config))}
    for prefix, group in (("param", params), ("opt", opt_state), ("state", state), ("meter", meter or {})):
        for key, value in group.items():
            arrays[f"{prefix}/{key}"] = np.asarray(to_numpy(value))
    save_npz_atomic(path, arrays)


def _check_group(found: dict, template: dict, what: str, path: str) -> None:
    missing = sorted(set(template) - set(found))
    extra = sorted(set(found) - set(template))
    if missing:
        raise ValueError(f"checkpoint {path!r} does not match the model: missing {what} key {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        raise ValueError(f"checkpoint {path!r} does not match the model: unexpected {what} key {extra[0]!r}"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for key, ref in template.items():
        if tuple(found[key].shape) != tuple(ref.shape):
            raise ValueError(f"checkpoint {path!r} does not match the model: {what} key {key!r} has shape "
                             f"{tuple(found[key].shape)} in the checkpoint, expected {tuple(ref.shape)}")


def load_checkpoint(path: str | os.PathLike, *, params: dict | None = None, opt_state: dict | None = None,
                    state: dict | None = None, xp: Any = np) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``allow_pickle=False``).

    Parameters
    ----------
    path : path-like
    params, opt_state, state : dict, optional
        Templates (e.g. a freshly built model): when given, the checkpoint must
        hold exactly their keys with the same shapes, else ``ValueError`` names
        the first offending key.  Loaded arrays take the template's dtype.
    xp : module
        Array module of the returned arrays.

    Returns
    -------
    dict with ``params``, ``opt_state``, ``state``, ``meter`` (dicts of arrays),
    ``step`` (int) and ``config`` (:class:`TrainConfig`, or a dict for a config
    this version does not know).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Corrupt or truncated file, not an nlref checkpoint, or keys/shapes that
        do not match the templates.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"checkpoint {path!r} is corrupt or truncated (cannot read it as .npz: {exc})") from None
    if "format" not in arrays or str(arrays["format"][()]) != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path!r} is not an nlref checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    for key in ("step", "config"):
        if key not in arrays:
            raise ValueError(f"checkpoint {path!r} is corrupt: missing key {key!r}")
    out: dict[str, Any] = {name: {} for name in _GROUPS.values()}
    for key, value in arrays.items():
        prefix, _, name = key.partition("/")
        if prefix in _GROUPS and name:
            out[_GROUPS[prefix]][name] = value
    for what, template in (("params", params), ("opt_state", opt_state), ("state", state)):
        if template is not None:
            _check_group(out[what], template, what, path)
            out[what] = {k: out[what][k].astype(template[k].dtype, copy=False) for k in template}
    for what in _GROUPS.values():
        out[what] = {k: asarray(v, xp) for k, v in out[what].items()}
    out["step"] = int(arrays["step"])
    cfg = json.loads(str(arrays["config"][()]))
    try:
        out["config"] = _config_from_dict(cfg)
    except (ValueError, TypeError):
        out["config"] = cfg
    return out


# ----------------------------------------------------------------------------- data


def step_rng(seed: int, kind: int, step: int) -> np.random.Generator:
    """Generator of one random stream (augmentation, dropout, init) at one step."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, int(step))))


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
        clip = x[i, :, :, dy:dy + h, dx:dx + w]
        out[i] = clip[..., ::-1] if flips[i] else clip
    return out


def _batch(cfg: TrainConfig, step: int, xp: Any, dtype: Any):
    from ..data.synthetic_video import make_clips

    first = step * cfg.batch_size
    indices = np.arange(first, first + cfg.batch_size)
    if cfg.n_train:  # a fixed training set, in a new order every epoch
        epochs, slots = np.divmod(indices, cfg.n_train)
        perms = {e: step_rng(cfg.seed, _SHUFFLE, e).permutation(cfg.n_train) for e in set(epochs.tolist())}
        indices = np.array([perms[e][j] for e, j in zip(epochs.tolist(), slots.tolist())])
    x, y = make_clips(cfg.batch_size, seed=cfg.seed, split="train", indices=indices,
                      n_frames=cfg.n_frames, size=cfg.size, channels=cfg.channels, noise=cfg.noise, dtype=dtype)
    x = random_crop_flip(x, step_rng(cfg.seed, _AUG, step), pad=cfg.crop_pad, flip=cfg.flip)
    return asarray(x, xp), asarray(y, xp)


def _val_set(cfg: TrainConfig, xp: Any, dtype: Any):
    from ..data.synthetic_video import make_clips

    x, y = make_clips(cfg.n_val, seed=cfg.seed, split="val", n_frames=cfg.n_frames, size=cfg.size,
                      channels=cfg.channels, noise=cfg.noise, dtype=dtype)
    return asarray(x, xp), asarray(y, xp)


# ----------------------------------------------------------------------------- training


def build_from_config(cfg: TrainConfig, *, xp: Any = np):
    """Build ``(model, params, state)`` for a config with :func:`nlref.nn.models.build_model`."""
    from .models import build_model

    return build_model(
        cfg.arch, layout=cfg.layout, depth=None if cfg.depth is None else tuple(cfg.depth), width=cfg.width,
        block=cfg.block, in_channels=cfg.channels, num_classes=2, nl_blocks=cfg.nl_blocks, nl_mode=cfg.nl_mode,
        nl_subsample=cfg.nl_subsample, nl_space_time=cfg.nl_space_time, inflate=cfg.inflate, dropout=cfg.dropout,
        rng=step_rng(cfg.seed, _INIT, 0), dtype=np.dtype(cfg.dtype), xp=xp,
    )


def evaluate(model: list, params: dict, state: dict, x: Any, y: Any, *, batch_size: int = 64) -> dict[str, float]:
    """Loss and accuracy of a model in eval mode (BN running statistics) on ``(x, y)``."""
    from .layers import softmax_cross_entropy
    from .models import model_forward

    total_loss, correct = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        logits, _, _ = model_forward(xb, params, state, model, train=False)
        loss, _ = softmax_cross_entropy(logits, yb)
        total_loss += float(loss) * xb.shape[0]
        correct += int((logits.argmax(axis=1) == yb).sum())
    return {"loss": total_loss / x.shape[0], "accuracy": correct / x.shape[0]}


def _optimizer(cfg: TrainConfig):
    from . import optim

    if cfg.optimizer == "sgd":
        return optim.sgd_init, lambda p, g, s, lr: optim.sgd_step(
            p, g, s, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return optim.adam_init, lambda p, g, s, lr: optim.adam_step(p, g, s, lr=lr, weight_decay=cfg.weight_decay)


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    """The paper's step schedule: ``lr * lr_gamma ** (step // lr_step)`` (constant when lr_step = 0)."""
    return cfg.lr * cfg.lr_gamma ** (step // cfg.lr_step) if cfg.lr_step else cfg.lr


def _write_metrics(out_dir: Path, rows: list[dict]) -> None:
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
    with atomic_path(out_dir / "metrics.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["step"])
            writer.writeheader()
            writer.writerows(rows)


def _check_resumable(saved: Any, cfg: TrainConfig, path: Path) -> None:
    saved_d = saved if isinstance(saved, dict) else dataclasses.asdict(saved)
    now = dataclasses.asdict(cfg)
    diff = sorted(k for k in set(saved_d) | set(now) if k != "steps" and saved_d.get(k) != now.get(k))
    if diff:
        raise ValueError(f"cannot resume from {str(path)!r}: its config differs in {diff} "
                         f"(checkpoint {[saved_d.get(k) for k in diff]}, requested {[now.get(k) for k in diff]})")


def train(
    cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    backend: str = "numpy",
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """Train a network on the synthetic task; return its parameters and metrics.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : path-like, optional
        Folder for ``checkpoint.npz`` (after every evaluation, at the end and
        on Ctrl-C), ``metrics.csv`` and ``metrics.json`` (one row per
        evaluation).  None: nothing is written.
    resume : bool
        Continue from ``out_dir/checkpoint.npz`` when it exists (its config
        must equal ``cfg`` except for ``steps``).
    backend : {"numpy", "cupy"}
    progress : bool
        Show a tqdm progress bar.
    callback : callable, optional
        ``callback(step, info)`` after each completed step (``info``: loss,
        lr); an exception raised there stops training like Ctrl-C does.

    Returns
    -------
    dict with ``params``, ``state``, ``opt_state``, ``model``, ``step``,
    ``metrics`` (list of rows) and ``config``.

    Notes
    -----
    On ``KeyboardInterrupt`` the last completed step is saved to the
    checkpoint before the exception propagates; ``resume=True`` continues
    from there and ends bit-identical to an uninterrupted run on NumPy.
    """
    from tqdm.auto import tqdm

    from .layers import softmax_cross_entropy
    from .models import model_backward, model_forward

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, received {type(cfg).__name__}")
    _check_config(cfg)
    xp = namespace_by_name(backend)
    dtype = np.dtype(cfg.dtype)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz" if out is not None else None

    model, params, state = build_from_config(cfg, xp=xp)
    opt_init, opt_step = _optimizer(cfg)
    opt_state = opt_init(params)
    meter = {"loss_sum": np.array(0.0), "correct": np.array(0), "count": np.array(0)}
    step, rows = 0, []
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, params=params, opt_state=opt_state, state=state, xp=xp)
        _check_resumable(ck["config"], cfg, ckpt_path)
        params, opt_state, state, step = ck["params"], ck["opt_state"], ck["state"], ck["step"]
        meter.update(ck["meter"])
        if (out / "metrics.json").exists():
            rows = [r for r in json.loads((out / "metrics.json").read_text()) if r["step"] <= step]
    val_x, val_y = _val_set(cfg, xp, dtype)

    def checkpoint() -> None:
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, params=params, opt_state=opt_state, state=state, step=step,
                            config=cfg, meter=meter)

    t_start = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"{cfg.arch} nl={cfg.nl_blocks}",
               unit="step", leave=False)
    try:
        while step < cfg.steps:
            x, y = _batch(cfg, step, xp, dtype)
            lr = _learning_rate(cfg, step)
            logits, cache, new_state = model_forward(x, params, state, model, train=True,
                                                     rng=step_rng(cfg.seed, _DROPOUT, step))
            loss, dlogits = softmax_cross_entropy(logits, y)
            grads = model_backward(dlogits, cache)
            new_params, new_opt = opt_step(params, grads, opt_state, lr)
            correct = int((logits.argmax(axis=1) == y).sum())
            # commit the step in one assignment, so Ctrl-C never leaves a half-updated model
            params, opt_state, state, step, meter = new_params, new_opt, new_state, step + 1, {
                "loss_sum": np.array(float(meter["loss_sum"]) + float(loss) * x.shape[0]),
                "correct": np.array(int(meter["correct"]) + correct),
                "count": np.array(int(meter["count"]) + x.shape[0])}
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.2g}")
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val = evaluate(model, params, state, val_x, val_y, batch_size=max(cfg.batch_size, 64))
                count = max(int(meter["count"]), 1)
                rows.append({"step": step, "epoch": len(rows) + 1, "lr": lr,
                             "train_loss": float(meter["loss_sum"]) / count,
                             "train_accuracy": int(meter["correct"]) / count,
                             "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                             "time_s": time.perf_counter() - t_start})
                meter = {"loss_sum": np.array(0.0), "correct": np.array(0), "count": np.array(0)}
                if progress:
                    bar.write(f"step {step}: train loss {rows[-1]['train_loss']:.4f}, "
                              f"val acc {val['accuracy']:.3f}")
                if out is not None:
                    _write_metrics(out, rows)
                    checkpoint()
            if callback is not None:
                callback(step, {"loss": float(loss), "lr": lr})
    except KeyboardInterrupt:
        bar.close()
        checkpoint()
        if ckpt_path is not None:
            print(f"interrupted after step {step}; checkpoint saved to {ckpt_path} (resume with --resume)")
        raise
    bar.close()
    checkpoint()
    return {"params": params, "state": state, "opt_state": opt_state, "model": model, "step": step,
            "metrics": rows, "config": cfg}


def train_summary(cfg: TrainConfig, *, backend: str = "numpy") -> dict[str, Any]:
    """Train without writing files and return only what a table needs (picklable, for worker processes).

    Returns ``{"config", "val_accuracy", "val_loss", "metrics", "seconds", "step_s"}``;
    ``step_s`` is the mean wall time of a training step including data generation.
    """
    t0 = time.perf_counter()
    out = train(cfg, backend=backend, progress=False)
    seconds = time.perf_counter() - t0
    last = out["metrics"][-1]
    return {"config": dataclasses.asdict(cfg), "val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
            "metrics": out["metrics"], "seconds": seconds, "step_s": last["time_s"] / max(out["step"], 1)}
