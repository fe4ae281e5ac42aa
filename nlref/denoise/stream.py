"""``nlref denoise`` for images larger than memory: read lazily, denoise chunk-wise, write band by band.

The in-memory CLI loads the whole image, calls ``nl_means`` and saves the
result.  This module is its streaming path, taken when ``--chunks`` or
``--max-memory`` is given, when the output is a Zarr store, or when the input
would not fit in the default budget (half the machine's memory):

1. the input is opened lazily: a TIFF through ``tifffile``'s Zarr view
   (tiles/strips read on demand), a Zarr store or ``.npy`` (memory-mapped) as
   they are; other formats (PNG) are small enough to read whole;
2. :func:`nlref.denoise.tiled.nl_means_dask` builds the chunk-wise computation,
   exact to the in-memory result;
3. a TIFF is written one band of chunks at a time (a row of chunks along the
   first axis, computed by Dask's threads together), its rows regrouped into
   TIFF tiles, since a TIFF file is written in order; a Zarr store is written
   chunk by chunk (``dask.array.store``).  Chunks are sized to a memory
   budget (``--max-memory``, :func:`plan_chunks`), so only a few chunks and
   one band are ever held;
4. everything is written under a temporary name beside the output and renamed
   onto it at the end: on any error no partial output remains, and an existing
   output is refused without ``--overwrite`` before any work.

The CLI (``nlref/denoise/cli.py``) calls :func:`add_arguments`,
:func:`wants_streaming` and :func:`run_streaming`; Dask is imported only in
:func:`run_streaming`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..backend import asarray, float_dtype_for, namespace_by_name, to_numpy

__all__ = ["add_arguments", "wants_streaming", "run_streaming", "parse_bytes", "parse_chunks", "plan_chunks"]

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".zarr"
TIFF_TILE = 256  # TIFF tile side (a multiple of 16, as the TIFF spec requires)
# Memory model of the streaming path, measured on a 4096x4096 float32 image
# (peak RSS for chunks of 256..2048): a chunk being denoised costs about 12
# copies of itself grown by its halo (nl_means's peak is 9: padded image, sums,
# per-offset distances; plus its input and output), a band being written to a
# TIFF about 10 copies of the band (neighbouring chunk rows read for the halos,
# chunk results, the joined band, TIFF tiles).
WORK_COPIES = 12
BAND_COPIES = 10
# 512x512 (64^3) chunks: as fast as any on a CPU (their per-offset temporaries
# stay in cache: 256-chunks ran 3x faster than 1024-chunks) and small halos.
PREFERRED_CHUNK_PIXELS = 2**18
SIGMA_CROP_PIXELS = 2**18  # the noise level is estimated once, on a central crop this large

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_bytes(text: str) -> int:
    """``"2GB"`` -> 2_000_000_000, ``"512MiB"`` -> 536_870_912, ``"1e9"`` -> 10**9."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]i?)?b?\s*", str(text).lower())
    if m is None or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"--max-memory must be a positive size such as 2GB, 512MiB or 1e9, received {text!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def parse_chunks(text: str) -> tuple[int, ...]:
    """``"512"`` -> (512,), ``"64,512,512"`` or ``"64x512x512"`` -> (64, 512, 512)."""
    parts = re.split(r"[,x]", str(text).strip().lower())
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"--chunks must be positive integers (one, or one per spatial axis, e.g. 512 or 512,512), received {text!r}"
        )
    return tuple(int(p) for p in parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--chunks`` and ``--max-memory`` to the ``nlref denoise`` parser."""
    group = parser.add_argument_group(
        "larger than memory (Dask)",
        "Stream the image through Dask chunk by chunk; needs the 'dask' extra: pip install 'nlref[dask]'. "
        "Output must be .tif/.tiff or .zarr.",
    )
    group.add_argument("--chunks", type=parse_chunks, default=None,
                       help="chunk shape of the spatial axes, e.g. 512 or 512,512 "
                            "(implies streaming; default: sized to the memory budget)")
    group.add_argument("--max-memory", type=parse_bytes, default=None, metavar="SIZE",
                       help="memory budget such as 2GB or 512MiB; chunks are sized to fit (implies streaming)")


def wants_streaming(args: argparse.Namespace) -> bool:
    """True when the ``denoise`` command should take the streaming path.

    That is: ``--chunks`` or ``--max-memory`` given, a Zarr input or output, or
    an input whose in-memory denoising (about 9 float64 copies of the image)
    would exceed half the machine's memory.
    """
    if getattr(args, "chunks", None) is not None or getattr(args, "max_memory", None) is not None:
        return True
    if any(str(getattr(args, name, "")).rstrip("/\\").lower().endswith(ZARR_SUFFIX) for name in ("input", "output")):
        return True
    shape = _peek_shape(getattr(args, "input", None))
    return shape is not None and (WORK_COPIES - 3) * 8 * int(np.prod(shape)) > _default_budget()


def run_streaming(args: argparse.Namespace) -> int:
    """Denoise ``args.input`` into ``args.output`` chunk by chunk; return the exit status.

    Raises
    ------
    FileExistsError
        The output exists and ``--overwrite`` was not given (checked first).
    ValueError
        Output not ``.tif``/``.tiff``/``.zarr``, options the streaming path
        cannot honour, or a ``--max-memory`` too small for one chunk.
    RuntimeError
        Dask (or Zarr, for Zarr files) is not installed.
    """
    src, dst = Path(args.input), Path(str(args.output).rstrip("/\\"))
    overwrite = bool(getattr(args, "overwrite", False))
    if dst.suffix.lower() not in (*TIFF_SUFFIXES, ZARR_SUFFIX):
        raise ValueError(f"streamed output must be a .tif, .tiff or .zarr path, received {str(dst)!r}")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"output {str(dst)!r} already exists; pass --overwrite to replace it")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"output folder {str(dst.parent)!r} does not exist")
    if not src.exists():
        raise FileNotFoundError(f"input {str(src)!r} does not exist")
    if getattr(args, "add_noise", None) is not None:
        raise ValueError("--add-noise is not available when streaming (--chunks/--max-memory); denoise a noisy file")
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise RuntimeError("streaming needs Dask, which is not installed: pip install 'nlref[dask]'") from exc

    from .cli import from_float
    from .tiled import nl_means_dask

    progress = getattr(args, "progress", None) is not False
    to_tiff = dst.suffix.lower() in TIFF_SUFFIXES
    with contextlib.ExitStack() as stack:
        image = _open_lazy(src, da, stack)
        if image.dtype.kind not in "uf":
            raise ValueError(f"input {str(src)!r} has dtype {image.dtype}; expected unsigned integers or floats")
        kwargs = _nl_means_kwargs(args, image)
        channel_axis = kwargs.get("channel_axis")
        if channel_axis is not None:
            channel_axis %= image.ndim
        if to_tiff and channel_axis not in (None, image.ndim - 1):
            raise ValueError(
                f"a TIFF output stores colour last; received channel_axis={kwargs['channel_axis']} for shape "
                f"{image.shape}: write a .zarr output instead"
            )
        threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        chunks = args.chunks
        if chunks is None:  # the budget left once Python and the libraries are loaded
            budget, resident = getattr(args, "max_memory", None) or _default_budget(), _resident_bytes()
            if budget <= resident:
                raise ValueError(f"--max-memory must exceed what this process already uses ({resident} bytes: "
                                 f"Python, NumPy, Dask), received {budget}")
            chunks = plan_chunks(image.shape, channel_axis, kwargs["patch_size"], kwargs["patch_distance"],
                                 budget - resident, threads,
                                 itemsize=float_dtype_for(image.dtype).itemsize, band=to_tiff)
        elif len(chunks) == 1:
            chunks = chunks[0]
        gpu = getattr(args, "backend", None) == "cupy"
        result = nl_means_dask(_to_gpu(image) if gpu else image, chunks=chunks, **kwargs)
        if gpu:  # written from host memory
            result = result.map_blocks(to_numpy, dtype=result.dtype, meta=np.empty((0,) * result.ndim, result.dtype))
        # back to the input's bit depth, as the in-memory command writes it
        result = result.map_blocks(functools.partial(from_float, dtype=image.dtype), dtype=image.dtype,
                                   meta=np.empty((0,) * result.ndim, image.dtype))
        print(
            f"nlref denoise (streaming): {src} {image.shape} {image.dtype}, sigma={kwargs['sigma']:.5g} "
            f"h={kwargs['h']:.5g} patch_size={kwargs['patch_size']} patch_distance={kwargs['patch_distance']}, "
            f"chunks {result.chunksize} on {threads} threads", flush=True,
        )
        with dask.config.set(scheduler="threads"):
            if to_tiff:
                _write_tiff(result, dst, overwrite, channel_axis is not None, progress)
            else:
                _write_zarr(result, dst, overwrite, progress)
    print(f"wrote {dst} ({' x '.join(map(str, result.shape))}, {result.dtype}, chunks {result.chunksize})")
    return 0


def plan_chunks(
    shape: tuple[int, ...],
    channel_axis: int | None,
    patch_size: Any,
    patch_distance: Any,
    budget: int,
    threads: int,
    *,
    itemsize: int = 8,
    band: bool = True,
) -> tuple[int, ...]:
    """Chunk shape (the same side on every spatial axis) whose work fits ``budget`` bytes.

    ``threads`` chunks are denoised at once, each costing ``WORK_COPIES``
    copies of the chunk grown by its halo; a TIFF is written one band (a row
    of chunks across the image) at a time, costing ``BAND_COPIES`` copies of the
    band (``band=False`` for Zarr, written chunk by chunk).  ``itemsize`` is
    that of the float dtype ``nl_means`` computes in.  The side starts at
    ``PREFERRED_CHUNK_PIXELS ** (1 / ndim)`` (512 in 2-D; chunks that fit in
    the CPU caches are faster than larger ones) and is halved until it fits.

    Raises
    ------
    ValueError
        If even 16-pixel chunks do not fit.
    """
    from .._validation import as_tuple

    spatial = [n for ax, n in enumerate(shape) if ax != channel_axis]
    channels = 1 if channel_axis is None else shape[channel_axis]
    s = as_tuple(patch_size, len(spatial), "patch_size")
    d = as_tuple(patch_distance, len(spatial), "patch_distance")
    halo = [di + si // 2 for si, di in zip(s, d)]

    def cost(c: int) -> int:
        block = int(np.prod([min(n, c + 2 * h) for n, h in zip(spatial, halo)]))
        rows = min(spatial[0], c) * int(np.prod(spatial[1:])) if band else 0
        return (threads * WORK_COPIES * block + BAND_COPIES * rows) * channels * itemsize

    c = min(max(spatial), int(round(PREFERRED_CHUNK_PIXELS ** (1 / len(spatial)))))
    while c > 16 and cost(c) > budget:
        c = max(16, c // 2)
    if cost(c) > budget:
        raise ValueError(
            f"--max-memory leaves {budget} bytes for the work, too little for this image (shape {tuple(shape)}) "
            f"with {threads} threads: even 16-pixel chunks need about {cost(16)} bytes"
        )
    return tuple(min(n, c) for n in spatial)


# ---------------------------------------------------------------- internals


def _nl_means_kwargs(args: argparse.Namespace, image: Any) -> dict[str, Any]:
    """The ``nl_means`` keywords the in-memory command would use (the CLI's own helper).

    Without ``--sigma`` the noise level is estimated *once*, on a central crop
    of at most ``SIGMA_CROP_PIXELS`` pixels (512x512), never chunk by chunk (every chunk must
    be denoised with the same parameters for the result to be seamless).
    """
    from ..backend import as_float_image
    from .cli import nl_means_kwargs_from_args

    sample = None
    if getattr(args, "sigma", None) is None:
        big = [ax for ax, n in enumerate(image.shape) if n > 4]  # axes of <= 4 entries may be colour
        side = int(SIGMA_CROP_PIXELS ** (1 / max(1, len(big))))
        crop = tuple(slice((n - side) // 2, (n - side) // 2 + side) if ax in big and n > side else slice(None)
                     for ax, n in enumerate(image.shape))
        sample = as_float_image(np.asarray(image[crop]))
    return dict(nl_means_kwargs_from_args(args, sample, shape=tuple(image.shape)))


def _default_budget() -> int:
    """Half the machine's physical memory (bytes), or 4 GiB when unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def _resident_bytes() -> int:
    """Resident memory of this process now (Python, NumPy, Dask... loaded), in bytes."""
    try:  # Linux: current resident pages
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:  # other Unix: the peak so far
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def _peek_shape(path: Any) -> tuple[int, ...] | None:
    """The image shape from a file's header without reading its pixels (None if unknown)."""
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
    except Exception:  # unreadable: the in-memory path reports it
        return None
    return None


def _open_lazy(path: Path, da: Any, stack: contextlib.ExitStack) -> Any:
    """A Dask array over the input file, read on demand where the format allows."""
    suffix = path.suffix.lower()
    if suffix == ZARR_SUFFIX:
        return da.from_zarr(str(path))
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            import zarr
        except ImportError:  # uncompressed contiguous TIFFs still map lazily
            return da.from_array(tifffile.memmap(str(path), mode="r"), chunks="auto")
        try:
            store = tifffile.imread(str(path), aszarr=True, series=0, level=0)
        except Exception as exc:  # tifffile's errors differ by what is wrong with the file
            raise ValueError(f"input {str(path)!r} could not be read as a TIFF: {exc}") from exc
        stack.callback(store.close)
        return da.from_zarr(zarr.open(store, mode="r"))
    if suffix == ".npy":
        return da.from_array(np.load(path, mmap_mode="r"), chunks="auto")
    from .cli import read_image  # PNG and friends: read whole, as the in-memory command does

    return da.from_array(read_image(path), chunks="auto")


def _to_gpu(image: Any) -> Any:
    """The lazy image with CuPy chunks (``--backend cupy``): each chunk is copied to the GPU when read."""
    cp = namespace_by_name("cupy")
    return image.map_blocks(asarray, xp=cp, dtype=image.dtype, meta=cp.empty((0,) * image.ndim, image.dtype))


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
        yield rows[:, left:left + tile]


def _tiff_tiles(bands: Iterator[np.ndarray], plane_ndim: int, tile: int) -> Iterator[np.ndarray]:
    """TIFF tiles in file order (page by page, row of tiles by row) from bands of rows or of planes."""
    if plane_ndim == 3:  # bands of whole planes of a volume: each plane is a tiled page
        for band in bands:
            for plane in band:
                for top in range(0, plane.shape[0], tile):
                    yield from _tiles_of_rows(plane[top:top + tile], tile)
        return
    pending = None
    for band in bands:  # bands of rows of one plane: regroup them into rows of tiles
        pending = band if pending is None else np.concatenate([pending, band])
        full = pending.shape[0] // tile * tile
        for top in range(0, full, tile):
            yield from _tiles_of_rows(pending[top:top + tile], tile)
        pending = pending[full:]
    if pending is not None and len(pending):
        yield from _tiles_of_rows(pending, tile)


def _write_tiff(result: Any, dst: Path, overwrite: bool, has_channels: bool, progress: bool = True) -> None:
    """Write ``result`` band by band as a tiled TIFF (pages for a volume), atomically."""
    import tifffile

    from ..io import atomic_path

    spatial_ndim = result.ndim - has_channels
    photometric = "rgb" if has_channels and result.shape[-1] in (3, 4) else "minisblack"
    with atomic_path(dst, overwrite=overwrite) as tmp:
        tifffile.imwrite(
            tmp, _tiff_tiles(_bands(result, progress), 3 if spatial_ndim == 3 else 2, TIFF_TILE),
            shape=result.shape, dtype=result.dtype, tile=(TIFF_TILE, TIFF_TILE),
            photometric=photometric, bigtiff=result.nbytes > 2**31,
        )


def _write_zarr(result: Any, dst: Path, overwrite: bool, progress: bool = True) -> None:
    """Write ``result`` chunk by chunk into a Zarr store built in a temporary folder, then rename it."""
    try:
        import zarr
    except ImportError as exc:
        raise RuntimeError("writing .zarr needs zarr: pip install 'nlref[dask]'") from exc
    import dask.array as da
    from dask.diagnostics import ProgressBar

    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        store = zarr.open_array(str(tmp), mode="w", shape=result.shape, dtype=result.dtype,
                                chunks=result.chunksize)
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
