"""The learned half's limits (issue 28): finite results, work bounded by the data, one-line errors."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile

from nlref.cli import main
from nlref.denoise.learned import MIN_CORE, denoise_learned, load_weights
from nlref.nn.denoiser import build_denoiser, receptive_radius


def _net(window=2):
    model, params, state = build_denoiser(width=4, depth=2, nl_blocks=1, window=window, rng=0)
    return {"model": model, "params": params, "state": state, "sigma": 25 / 255}


@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).random((48, 48)) * 1e19,
        np.full((32, 32), 1e300),
        np.full((16, 16), -2.01),
        np.full((16, 16), 3.01, dtype=np.float32),
    ],
    ids=["rand*1e19", "1e300", "-2.01", "3.01"],
)
def test_float_images_off_the_unit_scale_are_refused_naming_the_range(image):
    with pytest.raises(ValueError, match=r"\[-2, 3\].*divide by the data range"):
        denoise_learned(image, _net())


def test_images_at_the_edges_of_the_range_and_integers_are_denoised_finite():
    for image in (np.full((20, 20), -2.0), np.full((20, 20), 3.0), np.full((20, 20), 65535, np.uint16)):
        assert np.isfinite(denoise_learned(image, _net(), tile=40)).all()


def test_an_empty_image_says_so():
    for shape in ((0, 5), (5, 0)):
        with pytest.raises(ValueError, match="must not be empty"):
            denoise_learned(np.zeros(shape), _net())


def test_tile_must_keep_a_core_of_16_pixels_and_the_error_names_the_minimum():
    net = _net()
    r = receptive_radius(net["model"])
    with pytest.raises(ValueError, match=rf"tile must be an int >= {2 * r + MIN_CORE}"):
        denoise_learned(np.zeros((48, 48)), net, tile=2 * r + MIN_CORE - 1)
    assert denoise_learned(np.zeros((48, 48)), net, tile=2 * r + MIN_CORE).shape == (48, 48)


def test_the_shipped_model_refuses_tile_41_the_issue_case():
    with pytest.raises(ValueError, match=r"tile must be an int >= 56"):
        denoise_learned(np.zeros((48, 48)), tile=41)


def test_a_model_with_window_null_is_refused_in_one_line():
    with pytest.raises(ValueError, match="window null"):
        denoise_learned(np.zeros((16, 16)), _net(window=None))


def test_a_dict_without_model_is_refused_in_one_line():
    net = load_weights()
    del net["model"]
    with pytest.raises(ValueError, match="weights must be a path or the dict of load_weights"):
        denoise_learned(np.zeros((16, 16)), net)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_refuses_a_float_tiff_near_1e20_and_writes_nothing(tmp_path, capsys):
    src, out = tmp_path / "big.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, np.random.default_rng(0).random((40, 40), dtype=np.float32) * np.float32(1e20))
    assert main(["denoise", str(src), str(out), "--method", "learned"]) == 2
    assert "[-2, 3]" in _one_line(capsys) and not out.exists()


def test_cli_never_writes_a_non_finite_result(tmp_path, capsys, monkeypatch):
    from nlref.cli import denoise as denoise_cli

    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, np.full((40, 40), 0.5, dtype=np.float32))
    monkeypatch.setattr(denoise_cli, "denoise_learned", lambda image, weights: np.full(image.shape, np.nan))
    assert main(["denoise", str(src), str(out), "--method", "learned"]) == 2
    assert "non-finite" in _one_line(capsys) and not out.exists()


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_cli_full_disk_names_the_output_path(tmp_path, capsys, monkeypatch):
    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, np.full((40, 40), 0.5, dtype=np.float32))
    monkeypatch.setattr(tifffile, "imwrite", _disk_full)
    assert main(["denoise", str(src), str(out), "--method", "learned"]) == 1
    line = _one_line(capsys)
    assert "No space left on device" in line and str(out) in line and not out.exists()
    assert not list(tmp_path.glob(".out.tif.*"))  # the temporary file is gone too


def test_a_full_disk_while_writing_weights_names_the_file(tmp_path, monkeypatch):
    from hostile_files import valid_file

    monkeypatch.setattr(np, "savez", _disk_full)
    path = tmp_path / "weights.npz"
    with pytest.raises(OSError, match="No space left on device") as info:
        valid_file(path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert not path.exists() and not list(tmp_path.iterdir())
