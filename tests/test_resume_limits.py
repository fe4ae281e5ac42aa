"""Resuming from a checkpoint that lies (issue 28 items 3-4): one line naming the file and the key.

The hostile files of ``tests/hostile_files.py`` cover the reader; here the training side's
checks on top of it: the recorded config, the step against the run, through both commands.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hostile_files import _edit

from nlref.nn.train import DenoiserConfig, get_preset, train, train_denoiser
from nlref.nn.train.denoiser import load_denoiser

CFG = DenoiserConfig(width=4, depth=2, nl_blocks=1, window=2, inner_channels=2, patch=12, batch_size=2,
                     steps=2, eval_every=1, n_val=2)  # fmt: skip
IMAGES = [np.random.default_rng(i).random((20, 20)).astype(np.float32) for i in range(2)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "checkpoint.npz"
    train_denoiser(CFG, IMAGES, checkpoint=path, progress=False)
    return path


def _config(**changes):
    d = {**dataclasses.asdict(CFG), **changes}
    return np.array(json.dumps({k: v for k, v in d.items() if v != "<drop>"}))


CASES = {  # name: (members to change, expected piece of the one-line error)
    "sigma null": (dict(config=_config(sigma=None)), "key 'config': sigma must be a positive number"),
    "sigma text": (dict(config=_config(sigma="a")), "key 'config': sigma must be a positive number"),
    "sigma -1": (dict(config=_config(sigma=-1)), "key 'config': sigma must be a positive number"),
    "sigma 0": (dict(config=_config(sigma=0)), "key 'config': sigma must be a positive number"),
    "sigma NaN": (dict(config=_config(sigma=float("nan"))), "key 'config' holds NaN"),
    "sigma disagrees": (dict(config=_config(sigma=50.0)), "key 'config' records sigma 50.0"),
    "dtype xx": (dict(config=_config(dtype="xx")), "key 'config': dtype must be"),
    "steps -1": (dict(config=_config(steps=-1)), "key 'config': steps must be a positive int"),
    "lr text": (dict(config=_config(lr="x")), "key 'config': lr must be a positive number"),
    "missing field": (dict(config=_config(lr_drop="<drop>")), "key 'config' has missing fields ['lr_drop']"),
    "unknown field": (dict(config=_config(colour=1)), "key 'config' has unknown fields ['colour']"),
    "step -3": (dict(step=np.array(-3)), "key 'step' must be in [0, 1000000000]"),
    "step 10**15": (dict(step=np.array(10**15)), "key 'step' must be in [0, 1000000000]"),
    "step 10**6": (dict(step=np.array(10**6)), "key 'step' is 1000000, beyond the 2 steps requested"),
    "NaN parameter": (
        dict(**{"param/conv1.w": np.full((4, 4, 3, 3), np.nan, np.float32)}),
        "'param/conv1.w'",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_lying_denoiser_checkpoint_is_refused_naming_file_and_key(checkpoint, tmp_path, name):
    changes, expected = CASES[name]
    path = _edit(checkpoint, tmp_path / "checkpoint.npz", **changes)
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        train_denoiser(CFG, IMAGES, checkpoint=path, resume=True, progress=False)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert path.read_bytes() == before  # nothing trained, nothing written


def test_window_null_is_a_valid_recorded_config(checkpoint, tmp_path):
    cfg = dataclasses.replace(CFG, window=None, steps=1)
    path = tmp_path / "checkpoint.npz"
    train_denoiser(cfg, IMAGES, checkpoint=path, progress=False)
    assert load_denoiser(path)["config"].window is None


def test_a_video_checkpoint_beyond_the_run_is_refused(tmp_path):
    cfg = get_preset("quick").replace(
        width=4, size=16, batch_size=8, n_train=12, steps=2, eval_every=1, n_val=16
    )
    train(cfg, out_dir=tmp_path, progress=False, verbose=False)
    path = tmp_path / "checkpoint.npz"
    _edit(path, path.with_name("edited.npz"), step=np.array(10**6)).replace(path)
    with pytest.raises(ValueError, match=r"checkpoint.npz: key 'step' is 1000000, beyond the 2 steps"):
        train(cfg, out_dir=tmp_path, resume=True, progress=False, verbose=False)
