"""Records of a training run: evaluation, metrics files, checkpoints, interruption, summary.

The bookkeeping around the loop of :mod:`nlref.nn.train`: held-out accuracy
(:func:`evaluate`, at step :data:`FIRST_EVAL` and every ``eval_every`` steps),
``metrics.json`` / ``metrics.csv``, ``checkpoint.npz`` (:mod:`nlref.nn.train.checkpoint`),
SIGTERM turned into :class:`TrainingInterrupted` (so ``kill`` and job schedulers
save a checkpoint as Ctrl-C does), and the closing summary line.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...io import atomic_path
from ..layers.elementwise import softmax_cross_entropy
from ..video.models import model_forward
from .checkpoint import save_checkpoint
from .config import TrainConfig

__all__ = [
    "FIRST_EVAL",
    "TrainingInterrupted",
    "sigterm_raises",
    "evaluate",
    "is_eval_step",
    "new_meter",
    "eval_row",
    "write_metrics",
    "save_run",
    "summary_line",
    "check_resumable",
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
def sigterm_raises() -> Iterator[None]:
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


def is_eval_step(cfg: TrainConfig, step: int) -> bool:
    return step % cfg.eval_every == 0 or step == cfg.steps or (step == FIRST_EVAL < cfg.eval_every)


def new_meter() -> dict[str, np.ndarray]:
    """Running sums of the training loss and accuracy since the last evaluation."""
    return {"loss_sum": np.array(0.0), "correct": np.array(0), "count": np.array(0)}


def eval_row(cfg: TrainConfig, run: dict, lr: float, seconds: float) -> dict[str, Any]:
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


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
    with atomic_path(out_dir / "metrics.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["step"])
            writer.writeheader()
            writer.writerows(rows)


def save_run(run: dict, cfg: TrainConfig) -> None:
    if run["ckpt"] is not None:
        save_checkpoint(
            run["ckpt"],
            params=run["params"],
            opt_state=run["opt_state"],
            state=run["state"],
            step=run["step"],
            config=cfg,
            meter=run["meter"],
            metrics=run["rows"],
        )


def summary_line(cfg: TrainConfig, run: dict, seconds: float) -> str:
    rows = run["rows"]
    where = f"checkpoint {run['ckpt']}" if run["ckpt"] is not None else "no checkpoint (no out_dir)"
    if not rows:
        return f"done: step {run['step']}/{cfg.steps} in {seconds:.1f} s, no evaluation; {where}"
    best = max(rows, key=lambda r: r["val_accuracy"])
    return (
        f"done: step {run['step']}/{cfg.steps} in {seconds:.1f} s; held-out accuracy last "
        f"{rows[-1]['val_accuracy']:.3f}, best {best['val_accuracy']:.3f} (step {best['step']}); {where}"
    )


def check_resumable(saved: Any, cfg: TrainConfig, path: Path) -> None:
    saved_d = saved if isinstance(saved, dict) else dataclasses.asdict(saved)
    now = dataclasses.asdict(cfg)
    diff = sorted(k for k in set(saved_d) | set(now) if k != "steps" and saved_d.get(k) != now.get(k))
    if diff:
        raise ValueError(
            f"cannot resume from {str(path)!r}: its config differs in {diff} (checkpoint "
            f"{[saved_d.get(k) for k in diff]}, requested {[now.get(k) for k in diff]})"
        )
