"""SIGTERM at every stage of a command (issue 28 item 5): one line, exit 143, never a silent -15.

The early stages are hit deterministically: the child sends itself SIGTERM at a chosen
hook (NumPy's import, the loading of the training images, the last save); one test sends
a real signal after a seeded delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nlref.nn.train import DenoiserConfig, TrainingInterrupted, train_denoiser
from nlref.nn.train import denoiser as denoiser_train

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
EARLY = "stopped before the first step; nothing to save"

# The console script's path (nlref._entry.main), with a SIGTERM sent at one hook: HOOK names it.
_CHILD = """
import builtins, os, signal, sys
hook = sys.argv[1]
sys.argv = ["nlref", *sys.argv[2:]]
def kill():
    os.kill(os.getpid(), signal.SIGTERM)
if hook == "numpy import":
    real = builtins.__import__
    def hooked(name, *args, **kwargs):
        if name == "numpy":
            builtins.__import__ = real
            kill()
        return real(name, *args, **kwargs)
    builtins.__import__ = hooked
elif hook == "image loading":
    import nlref.data.training_images as t
    real_load = t.load_grey
    t.load_grey = lambda name: (kill(), real_load(name))[1]
import nlref._entry
sys.exit(nlref._entry.main())
"""


def _run(hook: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, hook, *args], env=ENV, capture_output=True, text=True, timeout=300
    )


def test_importing_nlref_imports_no_numpy():
    code = "import sys, nlref, nlref._entry; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("hook", ["numpy import", "image loading"])
def test_sigterm_before_the_first_step_exits_143_with_one_line(tmp_path, hook):
    out = tmp_path / "run"
    proc = _run(hook, "train-denoiser", "--preset", "quick", "--no-progress", "--out", str(out))
    assert proc.returncode == 143, (proc.stdout, proc.stderr)
    assert proc.stderr.strip() == EARLY, proc.stderr
    assert not (out / "checkpoint.npz").exists()


def test_sigterm_during_denoise_imports_says_nothing_was_written(tmp_path):
    proc = _run("numpy import", "denoise", "in.png", str(tmp_path / "out.png"))
    assert proc.returncode == 143 and proc.stderr.strip() == "stopped by SIGTERM; nothing written", (
        proc.stderr
    )


def test_a_signal_during_the_last_save_still_prints_the_stopped_line(tmp_path, monkeypatch, capsys):
    cfg = DenoiserConfig(width=4, depth=2, nl_blocks=1, window=2, inner_channels=2, patch=12, batch_size=2,
                         steps=2, eval_every=1, n_val=2)  # fmt: skip
    images = [np.random.default_rng(i).random((20, 20)).astype(np.float32) for i in range(2)]
    real, calls = denoiser_train.save_denoiser, []

    def save(path, **kwargs):
        calls.append(kwargs["step"])
        if len(calls) == 3:  # after steps 1 and 2: the loop's final save
            raise TrainingInterrupted(signal.SIGTERM)
        real(path, **kwargs)

    monkeypatch.setattr(denoiser_train, "save_denoiser", save)
    with pytest.raises(TrainingInterrupted):
        train_denoiser(cfg, images, checkpoint=tmp_path / "ck.npz", progress=False)
    assert (
        f"stopped by SIGTERM after step 2; checkpoint saved to {tmp_path / 'ck.npz'}"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_a_real_sigterm_at_a_seeded_delay_gives_one_stopped_line(tmp_path, seed):
    delay = np.random.default_rng(seed).uniform(0.05, 1.5)
    out = tmp_path / "run"
    args = ["-m", "nlref", "train-denoiser", "--preset", "quick", "--steps", "100000", "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, *args, "--out", str(out)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, (delay, stdout, stderr)
    lines = [s for s in (stdout + stderr).splitlines() if "stopped" in s]
    assert len(lines) == 1, (delay, stdout, stderr)
    assert lines[0] == EARLY or lines[0].startswith("stopped by SIGTERM after step"), lines
