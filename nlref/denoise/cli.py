"""``nlref denoise IN OUT``: non-local means on image files from the command line.

Reads PNG (8/16-bit, grey or RGB) and TIFF (8/16-bit or float, 2-D, colour or
3-D stacks), denoises with :func:`nlref.denoise.nl_means` on NumPy or CuPy,
and writes the result atomically with the input's bit depth.  Integer images
are scaled to [0, 1] first (like ``img_as_float``), so ``--sigma``, ``--h``
and ``--add-noise`` are on that scale; ``20/255`` is accepted as a value.

Images larger than memory take the streaming path of
:mod:`nlref.denoise.stream` (Dask) when that module is present.

Examples::

    nlref denoise noisy.png clean.png                        # sigma estimated, h = 0.8 sigma
    nlref denoise photo.png out.png --add-noise 20/255 --seed 0   # prints PSNR before/after
    nlref denoise stack.tif out.tif --patch-size 1,7,7 --patch-distance 2,10,10
    nlref denoise noisy.png out.png --preset ipol --sigma 20/255
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

try:  # the larger-than-memory path (optional module)
    from . import stream
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the checkout
    if _exc.name != f"{__package__}.stream":
        raise
    stream = None

__all__ = ["register", "nl_means_kwargs_from_args", "read_image", "write_image", "run"]

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: Show a progress bar above this many pixels (unless --progress / --no-progress).
PROGRESS_PIXELS = 2**20


def _scalar(text: str) -> float:
    """A float, or a fraction such as ``20/255``."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.08 or 20/255, received {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, received {text!r}")
    return value


def _sigma(text: str) -> float | None:
    return None if text == "auto" else _scalar(text)


def _ints(text: str) -> int | tuple[int, ...]:
    """``7`` or a per-axis ``1,7,7``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or comma-separated ints, received {text!r}") from None
    return values[0] if len(values) == 1 else values


def _patch_size(text: str) -> int | tuple[int, ...]:
    """``--patch-size``: odd positive ints, checked while parsing (before any work)."""
    value = _ints(text)
    if any(v <= 0 or v % 2 == 0 for v in ((value,) if isinstance(value, int) else value)):
        raise argparse.ArgumentTypeError(f"patch size must be odd and positive (the patch is centred), received {text!r}")
    return value


def _patch_distance(text: str) -> int | tuple[int, ...]:
    """``--patch-distance``: ints >= 0, checked while parsing."""
    value = _ints(text)
    if any(v < 0 for v in ((value,) if isinstance(value, int) else value)):
        raise argparse.ArgumentTypeError(f"patch distance must be >= 0, received {text!r}")
    return value


def _positive(text: str) -> float:
    """``--h``: a number > 0, checked while parsing."""
    value = _scalar(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"h must be > 0, received {text!r}")
    return value


def _channel_axis(text: str) -> int | str | None:
    if text in ("auto", "none", "None"):
        return None if text.lower() == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or an int, received {text!r}") from None


def register(subparsers: Any) -> None:
    """Add the ``denoise`` subcommand to ``nlref``'s parser (sets ``func``)."""
    p = subparsers.add_parser(
        "denoise",
        help="non-local means denoising of a PNG/TIFF file",
        description=(
            "Denoise an image file with non-local means (nlref.denoise.nl_means). Values of --sigma, --h "
            "and --add-noise are on the [0, 1] scale of the image read as floats; 20/255 is accepted."
        ),
    )
    p.add_argument("input", help="input image (.png, .tif/.tiff; 8- or 16-bit, or float TIFF)")
    p.add_argument("output", help="output image; same bit depth as the input")
    p.add_argument("--sigma", type=_sigma, default=None, metavar="S",
                   help="noise standard deviation ('auto' or absent: estimated with estimate_sigma)")
    p.add_argument("--h", type=_positive, default=None, metavar="H",
                   help="filtering parameter (default 0.8 * sigma; the IPOL table with --preset ipol)")
    p.add_argument("--patch-size", type=_patch_size, default=None, metavar="P",
                   help="odd patch side, or per axis such as 1,7,7 (default 7)")
    p.add_argument("--patch-distance", type=_patch_distance, default=None, metavar="D",
                   help="half-width of the search window, or per axis (default 11)")
    p.add_argument("--preset", choices=["ipol"], default=None,
                   help="IPOL 2011 weights and parameter table (chosen from sigma)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", dest="fast_mode", action="store_true", default=True,
                      help="uniform patch kernel, the integral-image algorithm (default)")
    mode.add_argument("--slow", dest="fast_mode", action="store_false",
                      help="Gaussian patch kernel (scikit-image's slow mode)")
    p.add_argument("--channel-axis", type=_channel_axis, default="auto", metavar="AXIS",
                   help="colour axis: auto (default: the last axis if it has 3 or 4 entries), none, or an int")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy", help="array backend (default numpy)")
    p.add_argument("--add-noise", type=_scalar, default=None, metavar="SIGMA",
                   help="add Gaussian noise of this sigma first and print the PSNR before and after")
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help=f"always show a progress bar (default: above {PROGRESS_PIXELS} pixels)")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    if stream is not None:
        stream.add_arguments(p)
    p.set_defaults(func=run)


# ---------------------------------------------------------------- arguments -> nl_means


def _resolve_channel_axis(value: Any, shape: tuple[int, ...] | None) -> int | None:
    if value != "auto":
        return value
    if shape is not None and len(shape) == 3 and shape[-1] in (3, 4):
        return -1
    return None


