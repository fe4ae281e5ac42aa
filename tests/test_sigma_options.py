"""One sigma convention: every ``nlref`` and ``benchmarks/`` option takes sigma on [0, 1], fractions too."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from nlref.cli import main
from nlref.cli.options import unit_sigma
from nlref.denoise.learned import load_weights

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, value", [("25/255", 25 / 255), ("0.1", 0.1), ("1", 1.0), ("0", 0.0)])
def test_sigma_options_take_the_unit_scale_and_fractions(text, value):
    assert unit_sigma(text) == value


@pytest.mark.parametrize(
    "text, message", [("25", "write 25/255"), ("1.5", "write 1.5/255"), ("-0.1", ">= 0")]
)
def test_sigma_options_refuse_values_off_the_unit_scale(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        unit_sigma(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["denoise", "in.png", "out.png", "--sigma", "25"],
        ["denoise", "in.png", "out.png", "--method", "learned", "--sigma", "50"],
        ["denoise", "in.png", "out.png", "--add-noise", "20"],
        ["train-denoiser", "--preset", "quick", "--sigma", "25"],
    ],
)
def test_nlref_refuses_a_sigma_on_the_0_255_scale_while_parsing(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv[:1] + [str(tmp_path / a) if a.endswith(".png") else a for a in argv[1:]])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "sigma is on the [0, 1] scale of the image" in err and "/255" in err, err


def test_train_denoiser_takes_sigma_on_the_unit_scale(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train-denoiser", "--preset", "quick", "--steps", "1", "--sigma", "50/255", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert "at sigma 0.1961 (50/255)" in capsys.readouterr().out
    net = load_weights(out / "weights.npz")
    assert net["sigma"] == 50 / 255 and net["config"]["sigma"] == 50.0


def test_bench_denoisers_refuses_a_sigma_on_the_0_255_scale():
    cmd = [sys.executable, "benchmarks/bench_denoisers.py", "--sigmas", "25", "--quick"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "sigma is on the [0, 1] scale" in done.stderr, done.stderr
