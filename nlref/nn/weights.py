"""The one file format of nlref.nn -- training checkpoints and weights files -- and its one reader.

A model is a flat dict of named arrays, so a file is one ``.npz`` (members stored, not
compressed; nothing pickled), written atomically by :func:`write_weights`::

    format            0-d str     "nlref-weights"
    format_version    0-d int64   FORMAT_VERSION (2)
    kind              0-d str     "video" (nlref train) or "denoiser" (nlref train-denoiser)
    arch              0-d str     JSON object: what the arrays must be (checked before anything is built)
    config            0-d str     JSON object: the training run (free-form for this reader)
    step              0-d int64   completed training steps, 0 <= step <= MAX_STEP
    metrics           0-d str     JSON list of rows {"step": int, name: number | str | bool | None}
    sigma             0-d float64 noise level on [0, 1] (denoisers only)
    check             0-d str     JSON object (optional): a recorded PSNR check
    param/<name>, state/<name>, opt/<name>, meter/<name>     arrays

:func:`read_weights` checks, in this order and before it allocates anything a file could
make large: the zip directory (every member a stored ``.npy`` whose header declares exactly
the bytes the member holds, all members together no larger than the file); the scalars;
the recorded architecture against the number, names, shapes and exact dtypes of the arrays
(the caller's ``expected``: a template or a function of ``arch``); then, reading one array
at a time, the values: finite, no negative variance (``running_var``, Adam's ``v``), and no
magnitude above :data:`MAX_ABS`.  Any failure is one ``ValueError`` line naming the file and
the key.  Files of ``format_version`` 1 are refused with one line; the shipped denoisers
were converted bit-exactly by :func:`nlref.nn.denoiser.upgrade_v1`.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.lib.format as npformat

from ..backend import to_numpy
from ..io import save_npz_atomic

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_ABS", "MAX_STEP", "GROUPS", "write_weights", "read_weights"]

FORMAT = "nlref-weights"
FORMAT_VERSION = 2
#: The largest magnitude a parameter, running statistic, optimiser moment or meter may hold.
#: Trained nlref models stay below 1e3; a value above 1e6 is damage, not training.
MAX_ABS = 1e6
#: The largest ``step`` a file may record.
MAX_STEP = 10**9
#: Array groups: key prefix in the file -> key in the dict :func:`read_weights` returns.
GROUPS = {"param": "params", "state": "state", "opt": "opt_state", "meter": "meter"}
_TEXT = ("format", "kind", "arch", "config", "metrics", "check")
_SCALARS = {"format_version": "i", "step": "i", "sigma": "f", **dict.fromkeys(_TEXT, "U")}
_MAX_TEXT = 1 << 20  # bytes of one JSON or string entry
_OLD_FORMATS = ("nlref-checkpoint-v1", "nlref-denoiser-v1")


def write_weights(
    path: str | os.PathLike,
    *,
    kind: str,
    arch: dict,
    params: dict,
    state: dict,
    step: int,
    metrics: list,
    config: dict | None = None,
    opt_state: dict | None = None,
    meter: dict | None = None,
    sigma: float | None = None,
    check: dict | None = None,
) -> None:
    """Write a checkpoint (with ``opt_state``/``meter``) or a weights file atomically (no pickles)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "kind": np.array(kind),
        "arch": np.array(json.dumps(arch, sort_keys=True)),
        "config": np.array(json.dumps(config or {}, sort_keys=True)),
        "step": np.array(int(step), dtype=np.int64),
        "metrics": np.array(json.dumps(metrics)),
    }
    if sigma is not None:
        arrays["sigma"] = np.array(float(sigma), dtype=np.float64)
    if check is not None:
        arrays["check"] = np.array(json.dumps(check))
    groups = {"param": params, "state": state, "opt": opt_state or {}, "meter": meter or {}}
    for prefix, group in groups.items():
        arrays.update({f"{prefix}/{k}": np.asarray(to_numpy(v)) for k, v in group.items()})
    save_npz_atomic(path, arrays)


class _Bad(ValueError):
    """A refusal; :func:`read_weights` prefixes the file's name."""


