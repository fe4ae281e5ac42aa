"""Training loop and checkpoints: resumable bit for bit, atomic, strict on load."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nlref.nn.models import build_model
from nlref.nn.train import (
    PRESETS,
    TrainConfig,
    get_preset,
    load_checkpoint,
    load_config,
    random_crop_flip,
    save_checkpoint,
    train,
)

# a few-second configuration: NL C2D, width 4, 16 x 16 frames
TINY = dict(width=4, size=16, batch_size=8, n_train=12, steps=6, eval_every=4, n_val=16)


def _model(**kw):
    return build_model("c2d", width=2, **kw)


def _checkpoint(tmp_path, **kw):
    _, params, state = _model(**kw)
    opt = {"velocity.fc.w": np.ones_like(params["fc.w"]), "step": np.asarray(3)}
    path = tmp_path / "ck.npz"
    save_checkpoint(path, params=params, opt_state=opt, state=state, step=3, config=TrainConfig())
    return path, params, opt, state


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_restores_every_array_step_and_config(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    ck = load_checkpoint(path, params=params, opt_state=opt, state=state)
    assert ck["step"] == 3 and ck["config"] == TrainConfig()
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


def test_load_rejects_a_missing_key_and_names_it(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    _, params_nl, state_nl = _model(nl_blocks=1)
    with pytest.raises(ValueError, match=r"missing params key 'res3\.0\.nl\."):
        load_checkpoint(path, params=params_nl, opt_state=opt, state=state_nl)


def test_load_rejects_an_unexpected_key_and_names_it(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    smaller = {k: v for k, v in params.items() if k != "fc.b"}
    with pytest.raises(ValueError, match=r"unexpected params key 'fc\.b'"):
        load_checkpoint(path, params=smaller)


def test_load_rejects_a_wrong_shape_and_names_the_key(tmp_path):
    path, params, opt, state = _checkpoint(tmp_path)
    _, wider, _ = build_model("c2d", width=3)
    with pytest.raises(ValueError, match=r"params key 'conv1\.w' has shape \(2, 3, 1, 5, 5\).*expected \(3, 3, 1, 5, 5\)"):
        load_checkpoint(path, params=wider)


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
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_load_refuses_pickled_arrays_and_foreign_npz(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array("nlref-checkpoint-v1"), step=np.array(1), config=np.array("{}"),
             **{"param/x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(pickled)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(2))
    with pytest.raises(ValueError, match="not an nlref checkpoint"):
        load_checkpoint(foreign)


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


# ----------------------------------------------------------------------------- configs


def test_presets_and_config_files(tmp_path):
    assert get_preset("tiny-nl-c2d").nl_blocks == 1
    assert set(PRESETS) >= {"tiny-c2d", "tiny-nl-c2d", "tiny-i3d", "tiny-nl-i3d", "quick"}
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"preset": "tiny-i3d", "steps": 7}))
    cfg = load_config(f)
    assert cfg.arch == "i3d" and cfg.steps == 7
    f.write_text(json.dumps({"stepz": 7}))
    with pytest.raises(ValueError, match="stepz"):
        load_config(f)
    with pytest.raises(ValueError, match="preset"):
        get_preset("huge")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig().replace(optimizer="rmsprop")


# ----------------------------------------------------------------------------- augmentation


def test_crop_and_flip_are_slices_of_the_padded_clip(rng):
    x = rng.standard_normal((5, 2, 3, 6, 6))
    out = random_crop_flip(x, np.random.default_rng(0), pad=2, flip=True)
    draws = np.random.default_rng(0)
    offsets, flips = draws.integers(0, 5, size=(5, 2)), draws.random(5) < 0.5
    padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(5):
        dy, dx = offsets[i]
        expected = padded[i, :, :, dy:dy + 6, dx:dx + 6]
        np.testing.assert_array_equal(out[i], expected[..., ::-1] if flips[i] else expected)
    np.testing.assert_array_equal(random_crop_flip(x, np.random.default_rng(1), pad=0, flip=False), x)


# ----------------------------------------------------------------------------- training


def test_interrupted_and_resumed_training_is_bit_identical(tmp_path):
    cfg = get_preset("quick").replace(**TINY, crop_pad=1, dropout=0.5)
    whole = train(cfg, out_dir=tmp_path / "whole", progress=False)

    def stop_after_three(step, info):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=tmp_path / "split", progress=False, callback=stop_after_three)
    assert load_checkpoint(tmp_path / "split" / "checkpoint.npz")["step"] == 3
    resumed = train(cfg, out_dir=tmp_path / "split", resume=True, progress=False)
    assert resumed["step"] == whole["step"] == 6
    for group in ("params", "state", "opt_state"):
        for k, v in whole[group].items():
            np.testing.assert_array_equal(resumed[group][k], v, err_msg=f"{group} {k}")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(resumed["metrics"]) == strip(whole["metrics"])


def test_resume_refuses_a_different_config(tmp_path):
    cfg = get_preset("quick").replace(**{**TINY, "steps": 2})
    train(cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(cfg.replace(lr=0.5), out_dir=tmp_path, resume=True, progress=False)


def test_metrics_files_have_one_row_per_evaluation(tmp_path):
    cfg = get_preset("quick").replace(**TINY)
    train(cfg, out_dir=tmp_path, progress=False)
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["step"] for r in rows] == [4, 6]
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,epoch,lr,train_loss") and len(csv_lines) == 3


def test_sgd_step_schedule_divides_the_learning_rate(tmp_path):
    cfg = get_preset("quick").replace(**TINY, optimizer="sgd", lr=0.1, lr_step=4, weight_decay=1e-4)
    rows = train(cfg, progress=False)["metrics"]
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.01])  # lr at steps 3 and 5


def test_training_loss_decreases_in_quick_mode():
    out = train(get_preset("quick"), progress=False)
    rows = out["metrics"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.1


# ----------------------------------------------------------------------------- command line


def test_nlref_train_command_writes_checkpoint_and_metrics_and_resumes(tmp_path, capsys):
    from nlref.cli import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"preset": "quick", "steps": 2, "eval_every": 1}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress", "--set", "n_val=8"]) == 0
    assert {"checkpoint.npz", "metrics.csv", "metrics.json"} <= set(os.listdir(out))
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress", "--set", "n_val=8",
                 "--steps", "3", "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 3
    assert "val accuracy" in capsys.readouterr().out
    assert main(["train", "--preset", "quick", "--set", "width", "--out", str(out)]) == 2  # bad --set: clean error


def test_training_and_checkpoints_work_on_each_backend(xp, tmp_path):
    cfg = get_preset("quick").replace(**{**TINY, "steps": 2, "eval_every": 2})
    out = train(cfg, out_dir=tmp_path, backend=xp.__name__, progress=False)
    assert isinstance(out["params"]["fc.w"], xp.ndarray)
    ck = load_checkpoint(tmp_path / "checkpoint.npz", params=out["params"], state=out["state"], xp=xp)
    assert isinstance(ck["params"]["fc.w"], xp.ndarray) and ck["step"] == 2
    np.testing.assert_array_equal(np.asarray(ck["params"]["fc.w"].tolist()), np.asarray(out["params"]["fc.w"].tolist()))
