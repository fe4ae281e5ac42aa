"""Checkpoints: atomic on save, strict on load, every error names the file and the key."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nlref.nn.train import TrainConfig, load_checkpoint, save_checkpoint
from nlref.nn.video import build_model
from nlref.nn.weights import FORMAT, FORMAT_VERSION


def _model(**kw):
    return build_model("c2d", width=2, **kw)


METER = {"loss_sum": np.array(1.5), "correct": np.array(2), "count": np.array(4)}


def _checkpoint(tmp_path, **kw):
    _, params, state = _model(**kw)
    opt = {"velocity.fc.w": np.ones_like(params["fc.w"]), "step": np.asarray(3)}
    path = tmp_path / "ck.npz"
    save_checkpoint(
        path, params=params, opt_state=opt, state=state, step=3, config=TrainConfig(), meter=METER
    )
    return path, params, opt, state


def _rewrite(path, **changes):
    """Rewrite ``path`` with some entries replaced (value None: removed), with plain np.savez."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


# ----------------------------------------------------------------------------- round trip and atomicity


def test_checkpoint_round_trip_restores_every_array_step_and_config(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    ck = load_checkpoint(path, params=params, opt_state=opt, state=state)
    assert ck["step"] == 3 and ck["config"] == TrainConfig()
    assert {k: float(v) for k, v in ck["meter"].items()} == {"loss_sum": 1.5, "correct": 2.0, "count": 4.0}
    for saved, loaded in ((params, ck["params"]), (opt, ck["opt_state"]), (state, ck["state"])):
        assert set(saved) == set(loaded)
        for k in saved:
            np.testing.assert_array_equal(loaded[k], saved[k])
            assert loaded[k].dtype == saved[k].dtype


def test_checkpoint_holds_no_pickled_object(tmp_path):
    path, *_ = _checkpoint(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
        assert json.loads(str(npz["config"][()]))["arch"] == "c2d"
        assert str(npz["format"][()]) == FORMAT and int(npz["format_version"]) == FORMAT_VERSION


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path, params, opt, state = _checkpoint(tmp_path)
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, params=params, opt_state=opt, state=state, step=4, config=TrainConfig())
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary file left behind


# ----------------------------------------------------------------------------- templates


def test_load_rejects_a_missing_key_and_names_it(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    _, params_nl, state_nl = _model(nl_blocks=1)
    with pytest.raises(ValueError, match=r"missing params key 'param/res3\.0\.nl\."):
        load_checkpoint(path, params=params_nl, opt_state=opt, state=state_nl)


def test_load_rejects_an_unexpected_key_and_names_it(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    smaller = {k: v for k, v in params.items() if k != "fc.b"}
    with pytest.raises(ValueError, match=r"unexpected params key 'param/fc\.b'"):
        load_checkpoint(path, params=smaller)


def test_load_rejects_a_wrong_shape_and_names_the_key(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    _, wider, _ = build_model("c2d", width=3)
    shapes = r"'param/conv1\.w' is float32 of shape \(2, 3, 1, 5, 5\), expected .* \(3, 3, 1, 5, 5"
    with pytest.raises(ValueError, match=shapes):
        load_checkpoint(path, params=wider)


# ----------------------------------------------------------------------------- damaged files


def test_load_rejects_corrupt_and_truncated_files(tmp_path):
    path, *_ = _checkpoint(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no such weights or checkpoint file"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_load_refuses_pickled_arrays_and_foreign_npz(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        format=np.array("nlref-checkpoint-v1"),
        step=np.array(1),
        config=np.array("{}"),
        **{"param/x": np.array([{"a": 1}], dtype=object)},
    )
    with pytest.raises(ValueError, match="key 'param/x': holds Python objects, which are never loaded"):
        load_checkpoint(pickled)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, format=np.array("something"), a=np.zeros(2))
    with pytest.raises(ValueError, match="key 'format': not an nlref weights file"):
        load_checkpoint(foreign)


NAN_W = np.full((2, 8), np.nan, dtype=np.float32)
INF_STATE = np.array([0.0, np.inf], dtype=np.float32)
SHAPES = "does not match the model: key"
CORRUPTIONS = {
    # key -> (replacement, expected message after "<path>: ")
    "step is a string": ("step", np.array("three"), "key 'step' must be a 0-d int64, received <U5"),
    "step is a vector": ("step", np.array([3, 4]), "key 'step' must be a 0-d int64"),
    "step is a float": ("step", np.array(3.0), "key 'step' must be a 0-d int64, received float64"),
    "step is negative": ("step", np.array(-1), "key 'step' must be in [0, 1000000000], received -1"),
    "step is missing": ("step", None, "key 'step' is missing"),
    "config is not JSON": ("config", np.array("{'arch': c2d"), "key 'config' is not JSON"),
    "config is a JSON list": (
        "config",
        np.array("[1, 2]"),
        "key 'config' must be a JSON dict, received list",
    ),
    "config is a number": ("config", np.array(7), "key 'config' must be a 0-d string"),
    "meter is a vector": (
        "meter/loss_sum",
        np.array([1.0, 2.0]),
        f"{SHAPES} 'meter/loss_sum' is float64 of shape (2,)",
    ),
    "meter is a string": ("meter/count", np.array("4"), f"{SHAPES} 'meter/count' is <U1"),
    "meter is NaN": ("meter/loss_sum", np.array(np.nan), "key 'meter/loss_sum' holds 1 non-finite value"),
    "weights are NaN": ("param/fc.w", NAN_W, "key 'param/fc.w' holds 16 non-finite value"),
    "BN statistics are inf": (
        "state/bn1.running_var",
        INF_STATE,
        "key 'state/bn1.running_var' holds 1 non-finite",
    ),
    "BN variance is negative": (
        "state/bn1.running_var",
        np.array([1.0, -0.5], dtype=np.float32),
        "key 'state/bn1.running_var' is a variance and holds a negative value",
    ),
    "weights are huge": (
        "param/fc.b",
        np.array([1e30, 0], dtype=np.float32),
        "key 'param/fc.b' holds a value of magnitude 1e+30",
    ),
    "weights are complex": (
        "param/fc.w",
        np.ones((2, 8), dtype=np.complex64),
        f"{SHAPES} 'param/fc.w' is complex64",
    ),
    "weights are bool": ("param/fc.b", np.ones(2, dtype=bool), f"{SHAPES} 'param/fc.b' is bool"),
    "weights are float64": (
        "param/fc.b",
        np.ones(2),
        f"{SHAPES} 'param/fc.b' is float64 of shape (2,), expected float32",
    ),
    "unknown top-level key": ("weights", np.zeros(3), "key 'weights' is unknown"),
    "unknown group": ("grad/fc.w", np.zeros(3), "key 'grad/fc.w' is unknown"),
    "group without a name": ("param/", np.zeros(3), "key 'param/' is unknown"),
    "metrics are not rows": ("metrics", np.array('{"step": 1}'), "key 'metrics' must be a JSON list"),
    "metrics row is an object of objects": (
        "metrics",
        np.array('[{"step": {"a": 1}}]'),
        "key 'metrics': row 0",
    ),
}


@pytest.mark.parametrize("key, value, message", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_load_rejects_a_damaged_entry_naming_the_file_and_the_key(tmp_path, key, value, message):
    path, params, opt, state = _checkpoint(tmp_path)
    _rewrite(path, **{key: value})
    with pytest.raises(ValueError) as info:
        load_checkpoint(path, params=params, opt_state=opt, state=state, meter=METER)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


def test_a_config_of_another_version_is_returned_as_a_dict(tmp_path):
    path, *_ = _checkpoint(tmp_path)
    _rewrite(path, config=np.array(json.dumps({"arch": "c2d", "colour_jitter": 0.2})))
    assert load_checkpoint(path)["config"] == {"arch": "c2d", "colour_jitter": 0.2}


def test_each_backend_gets_arrays_of_its_own_kind(xp, tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    ck = load_checkpoint(path, params=params, xp=xp)
    assert isinstance(ck["params"]["fc.w"], xp.ndarray)
