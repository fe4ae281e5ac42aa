"""``nlref denoise`` for images larger than memory: read lazily, denoise chunk-wise, write band by band.

The in-memory command (:mod:`nlref.cli.denoise`) loads the whole image, calls
``nl_means`` and saves the result.  This module is its streaming path, taken
when ``--chunks`` or ``--max-memory`` is given, when the input or output is a
Zarr store, or when the input would not fit in the default budget (half the
machine's memory):

1. the input is opened lazily (:func:`nlref.cli.stream_files.open_lazy`): a
   TIFF through ``tifffile``'s Zarr view (tiles/strips read on demand), a Zarr
   store or ``.npy`` (memory-mapped) as they are; other formats (PNG) are
   small enough to read whole;
2. :func:`nlref.denoise.nl_means_dask` builds the chunk-wise computation,
   exact to the in-memory result, with the parameters the in-memory command
   would use (:mod:`nlref.cli.options`; sigma estimated once, on a central crop);
3. a TIFF is written one band of chunks at a time, a Zarr store chunk by
   chunk (:mod:`nlref.cli.stream_files`).  Chunks are sized to a memory
   budget (``--max-memory``, :func:`plan_chunks`), so only a few chunks and
   one band are ever held;
4. everything is written under a temporary name beside the output and renamed
   onto it at the end: on any error no partial output remains, and an existing
   output is refused without ``--overwrite`` before any work.

Dask is imported only in :func:`run_streaming`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import as_tuple
from ..backend import as_float_image, asarray, float_dtype_for, namespace_by_name, to_numpy
from ..denoise import nl_means_dask
from ..io import TIFF_SUFFIXES, ZARR_SUFFIX, check_output, from_float, peek_shape
from . import stream_files
from .options import (
    has_alpha,
    join_alpha,
    nl_means_details,
    nl_means_kwargs_from_args,
    sigma_header,
    split_alpha,
)

__all__ = ["add_arguments", "wants_streaming", "run_streaming", "parse_bytes", "parse_chunks", "plan_chunks"]

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

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_bytes(text: str) -> int:
    """``"2GB"`` -> 2_000_000_000, ``"512MiB"`` -> 536_870_912, ``"1e9"`` -> 10**9."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]i?)?b?\s*", str(text).lower())
    size = float(m.group(1)) * _UNITS[m.group(2) or ""] if m is not None else 0.0
    if not 1 <= size < float("inf"):  # at least one byte, and finite ("1e999" is not)
        raise argparse.ArgumentTypeError(
            f"--max-memory must be a positive size such as 2GB, 512MiB or 1e9, received {text!r}"
        )
    return int(size)


