"""``nlref train``: files, resume, clean errors and exit codes 130 / 143 when a run is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlref.cli import main
from nlref.nn.train import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def test_nlref_train_command_writes_checkpoint_and_metrics_and_resumes(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"preset": "quick", "steps": 2, "eval_every": 1}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress", "--set", "n_val=8"]) == 0
    assert {"checkpoint.npz", "metrics.csv", "metrics.json"} <= set(os.listdir(out))
    first = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in first[1:3]] == ["step 1/2", "step 2/2"]
    assert first[3].startswith("done:")
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--out",
                str(out),
                "--no-progress",
                "--set",
                "n_val=8",
                "--steps",
                "3",
                "--resume",
            ]
        )
        == 0
    )
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 3
    assert "resuming from step 2" in capsys.readouterr().out
    # a bad --set is a clean error
    assert main(["train", "--preset", "quick", "--set", "width", "--out", str(out)]) == 2


def test_resume_without_a_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "nothing_here"
    assert main(["train", "--preset", "quick", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nlref: error: cannot resume: there is no checkpoint") and err.count("\n") == 1
    assert not out.exists()


# a run long enough to be stopped; its first checkpoint appears at step 25 (the early evaluation)
_LONG_RUN = [
    "train",
    "--preset",
    "quick",
    "--steps",
    "100000",
    "--set",
    "eval_every=100000",
    "--set",
    "n_val=8",
    "--no-progress",
]
# Python ignores SIGINT in a child whose parent ignores it; restore Ctrl-C's usual behaviour first
_CHILD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from nlref.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    "signum, exit_code, said",
    [(signal.SIGTERM, 143, "stopped by SIGTERM"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signalled_run_saves_a_checkpoint_says_so_and_exits_non_zero(tmp_path, signum, exit_code, said):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *_LONG_RUN, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.npz").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == exit_code, (stdout, stderr)
    step = load_checkpoint(out / "checkpoint.npz")["step"]
    assert step >= 25
    assert f"{said} after step {step}; checkpoint saved to {out / 'checkpoint.npz'}" in stdout, stdout
    assert "interrupted" not in stderr.splitlines(), stderr  # the loop's line is the only one