def _directory(path: str, zf: zipfile.ZipFile) -> dict[str, tuple[tuple, np.dtype, zipfile.ZipInfo]]:
    """Every member's (shape, dtype, info) from its ``.npy`` header, checked against the zip directory."""
    members, total = {}, 0
    for info in zf.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if not info.filename.endswith(".npy") or key in members:
            raise _Bad(f"key {key!r}: not one .npy member of an .npz file")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _Bad(f"key {key!r}: a compressed member ({info.file_size} bytes from {info.compress_size})")
        if info.flag_bits & 0x1:  # zipfile would raise RuntimeError ("password required")
            raise _Bad(f"key {key!r}: an encrypted member (or a damaged zip directory)")
        total += info.file_size
        with zf.open(info) as fh:
            try:
                version = npformat.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"version {version}")
                shape, _, dtype = (
                    npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                )(fh, max_header_size=10_000)
            except ValueError:
                raise _Bad(f"key {key!r}: not a .npy array (no readable .npy header)") from None
            header = fh.tell()
        if dtype.hasobject:
            raise _Bad(f"key {key!r}: holds Python objects, which are never loaded")
        size = math.prod(shape) * dtype.itemsize
        if header + size != info.file_size:
            raise _Bad(
                f"key {key!r}: declares shape {shape} of {dtype} ({size} bytes), "
                f"the member holds {info.file_size - header}"
            )
        members[key] = (tuple(shape), dtype, info)
    if total > os.path.getsize(path):
        raise _Bad(f"its members declare {total} bytes, more than the file's {os.path.getsize(path)}")
    return members


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fh:
        return npformat.read_array(fh, allow_pickle=False)


def _scalar(zf, members, key, kind, required=True):
    if key not in members:
        if required:
            raise _Bad(f"key {key!r} is missing")
        return None
    shape, dtype, info = members[key]
    ok = shape == () and (
        dtype.kind == "U" if kind == "U" else dtype == np.int64 if kind == "i" else dtype == np.float64
    )
    if not ok or (kind == "U" and dtype.itemsize > _MAX_TEXT):
        want = {"U": "a 0-d string", "i": "a 0-d int64", "f": "a 0-d float64"}[kind]
        raise _Bad(f"key {key!r} must be {want}, received {dtype} of shape {shape}")
    value = _array(zf, info)[()]
    return str(value) if kind == "U" else int(value) if kind == "i" else float(value)


def _json(text: str, key: str, want: type) -> Any:
    try:
        value = json.loads(text, parse_constant=lambda c: _raise(f"key {key!r} holds {c}"))
    except json.JSONDecodeError as exc:
        raise _Bad(f"key {key!r} is not JSON ({exc.msg})") from None
    if not isinstance(value, want):
        raise _Bad(f"key {key!r} must be a JSON {want.__name__}, received {type(value).__name__}")
    return value


def _raise(message: str) -> Any:
    raise _Bad(message)


def _check_metrics(rows: list, step: int) -> None:
    last = -1
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise _Bad(f"key 'metrics': row {i} must be a JSON object, received {type(row).__name__}")
        for name, v in row.items():
            if not (
                v is None or isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))
            ):
                raise _Bad(f"key 'metrics': row {i} field {name!r} must be a finite number, text or null")
        s = row.get("step")
        if isinstance(s, bool) or not isinstance(s, int) or not last < s <= step:
            raise _Bad(f"key 'metrics': row {i} step must be an int in ({last}, {step}], received {s!r}")
        last = s


def _expected_arrays(members, expected, arch) -> dict[str, dict[str, tuple]]:
    """The (shape, dtype) every group must hold, checked against the members' names first."""
    found = {group: {} for group in GROUPS.values()}
    for key, (shape, dtype, _) in members.items():
        if key in _SCALARS:
            continue
        prefix, _, name = key.partition("/")
        if prefix not in GROUPS or not name:
            raise _Bad(
                f"key {key!r} is unknown; expected {sorted(_SCALARS)} or {[p + '/<name>' for p in GROUPS]}"
            )
        found[GROUPS[prefix]][name] = (shape, dtype)
    try:
        want = expected(arch, sum(len(g) for g in found.values())) if callable(expected) else expected
    except (ValueError, TypeError, KeyError) as exc:
        raise _Bad(f"key 'arch': {exc}") from None
    for group, template in want.items():
        prefix = next(p for p, g in GROUPS.items() if g == group)
        missing, extra = sorted(set(template) - set(found[group])), sorted(set(found[group]) - set(template))
        for what, names in (("missing", missing), ("unexpected", extra)):
            if names:
                more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
                raise _Bad(f"does not match the model: {what} {group} key {prefix + '/' + names[0]!r}{more}")
        for name, (shape, dtype) in template.items():
            if found[group][name] != (tuple(shape), np.dtype(dtype)):
                got = found[group][name]
                raise _Bad(
                    f"does not match the model: key {prefix + '/' + name!r} is {got[1]} of shape {got[0]}, "
                    f"expected {np.dtype(dtype)} of shape {tuple(shape)}"
                )
    return found


