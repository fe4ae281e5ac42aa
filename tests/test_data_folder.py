"""``nlref train-denoiser --data DIR``: the grey PNG folder reader, split, errors and description."""

from __future__ import annotations

import hashlib
import json

import imageio.v3 as iio
import numpy as np
import pytest

from nlref.backend import blas_threads
from nlref.cli import main
from nlref.data.folder import VAL_FILES, describe_folder, grey_png_files, read_grey_folder
from nlref.denoise.learned import load_weights


def _folder(path, n, side=20, dtype=np.uint8, channels=None):
    """``n`` PNGs named 000.png ... whose pixels all equal the file's index (so a split can be read back)."""
    path.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        shape = (side, side) if channels is None else (side, side, channels)
        iio.imwrite(path / f"{k:03d}.png", np.full(shape, k, dtype=dtype))
    return path


def test_the_last_files_in_sorted_order_are_the_validation_split(tmp_path):
    folder = _folder(tmp_path / "tiny", 7)
    (folder / "notes.txt").write_text("not an image")  # ignored
    train, val, _ = read_grey_folder(folder, min_side=8, n_val=3)
    assert [round(float(im[0, 0]) * 255) for im in train] == [0, 1, 2, 3]
    assert [round(float(im[0, 0]) * 255) for im in val] == [4, 5, 6]
    assert train[0].dtype == np.float32 and train[0].shape == (20, 20)


def test_images_are_scaled_to_the_unit_interval_by_their_bit_depth(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    iio.imwrite(folder / "a.png", np.full((9, 9), 65535, dtype=np.uint16))
    iio.imwrite(folder / "b.png", np.full((9, 9), 255, dtype=np.uint8))
    train, val, _ = read_grey_folder(folder, min_side=9, n_val=1)
    assert float(train[0].max()) == 1.0 and float(val[0].max()) == 1.0


def test_the_description_names_the_folder_by_name_count_and_hash_never_the_path(tmp_path):
    folder = _folder(tmp_path / "somewhere" / "train9", 5)
    desc = describe_folder(grey_png_files(folder), n_val=2)
    listing = [[p.name, p.stat().st_size] for p in sorted(folder.glob("*.png"))]
    assert desc == {
        "folder": "train9",
        "files": 5,
        "val_files": 2,
        "sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
    }
    assert str(tmp_path) not in json.dumps(desc)
    copy = _folder(tmp_path / "elsewhere" / "train9", 5)  # the same files elsewhere: the same description
    assert describe_folder(grey_png_files(copy), n_val=2) == desc
    iio.imwrite(copy / "004.png", np.zeros((21, 21), dtype=np.uint8))  # one size changes: another hash
    assert describe_folder(grey_png_files(copy), n_val=2)["sha256"] != desc["sha256"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no .png files"),
        (lambda p: _folder(p / "few", 3), "3 PNG files, expected more than 3"),
        (
            lambda p: _folder(p / "rgb", 5, channels=3),
            r"000.png is uint8 of shape \(20, 20, 3\), expected a grey",
        ),
        (lambda p: _folder(p / "small", 5, side=6), "000.png is 6 x 6, smaller than a patch \\(8\\)"),
    ],
)
def test_bad_folders_get_one_clear_error(tmp_path, make, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        read_grey_folder(make(tmp_path), min_side=8, n_val=3)


def test_train_denoiser_with_data_records_the_description_and_validates_on_the_last_files(tmp_path, capsys):
    folder = _folder(tmp_path / "grey41", VAL_FILES + 1, side=16)
    out = tmp_path / "run"
    args = ["train-denoiser", "--preset", "quick", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--data", str(folder)]) == 0
    assert "on grey41/ (1 train, 40 validation files)" in capsys.readouterr().out
    net = load_weights(out / "weights.npz")
    assert net["config"]["data"] == describe_folder(grey_png_files(folder))
    assert str(tmp_path) not in json.dumps(net["config"])
    assert net["metrics"] and all(row["blas_threads"] == blas_threads() for row in net["metrics"])


def test_train_denoiser_refuses_a_bad_folder_in_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-denoiser", "--preset", "quick", "--out", str(out), "--no-progress"]
    assert main([*args, "--data", str(_folder(tmp_path / "rgb", VAL_FILES + 1, channels=3))]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("nlref: error: --data: 000.png is uint8 of shape (20, 20, 3)") and err.count("\n") == 1
    )
    assert not out.exists()
