"""One generator of hostile weights files, for the reader's tests and the fuzz suite.

:func:`hostile_files` writes, beside a valid denoiser weights file, one file per way a
file can lie or be damaged, and returns ``{name: (path, expected)}``: ``expected`` is a
piece of the one-line error :func:`nlref.nn.denoiser.load_denoiser_weights` must give
(the key it names, or what it says about the file).
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np

from nlref.nn.denoiser import build_denoiser
from nlref.nn.weights import write_weights

ARCH = {"width": 4, "depth": 2, "nl_blocks": 1, "window": 2, "inner_channels": 2, "dtype": "float32"}


def valid_file(path: Path) -> Path:
    """A small, valid denoiser weights file."""
    _, params, state = build_denoiser(**{k: v for k, v in ARCH.items() if k != "dtype"}, rng=0)
    write_weights(
        path,
        kind="denoiser",
        arch=ARCH,
        config={"sigma": 25.0},
        params=params,
        state=state,
        step=4,
        metrics=[{"step": 2, "train_loss": 0.1}, {"step": 4, "train_loss": 0.05}],
        sigma=25 / 255,
    )
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _npy(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _edit(valid: Path, path: Path, **changes) -> Path:
    """The valid file with some members replaced by arrays (None: removed)."""
    members = _members(valid)
    for key, value in changes.items():
        if value is None:
            del members[f"{key}.npy"]
        else:
            members[f"{key}.npy"] = value if isinstance(value, bytes) else _npy(np.asarray(value))
    return _zip(path, members)


def _header_claiming(n: int) -> bytes:
    """A float32 ``.npy`` header declaring ``n`` elements, followed by 8 bytes of data."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n,)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * 8


def _zip_bomb(path: Path) -> Path:
    """A member whose directory entry honestly declares 16 MiB of zeros, deflated to about 16 KiB."""
    zeros = _npy(np.zeros(4 * 2**20, dtype=np.float32))
    return _zip(
        path,
        {"format.npy": _npy(np.array("nlref-weights")), "param/conv0.w.npy": zeros},
        zipfile.ZIP_DEFLATED,
    )


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write every hostile file into ``folder``; ``{name: (path, expected piece of the error)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    valid = valid_file(folder / "valid.npz")
    w = np.load(valid, allow_pickle=False)["param/conv1.w"]
    var = np.load(valid, allow_pickle=False)["state/bn1.running_var"]
    data = valid.read_bytes()
    arch = dict(ARCH)
    files = {
        "nan": (
            dict(**{"param/conv1.w": np.where(np.arange(w.size).reshape(w.shape) == 3, np.nan, w)}),
            "'param/conv1.w' holds 1 non-finite",
        ),
        "inf": (dict(**{"param/conv1.w": np.full_like(w, np.inf)}), "'param/conv1.w' holds"),
        "huge value": (
            dict(**{"param/conv1.w": np.full_like(w, 1e30)}),
            "'param/conv1.w' holds a value of magnitude",
        ),
        "negative variance": (
            dict(**{"state/bn1.running_var": -var}),
            "'state/bn1.running_var' is a variance",
        ),
        "huge depth": (dict(arch=np.array(json.dumps({**arch, "depth": 10**7}))), "key 'arch'"),
        "huge width": (
            dict(arch=np.array(json.dumps({**arch, "width": 10**6}))),
            "expected float32 of shape (1000000",
        ),
        "huge inner channels": (
            dict(arch=np.array(json.dumps({**arch, "inner_channels": 10**6}))),
            "of shape (1000000",
        ),
        "bad step type": (dict(step=np.array("x")), "key 'step' must be a 0-d int64"),
        "bad step shape": (dict(step=np.array([1, 2])), "key 'step' must be a 0-d int64"),
        "negative step": (dict(step=np.array(-3)), "key 'step' must be in"),
        "metrics an object": (dict(metrics=np.array('{"step": 1}')), "key 'metrics' must be a JSON list"),
        "metrics row of objects": (dict(metrics=np.array('[{"step": {"a": 1}}]')), "key 'metrics': row 0"),
        "metrics NaN": (dict(metrics=np.array('[{"step": 1, "loss": NaN}]')), "key 'metrics' holds NaN"),
        "wrong dtype float64": (
            dict(**{"param/conv1.w": w.astype(np.float64)}),
            "'param/conv1.w' is float64",
        ),
        "wrong dtype float16": (
            dict(**{"param/conv1.w": w.astype(np.float16)}),
            "'param/conv1.w' is float16",
        ),
        "missing key": (dict(**{"param/conv_out.b": None}), "missing params key 'param/conv_out.b'"),
        "extra key": (
            dict(**{"param/extra.w": np.zeros(2, np.float32)}),
            "unexpected params key 'param/extra.w'",
        ),
        "unknown key": (dict(notes=np.array("hi")), "key 'notes' is unknown"),
        "sigma on 0-255": (dict(sigma=np.array(25.0)), "key 'sigma' must be in (0, 1]"),
        "pickled object": (
            dict(**{"param/conv0.b": pickle.dumps({"a": 1})}),
            "key 'param/conv0.b': not a .npy",
        ),
        "object array": (
            dict(**{"param/conv0.b": _npy(np.array([{"a": 1}], dtype=object))}),
            "holds Python objects",
        ),
        "header claiming 10**12 elements": (
            dict(**{"param/conv0.b": _header_claiming(10**12)}),
            "declares shape (1000000000000,)",
        ),
        "old format_version": (dict(format=np.array("nlref-denoiser-v1")), "format_version 1"),
    }
    out = {}
    for name, (changes, expected) in files.items():
        path = folder / (name.replace(" ", "_").replace("*", "") + ".npz")
        out[name] = (_edit(valid, path, **changes), expected)
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    (folder / "empty.npz").write_bytes(b"")
    (folder / "random_bytes.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "pickle_file.npz").write_bytes(pickle.dumps({"param/conv0.w": np.zeros(3)}))
    out.update(
        {
            "truncated": (folder / "truncated.npz", "corrupt or truncated"),
            "empty": (folder / "empty.npz", "corrupt or truncated"),
            "random bytes": (folder / "random_bytes.npz", "corrupt or truncated"),
            "pickle file": (folder / "pickle_file.npz", "corrupt or truncated"),
            "zip bomb": (_zip_bomb(folder / "zip_bomb.npz"), "a compressed member"),
        }
    )
    return out
