"""Atomic writes: complete files or nothing, with ordinary permissions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nlref.io import (
    atomic_path,
    check_output,
    check_writable,
    from_float,
    read_image,
    save_npz_atomic,
    to_float,
    write_image,
)


def test_failed_write_leaves_destination_untouched(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert dest.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_existing_output_refused_without_overwrite(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        with atomic_path(dest, overwrite=False):
            pass


def test_written_file_has_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644


def test_npz_round_trip_without_pickles(tmp_path):
    arrays = {"a": np.arange(3.0), "step": np.asarray(5)}
    save_npz_atomic(tmp_path / "c.npz", arrays)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert int(data["step"]) == 5 and np.array_equal(data["a"], arrays["a"])
    with pytest.raises(TypeError, match="object"):
        save_npz_atomic(tmp_path / "d.npz", {"o": np.array([None], dtype=object)})


# ---------------------------------------------------------------- output checks


def test_check_output_refuses_a_folder_even_with_overwrite(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(IsADirectoryError, match="out.png"):
        check_output(tmp_path / "out.png", overwrite=True)
    assert check_output(tmp_path / "out.png", overwrite=True, folder=True) == tmp_path / "out.png"


def test_check_output_refuses_a_parent_that_is_missing_or_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        check_output(tmp_path / "f" / "out.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output(tmp_path / "missing" / "out.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_refuses_an_unwritable_folder(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="not writable"):
        check_output(tmp_path / "locked" / "out.png")


# ---------------------------------------------------------------- images


SHAPES = {
    "grey": (6, 5),
    "grey+alpha": (6, 5, 2),
    "rgb": (6, 5, 3),
    "rgba": (6, 5, 4),
    "volume": (7, 6, 5),
    "rgb frames": (7, 6, 5, 3),
}
CASES = [
    (suffix, dtype, shape)
    for suffix in (".png", ".jpg", ".bmp", ".tif")
    for dtype in ("uint8", "uint16", "float32")
    for shape in SHAPES.values()
]


# imageio's writer raises again when collected after a refused write
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("suffix, dtype, shape", CASES)
def test_check_writable_accepts_exactly_what_the_writer_round_trips(tmp_path, rng, suffix, dtype, shape):
    """Oracle: Pillow/tifffile themselves, without nlref's checks, on the same image."""
    import imageio.v3 as iio
    import tifffile

    image = (rng.random(shape) * (255 if dtype == "uint8" else 1000)).astype(dtype)
    path = tmp_path / f"x{suffix}"
    try:
        if suffix == ".tif":
            tifffile.imwrite(path, image, photometric="rgb" if image.shape[-1] in (3, 4) else None)
        else:
            iio.imwrite(path, image, plugin="pillow")
        back = tifffile.imread(path) if suffix == ".tif" else iio.imread(path, plugin="pillow")
        kept = (
            back.shape == image.shape
            and back.dtype == image.dtype
            and (suffix == ".jpg" or np.array_equal(back, image))
        )  # JPEG is lossy by design
    except Exception:
        kept = False
    if kept:
        check_writable(path, image.dtype, image.shape)
        write_image(tmp_path / f"y{suffix}", image)
        assert read_image(tmp_path / f"y{suffix}").shape == image.shape
    else:
        with pytest.raises(ValueError, match="cannot hold"):
            check_writable(path, image.dtype, image.shape)


def test_unknown_suffix_is_refused_not_written_as_tiff(tmp_path):
    with pytest.raises(ValueError, match="unknown image format"):
        write_image(tmp_path / "out.xyz", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_from_float_inverts_to_float_for_every_integer_value(dtype):
    values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    np.testing.assert_array_equal(from_float(to_float(values), dtype), values)
    assert to_float(values)[-1] == 1.0 and to_float(values)[0] == 0.0
