"""Files in and out: atomic writes, and images read from and written to files.

Where nlref meets the disk.  Two ideas live here:

* **Atomic writes** (:func:`atomic_path`, :func:`save_npz_atomic`): a file is
  written under a temporary name in the destination folder and renamed over
  the destination only once it is complete, so a crash or an interrupt never
  leaves a half-written file behind and never clobbers a good one.  Used by
  the CLI, figures and checkpoints.
* **Images as files** (:func:`read_image`, :func:`write_image`,
  :func:`to_float`, :func:`from_float`): PNG/JPEG/BMP through imageio's Pillow
  plugin, TIFF through tifffile; integers scaled to [0, 1] and back.  Used by
  both ``nlref denoise`` paths (in memory and streaming, :mod:`nlref.cli`).
  What can be checked is checked before any work: :func:`check_output` (the
  one "output exists" check) and :func:`check_writable` (the format can hold
  the image exactly).

tifffile and imageio are optional dependencies, imported where they are used.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .backend import as_float_image

__all__ = [
    "atomic_path",
    "save_npz_atomic",
    "check_output",
    "check_writable",
    "read_image",
    "write_image",
    "to_float",
    "from_float",
    "peek_shape",
    "TIFF_SUFFIXES",
    "PILLOW_SUFFIXES",
    "ZARR_SUFFIX",
]

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".zarr"
#: Read through imageio's Pillow plugin.
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: What each non-TIFF format holds exactly: ``{suffix: {dtype: channel counts}}``; 1 is a 2-D grey image,
#: 2 grey + alpha, 3 RGB, 4 RGBA.  TIFF holds every unsigned or float dtype and any shape.
PILLOW_WRITES = {
    ".png": {"uint8": (1, 2, 3, 4), "uint16": (1,)},
    ".jpg": {"uint8": (1, 3)},
    ".jpeg": {"uint8": (1, 3)},
    ".bmp": {"uint8": (1, 3)},
}
#: Formats (and dtypes) that also hold a stack of such frames: a volume as an animated PNG (8-bit only:
#: Pillow writes the later frames of a 16-bit one lossily).
PILLOW_STACKS = {".png": ("uint8",)}


# ---------------------------------------------------------------- atomic writes


def check_output(path: str | os.PathLike, *, overwrite: bool = False, folder: bool = False) -> Path:
    """Check that ``path`` can be written, before any work; return it as a ``Path``.

    Parameters
    ----------
    path : path-like
        The output file (or folder, such as a Zarr store, with ``folder=True``).
    overwrite : bool
        If False, an existing ``path`` is refused.
    folder : bool
        The output is itself a folder (replaced as a whole with ``overwrite``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder but a file is to be written.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    FileNotFoundError, NotADirectoryError, PermissionError
        The parent folder does not exist, is not a folder, or is not writable.
    """
    path = Path(path)
    if path.is_dir() and not folder:
        raise IsADirectoryError(f"output {str(path)!r} is a folder; name a file to write")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"output {str(path)!r} already exists; pass overwrite=True (CLI: --overwrite)")
    parent = path.parent  # Path("out.png").parent is Path(".")
    if not parent.exists():
        raise FileNotFoundError(f"output folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"output folder {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(parent)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        If False and ``path`` exists, raise ``FileExistsError`` before any work.

    Yields
    ------
    Path
        The temporary file to write (it exists, empty).

    Notes
    -----
    The temporary file keeps ``path``'s suffix so that writers choosing a
    format from the extension (imageio, matplotlib, tifffile) still work.
    On any exception the temporary file is removed and the destination is
    left untouched; an ``OSError`` of the write that names no file (a full
    disk, ENOSPC) is raised again naming ``path``.  :func:`check_output` runs first.
    """
    path = check_output(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the usual permissions (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp_path), tmp):
            # a full disk (ENOSPC) raised by a write names no file, or only the temporary one: name the output
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def save_npz_atomic(
    path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compressed: bool = False
) -> None:
    """Save a flat dict of NumPy arrays to ``.npz`` atomically (no pickles)."""
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise TypeError(
                f"array {key!r} must be a non-object NumPy array, received {type(value).__name__}"
            )
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            save(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())


# ---------------------------------------------------------------- images


def _frame_channels(shape: tuple[int, ...], stacks: bool) -> int | None:
    """Channels of one frame: 1 (2-D grey), 2/3/4 (last axis: grey+alpha, RGB, RGBA); None if unheld.

    With ``stacks`` (APNG), a 3-D ``(frames, H, W)`` or 4-D ``(frames, H, W, C)`` array is a stack of frames.
    """
    if len(shape) == 2:
        return 1
    if len(shape) == 3 and shape[-1] in (2, 3, 4):
        return int(shape[-1])
    if stacks and len(shape) in (3, 4):
        return _frame_channels(shape[1:], False)
    return None


def check_writable(path: str | os.PathLike, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Check that the format chosen by ``path``'s suffix holds such an image exactly.

    Raises
    ------
    ValueError
        Unknown suffix, or a dtype/shape the format cannot hold (a 16-bit or
        float image to JPEG, alpha to JPEG/BMP, 16-bit RGB to PNG, a volume to
        JPEG): TIFF holds all (:data:`PILLOW_WRITES`, :data:`PILLOW_STACKS`).
    """
    suffix, dtype = Path(path).suffix.lower(), np.dtype(dtype)
    if dtype.kind not in "uf":
        raise ValueError(f"cannot write images of dtype {dtype}; expected unsigned integers or floats")
    if suffix in TIFF_SUFFIXES:
        return
    holds = PILLOW_WRITES.get(suffix)
    if holds is None:
        known = ", ".join((*TIFF_SUFFIXES, *PILLOW_WRITES))
        raise ValueError(
            f"output {str(path)!r}: unknown image format {suffix or '(no suffix)'!r}; expected {known}"
        )
    channels = _frame_channels(tuple(shape), dtype.name in PILLOW_STACKS.get(suffix, ()))
    if channels not in holds.get(dtype.name, ()):
        can = "; ".join(
            f"{name} with {', '.join(map(str, counts))} channel(s)" for name, counts in holds.items()
        )
        raise ValueError(
            f"output {str(path)!r} cannot hold a {dtype} image of shape {tuple(shape)} "
            f"({suffix} holds {can}); write a .tif instead"
        )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/TIFF (or other imageio format) as it is stored.

    Raises
    ------
    FileNotFoundError
        ``path`` is missing or not a file.
    ValueError
        The file cannot be decoded (the message names the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        plugin = "pillow" if path.suffix.lower() in PILLOW_SUFFIXES else None
        return np.asarray(iio.imread(path, plugin=plugin))
    except Exception as exc:  # decoder errors differ by format and library
        raise ValueError(f"input {str(path)!r} could not be read as an image: {exc}") from exc


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> None:
    """Write ``image`` atomically (TIFF via tifffile, others via imageio's Pillow plugin).

    Raises
    ------
    ValueError
        The format cannot hold the image (:func:`check_writable`), before writing.
    FileExistsError, IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError
        From :func:`check_output`, before writing.
    OSError
        The write itself failed (disk full, encoder error); the message names ``path``.
    """
    path = Path(path)
    check_writable(path, image.dtype, image.shape)
    check_output(path, overwrite=overwrite)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            if path.suffix.lower() in TIFF_SUFFIXES:
                import tifffile

                rgb = image.ndim in (3, 4) and image.shape[-1] in (3, 4)  # colour last, frames first
                tifffile.imwrite(tmp, image, photometric="rgb" if rgb else None)
            else:
                import imageio.v3 as iio

                iio.imwrite(tmp, image, plugin="pillow")
    except (OSError, ValueError, TypeError) as exc:  # encoder errors differ by format and library
        raise OSError(f"output {str(path)!r} could not be written: {exc}") from exc


def to_float(image: np.ndarray) -> np.ndarray:
    """Integers to [0, 1] (``img_as_float``), floats unchanged (as float32/float64)."""
    return as_float_image(image)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input's dtype: unsigned integers are rounded and clipped (inverse of :func:`to_float`)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        top = np.iinfo(dtype).max
        return np.clip(np.rint(image * top), 0, top).astype(dtype)
    if dtype.kind == "f":
        return image.astype(dtype, copy=False)
    raise TypeError(f"cannot write images of dtype {dtype}; expected unsigned integers or floats")


def peek_shape(path: str | os.PathLike | None) -> tuple[int, ...] | None:
    """The image shape from a TIFF's header or a ``.npy`` without reading pixels (None if unknown)."""
    if path is None or not Path(path).is_file():
        return None
    suffix = Path(path).suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(tif.series[0].shape)
        if suffix == ".npy":
            return tuple(np.load(path, mmap_mode="r").shape)
    except Exception:  # unreadable: the reader reports it, naming the file
        return None
    return None