def nl_means_kwargs_from_args(args: argparse.Namespace, image: Any = None, *,
                              shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Map ``nlref denoise`` options to keyword arguments of :func:`nlref.denoise.nl_means`.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options; missing attributes take the CLI defaults.
    image : ndarray, optional
        The (noisy) image, already as floats; needed to estimate ``sigma`` when
        ``--sigma`` is absent or ``auto``, and to resolve ``--channel-axis auto``.
    shape : tuple of int, optional
        The image shape, when only that is known (resolves ``auto`` colour).

    Returns
    -------
    dict
        ``patch_size, patch_distance, h, sigma, fast_mode, weighting, channel_axis``.

    Raises
    ------
    ValueError
        ``sigma`` must be estimated but no image was given.
    """
    from .ipol import ipol_parameters
    from .noise import estimate_sigma

    if shape is None and image is not None:
        shape = tuple(image.shape)
    channel_axis = _resolve_channel_axis(getattr(args, "channel_axis", None), shape)
    sigma = getattr(args, "sigma", None)
    if sigma is None:
        if image is None:
            raise ValueError("--sigma must be given when the image is not in memory (it cannot be estimated)")
        sigma = estimate_sigma(image, channel_axis=channel_axis)
    kwargs: dict[str, Any] = {
        "patch_size": 7, "patch_distance": 11, "h": 0.8 * sigma if sigma > 0 else 0.1,
        "sigma": float(sigma), "fast_mode": bool(getattr(args, "fast_mode", True)),
        "weighting": "skimage", "channel_axis": channel_axis,
    }
    if getattr(args, "preset", None) == "ipol":
        if sigma <= 0:
            raise ValueError(f"--preset ipol needs sigma > 0, received {sigma!r}")
        kwargs.update(ipol_parameters(sigma, colour=channel_axis is not None), weighting="ipol")
    for key in ("patch_size", "patch_distance", "h"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


# ---------------------------------------------------------------- files


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/TIFF (or other imageio format) as it is stored.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a
    file that cannot be decoded, naming the path.
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


def to_float(image: np.ndarray) -> np.ndarray:
    """Integers to [0, 1] (``img_as_float``), floats unchanged (as float32/float64)."""
    from ..backend import as_float_image

    return as_float_image(image)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input's dtype: unsigned integers are rounded and clipped."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        top = np.iinfo(dtype).max
        return np.clip(np.rint(image * top), 0, top).astype(dtype)
    if dtype.kind == "f":
        return image.astype(dtype, copy=False)
    raise TypeError(f"cannot write images of dtype {dtype}; expected unsigned integers or floats")


def write_image(path: str | Path, image: np.ndarray, *, overwrite: bool = False) -> None:
    """Write ``image`` atomically (PNG via imageio, TIFF via tifffile)."""
    from ..io import atomic_path

    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, image, photometric="rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else None)
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp, image)


# ---------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    """The ``nlref denoise`` command (returns the exit status)."""
    from ..backend import asarray, namespace_by_name, synchronize, to_numpy
    from ..data import add_gaussian_noise
    from ..metrics import psnr
    from .core import nl_means

    if stream is not None and stream.wants_streaming(args):
        return stream.run_streaming(args)
    out_path = Path(args.output)
    # everything that can be checked is checked before any work
    if out_path.exists() and not args.overwrite:
        raise FileExistsError(f"output {str(out_path)!r} already exists; pass --overwrite to replace it")
    if not (out_path.parent if str(out_path.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"output folder {str(out_path.parent)!r} does not exist")
    xp = namespace_by_name(args.backend)
    raw = read_image(args.input)
    if raw.dtype.kind not in "uf":
        raise ValueError(f"input {args.input!r} has dtype {raw.dtype}; expected unsigned integers or floats")
    image = to_float(raw)
    clean = None
    if args.add_noise is not None:
        if args.add_noise < 0:
            raise ValueError(f"--add-noise must be >= 0, received {args.add_noise}")
        clean = image
        image = add_gaussian_noise(image, args.add_noise, seed=args.seed)
    kwargs = nl_means_kwargs_from_args(args, image)
    progress = args.progress if args.progress is not None else image.size > PROGRESS_PIXELS
    print(
        f"nlref denoise: {args.input} {raw.shape} {raw.dtype}, sigma={kwargs['sigma']:.5g} "
        f"h={kwargs['h']:.5g} patch_size={kwargs['patch_size']} patch_distance={kwargs['patch_distance']} "
        f"({'fast' if kwargs['fast_mode'] else 'slow'}, {kwargs['weighting']}, {args.backend})",
        flush=True,
    )
    t0 = time.perf_counter()
    result = nl_means(asarray(image, xp), progress=progress, **kwargs)
    synchronize(xp)
    seconds = time.perf_counter() - t0
    result = to_numpy(result)
    if clean is not None:
        data_range = 1.0 if raw.dtype.kind == "u" else None
        print(f"PSNR noisy: {psnr(clean, image, data_range=data_range):.2f} dB, "
              f"denoised: {psnr(clean, result, data_range=data_range):.2f} dB")
    write_image(out_path, from_float(result, raw.dtype), overwrite=args.overwrite)
    print(f"wrote {out_path} ({raw.dtype}) in {seconds:.2f} s")
    return 0
