"""The training loop: C2D / I3D / non-local networks on the synthetic video task.

The last step of the video story (Wang, Girshick, Gupta, He, CVPR 2018,
Section 4): take a network from :mod:`nlref.nn.models`, a stream of clips from
:mod:`nlref.data.synthetic_video`, and run the paper's recipe scaled down --
SGD with momentum 0.9, weight decay 1e-4 and a step schedule (lr / 10 every
``lr_step`` steps), random crop + horizontal flip, BatchNorm in train mode,
held-out validation -- or Adam.  SGD (lr 0.1) is the default: on 16 x 16
clips NL C2D left chance after about 250 steps with either optimiser and SGD
was ahead at step 400 (val. accuracy 0.89 vs 0.77, seed 0); Adam lr 1e-3 is
preset "tiny-nl-c2d-adam".  The pieces live beside this loop::

    TrainConfig (nlref.nn.config)
      -> build_from_config                       model, params, state
      -> for step: batch -> train_step (nlref.nn.step) -> commit
             every eval_every steps (and at step 25): evaluate, metrics.csv/json, checkpoint
      -> checkpoint.npz (nlref.nn.checkpoint)   also on Ctrl-C and SIGTERM

Everything random is a function of ``(seed, step)``: the batch of step ``s`` is
clips ``s * B .. (s + 1) * B - 1`` of the train split, its augmentation and
dropout draw from ``SeedSequence(seed, spawn_key=(kind, s))``.  A run stopped
at any step and resumed from its checkpoint therefore follows exactly the same
path as an uninterrupted one (bit-identical on NumPy).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..backend import asarray, get_namespace, namespace_by_name
from ..data.synthetic_video import make_clips
from ..io import atomic_path
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, TrainConfig, check_config, get_preset, load_config
from .layers import softmax_cross_entropy
from .models import model_forward
from .step import (
    AUG,
    DROPOUT,
    SHUFFLE,
    build_from_config,
    learning_rate,
    optimizer_init,
    step_rng,
    train_step,
)

# ``train`` itself is left out of __all__: nlref.nn star-imports this module, and exporting
# a function named ``train`` would hide the module ``nlref.nn.train`` behind it.
__all__ = [
    "TrainConfig",
    "PRESETS",
    "get_preset",
    "load_config",  # nlref.nn.config
    "save_checkpoint",
    "load_checkpoint",  # nlref.nn.checkpoint
    "step_rng",
    "build_from_config",
    "train_step",  # nlref.nn.step
    "random_crop_flip",
    "evaluate",
    "train_summary",
    "TrainingInterrupted",
    "FIRST_EVAL",
]

#: Step of the first, early evaluation (besides every ``eval_every`` steps), so a run shows signs of life.
FIRST_EVAL = 25


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :func:`train` when a signal (SIGTERM) stops it, after the checkpoint is saved.

    A subclass of ``KeyboardInterrupt``, so code that handles Ctrl-C handles it
    too; ``exit_code`` is the shell's ``128 + signum`` (143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    def __reduce__(self) -> tuple:  # picklable, e.g. out of an ablation worker process
        return (TrainingInterrupted, (self.signum,))


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`TrainingInterrupted`; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise TrainingInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# ----------------------------------------------------------------------------- data


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


def _batch(cfg: TrainConfig, step: int, xp: Any, dtype: Any) -> tuple[Any, Any]:
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


def _val_set(cfg: TrainConfig, xp: Any, dtype: Any) -> tuple[Any, Any]:
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


# ----------------------------------------------------------------------------- evaluation and files


def evaluate(
    model: list, params: dict, state: dict, x: Any, y: Any, *, batch_size: int = 64
) -> dict[str, float]:
    """Loss and accuracy of a model in eval mode (BN running statistics) on ``(x, y)``."""
    total_loss, correct = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits, _, _ = model_forward(xb, params, state, model, train=False)
        loss, _ = softmax_cross_entropy(logits, yb)
        total_loss += float(loss) * xb.shape[0]
        correct += int((logits.argmax(axis=1) == yb).sum())
    return {"loss": total_loss / x.shape[0], "accuracy": correct / x.shape[0]}


def _is_eval_step(cfg: TrainConfig, step: int) -> bool:
    return step % cfg.eval_every == 0 or step == cfg.steps or (step == FIRST_EVAL < cfg.eval_every)


def _new_meter() -> dict[str, np.ndarray]:
    """Running sums of the training loss and accuracy since the last evaluation."""
    return {"loss_sum": np.array(0.0), "correct": np.array(0), "count": np.array(0)}


def _eval_row(cfg: TrainConfig, run: dict, lr: float, seconds: float) -> dict[str, Any]:
    val = evaluate(
        run["model"],
        run["params"],
        run["state"],
        run["val_x"],
        run["val_y"],
        batch_size=max(cfg.batch_size, 64),
    )
    meter = run["meter"]
    count = max(int(meter["count"]), 1)
    return {
        "step": run["step"],
        "epoch": len(run["rows"]) + 1,
        "lr": lr,
        "train_loss": float(meter["loss_sum"]) / count,
        "train_accuracy": int(meter["correct"]) / count,
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "time_s": seconds,
    }


def _write_metrics(out_dir: Path, rows: list[dict]) -> None:
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
    with atomic_path(out_dir / "metrics.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["step"])
            writer.writeheader()
            writer.writerows(rows)


def _save(run: dict, cfg: TrainConfig) -> None:
    if run["ckpt"] is not None:
        save_checkpoint(
            run["ckpt"],
            params=run["params"],
            opt_state=run["opt_state"],
            state=run["state"],
            step=run["step"],
            config=cfg,
            meter=run["meter"],
        )


def _summary_line(cfg: TrainConfig, run: dict, seconds: float) -> str:
    rows = run["rows"]
    where = f"checkpoint {run['ckpt']}" if run["ckpt"] is not None else "no checkpoint (no out_dir)"
    if not rows:
        return f"done: step {run['step']}/{cfg.steps} in {seconds:.1f} s, no evaluation; {where}"
    best = max(rows, key=lambda r: r["val_accuracy"])
    return (
        f"done: step {run['step']}/{cfg.steps} in {seconds:.1f} s; val accuracy last "
        f"{rows[-1]['val_accuracy']:.3f}, best {best['val_accuracy']:.3f} (step {best['step']}); {where}"
    )


# ----------------------------------------------------------------------------- the loop


def _check_resumable(saved: Any, cfg: TrainConfig, path: Path) -> None:
    saved_d = saved if isinstance(saved, dict) else dataclasses.asdict(saved)
    now = dataclasses.asdict(cfg)
    diff = sorted(k for k in set(saved_d) | set(now) if k != "steps" and saved_d.get(k) != now.get(k))
    if diff:
        raise ValueError(
            f"cannot resume from {str(path)!r}: its config differs in {diff} (checkpoint "
            f"{[saved_d.get(k) for k in diff]}, requested {[now.get(k) for k in diff]})"
        )


def _start(cfg: TrainConfig, out: Path | None, resume: bool, xp: Any) -> dict[str, Any]:
    """The run's mutable record: model, params, state, opt_state, meter, step, rows (fresh or resumed)."""
    ckpt = out / "checkpoint.npz" if out is not None else None
    model, params, state = build_from_config(cfg, xp=xp)
    run = {
        "model": model,
        "params": params,
        "state": state,
        "opt_state": optimizer_init(cfg, params),
        "meter": _new_meter(),
        "step": 0,
        "rows": [],
        "ckpt": ckpt,
    }
    if resume:
        ck = load_checkpoint(
            ckpt, params=params, opt_state=run["opt_state"], state=state, meter=run["meter"], xp=xp
        )
        _check_resumable(ck["config"], cfg, ckpt)
        run.update(
            params=ck["params"],
            opt_state=ck["opt_state"],
            state=ck["state"],
            step=ck["step"],
            meter=ck["meter"],
        )
        if (out / "metrics.json").exists():
            rows = json.loads((out / "metrics.json").read_text())
            run["rows"] = [r for r in rows if r["step"] <= ck["step"]]
        print(f"resuming from step {ck['step']} ({ckpt})", flush=True)
    dtype = np.dtype(cfg.dtype)
    run["val_x"], run["val_y"] = _val_set(cfg, xp, dtype)
    return run


