"""``nlref denoise``: file round trips, the options -> nl_means mapping, refusals."""

from __future__ import annotations

import argparse
import errno
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nlref.cli import denoise as denoise_cli
from nlref.cli import main
from nlref.cli.options import nl_means_kwargs_from_args
from nlref.data import add_gaussian_noise, load_image
from nlref.denoise import estimate_sigma, ipol_parameters, nl_means
from nlref.denoise.learned import SHIPPED_WEIGHTS


def test_png_8bit_round_trip_with_added_noise_prints_psnr(camera_png, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["denoise", str(camera_png), str(out), "--add-noise", "20/255", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    line = next(l for l in text.splitlines() if l.startswith("PSNR"))
    before, after = (float(part.split(":")[1].split()[0]) for part in line.split(","))
    assert after > before + 3
    result = iio.imread(out)
    assert result.dtype == np.uint8 and result.shape == (64, 64)


@pytest.mark.parametrize(
    "extra, words",
    [
        ([], "uniform patch kernel (fast mode), scikit-image's centre weight"),
        (
            ["--slow", "--preset", "ipol", "--sigma", "0.08"],
            "Gaussian patch kernel (--slow), IPOL 2011's centre weight",
        ),
    ],
)
def test_the_nl_means_line_says_nlref_ran_and_which_kernel_and_centre_weight(
    camera_png, tmp_path, capsys, extra, words
):
    assert main(["denoise", str(camera_png), str(tmp_path / "out.png"), *extra]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert ": non-local means, h " in line and line.endswith(f"{words}; nlref on numpy"), line
    assert "skimage" not in line  # it read as if scikit-image had run


def test_tiff_16bit_round_trip_keeps_the_bit_depth_and_equals_nl_means(tmp_path, capsys):
    clean = (load_image("moon", dtype=np.float64)[100:150, 100:160] * 65535).astype(np.uint16)
    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, clean)
    argv = [
        "denoise",
        str(src),
        str(out),
        "--add-noise",
        "0.05",
        "--seed",
        "1",
        "--sigma",
        "0.05",
        "--h",
        "0.04",
        "--patch-size",
        "5",
        "--patch-distance",
        "4",
        "--slow",
    ]
    assert main(argv) == 0
    assert "PSNR noisy" in capsys.readouterr().out
    result = tifffile.imread(out)
    assert result.dtype == np.uint16
    noisy = add_gaussian_noise(clean / 65535.0, 0.05, seed=1)
    expected = nl_means(noisy, 5, 4, 0.04, fast_mode=False, sigma=0.05)
    np.testing.assert_array_equal(result, np.clip(np.rint(expected * 65535), 0, 65535).astype(np.uint16))


def test_colour_png_is_denoised_with_the_channels_last(tmp_path):
    src, out = tmp_path / "rgb.png", tmp_path / "out.png"
    image = load_image("astronaut", dtype=None)[:40, :48]
    iio.imwrite(src, image)
    assert main(["denoise", str(src), str(out), "--sigma", "0.05", "--patch-distance", "3"]) == 0
    expected = nl_means(image, 7, 3, 0.04, sigma=0.05, channel_axis=-1)
    np.testing.assert_array_equal(iio.imread(out), np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8))


def test_existing_output_is_refused_without_overwrite_and_left_alone(camera_png, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    assert main(["denoise", str(camera_png), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["denoise", str(camera_png), str(out), "--overwrite", "--patch-distance", "2"]) == 0
    assert iio.imread(out).shape == (64, 64)


@pytest.mark.parametrize("content", [None, b"not an image"])
def test_unreadable_input_is_reported_with_its_path(tmp_path, capsys, content):
    src = tmp_path / "broken.png"
    if content is not None:
        src.write_bytes(content)
    assert main(["denoise", str(src), str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err
    assert not (tmp_path / "out.png").exists()


def test_bad_option_values_are_refused(camera_png, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["denoise", str(camera_png), str(tmp_path / "o.png"), "--sigma", "abc"])
    capsys.readouterr()
    # checked while parsing, before the image is read or sigma estimated
    for option, value, word in (
        ("--patch-size", "4", "odd"),
        ("--patch-distance", "-1", ">= 0"),
        ("--h", "0", "> 0"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["denoise", str(camera_png), str(tmp_path / "o.png"), option, value, "--sigma", "0.1"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert option in err and word in err, err
    assert not (tmp_path / "o.png").exists()


def _args(**kw):
    base = dict(
        sigma=None,
        h=None,
        patch_size=None,
        patch_distance=None,
        preset=None,
        fast_mode=True,
        channel_axis="auto",
    )
    return argparse.Namespace(**{**base, **kw})


def test_kwargs_default_to_estimated_sigma_and_h_of_0_8_sigma(rng):
    image = 0.5 + 0.1 * rng.standard_normal((64, 64))
    kw = nl_means_kwargs_from_args(_args(), image)
    assert kw["sigma"] == pytest.approx(estimate_sigma(image))
    assert kw["h"] == pytest.approx(0.8 * kw["sigma"])
    assert (kw["patch_size"], kw["patch_distance"]) == (7, 11)
    assert (kw["weighting"], kw["channel_axis"]) == ("skimage", None)


def test_kwargs_for_the_ipol_preset_take_the_table_unless_overridden():
    kw = nl_means_kwargs_from_args(_args(sigma=20 / 255, preset="ipol"), shape=(32, 32, 3))
    expected = ipol_parameters(20 / 255, colour=True)
    assert kw["weighting"] == "ipol" and kw["channel_axis"] == -1
    assert {k: kw[k] for k in expected} == expected
    kw = nl_means_kwargs_from_args(_args(sigma=20 / 255, preset="ipol", patch_size=(1, 5, 5), h=0.1))
    assert kw["patch_size"] == (1, 5, 5) and kw["h"] == 0.1


def test_kwargs_need_sigma_when_there_is_no_image():
    with pytest.raises(ValueError, match="--sigma"):
        nl_means_kwargs_from_args(_args())
    assert nl_means_kwargs_from_args(_args(sigma=0.0))["h"] == 0.1  # scikit-image's default


def test_progress_bar_goes_to_stderr_when_asked(camera_png, tmp_path, capsys):
    assert (
        main(
            [
                "denoise",
                str(camera_png),
                str(tmp_path / "o.png"),
                "--sigma",
                "0.05",
                "--patch-distance",
                "2",
                "--progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "nl_means offsets" in err and "100%" in err


# ---------------------------------------------------------------- alpha (issue #15, point 5)


@pytest.mark.parametrize("colours", [1, 3], ids=["grey+alpha", "rgba"])
def test_alpha_is_copied_and_only_the_colours_are_denoised(tmp_path, rng, colours):
    colour = load_image("astronaut", dtype=None)[:40, :48]
    colour = colour[..., 0] if colours == 1 else colour
    alpha = (rng.random((40, 48)) * 255).astype(np.uint8)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    iio.imwrite(src, np.dstack([colour, alpha]))
    assert main(["denoise", str(src), str(out), "--sigma", "0.05", "--patch-distance", "3"]) == 0
    result = iio.imread(out)
    assert result.shape == (40, 48, colours + 1) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[..., -1], alpha)
    expected = nl_means(colour, 7, 3, 0.04, sigma=0.05, channel_axis=-1 if colours == 3 else None)
    expected = np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(result[..., :-1].reshape(expected.shape), expected)


def test_explicit_channel_axis_denoises_the_alpha_too(tmp_path, rng):
    image = (rng.random((30, 33, 4)) * 255).astype(np.uint8)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    iio.imwrite(src, image)
    assert (
        main(
            ["denoise", str(src), str(out), "--sigma", "0.1", "--patch-distance", "2", "--channel-axis", "-1"]
        )
        == 0
    )
    expected = nl_means(image, 7, 2, 0.08, sigma=0.1, channel_axis=-1)
    np.testing.assert_array_equal(iio.imread(out), np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- errors (issue #15, point 3)


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if denoising starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("nl_means was called")

    monkeypatch.setattr(denoise_cli, "nl_means", refuse)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nlref: error: "), err
    return err[0]


@pytest.fixture
def moon_16bit(tmp_path):
    path = tmp_path / "moon16.tif"
    tifffile.imwrite(path, (load_image("moon", dtype=np.float64)[:32, :32] * 65535).astype(np.uint16))
    return path


@pytest.mark.parametrize(
    "name, word",
    [
        ("out.jpg", "cannot hold a uint16"),
        ("out.xyz", "unknown image format"),
        ("out.png", "cannot hold a uint16"),
    ],
)
def test_format_that_cannot_hold_the_image_is_refused_before_any_work(
    moon_16bit, tmp_path, capsys, no_work, name, word
):
    tifffile.imwrite(moon_16bit, np.zeros((32, 32, 3), np.uint16), photometric="rgb")  # 16-bit RGB: not PNG
    assert main(["denoise", str(moon_16bit), str(tmp_path / name), "--sigma", "0.1"]) == 2
    line = one_error_line(capsys)
    assert word in line and name in line
    assert not (tmp_path / name).exists()


def test_output_folder_with_overwrite_is_refused_before_any_work(camera_png, tmp_path, capsys, no_work):
    (tmp_path / "out.png").mkdir()
    assert main(["denoise", str(camera_png), str(tmp_path / "out.png"), "--overwrite"]) == 2
    assert "is a folder" in one_error_line(capsys)
    assert (tmp_path / "out.png").is_dir()


@pytest.mark.parametrize("parent", ["missing", "a_file"])
def test_output_folder_that_is_missing_or_a_file_is_refused_before_any_work(
    camera_png, tmp_path, capsys, no_work, parent
):
    (tmp_path / "a_file").write_bytes(b"")
    out = tmp_path / parent / "out.png"
    assert main(["denoise", str(camera_png), str(out), "--sigma", "0.1"]) == 2
    assert f"{parent}'" in one_error_line(capsys)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder_is_refused_before_any_work(camera_png, tmp_path, capsys, no_work):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    assert main(["denoise", str(camera_png), str(folder / "out.png"), "--sigma", "0.1"]) == 1
    assert "not writable" in one_error_line(capsys)


def test_write_failure_during_the_work_exits_1_with_one_line_naming_the_output(
    moon_16bit, tmp_path, capsys, monkeypatch
):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", disk_full)
    out = tmp_path / "out.tif"
    assert main(["denoise", str(moon_16bit), str(out), "--sigma", "0.1", "--patch-distance", "1"]) == 1
    line = one_error_line(capsys)
    assert "No space left on device" in line and str(out) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moon16.tif"]  # no temporary file left


def test_ctrl_c_exits_130_without_output(camera_png, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(denoise_cli, "nl_means", interrupted)
    assert main(["denoise", str(camera_png), str(tmp_path / "out.png"), "--sigma", "0.1"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


# --- --method bm3d ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits, colour", [(8, False), (16, False), (8, True)])
def test_bm3d_png_round_trip_equals_bm3d(tmp_path, capsys, bits, colour):
    from nlref.denoise import bm3d

    dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    clean = load_image("astronaut" if colour else "camera", dtype=np.float64)[100:140, 120:164]
    noisy = np.clip(add_gaussian_noise(clean, 0.08, seed=2), 0, 1)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    iio.imwrite(src, np.rint(noisy * top).astype(dtype))
    assert main(["denoise", str(src), str(out), "--method", "bm3d", "--sigma", "0.08"]) == 0
    assert "nlref denoise: sigma 0.08 (given)" in capsys.readouterr().out
    stored = iio.imread(src) / top
    expected = bm3d(stored, 0.08, channel_axis=-1 if colour else None)
    result = iio.imread(out)
    assert result.dtype == dtype and result.shape == stored.shape
    np.testing.assert_array_equal(result, np.clip(np.rint(expected * top), 0, top).astype(dtype))


def test_bm3d_estimates_sigma_and_says_so_in_the_header(camera_png, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["denoise", str(camera_png), str(out), "--method", "bm3d", "--add-noise", "0.1"]) == 0
    text = capsys.readouterr().out
    noisy = add_gaussian_noise(iio.imread(camera_png) / 255.0, 0.1, seed=0)
    assert f"nlref denoise: sigma {estimate_sigma(noisy):.3g} (estimated)" in text.splitlines()


def test_every_method_prints_the_sigma_header_in_one_format(camera_png, tmp_path, capsys):
    for k, (extra, how) in enumerate(
        [
            (["--sigma", "0.05"], "0.05 (given)"),
            ([], "(estimated)"),
            (["--method", "learned"], "(estimated) -> model sigma 0.0588"),
            (["--method", "learned", "--sigma", "0.1"], "0.1 (given) -> model sigma 0.098"),
            (["--method", "learned", "--weights", str(SHIPPED_WEIGHTS[("nl", 50)])], "0.196 (the network's)"),
        ]
    ):
        out = tmp_path / f"out{k}.png"
        assert main(["denoise", str(camera_png), str(out), *extra]) == 0
        header = capsys.readouterr().out.splitlines()[0]
        assert header.startswith("nlref denoise: sigma ") and header.endswith(how), header


@pytest.mark.parametrize("extra", [["--h", "0.1"], ["--slow"], ["--weights", "x.npz"], ["--chunks", "64"]])
def test_bm3d_refuses_options_of_other_methods(camera_png, tmp_path, capsys, extra):
    assert main(["denoise", str(camera_png), str(tmp_path / "o.png"), "--method", "bm3d", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nlref: error: --") and "\n" not in err
