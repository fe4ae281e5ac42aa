"""The one reader of weights and checkpoints refuses every hostile file in one line, before allocating.

The files come from :mod:`hostile_files`.  Each must raise one ``ValueError`` (or
``FileNotFoundError``) whose single line names the file and what is wrong -- the key
where there is one -- and never suggests ``allow_pickle``; reading must stay within the
file's size plus 1 MiB of memory (``tracemalloc``), under a generous hang guard.
"""

from __future__ import annotations

import signal
import tracemalloc

import numpy as np
import pytest
from hostile_files import hostile_files, valid_file

from nlref.cli import main
from nlref.nn.denoiser import load_denoiser_weights

HANG_GUARD_S = 60


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return hostile_files(tmp_path_factory.mktemp("hostile"))


def _alarm(signum, frame):
    raise TimeoutError(f"reading took more than {HANG_GUARD_S} s")


def _refusal(path):
    """The error reading ``path`` raises, and the peak of memory traced while reading."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_GUARD_S)
    tracemalloc.start()
    try:
        load_denoiser_weights(path)
    except (ValueError, FileNotFoundError) as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    raise AssertionError(f"{path} was loaded")


def test_the_valid_file_loads(tmp_path):
    net = load_denoiser_weights(valid_file(tmp_path / "valid.npz"))
    assert net["step"] == 4 and net["sigma"] == 25 / 255 and len(net["model"]) > 0


NAMES = [
    "nan", "inf", "huge value", "negative variance", "huge depth", "huge width", "huge inner channels",
    "bad step type", "bad step shape", "negative step", "metrics an object", "metrics row of objects",
    "metrics NaN", "wrong dtype float64", "wrong dtype float16", "missing key", "extra key", "unknown key",
    "sigma on 0-255", "pickled object", "object array", "header claiming 10**12 elements",
    "old format_version", "truncated", "empty", "random bytes", "pickle file", "zip bomb",
]  # fmt: skip


def test_the_generator_makes_every_listed_kind(files):
    assert sorted(files) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_hostile_file_gets_its_one_line_error_within_its_size_in_memory(files, name):
    path, expected = files[name]
    exc, peak = _refusal(path)
    message = str(exc)
    assert "\n" not in message and str(path) in message, message
    assert expected in message, message
    assert "allow_pickle" not in message, message
    assert peak < path.stat().st_size + 2**20, f"{peak} bytes traced for a {path.stat().st_size}-byte file"


def test_the_command_line_prints_the_error_and_exits_2(files, camera_png, tmp_path, capsys):
    path, expected = files["nan"]
    out = tmp_path / "out.png"
    assert main(["denoise", str(camera_png), str(out), "--method", "learned", "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nlref: error: {path}: ") and expected in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_missing_file_is_one_line_too(tmp_path):
    exc, _ = _refusal(tmp_path / "nothing.npz")
    assert isinstance(exc, FileNotFoundError) and "no such weights" in str(exc)


def test_shipped_files_are_the_current_format():
    from nlref.denoise.learned import SHIPPED_WEIGHTS

    for (_, level), path in SHIPPED_WEIGHTS.items():
        net = load_denoiser_weights(path)
        assert net["sigma"] == level / 255 and net["arch"]["width"] == 32, path
        assert all(a.dtype == np.float32 for a in net["params"].values())


def test_denoising_with_the_learned_network_imports_no_training_code(camera_png, tmp_path):
    import subprocess
    import sys

    argv = ["denoise", str(camera_png), str(tmp_path / "out.png"), "--method", "learned"]
    code = (
        "import sys; from nlref.cli import main; "
        f"status = main({argv!r}); "
        "print(status, sorted(m for m in sys.modules if m.startswith('nlref.nn.train')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.splitlines()[-1] == "0 []", out.stdout + out.stderr
