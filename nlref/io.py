"""Atomic file writing shared by the CLI, figures and checkpoints.

A file is written to a temporary name in the destination folder and renamed
over the destination only once it is complete, so a crash or an interrupt
never leaves a half-written file behind and never clobbers a good one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        If False and ``path`` exists, raise ``FileExistsError`` before any work.

    Notes
    -----
    The temporary file keeps ``path``'s suffix so that writers choosing a
    format from the extension (imageio, matplotlib, tifffile) still work.
    On any exception the temporary file is removed and the destination is
    left untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"output {str(path)!r} already exists; pass overwrite=True (CLI: --overwrite)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder {str(parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the usual permissions (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compressed: bool = False) -> None:
    """Save a flat dict of NumPy arrays to ``.npz`` atomically (no pickles)."""
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise TypeError(f"array {key!r} must be a non-object NumPy array, received {type(value).__name__}")
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            save(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
