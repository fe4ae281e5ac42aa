"""The denoiser's weights: what a file's ``arch`` implies, read through the one reader, and the v1 upgrade.

Inference reads weights here (:func:`load_denoiser_weights`), through
:func:`nlref.nn.weights.read_weights`, and imports nothing of the training chapter.
A file records its architecture (``arch``: width, depth, nl_blocks, window,
inner_channels, dtype) and the noise level it was trained for (``sigma``, on the
[0, 1] scale of images).  :func:`denoiser_arrays` turns ``arch`` into the names,
shapes and dtypes of the arrays -- counting them first, so that a file recording a
depth of 10**7 is refused at once, without building anything.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..weights import read_weights, write_weights
from .model import DENOISER_ARCH_KEYS, build_denoiser

__all__ = ["denoiser_arrays", "load_denoiser_weights", "upgrade_v1"]

_DTYPES = ("float32", "float64")
_SLACK = 64


def _count(arch: dict) -> int:
    """Arrays of params + state: conv0 (2), per layer conv, BN (4: gamma, beta, mean, var), a block 8."""
    return 2 + 5 * arch["depth"] + 8 * arch["nl_blocks"] + 2


def denoiser_arrays(arch: dict, n_arrays: int) -> dict[str, dict[str, tuple]]:
    """``{"params": {name: (shape, dtype)}, "state": {...}}`` of the denoiser ``arch`` describes.

    Raises ``ValueError`` for an ``arch`` with other keys, values of the wrong type, or
    more arrays than ``n_arrays`` (the file's count), before any shape is listed.
    """
    if sorted(arch) != sorted((*DENOISER_ARCH_KEYS, "dtype")):
        raise ValueError(f"keys {sorted(arch)}, expected {sorted((*DENOISER_ARCH_KEYS, 'dtype'))}")
    for key in ("width", "depth", "nl_blocks"):
        v = arch[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "nl_blocks" else 1):
            raise ValueError(f"{key} must be a positive int, received {v!r}")
    for key in ("window", "inner_channels"):
        v = arch[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"{key} must be null or an int >= 0, received {v!r}")
    if arch["dtype"] not in _DTYPES or arch["nl_blocks"] > min(2, arch["depth"]):
        raise ValueError(f"dtype must be one of {_DTYPES} and nl_blocks <= min(2, depth), received {arch}")
    if _count(arch) > n_arrays + _SLACK:  # a few missing arrays are named one by one below
        raise ValueError(f"{arch} has {_count(arch)} arrays, the file holds {n_arrays}")
    w, ci, dt = arch["width"], arch["inner_channels"], np.dtype(arch["dtype"])
    ci = max(w // 2, 1) if ci is None else ci
    params = {"conv0.w": (w, 1, 3, 3), "conv0.b": (w,)}
    state = {}
    depth, nl = arch["depth"], arch["nl_blocks"]
    after = {depth // 2} if nl == 1 else {depth // 2, depth // 2 + 1} if nl == 2 else set()
    for i in range(1, depth + 1):
        params.update({f"conv{i}.w": (w, w, 3, 3), f"bn{i}.gamma": (w,), f"bn{i}.beta": (w,)})
        state.update({f"bn{i}.running_mean": (w,), f"bn{i}.running_var": (w,)})
        if i in after:
            for b in ("theta", "phi", "g"):
                params.update({f"nl{i}.{b}.w": (ci, w), f"nl{i}.{b}.b": (ci,)})
            params.update({f"nl{i}.w_z.w": (w, ci), f"nl{i}.w_z.b": (w,)})
    params.update({"conv_out.w": (1, w, 3, 3), "conv_out.b": (1,)})
    return {
        "params": {k: (s, dt) for k, s in params.items()},
        "state": {k: (s, dt) for k, s in state.items()},
    }


def load_denoiser_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a denoiser weights file or checkpoint (:func:`nlref.nn.weights.read_weights`).

    Returns
    -------
    dict with ``model`` (the layer table), ``params``, ``state``, ``arch``, ``sigma`` (the
    noise level trained for, [0, 1] scale), ``config`` (the training run, a dict), ``step``,
    ``metrics``, ``check`` (the recorded PSNR check or None) and, for a checkpoint,
    ``opt_state`` and ``meter``.
    """
    net = read_weights(path, kind="denoiser", expected=denoiser_arrays)
    if net["sigma"] is None:
        raise ValueError(f"{path}: key 'sigma' is missing (the noise level the model was trained for)")
    arch = net["arch"]
    # the arrays matched the architecture: building its table now costs what the file holds
    net["model"], _, _ = build_denoiser(
        **{k: arch[k] for k in DENOISER_ARCH_KEYS}, dtype=np.dtype(arch["dtype"])
    )
    return net


def upgrade_v1(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Convert a denoiser file of format_version 1 (``"nlref-denoiser-v1"``) to the current format.

    The arrays are copied bit for bit; the config's ``sigma`` (0-255 scale) is recorded as
    ``sigma / 255`` and the architecture as ``arch``.  Version 1 files were only written by
    nlref itself; this reads them with ``allow_pickle=False``.
    """
    with np.load(src, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    if str(data["format"][()]) != "nlref-denoiser-v1":
        raise ValueError(f"{src}: key 'format': not a format_version 1 denoiser file")
    config = json.loads(str(data["config"][()]))
    arch = {k: config[k] for k in (*DENOISER_ARCH_KEYS, "dtype")}
    write_weights(
        dst,
        kind="denoiser",
        arch=arch,
        config=config,
        params={k[6:]: v for k, v in data.items() if k.startswith("param/")},
        state={k[6:]: v for k, v in data.items() if k.startswith("state/")},
        opt_state={k[4:]: v for k, v in data.items() if k.startswith("opt/")},
        step=int(data["step"]),
        metrics=json.loads(str(data["metrics"][()])),
        sigma=float(config["sigma"]) / 255.0,
        check=json.loads(str(data["check"][()])) if "check" in data else None,
    )
