"""nlref.nn.train: training, from one optimiser step to the ablation of the paper's Table 2.

The modules, in reading order:

* :mod:`~nlref.nn.train.optim` -- SGD with momentum and Adam, one tensor at a time (the reference);
* :mod:`~nlref.nn.train.multi_tensor` -- the same updates on all tensors at once (the fast form);
* :mod:`~nlref.nn.train.config` -- :class:`TrainConfig` and the presets;
* :mod:`~nlref.nn.train.step` -- the RNG convention, the batches of the synthetic video task, the
  learning rate and the pure ``train_step``;
* :mod:`~nlref.nn.train.records` -- evaluation, metrics rows and files, Ctrl-C and SIGTERM;
* :mod:`~nlref.nn.train.checkpoint` -- the video models' checkpoints, in the one format of
  :mod:`nlref.nn.weights`;
* :mod:`~nlref.nn.train.loop` -- :func:`run_loop`, the one loop of ``nlref train`` and
  ``nlref train-denoiser``, and :func:`train`, the video models on it;
* :mod:`~nlref.nn.train.ablation`, :mod:`~nlref.nn.train.report` -- the ablation and its tables;
* :mod:`~nlref.nn.train.denoiser` -- training the learned denoiser on the same loop.
"""

from __future__ import annotations

from .ablation import LONG_FRAMES, PAPER, PARTS, WINDOWS, ablation_config, run_ablation, select_rows
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, TrainConfig, check_config, config_from_dict, get_preset, load_config
from .denoiser import (
    DENOISER_PRESETS,
    DenoiserConfig,
    load_denoiser,
    noisy_batch,
    save_denoiser,
    train_denoiser,
)
from .loop import Task, check_resume, run_loop, train, train_summary
from .multi_tensor import multi_tensor_adam_step, multi_tensor_sgd_step
from .optim import adam_init, adam_step, sgd_init, sgd_step
from .records import (
    FIRST_EVAL,
    TrainingInterrupted,
    check_resumable,
    eval_row,
    evaluate,
    is_eval_step,
    new_meter,
    save_run,
    sigterm_raises,
    summary_line,
    write_metrics,
)
from .report import QUICK_NOTE, TITLES, markdown, plot, write_results
from .step import (
    build_from_config,
    learning_rate,
    optimizer_init,
    random_crop_flip,
    step_rng,
    train_batch,
    train_step,
    val_set,
)

__all__ = [
    "sgd_init",
    "sgd_step",
    "adam_init",
    "adam_step",
    "multi_tensor_sgd_step",
    "multi_tensor_adam_step",
    "TrainConfig",
    "PRESETS",
    "get_preset",
    "load_config",
    "config_from_dict",
    "check_config",
    "step_rng",
    "build_from_config",
    "learning_rate",
    "optimizer_init",
    "train_step",
    "random_crop_flip",
    "train_batch",
    "val_set",
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
    "save_checkpoint",
    "load_checkpoint",
    "Task",
    "check_resume",
    "run_loop",
    "train",
    "train_summary",
    "PAPER",
    "PARTS",
    "LONG_FRAMES",
    "WINDOWS",
    "ablation_config",
    "select_rows",
    "run_ablation",
    "TITLES",
    "QUICK_NOTE",
    "markdown",
    "plot",
    "write_results",
    "DENOISER_PRESETS",
    "DenoiserConfig",
    "noisy_batch",
    "train_denoiser",
    "save_denoiser",
    "load_denoiser",
]
