"""Training checkpoints: one ``.npz``, written atomically, read strictly.

A checkpoint of :mod:`nlref.nn.train` is a flat dict of arrays, exactly what
the model already is (a flat dict of named parameters), so it saves to
``.npz`` as it is -- nothing is pickled:

    format              0-d str    "nlref-checkpoint-v1"
    step                0-d int    completed training steps (>= 0)
    config              0-d str    TrainConfig as JSON (nlref.nn.train.config)
    param/<name>        params     e.g. "param/res3.0.nl.theta.w"
    opt/<name>          optimiser state ("opt/velocity.fc.w", "opt/step")
    state/<name>        BatchNorm running statistics
    meter/<name>        0-d running training averages since the last evaluation

:func:`save_checkpoint` writes through :func:`nlref.io.save_npz_atomic`: a
failed save never clobbers the previous checkpoint.  :func:`load_checkpoint`
reads with ``allow_pickle=False`` and checks every entry before returning, so
a run is never resumed from a truncated file, a foreign ``.npz``, a model of
another shape or non-finite weights; each error names the file and the key.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any

import numpy as np
import numpy.lib.format as npformat

from ...backend import asarray, to_numpy
from ...io import save_npz_atomic
from .config import TrainConfig, config_from_dict

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "nlref-checkpoint-v1"
# key prefix in the file -> group name in the dict load_checkpoint returns
_GROUPS = {"param": "params", "opt": "opt_state", "state": "state", "meter": "meter"}
_SCALARS = ("format", "step", "config")
_PREFIX = {group: prefix for prefix, group in _GROUPS.items()}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    params: dict,
    opt_state: dict,
    state: dict,
    step: int,
    config: TrainConfig | dict | str,
    meter: dict | None = None,
) -> None:
    """Write a training checkpoint atomically as ``.npz`` (no pickles).

    Parameters
    ----------
    path : path-like
        Destination; it appears only once complete, and if anything fails the
        old checkpoint (if any) is left untouched.
    params, opt_state, state, meter : dict of arrays
        Saved under ``param/``, ``opt/``, ``state/``, ``meter/``; arrays are
        copied to the host (:func:`nlref.backend.to_numpy`).
    step : int
        Completed training steps.
    config : TrainConfig, dict or JSON str

    Returns
    -------
    None
    """
    if isinstance(config, TrainConfig):
        config = config.to_json()
    elif isinstance(config, dict):
        config = json.dumps(config, sort_keys=True)
    arrays = {
        "format": np.array(CHECKPOINT_FORMAT),
        "step": np.array(int(step), dtype=np.int64),
        "config": np.array(str(config)),
    }
    for prefix, group in (("param", params), ("opt", opt_state), ("state", state), ("meter", meter or {})):
        for key, value in group.items():
            arrays[f"{prefix}/{key}"] = np.asarray(to_numpy(value))
    save_npz_atomic(path, arrays)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    # a damaged file can fail anywhere in zipfile, zlib or NumPy's header parser (BadZipFile,
    # NotImplementedError, SyntaxError, MemoryError, ...): all of them mean "cannot read it"
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"checkpoint {path!r} is corrupt or truncated (cannot read it as .npz: {reason})"
        ) from None


def _check_sizes(path: str) -> None:
    """Every member's ``.npy`` header declares no more data than the member holds.

    Read before ``np.load`` so that a damaged shape cannot make NumPy allocate
    an array larger than the file.
    """
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                version = npformat.read_magic(fh)
                read_header = (
                    npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                )
                shape, _, dtype = read_header(fh)
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise ValueError(f"{info.filename} declares shape {shape} of {dtype}, more than it holds")


def _scalar(arrays: dict, key: str, kind: str, path: str) -> Any:
    """The 0-d entry ``key`` as a Python str (kind "U") or int (kind "i"), else ValueError."""
    if key not in arrays:
        raise ValueError(f"checkpoint {path!r} is corrupt: missing key {key!r}")
    a = arrays[key]
    ok = a.ndim == 0 and (a.dtype.kind == "U" if kind == "U" else a.dtype.kind in "iu")
    if not ok:
        what = "a 0-d string" if kind == "U" else "a 0-d integer"
        raise ValueError(
            f"checkpoint {path!r}: key {key!r} must be {what}, received {a.dtype} array of shape {a.shape}"
        )
    return str(a[()]) if kind == "U" else int(a[()])


def _config(text: str, path: str) -> TrainConfig | dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {path!r}: key 'config' is not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(
            f"checkpoint {path!r}: key 'config' must be a JSON object, received {type(d).__name__}"
        )
    try:
        return config_from_dict(d)
    except (ValueError, TypeError):
        return d  # a config of another nlref version: returned as it is, refused by train(resume=True)


def _check_array(key: str, a: np.ndarray, path: str) -> None:
    """Real numbers only, all finite; meters are 0-d."""
    if a.dtype.kind not in "fiu":
        raise ValueError(f"checkpoint {path!r}: key {key!r} holds {a.dtype} values, expected real numbers")
    if key.startswith("meter/") and a.ndim != 0:
        raise ValueError(f"checkpoint {path!r}: key {key!r} must be a 0-d number, received shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(a.size - np.isfinite(a).sum())
        raise ValueError(
            f"checkpoint {path!r}: key {key!r} holds {bad} non-finite value(s) (NaN or inf); "
            "refusing to resume from it"
        )


def _cast(key: str, a: np.ndarray, template: Any, path: str) -> np.ndarray:
    """``a`` in the template's dtype, refusing a cast that would change a value (float -> int, overflow)."""
    dtype = np.dtype(template.dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if a.dtype.kind not in "iu" or (a.size and (a.min() < info.min or a.max() > info.max)):
            raise ValueError(
                f"checkpoint {path!r}: key {key!r} holds {a.dtype} values, expected integers that fit {dtype}"
            )
        return a.astype(dtype, copy=False)
    with np.errstate(over="ignore"):
        out = a.astype(dtype, copy=False)
    if not np.isfinite(out).all():
        raise ValueError(f"checkpoint {path!r}: key {key!r} holds values too large for the model's {dtype}")
    return out


def _groups(arrays: dict, path: str) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in _GROUPS.values()}
    for key, value in arrays.items():
        if key in _SCALARS:
            continue
        prefix, _, name = key.partition("/")
        if prefix not in _GROUPS or not name:
            raise ValueError(
                f"checkpoint {path!r}: unknown key {key!r}; expected {list(_SCALARS)} or "
                f"{[p + '/<name>' for p in _GROUPS]}"
            )
        _check_array(key, value, path)
        out[_GROUPS[prefix]][name] = value
    return out


