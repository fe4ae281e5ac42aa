"""A folder of grey PNGs as training data for the learned denoiser (``nlref train-denoiser --data DIR``).

For example DnCNN's training set, ``train400`` (Zhang et al., TIP 2017: 400 grey
180 x 180 crops of Berkeley images), read from where the user keeps it; nothing
is copied into the project.  The split is fixed by the file names alone: the
PNGs in sorted name order, the last :data:`VAL_FILES` validate, the others
train.  A run records the data by :func:`describe_folder` (folder name, file
count, a hash of the sorted ``(name, size)`` list), never by a path, so two
machines that hold the same files record the same description.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..io import read_image

__all__ = ["VAL_FILES", "describe_folder", "grey_png_files", "read_grey_folder"]

#: The validation split: the last 40 files in sorted name order (train400: 360 train, 40 validate).
VAL_FILES = 40


def grey_png_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*.png`` files of ``folder`` in sorted name order; one-line errors for a missing or empty folder."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"--data {str(folder)!r}: no such folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise ValueError(f"--data {str(folder)!r}: the folder holds no .png files")
    return files


def describe_folder(files: list[Path], n_val: int = VAL_FILES) -> dict:
    """What a run records about its data: no path, only names and sizes.

    ``{"folder": name, "files": count, "val_files": n_val, "sha256": hash}``, the hash taken over
    the JSON text of the sorted ``[[name, size in bytes], ...]`` list.
    """
    listing = sorted([p.name, p.stat().st_size] for p in files)
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return {
        "folder": files[0].parent.resolve().name,
        "files": len(files),
        "val_files": n_val,
        "sha256": digest,
    }


def read_grey_folder(
    folder: str | os.PathLike, *, min_side: int, n_val: int = VAL_FILES, dtype=np.float32
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """Read every grey PNG of ``folder``; return ``(train, val, description)``.

    Parameters
    ----------
    folder : path-like
        A folder of grey 8- or 16-bit PNGs (other files are ignored).
    min_side : int
        The training patch side: every image must be at least this large on both axes.
    n_val : int
        The last ``n_val`` files (sorted by name) are the validation split.
    dtype : floating dtype

    Returns
    -------
    train, val : lists of (H, W) arrays in [0, 1]
    description : dict
        :func:`describe_folder`.

    Raises
    ------
    FileNotFoundError, ValueError
        No such folder; no PNG; no more files than ``n_val``; an image that is not grey
        (2-D, or a last axis of 1) or smaller than ``min_side``; each names the file.
    """
    files = grey_png_files(folder)
    if len(files) <= n_val:
        raise ValueError(
            f"--data {str(folder)!r}: {len(files)} PNG files, expected more than {n_val} "
            f"(the last {n_val} in sorted order are the validation split)"
        )
    images = []
    for f in files:
        raw = read_image(f)
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2 or raw.dtype.kind != "u":
            raise ValueError(
                f"--data: {f.name} is {raw.dtype} of shape {raw.shape}, expected a grey 8/16-bit PNG"
            )
        if min(raw.shape) < min_side:
            raise ValueError(
                f"--data: {f.name} is {raw.shape[0]} x {raw.shape[1]}, smaller than a patch ({min_side})"
            )
        images.append((raw / np.iinfo(raw.dtype).max).astype(dtype))
    return images[:-n_val], images[-n_val:], describe_folder(files, n_val)
