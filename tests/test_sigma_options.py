"""One sigma convention: every ``nlref`` and ``benchmarks/`` option takes sigma on [0, 1], fractions too."""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from nlref.cli import main
from nlref.cli.options import unit_sigma
from nlref.data import add_gaussian_noise, load_image
from nlref.denoise import estimate_sigma, learned
from nlref.denoise.learned import (
    SHIPPED_WEIGHTS,
    choose_shipped,
    denoise_learned,
    load_weights,
    sigma_mismatch,
)
from nlref.io import from_float, to_float

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


# ---------------------------------------------------------------- the noise level from the image


def _noisy_moon(sigma_255, side=128):
    clean = load_image("moon")[128 : 128 + side, 128 : 128 + side]
    return add_gaussian_noise(clean, sigma_255 / 255, seed=0)


@pytest.mark.parametrize("level", [15, 25, 50])
def test_without_sigma_the_estimate_picks_the_model_of_the_added_noise(level):
    noisy = _noisy_moon(level)
    sigma, how, path = choose_shipped(noisy)
    assert how == "estimated" and sigma == estimate_sigma(noisy)
    assert path == SHIPPED_WEIGHTS[("nl", level)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within 30 % of the model: no warning
        np.testing.assert_array_equal(denoise_learned(noisy), denoise_learned(noisy, path))


@pytest.mark.parametrize(
    "sigma_255, model",
    [(19.999, 15), (20.0, 25), (20.001, 25), (37.499, 25), (37.5, 50), (37.501, 50)],
)
def test_the_estimate_chooses_by_the_rule_at_its_boundaries(monkeypatch, sigma_255, model):
    monkeypatch.setattr(learned, "estimate_sigma", lambda image: sigma_255 / 255)
    sigma, how, path = choose_shipped(np.zeros((8, 8)))
    assert (sigma, how, path) == (sigma_255 / 255, "estimated", SHIPPED_WEIGHTS[("nl", model)])


def test_a_noise_free_estimate_takes_the_lowest_model_and_negative_sigma_is_refused():
    assert choose_shipped(np.full((16, 16), 0.5))[::2] == (0.0, SHIPPED_WEIGHTS[("nl", 15)])
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        choose_shipped(np.zeros((8, 8)), -0.1)


@pytest.mark.parametrize("sigma_255, warns", [(25 * 1.3, False), (25 * 1.31, True), (25 * 0.7, False)])
def test_a_warning_when_sigma_is_more_than_30_percent_from_the_model(sigma_255, warns):
    text = sigma_mismatch(sigma_255 / 255, 25 / 255)
    assert (text is not None) == warns
    if warns:
        assert "31 % from the model's sigma 0.098 (more than 30 %)" in text


def test_denoise_learned_warns_when_no_shipped_model_is_near_the_noise():
    noisy = _noisy_moon(100, side=64)  # estimated ~0.39, the sigma-50 model is 0.196
    with pytest.warns(UserWarning, match="from the model's sigma 0.196"):
        denoise_learned(noisy)


def test_cli_learned_without_sigma_estimates_and_names_the_model(tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    iio.imwrite(src, load_image("moon", dtype=None)[128:256, 128:256])
    for extra in ([], ["--sigma", "auto"]):
        assert main(["denoise", str(src), str(out), "--method", "learned", "--add-noise", "50/255", *extra,
                     "--overwrite"]) == 0  # fmt: skip
        lines = capsys.readouterr().out.splitlines()
        noisy = add_gaussian_noise(to_float(iio.imread(src)), 50 / 255, seed=0)
        assert (
            lines[0] == f"nlref denoise: sigma {estimate_sigma(noisy):.3g} (estimated) -> model sigma 0.196"
        )
        assert not any("warning" in line for line in lines)
        expected = from_float(denoise_learned(noisy, SHIPPED_WEIGHTS[("nl", 50)]), np.dtype(np.uint8))
        np.testing.assert_array_equal(iio.imread(out), expected)


def test_cli_learned_warns_in_one_line_when_the_noise_is_far_from_every_model(tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    iio.imwrite(src, load_image("moon", dtype=None)[128:192, 128:192])
    assert main(["denoise", str(src), str(out), "--method", "learned", "--add-noise", "100/255"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(estimated) -> model sigma 0.196")
    assert lines[1].startswith("nlref denoise: warning: the noise level 0.")