def _loop(
    cfg: TrainConfig,
    run: dict,
    xp: Any,
    bar: Any,
    out: Path | None,
    verbose: bool,
    callback: Callable[[int, dict], None] | None,
    t_start: float,
) -> None:
    dtype = np.dtype(cfg.dtype)
    while run["step"] < cfg.steps:
        step = run["step"]
        x, y = _batch(cfg, step, xp, dtype)
        lr = learning_rate(cfg, step)
        loss, correct, params, state, opt_state = train_step(
            run["model"],
            run["params"],
            run["state"],
            run["opt_state"],
            x,
            y,
            cfg=cfg,
            lr=lr,
            rng=step_rng(cfg.seed, DROPOUT, step),
        )
        meter = {
            "loss_sum": np.array(float(run["meter"]["loss_sum"]) + loss * x.shape[0]),
            "correct": np.array(int(run["meter"]["correct"]) + correct),
            "count": np.array(int(run["meter"]["count"]) + x.shape[0]),
        }
        # commit the step in one call, so an interrupt never leaves a half-updated model
        run.update(params=params, state=state, opt_state=opt_state, step=step + 1, meter=meter)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2g}")
        if _is_eval_step(cfg, run["step"]):
            row = _eval_row(cfg, run, lr, time.perf_counter() - t_start)
            run["rows"].append(row)
            run["meter"] = _new_meter()
            if verbose:
                tqdm.write(
                    f"step {row['step']}/{cfg.steps}: train loss {row['train_loss']:.4f}, val loss "
                    f"{row['val_loss']:.4f}, val accuracy {row['val_accuracy']:.3f} (lr {lr:.2g})"
                )
            if out is not None:
                _write_metrics(out, run["rows"])
                _save(run, cfg)
        if callback is not None:
            callback(run["step"], {"loss": loss, "lr": lr})


