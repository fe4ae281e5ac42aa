"""Fuzz: corrupted checkpoints are refused with one clear error naming the file.

A real checkpoint (``save_checkpoint``) is damaged as a disk, a copy or a hand
edit would damage it -- random byte flips, truncation, entries dropped, added,
renamed or replaced by NaN/inf, complex, wrongly shaped or typed values,
a negative or non-integer step, a broken config -- and loaded with templates.
``load_checkpoint`` must either raise a ``ValueError``/``TypeError`` (or
``FileNotFoundError``) from nlref whose one-line message names the file, or
return exactly what was saved (a flip in bytes nobody reads changes nothing):
never a traceback from NumPy or zipfile, never a silent load of damaged data.
Outcomes are counted by :mod:`fuzz_harness`.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import example, given
from hypothesis import strategies as st

from nlref.nn.train import TrainConfig, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.fuzz

API = "load_checkpoint"
ALLOWED = (ValueError, TypeError, FileNotFoundError)
_rng = np.random.default_rng(7)
PARAMS = {
    "conv1.w": _rng.standard_normal((2, 1, 3, 3)),
    "fc.w": _rng.standard_normal((3, 2)),
    "fc.b": np.zeros(3),
}
OPT = {"velocity.fc.w": np.ones((3, 2)), "step": np.asarray(3)}
STATE = {"bn.running_mean": np.zeros(2), "bn.running_var": np.ones(2)}
METER = {"loss_sum": np.array(1.5), "count": np.array(4)}
_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_checkpoint")


@pytest.fixture(scope="module")
def original(folder):
    path = folder / "original.npz"
    save_checkpoint(
        path, params=PARAMS, opt_state=OPT, state=STATE, step=3, config=TrainConfig(), meter=METER
    )
    return path.read_bytes()


def _load(path):
    return attempt(
        API, load_checkpoint, path, params=PARAMS, opt_state=OPT, state=STATE, meter=METER, allowed=ALLOWED
    )


def _check(got, path, expect=None):
    """A clear error naming the file, or exactly the expected content (the original by default)."""
    if got.error is not None:
        assert str(path) in str(got.error), f"the message does not name the file: {got.error}"
        return
    ck = got.value
    assert ck["step"] == 3 and ck["config"] == TrainConfig()
    groups = (
        ("params", "param", PARAMS),
        ("opt_state", "opt", OPT),
        ("state", "state", STATE),
        ("meter", "meter", METER),
    )
    for group, prefix, saved in groups:
        for key, value in saved.items():
            want = (expect or {}).get(f"{prefix}/{key}", value)
            np.testing.assert_array_equal(ck[group][key], np.asarray(want).astype(value.dtype))
    got.correct()


def _write(folder, data: bytes):
    path = folder / f"ck{next(_counter)}.npz"
    path.write_bytes(data)
    return path


@given(
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4)
)
@example(flips=[(0.9862883183854853, 64)])  # zip "version 10.9": a NotImplementedError from zipfile
def test_byte_flips_are_refused_or_harmless(folder, original, flips):
    data = bytearray(original)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    path = _write(folder, bytes(data))
    _check(_load(path), path)


@given(keep=st.floats(0, 1, exclude_max=True))
def test_truncated_files_are_refused(folder, original, keep):
    path = _write(folder, original[: int(keep * len(original))])
    got = _load(path)
    assert got.error is not None
    _check(got, path)


def _arrays(original: bytes) -> dict:
    with np.load(io.BytesIO(original), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


EDITS = st.sampled_from(
    [
        ("drop", None),
        ("nan", np.nan),
        ("inf", -np.inf),
        ("complex", 1j),
        ("shape", None),
        ("0-d", None),
        ("string", None),
        ("int", None),
        ("bool", None),
        ("rename", None),
    ]
)


def _edit(arrays: dict, key: str, how: str, value) -> dict:
    a = arrays[key]
    if how == "drop":
        del arrays[key]
    elif how in ("nan", "inf", "complex"):
        b = np.zeros(a.shape) if a.dtype.kind == "U" else a
        b = b.astype(complex if how == "complex" else np.float64)
        if b.size:
            b.flat[0] = value
        arrays[key] = b
    elif how == "shape":
        arrays[key] = np.zeros(a.shape + (2,))
    elif how == "0-d":
        arrays[key] = np.asarray(a.flat[0]) if a.size else np.asarray(0)
    elif how == "string":
        arrays[key] = np.asarray("x" * 3)
    elif how == "int":
        arrays[key] = (
            np.round(a.astype(np.float64)).astype(np.int64) if a.dtype.kind != "U" else np.asarray(5)
        )
    elif how == "bool":
        arrays[key] = np.ones(a.shape, bool)
    elif how == "rename":
        arrays[key + "x"] = arrays.pop(key)
    return arrays


@given(index=st.integers(0, 100), edit=EDITS)
def test_edited_entries_are_refused_or_loaded_as_written(folder, original, index, edit):
    arrays = _arrays(original)
    key = sorted(arrays)[index % len(arrays)]
    how, value = edit
    arrays = _edit(arrays, key, how, value)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = _write(folder, buffer.getvalue())
    got = _load(path)
    # a loaded file holds what was written: an integer entry is read as the template's dtype
    expect = {k: v for k, v in arrays.items() if "/" in k} if got.error is None else None
    _check(got, path, expect)


@given(
    key=st.sampled_from(("step", "config", "format", "meter/count", "unknown", "param/")),
    value=st.one_of(
        st.integers(-(2**70), 2**70).map(lambda v: np.asarray(v) if abs(v) < 2**62 else np.asarray(str(v))),
        st.floats().map(np.asarray),
        st.text(max_size=20).map(np.asarray),
        st.sampled_from(("[]", "{", "null", '{"arch": 3}', json.dumps({"lr": "x"}))).map(np.asarray),
        st.just(np.arange(3)),
    ),
)
def test_malformed_scalars_are_refused_or_loaded_as_written(folder, original, key, value):
    arrays = _arrays(original)
    arrays[key] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = _write(folder, buffer.getvalue())
    got = _load(path)
    if got.error is None:  # a benign value: an int step, a finite meter, an old-version config
        if key == "step":
            assert got.value["step"] == int(value) >= 0
        got.correct()
    else:
        assert str(path) in str(got.error)


@given(name=st.sampled_from(("missing.npz", "", "folder", "empty.npz")))
def test_missing_or_odd_paths_are_refused_clearly(folder, name):
    if name == "folder":
        path = folder
    elif name == "empty.npz":
        path = _write(folder, b"")
    else:
        path = folder / name if name else ""
    got = attempt(API, load_checkpoint, path, allowed=ALLOWED)
    assert got.error is not None


def test_a_value_the_templates_dtype_cannot_hold_is_refused(folder, original):
    arrays = _arrays(original)
    arrays["meter/count"] = np.asarray(9.3e18)  # float into the int64 template: not silently wrapped
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = _write(folder, buffer.getvalue())
    with pytest.raises(ValueError, match=r"key 'meter/count' is float64 of shape \(\), expected int64"):
        load_checkpoint(path, meter=METER)
    params32 = {k: v.astype(np.float32) for k, v in PARAMS.items()}
    arrays = _arrays(original)
    arrays["param/fc.b"] = np.full(3, 1e300)  # finite in float64, inf in the float32 model
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = _write(folder, buffer.getvalue())
    with pytest.raises(
        ValueError, match=r"key 'param/conv1.w' is float64 of shape \(2, 1, 3, 3\), expected float32"
    ):
        load_checkpoint(path, params=params32)


def test_a_header_declaring_more_data_than_the_file_holds_is_refused(folder, original):
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for name in src.namelist():  # rewritten with valid CRCs: only the header lies
            data = src.read(name)
            if name == "param/fc.w.npy":
                data = data.replace(b"'shape': (3, 2), }    ", b"'shape': (3, 99999), }", 1)
            dst.writestr(name, data)
    path = _write(folder, buffer.getvalue())
    with pytest.raises(ValueError, match=r"key 'param/fc.w': declares shape \(3, 99999\)"):
        load_checkpoint(path)
