"""Fuzz: ``nlref train-denoiser`` and ``nlref train`` stopped at a seeded hook point, then resumed.

A hook point is drawn by Hypothesis: before the loop (the validation set), after step k
(the batch of step k + 1), during the evaluation of step k, just before or just after the
n-th checkpoint write.  There the run receives :class:`TrainingInterrupted` (what SIGTERM
raises inside the loop); it is then resumed from its checkpoint (or started again when it
stopped before writing one).  The final weights must equal the uninterrupted run's bit for
bit, and so must the metrics rows, except their clock fields ``time_s`` and ``cpu_s``.  Real signals
at seeded delays are sent by ``tests/test_signals.py``.  Each example is one interrupt point,
counted by :mod:`fuzz_harness` per command (quick profile 10, thorough 50).
"""

from __future__ import annotations

import signal

import fuzz_harness
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlref.nn.train import DenoiserConfig, TrainingInterrupted, get_preset, train, train_denoiser
from nlref.nn.train import denoiser as denoiser_train
from nlref.nn.train import loop as video_loop

pytestmark = pytest.mark.fuzz
EXAMPLES = settings(max_examples=max(10, settings.default.max_examples // 10))

DENOISER = DenoiserConfig(width=4, depth=2, nl_blocks=1, window=2, inner_channels=2, patch=12, batch_size=2,
                          steps=6, eval_every=2, n_val=2)  # fmt: skip
IMAGES = [np.random.default_rng(i).random((20, 20)).astype(np.float32) for i in range(2)]
VIDEO = get_preset("quick").replace(
    width=4, size=16, batch_size=8, n_train=12, steps=6, eval_every=2, n_val=16
)

# hook: (function, calls in a run); the n-th call is the hook point.  "batch": call 1 builds the
# validation set (before the loop), call k + 1 the batch of step k + 1 (after step k).  6 steps,
# an evaluation and a checkpoint every 2 steps, and the final save.
DENOISER_HOOKS = {"batch": ("noisy_batch", 7), "evaluate": ("_evaluate", 3), "save": ("save_denoiser", 4)}
VIDEO_HOOKS = {"batch": ("val_set", 7), "evaluate": ("eval_row", 3), "save": ("save_run", 4)}


def _hooked(real, n, after):
    calls = []

    def hook(*args, **kwargs):
        calls.append(1)
        if len(calls) == n and not after:
            raise TrainingInterrupted(signal.SIGTERM)
        out = real(*args, **kwargs)
        if len(calls) == n and after:
            raise TrainingInterrupted(signal.SIGTERM)
        return out

    return hook


def _strip(rows):
    return [{k: v for k, v in row.items() if k not in ("time_s", "cpu_s")} for row in rows]


def _same(api, got, want):
    for k, v in want["params"].items():
        np.testing.assert_array_equal(got["params"][k], v, err_msg=f"{api}: param {k}")
    for k, v in want["state"].items():
        np.testing.assert_array_equal(got["state"][k], v, err_msg=f"{api}: state {k}")
    assert _strip(got["metrics"]) == _strip(want["metrics"])


def _interrupt_then_resume(api, module, name, n, after, run):
    """``run(resume)`` with the n-th call of ``module.name`` interrupted, then resumed to the end."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, name, _hooked(getattr(module, name), n, after))
        with pytest.raises(TrainingInterrupted):  # every hook point is reached in a run
            run(False)
    got = fuzz_harness.attempt(api, run, True, allowed=(ValueError, FileNotFoundError))
    if got.error is not None:  # stopped before the first checkpoint: start again
        assert "there is no checkpoint" in str(got.error), got.error
        got = fuzz_harness.attempt(api, run, False)
    return got


@pytest.fixture(scope="module")
def denoiser_reference():
    return train_denoiser(DENOISER, IMAGES, progress=False)


@EXAMPLES
@given(
    hook=st.sampled_from(sorted(DENOISER_HOOKS)), where=st.floats(0, 1, exclude_max=True), after=st.booleans()
)
def test_train_denoiser_resumes_to_the_uninterrupted_weights(
    denoiser_reference, tmp_path_factory, hook, where, after
):
    name, calls = DENOISER_HOOKS[hook]
    n = 1 + int(where * calls)
    path = tmp_path_factory.mktemp("denoiser") / "checkpoint.npz"

    def run(resume):
        return train_denoiser(DENOISER, IMAGES, checkpoint=path, resume=resume, progress=False)

    api = "train-denoiser interrupted + resumed"
    got = _interrupt_then_resume(api, denoiser_train, name, n, after, run)
    _same(api, got.value, denoiser_reference)
    got.correct()


@pytest.fixture(scope="module")
def video_reference():
    return train(VIDEO, progress=False, verbose=False)


@EXAMPLES
@given(
    hook=st.sampled_from(sorted(VIDEO_HOOKS)), where=st.floats(0, 1, exclude_max=True), after=st.booleans()
)
def test_train_resumes_to_the_uninterrupted_weights(video_reference, tmp_path_factory, hook, where, after):
    out = tmp_path_factory.mktemp("video")

    def run(resume):
        return train(VIDEO, out_dir=out, resume=resume, progress=False, verbose=False)

    api = "train interrupted + resumed"
    name, calls = VIDEO_HOOKS[hook]
    n = 1 + int(where * calls)
    if hook == "batch" and n > 1:
        name = "train_batch"  # val_set is called once; later hooks: the batch of step n - 1
        n -= 1
    got = _interrupt_then_resume(api, video_loop, name, n, after, run)
    _same(api, got.value, video_reference)
    got.correct()
