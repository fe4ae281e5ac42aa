"""The files of the streaming ``nlref denoise`` path: lazy reading, band-wise and chunk-wise writing.

* :func:`open_lazy`: a Dask array over the input, read on demand where the
  format allows (a TIFF through tifffile's Zarr view, tile by tile or strip by
  strip; a Zarr store; a memory-mapped ``.npy``); PNG and friends are small
  enough to read whole (:func:`nlref.io.read_image`).
* :func:`write_tiff`: a TIFF is written in file order, so the result is
  computed one band (a row of chunks along the first axis) at a time and its
  rows regrouped into TIFF tiles.
* :func:`write_zarr`: a Zarr store is written chunk by chunk (``dask.array.store``).

Both writers build the output under a temporary name beside it and rename it
at the end (:func:`nlref.io.atomic_path`): on any error no partial output remains.
Dask, Zarr and tifffile are imported inside the functions (optional dependencies).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io import TIFF_SUFFIXES, ZARR_SUFFIX, atomic_path, read_image

__all__ = ["open_lazy", "write_tiff", "write_zarr", "TIFF_TILE"]

TIFF_TILE = 256  # TIFF tile side (a multiple of 16, as the TIFF spec requires)


def open_lazy(path: Path, da: Any, stack: contextlib.ExitStack) -> Any:
    """A Dask array over the input file, read on demand where the format allows.

    Raises
    ------
    ValueError
        The file cannot be read (a truncated or corrupt TIFF); the message names it.
    """
    suffix = path.suffix.lower()
    if suffix == ZARR_SUFFIX:
        return da.from_zarr(str(path))
    if suffix == ".npy":
        return da.from_array(np.load(path, mmap_mode="r"), chunks="auto")
    if suffix not in TIFF_SUFFIXES:  # PNG and friends: read whole, as the in-memory command does
        return da.from_array(read_image(path), chunks="auto")
    import tifffile

    try:
        _check_tiff_complete(tifffile, path)
        try:
            import zarr
        except ImportError:  # uncompressed contiguous TIFFs still map lazily
            return da.from_array(tifffile.memmap(str(path), mode="r"), chunks="auto")
        store = tifffile.imread(str(path), aszarr=True, series=0, level=0)
        stack.callback(store.close)
        return da.from_zarr(zarr.open(store, mode="r"))
    except Exception as exc:  # tifffile's errors differ by what is wrong with the file
        raise ValueError(f"input {str(path)!r} could not be read as a TIFF: {exc}") from exc


def _check_tiff_complete(tifffile: Any, path: Path) -> None:
    """Refuse a truncated TIFF before any work: every strip/tile must end within the file.

    Read lazily, a truncated file would otherwise fail midway, chunk by chunk,
    with a message from the decoder that does not name it.
    """
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
            if ends and max(ends) > size:
                raise ValueError(
                    f"the file is truncated: its image data end at byte {max(ends)}, "
                    f"the file has {size} bytes"
                )


def _bands(result: Any, progress: bool = True) -> Iterator[np.ndarray]:
    """Compute ``result`` one row of chunks (along axis 0) at a time, with a progress bar."""
    from tqdm.auto import tqdm

    edges = np.cumsum((0, *result.chunks[0]))
    with tqdm(total=int(edges[-1]), desc="nlref denoise", unit="row", disable=not progress) as bar:
        for start, stop in zip(edges[:-1], edges[1:]):
            yield np.asarray(result[start:stop].compute())
            bar.update(int(stop - start))


def _tiles_of_rows(rows: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    for left in range(0, rows.shape[1], tile):
        yield rows[:, left : left + tile]


def _tiff_tiles(bands: Iterator[np.ndarray], plane_ndim: int, tile: int) -> Iterator[np.ndarray]:
    """TIFF tiles in file order (page by page, row of tiles by row) from bands of rows or of planes."""
    if plane_ndim == 3:  # bands of whole planes of a volume: each plane is a tiled page
        for band in bands:
            for plane in band:
                for top in range(0, plane.shape[0], tile):
                    yield from _tiles_of_rows(plane[top : top + tile], tile)
        return
    pending = None
    for band in bands:  # bands of rows of one plane: regroup them into rows of tiles
        pending = band if pending is None else np.concatenate([pending, band])
        full = pending.shape[0] // tile * tile
        for top in range(0, full, tile):
            yield from _tiles_of_rows(pending[top : top + tile], tile)
        pending = pending[full:]
    if pending is not None and len(pending):
        yield from _tiles_of_rows(pending, tile)


def write_tiff(result: Any, dst: Path, overwrite: bool, has_channels: bool, progress: bool = True) -> None:
    """Write the Dask array ``result`` band by band as a tiled TIFF (pages for a volume), atomically."""
    import tifffile

    spatial_ndim = result.ndim - has_channels
    photometric = "rgb" if has_channels and result.shape[-1] in (3, 4) else "minisblack"
    samples = {}  # channels last ("contig"); a 2nd channel is grey+alpha's alpha
    if has_channels:
        samples = dict(planarconfig="contig", extrasamples=("unassalpha",) if result.shape[-1] == 2 else None)
    with atomic_path(dst, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp,
            _tiff_tiles(_bands(result, progress), 3 if spatial_ndim == 3 else 2, TIFF_TILE),
            shape=result.shape,
            dtype=result.dtype,
            tile=(TIFF_TILE, TIFF_TILE),
            photometric=photometric,
            bigtiff=result.nbytes > 2**31,
            **samples,
        )


def write_zarr(result: Any, dst: Path, overwrite: bool, progress: bool = True) -> None:
    """Write ``result`` chunk by chunk into a Zarr store built in a temporary folder, then rename it."""
    try:
        import zarr
    except ImportError as exc:
        raise RuntimeError("writing .zarr needs zarr: pip install 'nlref[dask]'") from exc
    import dask.array as da
    from dask.diagnostics import ProgressBar

    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        store = zarr.open_array(
            str(tmp), mode="w", shape=result.shape, dtype=result.dtype, chunks=result.chunksize
        )
        # lock: Dask chunks merged at the edges may share a Zarr chunk; writes are quick beside the work
        with ProgressBar(out=sys.stderr) if progress else contextlib.nullcontext():
            da.store(result, store, lock=True)
        if dst.exists():  # --overwrite: swap the old store out, the new one in, then delete the old
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
            os.replace(dst, old / dst.name)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
