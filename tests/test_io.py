"""Atomic writes: complete files or nothing, with ordinary permissions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nlref.io import atomic_path, save_npz_atomic


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