def parse_chunks(text: str) -> tuple[int, ...]:
    """``"512"`` -> (512,), ``"64,512,512"`` or ``"64x512x512"`` -> (64, 512, 512)."""
    parts = re.split(r"[,x]", str(text).strip().lower())
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            "--chunks must be positive integers (one, or one per spatial axis, e.g. 512 or 512,512), "
            f"received {text!r}"
        )
    return tuple(int(p) for p in parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--chunks`` and ``--max-memory`` to the ``nlref denoise`` parser."""
    group = parser.add_argument_group(
        "larger than memory (Dask)",
        "Stream the image through Dask chunk by chunk; needs the 'dask' extra: pip install 'nlref[dask]'. "
        "Output must be .tif/.tiff or .zarr.",
    )
    group.add_argument(
        "--chunks",
        type=parse_chunks,
        default=None,
        help="chunk shape of the spatial axes, e.g. 512 or 512,512 "
        "(implies streaming; default: sized to the memory budget)",
    )
    group.add_argument(
        "--max-memory",
        type=parse_bytes,
        default=None,
        metavar="SIZE",
        help="memory budget such as 2GB or 512MiB; chunks are sized to fit (implies streaming)",
    )


def wants_streaming(args: argparse.Namespace) -> bool:
    """True when the ``denoise`` command should take the streaming path.

    That is: ``--chunks`` or ``--max-memory`` given, a Zarr input or output, or
    an input whose in-memory denoising (about 9 float64 copies of the image)
    would exceed half the machine's memory.
    """
    if getattr(args, "chunks", None) is not None or getattr(args, "max_memory", None) is not None:
        return True
    names = (str(getattr(args, name, "")).rstrip("/\\").lower() for name in ("input", "output"))
    if any(name.endswith(ZARR_SUFFIX) for name in names):
        return True
    shape = peek_shape(getattr(args, "input", None))
    return shape is not None and (WORK_COPIES - 3) * 8 * int(np.prod(shape)) > _default_budget()


def _check_request(args: argparse.Namespace) -> tuple[Path, Path]:
    """Input and output paths, after every check that needs no work."""
    src, dst = Path(args.input), Path(str(args.output).rstrip("/\\"))
    if dst.suffix.lower() not in (*TIFF_SUFFIXES, ZARR_SUFFIX):
        raise ValueError(f"streamed output must be a .tif, .tiff or .zarr path, received {str(dst)!r}")
    check_output(
        dst, overwrite=bool(getattr(args, "overwrite", False)), folder=dst.suffix.lower() == ZARR_SUFFIX
    )
    if not src.exists():
        raise FileNotFoundError(f"input {str(src)!r} does not exist")
    if getattr(args, "add_noise", None) is not None:
        raise ValueError(
            "--add-noise is not available when streaming (--chunks/--max-memory); denoise a noisy file"
        )
    return src, dst


def _import_dask() -> tuple[Any, Any]:
    """``dask`` and ``dask.array``, or a RuntimeError naming the extra to install."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise RuntimeError("streaming needs Dask, which is not installed: pip install 'nlref[dask]'") from exc
    return dask, da


def run_streaming(args: argparse.Namespace) -> int:
    """Denoise ``args.input`` into ``args.output`` chunk by chunk; return the exit status.

    Raises
    ------
    FileExistsError, IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError
        The output cannot be written (:func:`nlref.io.check_output`), or the input is missing (checked first).
    ValueError
        Output not ``.tif``/``.tiff``/``.zarr``, an unreadable input, options the streaming
        path cannot honour, or a ``--max-memory`` too small for one chunk.
    RuntimeError
        Dask (or Zarr, for Zarr files) is not installed.
    """
    src, dst = _check_request(args)
    dask, da = _import_dask()
    overwrite = bool(getattr(args, "overwrite", False))
    progress = getattr(args, "progress", None) is not False
    to_tiff = dst.suffix.lower() in TIFF_SUFFIXES
    threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        image = stream_files.open_lazy(src, da, stack)
        result, kwargs, has_channels = _lazy_result(args, image, da, threads, to_tiff)
        print(sigma_header(kwargs["sigma"], "given"))
        details = ", ".join([*nl_means_details(kwargs), f"chunks {result.chunksize} on {threads} threads"])
        backend = getattr(args, "backend", None) or "numpy"
        print(
            f"nlref denoise (streaming): {src} {image.shape} {image.dtype}: non-local means, {details}; "
            f"nlref on {backend}",
            flush=True,
        )
        with dask.config.set(scheduler="threads"):
            if to_tiff:
                stream_files.write_tiff(result, dst, overwrite, has_channels, progress)
            else:
                stream_files.write_zarr(result, dst, overwrite, progress)
    print(f"wrote {dst} ({' x '.join(map(str, result.shape))}, {result.dtype}, chunks {result.chunksize})")
    return 0


def _lazy_result(
    args: argparse.Namespace, image: Any, da: Any, threads: int, to_tiff: bool
) -> tuple[Any, dict[str, Any], bool]:
    """The lazy denoised image in the input's dtype, the ``nl_means`` keywords, and whether it has channels.

    An alpha channel (grey+alpha, RGBA with ``--channel-axis auto``) is split off
    before the work and joined back unchanged.
    """
    if image.dtype.kind not in "uf":
        raise ValueError(
            f"input {str(args.input)!r} has dtype {image.dtype}; expected unsigned integers or floats"
        )
    alpha = None
    if has_alpha(getattr(args, "channel_axis", "auto"), image.shape):
        image, alpha = split_alpha(image)
    kwargs = _nl_means_kwargs(args, image)
    channel_axis = kwargs.get("channel_axis")
    if channel_axis is not None:
        channel_axis %= image.ndim
    if to_tiff and channel_axis not in (None, image.ndim - 1):
        raise ValueError(
            f"a TIFF output stores colour last; received channel_axis={kwargs['channel_axis']} for shape "
            f"{image.shape}: write a .zarr output instead"
        )
    chunks = args.chunks
    if chunks is None:  # the budget left once Python and the libraries are loaded
        budget, resident = getattr(args, "max_memory", None) or _default_budget(), _resident_bytes()
        if budget <= resident:
            raise ValueError(
                f"--max-memory must exceed what this process already uses ({resident} bytes: "
                f"Python, NumPy, Dask), received {budget}"
            )
        chunks = plan_chunks(
            image.shape,
            channel_axis,
            kwargs["patch_size"],
            kwargs["patch_distance"],
            budget - resident,
            threads,
            itemsize=float_dtype_for(image.dtype).itemsize,
            band=to_tiff,
        )
    elif len(chunks) == 1:
        chunks = chunks[0]
    gpu = getattr(args, "backend", None) == "cupy"
    result = nl_means_dask(_to_gpu(image) if gpu else image, chunks=chunks, **kwargs)
    if gpu:  # written from host memory
        result = result.map_blocks(
            to_numpy, dtype=result.dtype, meta=np.empty((0,) * result.ndim, result.dtype)
        )
    # back to the input's bit depth, as the in-memory command writes it
    result = result.map_blocks(
        functools.partial(from_float, dtype=image.dtype),
        dtype=image.dtype,
        meta=np.empty((0,) * result.ndim, image.dtype),
    )
    if alpha is not None:
        result = join_alpha(result, alpha, da.concatenate)
        result = result.rechunk({result.ndim - 1: -1})
    return result, kwargs, channel_axis is not None or alpha is not None


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
            f"--max-memory leaves {budget} bytes for the work, too little for this image "
            f"(shape {tuple(shape)}) "
            f"with {threads} threads: even 16-pixel chunks need about {cost(16)} bytes"
        )
    return tuple(min(n, c) for n in spatial)


# ---------------------------------------------------------------- internals


def _nl_means_kwargs(args: argparse.Namespace, image: Any) -> dict[str, Any]:
    """The ``nl_means`` keywords the in-memory command would use.

    Without ``--sigma`` the noise level is estimated *once*, on a central crop
    of at most ``SIGMA_CROP_PIXELS`` pixels (512x512), never chunk by chunk (every chunk must
    be denoised with the same parameters for the result to be seamless).
    """
    sample = None
    if getattr(args, "sigma", None) is None:
        big = [ax for ax, n in enumerate(image.shape) if n > 4]  # axes of <= 4 entries may be colour
        side = int(SIGMA_CROP_PIXELS ** (1 / max(1, len(big))))
        crop = tuple(
            slice((n - side) // 2, (n - side) // 2 + side) if ax in big and n > side else slice(None)
            for ax, n in enumerate(image.shape)
        )
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


def _to_gpu(image: Any) -> Any:
    """The lazy image with CuPy chunks (``--backend cupy``): each chunk is copied to the GPU when read."""
    cp = namespace_by_name("cupy")
    return image.map_blocks(asarray, xp=cp, dtype=image.dtype, meta=cp.empty((0,) * image.ndim, image.dtype))