def _check_group(found: dict, template: dict, what: str, path: str) -> None:
    missing = sorted(set(template) - set(found))
    extra = sorted(set(found) - set(template))
    if missing:
        raise ValueError(
            f"checkpoint {path!r} does not match the model: missing {what} key {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if extra:
        raise ValueError(
            f"checkpoint {path!r} does not match the model: unexpected {what} key {extra[0]!r}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    for key, ref in template.items():
        if tuple(found[key].shape) != tuple(ref.shape):
            raise ValueError(
                f"checkpoint {path!r} does not match the model: {what} key {key!r} has shape "
                f"{tuple(found[key].shape)} in the checkpoint, expected {tuple(ref.shape)}"
            )


def load_checkpoint(
    path: str | os.PathLike,
    *,
    params: dict | None = None,
    opt_state: dict | None = None,
    state: dict | None = None,
    meter: dict | None = None,
    xp: Any = np,
) -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint` (``allow_pickle=False``).

    Parameters
    ----------
    path : path-like
    params, opt_state, state, meter : dict, optional
        Templates (e.g. a freshly built model): when given, the checkpoint must
        hold exactly their keys with the same shapes, else ``ValueError`` names
        the first offending key.  Loaded arrays take the template's dtype.
    xp : module
        Array module of the returned arrays.

    Returns
    -------
    dict
        ``params``, ``opt_state``, ``state``, ``meter`` (dicts of arrays),
        ``step`` (int) and ``config`` (:class:`TrainConfig`, or a dict for a
        config this version does not know).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Corrupt or truncated file; not an nlref checkpoint; a ``step``,
        ``config`` or meter entry of the wrong type or shape; a negative step;
        an unknown top-level key; complex, non-numeric, NaN or inf values; keys
        or shapes that do not match the templates.  The message names the file
        and the key.
    """
    path = str(path)
    arrays = _read_npz(path)
    if (
        "format" not in arrays
        or arrays["format"].dtype.kind != "U"
        or str(arrays["format"][()]) != CHECKPOINT_FORMAT
    ):
        raise ValueError(
            f"checkpoint {path!r} is not an nlref checkpoint (expected format {CHECKPOINT_FORMAT!r})"
        )
    _scalar(arrays, "format", "U", path)
    step = _scalar(arrays, "step", "i", path)
    if step < 0:
        raise ValueError(f"checkpoint {path!r}: key 'step' must be >= 0, received {step}")
    config = _config(_scalar(arrays, "config", "U", path), path)
    out: dict[str, Any] = _groups(arrays, path)
    for what, template in (("params", params), ("opt_state", opt_state), ("state", state), ("meter", meter)):
        if template is not None:
            _check_group(out[what], template, what, path)
            out[what] = {k: _cast(f"{_PREFIX[what]}/{k}", out[what][k], template[k], path) for k in template}
    for what in _GROUPS.values():
        out[what] = {k: asarray(v, xp) for k, v in out[what].items()}
    out["step"], out["config"] = step, config
    return out
