"""The training loop: C2D / I3D / non-local networks on the synthetic video task.

The last step of the video story (Wang, Girshick, Gupta, He, CVPR 2018,
Section 4): take a network from :mod:`nlref.nn.video.models`, a stream of clips from
:mod:`nlref.data.synthetic_video`, and run the paper's recipe scaled down --
SGD with momentum 0.9, weight decay 1e-4 and a step schedule (lr / 10 every
``lr_step`` steps), random crop + horizontal flip, BatchNorm in train mode,
held-out validation -- or Adam.  SGD (lr 0.1, 1000 steps, 16 x 16 frames) is
what the ``tiny-*`` presets run; with Adam lr 1e-3 (preset "tiny-nl-c2d-adam")
the dot-product and concatenation blocks were further from solving the task
at step 400 (0.77 and 0.58, seed 0).  The non-local blocks are initialised by
fan-in (``nl_init``; the official std 0.01 is a saddle when training from
scratch: notebook 05).  The measured accuracies of every preset and seed are
the tables of ``data/figures/ablation_cpu.md`` (``nlref ablate``).  The pieces
live beside this loop (data and model: :mod:`nlref.nn.train.step`; evaluation,
files, signals: :mod:`nlref.nn.train.records`)::

    TrainConfig (nlref.nn.train.config)
      -> build_from_config                       model, params, state
      -> for step: batch -> train_step (nlref.nn.train.step) -> commit
             every eval_every steps (and at step 25): evaluate, metrics.csv/json, checkpoint
      -> checkpoint.npz (nlref.nn.train.checkpoint)   also on Ctrl-C and SIGTERM

Everything random is a function of ``(seed, step)``: the batch of step ``s`` is
clips ``s * B .. (s + 1) * B - 1`` of the train split, its augmentation and
dropout draw from ``SeedSequence(seed, spawn_key=(kind, s))``.  A run stopped
at any step and resumed from its checkpoint therefore follows exactly the same
path as an uninterrupted one (bit-identical on NumPy).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...backend import blas_threads, namespace_by_name
from .checkpoint import load_checkpoint
from .config import TrainConfig, check_config
from .records import (
    TrainingInterrupted,
    check_resumable,
    eval_row,
    is_eval_step,
    new_meter,
    save_run,
    sigterm_raises,
    summary_line,
    write_metrics,
)
from .step import (
    DROPOUT,
    build_from_config,
    learning_rate,
    optimizer_init,
    step_rng,
    train_batch,
    train_step,
    val_set,
)

__all__ = ["Task", "check_resume", "run_loop", "train", "train_summary"]


@dataclasses.dataclass
class Task:
    """What the one loop needs from a model: its step, its evaluation, and how to keep a run.

    ``step(run, s) -> (new, info)``: the new ``params``, ``state``, ``opt_state`` and ``meter``
    after step ``s`` (pure: ``run`` is not modified) and numbers for the progress bar;
    ``evaluate(run, info, seconds) -> row``: the metrics row of a run whose step was just taken;
    ``save(run)``: the checkpoint (the rows and the running loss ride in it); ``report(run)``:
    after a row is committed (print it, write metrics files).
    """

    steps: int
    step: Callable[[dict, int], tuple[dict, dict]]
    is_eval: Callable[[int], bool]
    evaluate: Callable[[dict, dict, float], dict]
    new_meter: Callable[[], dict]
    save: Callable[[dict], None]
    report: Callable[[dict], None] = lambda run: None
    desc: str = ""


def check_resume(checkpoint: Path | None, resume: bool) -> None:
    """The one resume rule: ``resume`` needs an existing checkpoint (one-line error before any work)."""
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path (the out folder holding checkpoint.npz)")
    if resume and not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"cannot resume: there is no checkpoint {str(checkpoint)!r} (start a new run without --resume)"
        )


def run_loop(task: Task, run: dict, *, progress: bool, callback: Callable | None = None) -> float:
    """The one training loop of ``nlref train`` and ``nlref train-denoiser``; returns its wall time.

    Per step: the pure step; on an evaluation step, the row of the new model; then the step,
    its row and the reset running loss are committed in one assignment, and saved.  An
    interrupt (Ctrl-C, SIGTERM as :class:`TrainingInterrupted`, a callback's exception) never
    leaves a half-committed step: the checkpoint holds the last committed step with all its
    rows, and a resumed run repeats the interrupted step exactly.  Every row records ``cpu_s``, the
    process CPU seconds spent on the run so far (summed over resumed sessions; with one BLAS thread, the
    CPU budget), and the BLAS
    thread count (:func:`nlref.backend.blas_threads`): the results of ``nlref train`` depend on it
    at round-off level, which grows over a run (issue 24: ``nlref train --preset tiny-nl-c2d`` ended at
    0.988 with the default threads, 0.982 with one).
    """
    if run["step"] > task.steps:  # a checkpoint beyond the run: nothing to train, nothing to write
        raise ValueError(
            f"{run.get('ckpt')}: key 'step' is {run['step']}, beyond the {task.steps} steps requested: "
            "resume with --steps of at least that"
        )
    t_start, cpu_start = time.perf_counter(), time.process_time()
    cpu_before = run["rows"][-1].get("cpu_s", 0.0) if run["rows"] else 0.0  # a resumed run adds on
    bar = tqdm(
        total=task.steps, initial=run["step"], disable=not progress, desc=task.desc, unit="step", leave=False
    )
    with sigterm_raises():
        try:
            while run["step"] < task.steps:
                step = run["step"]
                new, info = task.step(run, step)
                new["step"] = step + 1
                if task.is_eval(step + 1):
                    row = task.evaluate({**run, **new}, info, time.perf_counter() - t_start)
                    row["blas_threads"] = blas_threads()  # every metrics row says how it was run
                    row["cpu_s"] = cpu_before + time.process_time() - cpu_start  # CPU budget spent so far
                    new.update(rows=[*run["rows"], row], meter=task.new_meter())
                run.update(new)  # commit the step and its row in one call
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in info.items()})
                if "rows" in new:
                    task.report(run)
                    task.save(run)
                if callback is not None:
                    callback(run["step"], info)
            bar.close()
            task.save(run)  # inside the try: a signal during the last save still gets its line
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM (TrainingInterrupted) or a callback's
            bar.close()
            task.save(run)
            how = (
                f"stopped by {signal.Signals(exc.signum).name}"
                if isinstance(exc, TrainingInterrupted)
                else ""
            )
            saved = run.get("ckpt")
            where = (
                f"checkpoint saved to {saved} (resume with --resume)"
                if saved
                else "nothing saved (no out_dir)"
            )
            print(f"{how or 'interrupted'} after step {run['step']}; {where}", flush=True)
            exc.reported = True  # the CLI adds no second "stopped" line
            raise
    return time.perf_counter() - t_start


def _start(cfg: TrainConfig, out: Path | None, resume: bool, xp: Any) -> dict[str, Any]:
    """The run's record: model, params, state, opt_state, meter, step, rows (fresh or resumed)."""
    ckpt = out / "checkpoint.npz" if out is not None else None
    model, params, state = build_from_config(cfg, xp=xp)
    run = {
        "model": model,
        "params": params,
        "state": state,
        "opt_state": optimizer_init(cfg, params),
        "meter": new_meter(),
        "step": 0,
        "rows": [],
        "ckpt": ckpt,
    }
    if resume:
        ck = load_checkpoint(
            ckpt, params=params, opt_state=run["opt_state"], state=state, meter=run["meter"], xp=xp
        )
        check_resumable(ck["config"], cfg, ckpt)
        keys = ("params", "opt_state", "state", "step", "meter")
        run.update({k: ck[k] for k in keys}, rows=ck["metrics"])
        print(f"resuming from step {ck['step']} ({ckpt})", flush=True)
    run["val_x"], run["val_y"] = val_set(cfg, xp, np.dtype(cfg.dtype))
    return run


def _video_task(cfg: TrainConfig, xp: Any, out: Path | None, verbose: bool) -> Task:
    dtype = np.dtype(cfg.dtype)

    def step(run, s):
        x, y = train_batch(cfg, s, xp, dtype)
        lr = learning_rate(cfg, s)
        loss, correct, params, state, opt_state = train_step(
            run["model"], run["params"], run["state"], run["opt_state"], x, y, cfg=cfg, lr=lr,
            rng=step_rng(cfg.seed, DROPOUT, s),
        )  # fmt: skip
        meter = {
            "loss_sum": np.array(float(run["meter"]["loss_sum"]) + loss * x.shape[0]),
            "correct": np.array(int(run["meter"]["correct"]) + correct),
            "count": np.array(int(run["meter"]["count"]) + x.shape[0]),
        }
        return dict(params=params, state=state, opt_state=opt_state, meter=meter), {"loss": loss, "lr": lr}

    def report(run):
        row = run["rows"][-1]
        if verbose:
            tqdm.write(
                f"step {row['step']}/{cfg.steps}: train loss {row['train_loss']:.4f}, held-out loss "
                f"{row['val_loss']:.4f}, held-out accuracy {row['val_accuracy']:.3f} (lr {row['lr']:.2g})"
            )
        if out is not None:
            write_metrics(out, run["rows"])

    return Task(
        steps=cfg.steps,
        step=step,
        is_eval=lambda s: is_eval_step(cfg, s),
        evaluate=lambda run, info, seconds: eval_row(cfg, run, info["lr"], seconds),
        new_meter=new_meter,
        save=lambda run: save_run(run, cfg),
        report=report,
        desc=f"{cfg.arch} nl={cfg.nl_blocks}",
    )


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
    check_resume(out / "checkpoint.npz" if out is not None else None, resume)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with sigterm_raises():
        run = _start(cfg, out, resume, xp)
    seconds = run_loop(_video_task(cfg, xp, out, verbose), run, progress=progress, callback=callback)
    if verbose:
        print(summary_line(cfg, run, seconds), flush=True)
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