def train(
    cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    backend: str = "numpy",
    progress: bool = True,
    verbose: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """Train a network on the synthetic task; return its parameters and metrics.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : path-like, optional
        Folder for ``checkpoint.npz`` (after every evaluation, at the end and
        on Ctrl-C / SIGTERM), ``metrics.csv`` and ``metrics.json`` (one row per
        evaluation).  None: nothing is written.
    resume : bool
        Continue from ``out_dir/checkpoint.npz``, which must exist (its config
        must equal ``cfg`` except for ``steps``).
    backend : {"numpy", "cupy"}
    progress : bool
        Show a tqdm progress bar.
    verbose : bool
        Print one line per evaluation (at step :data:`FIRST_EVAL`, every
        ``eval_every`` steps and at the end), "resuming from step N" and a
        closing summary: last and best held-out accuracy, wall time, checkpoint.
    callback : callable, optional
        ``callback(step, info)`` after each completed step (``info``: loss,
        lr); an exception raised there stops training like Ctrl-C does.

    Returns
    -------
    dict
        ``params``, ``state``, ``opt_state``, ``model``, ``step``, ``metrics``
        (list of rows) and ``config``.

    Raises
    ------
    FileNotFoundError
        ``resume=True`` and there is no checkpoint in ``out_dir``.
    KeyboardInterrupt
        On Ctrl-C, after saving the last completed step to the checkpoint;
        :class:`TrainingInterrupted` (a subclass, ``exit_code`` 143) on SIGTERM.
        ``resume=True`` continues from there and ends bit-identical to an
        uninterrupted run on NumPy.

    Notes
    -----
    The SIGTERM handler is installed only while this function runs (in the
    main thread) and the previous one is restored afterwards.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, received {type(cfg).__name__}")
    check_config(cfg)
    xp = namespace_by_name(backend)
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs out_dir, the folder holding checkpoint.npz")
    if resume and not (out / "checkpoint.npz").is_file():
        raise FileNotFoundError(
            f"cannot resume: there is no checkpoint {str(out / 'checkpoint.npz')!r} "
            "(start a new run without --resume)"
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with _sigterm_raises():
        run = _start(cfg, out, resume, xp)
        bar = tqdm(
            total=cfg.steps,
            initial=run["step"],
            disable=not progress,
            desc=f"{cfg.arch} nl={cfg.nl_blocks}",
            unit="step",
            leave=False,
        )
        try:
            _loop(cfg, run, xp, bar, out, verbose, callback, t_start)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM (TrainingInterrupted) or a callback's
            bar.close()
            _save(run, cfg)
            how = (
                f"stopped by {signal.Signals(exc.signum).name}"
                if isinstance(exc, TrainingInterrupted)
                else "interrupted"
            )
            saved = (
                f"checkpoint saved to {run['ckpt']} (resume with --resume)"
                if run["ckpt"] is not None
                else "nothing saved (no out_dir)"
            )
            print(f"{how} after step {run['step']}; {saved}", flush=True)
            raise
        bar.close()
        _save(run, cfg)
    if verbose:
        print(_summary_line(cfg, run, time.perf_counter() - t_start), flush=True)
    return {
        "params": run["params"],
        "state": run["state"],
        "opt_state": run["opt_state"],
        "model": run["model"],
        "step": run["step"],
        "metrics": run["rows"],
        "config": cfg,
    }


def train_summary(cfg: TrainConfig, *, backend: str = "numpy") -> dict[str, Any]:
    """Train silently without writing files; return only what a table needs (picklable, for worker processes).

    Returns
    -------
    dict
        ``{"config", "val_accuracy", "val_loss", "metrics", "seconds", "step_s"}``;
        ``step_s`` is the mean wall time of a training step including data
        generation.
    """
    t0 = time.perf_counter()
    out = train(cfg, backend=backend, progress=False, verbose=False)
    seconds = time.perf_counter() - t0
    last = out["metrics"][-1]
    return {
        "config": dataclasses.asdict(cfg),
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "metrics": out["metrics"],
        "seconds": seconds,
        "step_s": last["time_s"] / max(out["step"], 1),
    }
