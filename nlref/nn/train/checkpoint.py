"""Training checkpoints of the video models, in the one format of :mod:`nlref.nn.weights`.

A checkpoint of ``nlref train`` is a weights file of kind ``"video"``: the model (a flat
dict of named parameters) saved as it is, with the optimiser state, the BatchNorm running
statistics, the running training averages since the last evaluation and every metrics
row so far -- nothing is pickled::

    arch, config        TrainConfig as JSON (nlref.nn.train.config)
    step                completed training steps
    metrics             the rows of metrics.json up to ``step``
    param/<name>        e.g. "param/res3.0.nl.theta.w"
    opt/<name>          optimiser state ("opt/velocity.fc.w", "opt/step")
    state/<name>        BatchNorm running statistics
    meter/<name>        0-d running training averages since the last evaluation

:func:`save_checkpoint` writes atomically (a failed save never clobbers the previous
checkpoint); :func:`load_checkpoint` reads through :func:`nlref.nn.weights.read_weights`,
with the caller's freshly built model as the template: names, shapes and dtypes must match
exactly, and every error names the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from ...backend import asarray
from ..weights import read_weights, write_weights
from .config import TrainConfig, config_from_dict

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(
    path: str | os.PathLike,
    *,
    params: dict,
    opt_state: dict,
    state: dict,
    step: int,
    config: TrainConfig | dict | str,
    meter: dict | None = None,
    metrics: list | None = None,
) -> None:
    """Write a training checkpoint atomically (kind ``"video"`` of :func:`nlref.nn.weights.write_weights`).

    ``config``: a TrainConfig, its dict or its JSON; ``metrics``: the rows so far.
    """
    if isinstance(config, TrainConfig):
        config = dataclasses.asdict(config)
    elif isinstance(config, str):
        config = json.loads(config)
    write_weights(
        path,
        kind="video",
        arch=config,
        config=config,
        params=params,
        opt_state=opt_state,
        state=state,
        meter=meter,
        step=step,
        metrics=list(metrics or []),
    )


def _template(group: dict | None) -> dict | None:
    if group is None:
        return None
    return {
        k: (tuple(np.shape(v)), np.asarray(v).dtype if not hasattr(v, "dtype") else v.dtype)
        for k, v in group.items()
    }


def load_checkpoint(
    path: str | os.PathLike,
    *,
    params: dict | None = None,
    opt_state: dict | None = None,
    state: dict | None = None,
    meter: dict | None = None,
    xp: Any = np,
) -> dict[str, Any]:
    """Read and check a checkpoint of :func:`save_checkpoint`.

    Parameters
    ----------
    path : path-like
    params, opt_state, state, meter : dict, optional
        Templates (a freshly built model): when given, the checkpoint must hold exactly
        their keys with the same shapes and dtypes, else ``ValueError`` names the first
        offending key.
    xp : module
        Array module of the returned arrays.

    Returns
    -------
    dict
        ``params``, ``opt_state``, ``state``, ``meter`` (dicts of arrays), ``step`` (int),
        ``metrics`` (rows) and ``config`` (:class:`TrainConfig`, or a dict for a config
        this version does not know).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Anything else: the one-line messages of :func:`nlref.nn.weights.read_weights`.
    """
    groups = {"params": params, "opt_state": opt_state, "state": state, "meter": meter}
    expected = {g: _template(t) for g, t in groups.items() if t is not None}
    ck = read_weights(path, kind="video", expected=expected)
    try:
        ck["config"] = config_from_dict(ck["config"])
    except (ValueError, TypeError):
        pass  # a config of another nlref version: returned as it is, refused by train(resume=True)
    for group in groups:
        ck[group] = {k: asarray(v, xp) for k, v in ck[group].items()}
    return ck