def _check_values(key: str, a: np.ndarray) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise _Bad(f"key {key!r} holds {int(a.size - np.isfinite(a).sum())} non-finite value(s)")
    if a.size and float(np.abs(a).max()) > MAX_ABS:
        raise _Bad(f"key {key!r} holds a value of magnitude {float(np.abs(a).max()):.3g}, above {MAX_ABS:g}")
    name = key.rpartition("/")[2]
    variance = name.endswith("running_var") or (key.startswith("opt/") and name.startswith("v."))
    if variance and a.size and float(a.min()) < 0:
        raise _Bad(f"key {key!r} is a variance and holds a negative value ({float(a.min()):.3g})")


def read_weights(
    path: str | os.PathLike, *, kind: str, expected: dict | Callable[[dict, int], dict]
) -> dict[str, Any]:
    """Read and check a file of :func:`write_weights`; see the module docstring for the checks.

    Parameters
    ----------
    path : path-like
    kind : {"video", "denoiser"}
        What the caller can use; a file of another kind is refused.
    expected : dict or callable
        ``{group: {name: (shape, dtype)}}`` for the groups ``"params"``, ``"state"``,
        ``"opt_state"``, ``"meter"`` that must match exactly (a group left out is taken as
        found), or ``expected(arch, n_arrays)`` returning that dict -- a function that
        must refuse, without building anything, an ``arch`` that implies more arrays
        than the file holds.

    Returns
    -------
    dict with ``kind``, ``arch``, ``config`` (dicts), ``step``, ``metrics``, ``sigma``
    (or None), ``check`` (or None) and the array groups ``params``, ``state``,
    ``opt_state``, ``meter`` (NumPy arrays).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Anything else, in one line naming the file and the key.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights or checkpoint file")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read(zf, kind, expected)
    except _Bad as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, NotImplementedError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: corrupt or truncated, not a readable .npz file ({reason})") from None


def _read(zf: zipfile.ZipFile, kind: str, expected: Any) -> dict[str, Any]:
    members = _directory(zf.filename, zf)
    fmt = _scalar(zf, members, "format", "U")
    if fmt in _OLD_FORMATS:
        raise _Bad(f"key 'format': {fmt!r} is format_version 1, which this nlref no longer reads")
    if fmt != FORMAT:
        raise _Bad(f"key 'format': not an nlref weights file ({fmt[:40]!r}, expected {FORMAT!r})")
    if (version := _scalar(zf, members, "format_version", "i")) != FORMAT_VERSION:
        raise _Bad(f"key 'format_version': {version}, this nlref reads version {FORMAT_VERSION}")
    if (found_kind := _scalar(zf, members, "kind", "U")) != kind:
        raise _Bad(f"key 'kind': a {found_kind!r} file, expected {kind!r}")
    step = _scalar(zf, members, "step", "i")
    if not 0 <= step <= MAX_STEP:
        raise _Bad(f"key 'step' must be in [0, {MAX_STEP}], received {step}")
    out = {"kind": kind, "step": step, "sigma": _scalar(zf, members, "sigma", "f", required=False)}
    if out["sigma"] is not None and not 0 < out["sigma"] <= 1:
        raise _Bad(f"key 'sigma' must be in (0, 1] (the image scale), received {out['sigma']}")
    out["arch"] = _json(_scalar(zf, members, "arch", "U"), "arch", dict)
    out["config"] = _json(_scalar(zf, members, "config", "U"), "config", dict)
    out["metrics"] = _json(_scalar(zf, members, "metrics", "U"), "metrics", list)
    _check_metrics(out["metrics"], step)
    check = _scalar(zf, members, "check", "U", required=False)
    out["check"] = None if check is None else _json(check, "check", dict)
    found = _expected_arrays(members, expected, out["arch"])
    for prefix, group in GROUPS.items():
        out[group] = {}
        for name in found[group]:
            a = _array(zf, members[f"{prefix}/{name}"][2])
            _check_values(f"{prefix}/{name}", a)
            out[group][name] = a
    return out
