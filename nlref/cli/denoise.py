"""``nlref denoise IN OUT``: non-local means on image files from the command line.

Reads PNG (8/16-bit, grey, grey+alpha, RGB, RGBA), JPEG and TIFF (8/16-bit or
float, 2-D, colour or 3-D stacks), denoises with :func:`nlref.denoise.nl_means`
on NumPy or CuPy, and writes the result atomically with the input's bit depth.
Integer images are scaled to [0, 1] first (like ``img_as_float``), so
``--sigma``, ``--h`` and ``--add-noise`` are on that scale; ``20/255`` is
accepted as a value.  An alpha channel (grey+alpha or RGBA, found by
``--channel-axis auto``) is copied unchanged; only the grey/colour channels are
denoised.

Everything that can be checked is checked before the work starts: the output
format can hold the image (a 16-bit image cannot go to JPEG, an unknown suffix
is refused), the output folder exists and is writable, the output is not a
folder and does not exist without ``--overwrite``.

Images larger than memory take the streaming path of :mod:`nlref.cli.stream` (Dask).

Examples::

    nlref denoise noisy.png clean.png                        # sigma estimated, h = 0.8 sigma
    nlref denoise photo.png out.png --add-noise 20/255 --seed 0   # prints PSNR before/after
    nlref denoise stack.tif out.tif --patch-size 1,7,7 --patch-distance 2,10,10
    nlref denoise noisy.png out.png --preset ipol --sigma 20/255
    nlref denoise noisy.png out.png --method learned          # sigma estimated, the nearest shipped network
    nlref denoise noisy.png out.png --method learned --sigma 50/255  # the shipped sigma-50 one
    nlref denoise noisy.png out.png --method bm3d             # BM3D, sigma estimated

Every method first prints how sigma was obtained, in one format:
``nlref denoise: sigma 0.0784 (estimated)`` (or ``(given)``); ``--method learned`` adds
the model chosen for it, ``nlref denoise: sigma 0.196 (estimated) -> model sigma 0.196``
(the nearest shipped model, a tie going to the higher sigma; a warning when they are more
than 30 % apart), or says ``(the network's)`` for ``--weights`` without ``--sigma``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ..backend import asarray, namespace_by_name, synchronize, to_numpy
from ..data import add_gaussian_noise
from ..denoise import bm3d, denoise_learned, estimate_sigma, nl_means
from ..denoise.learned import choose_shipped, load_weights, shipped_weights, sigma_mismatch
from ..io import check_output, check_writable, from_float, read_image, to_float, write_image
from ..metrics import psnr
from . import options, stream
from .options import (
    has_alpha,
    join_alpha,
    nl_means_details,
    nl_means_kwargs_from_args,
    resolve_channel_axis,
    sigma_header,
    split_alpha,
)

__all__ = ["register", "run", "nl_means_kwargs_from_args", "PROGRESS_PIXELS"]

#: Show a progress bar above this many pixels (unless --progress / --no-progress).
PROGRESS_PIXELS = 2**20


def register(subparsers: Any) -> None:
    """Add the ``denoise`` subcommand to ``nlref``'s parser (sets ``func``)."""
    p = subparsers.add_parser(
        "denoise",
        help="non-local means denoising of a PNG/JPEG/TIFF file",
        description=(
            "Denoise an image file with non-local means (nlref.denoise.nl_means). Values of --sigma, --h "
            "and --add-noise are on the [0, 1] scale of the image read as floats; 20/255 is accepted. "
            "An alpha channel (grey+alpha or RGBA PNG, with --channel-axis auto) is copied unchanged."
        ),
    )
    p.add_argument("input", help="input image (.png, .jpg, .tif/.tiff; 8- or 16-bit, or float TIFF)")
    p.add_argument("output", help="output image (.png, .jpg, .bmp, .tif/.tiff); same bit depth as the input")
    p.add_argument(
        "--method",
        choices=["nl_means", "learned", "bm3d"],
        default="nl_means",
        help="nl_means (default); learned: the residual non-local network of "
        "nlref.denoise.denoise_learned (grey 2-D images; the noise level it was trained for); "
        "bm3d: nlref.denoise.bm3d (grey or RGB; sigma estimated when absent)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="weights of --method learned (default: the shipped model trained nearest to --sigma, "
        "at 15, 25 or 50 on the 0-255 scale, a tie going up; sigma estimated when absent or auto; "
        "`nlref train-denoiser` writes more)",
    )
    _add_nl_means_options(p)
    _add_run_options(p)
    stream.add_arguments(p)
    p.set_defaults(func=run)


def _add_nl_means_options(p: argparse.ArgumentParser) -> None:
    """The arguments of :func:`nlref.denoise.nl_means` (and the IPOL preset)."""
    p.add_argument(
        "--sigma",
        type=options.sigma,
        default=None,
        metavar="S",
        help="noise standard deviation ('auto' or absent: estimated with estimate_sigma)",
    )
    p.add_argument(
        "--h",
        type=options.positive,
        default=None,
        metavar="H",
        help="filtering parameter (default 0.8 * sigma; the IPOL table with --preset ipol)",
    )
    p.add_argument(
        "--patch-size",
        type=options.patch_size,
        default=None,
        metavar="P",
        help="odd patch side, or per axis such as 1,7,7 (default 7)",
    )
    p.add_argument(
        "--patch-distance",
        type=options.patch_distance,
        default=None,
        metavar="D",
        help="half-width of the search window, or per axis (default 11)",
    )
    p.add_argument(
        "--preset",
        choices=["ipol"],
        default=None,
        help="IPOL 2011 weights and parameter table (chosen from sigma)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--fast",
        dest="fast_mode",
        action="store_true",
        default=True,
        help="uniform patch kernel, the integral-image algorithm (default)",
    )
    mode.add_argument(
        "--slow",
        dest="fast_mode",
        action="store_false",
        help="Gaussian patch kernel (scikit-image's slow mode)",
    )
    p.add_argument(
        "--channel-axis",
        type=options.channel_axis,
        default="auto",
        metavar="AXIS",
        help="colour axis: auto (default: a last axis of 3 or 4 entries is RGB/RGBA, of 2 "
        "grey+alpha; alpha is copied unchanged, not denoised), none, or an int "
        "(every channel denoised, alpha included)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Backend, added noise, overwriting and progress."""
    p.add_argument(
        "--backend", choices=["numpy", "cupy"], default="numpy", help="array backend (default numpy)"
    )
    p.add_argument(
        "--add-noise",
        type=options.unit_sigma,
        default=None,
        metavar="SIGMA",
        help="add Gaussian noise of this sigma first and print the PSNR before and after",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help=f"always show a progress bar (default: above {PROGRESS_PIXELS} pixels)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")


def _read_checked(args: argparse.Namespace) -> np.ndarray:
    """The input as stored, after every check that needs no work (output path, format, dtype)."""
    out_path = check_output(args.output, overwrite=args.overwrite)
    if args.add_noise is not None and args.add_noise < 0:
        raise ValueError(f"--add-noise must be >= 0, received {args.add_noise}")
    raw = read_image(args.input)
    if raw.dtype.kind not in "uf":
        raise ValueError(f"input {args.input!r} has dtype {raw.dtype}; expected unsigned integers or floats")
    check_writable(out_path, raw.dtype, raw.shape)
    return raw


def _learned_weights(args: argparse.Namespace) -> dict[str, Any] | None:
    """The checked weights of ``--method learned`` (None for the others), before any work."""
    if args.method != "learned":
        if args.weights is not None:
            raise ValueError("--weights applies to --method learned only")
    if args.method == "nl_means":
        return None
    names = ("h", "patch_size", "patch_distance", "preset")
    used = [f"--{k.replace('_', '-')}" for k in names if getattr(args, k) is not None]
    if used or not args.fast_mode:
        raise ValueError(
            f"--method {args.method} takes no non-local-means options, received {used or ['--slow']}"
        )
    if stream.wants_streaming(args):
        raise ValueError(
            f"--method {args.method} has no streaming path: drop --chunks / --max-memory / .zarr"
        )
    if args.method == "bm3d" or (args.weights is None and args.sigma is None):
        return None  # without --sigma the shipped model is chosen from the image's noise
    if args.weights is None:  # the shipped model trained nearest to --sigma
        return load_weights(shipped_weights(args.sigma))
    return load_weights(args.weights)


def _denoise_learned(
    args: argparse.Namespace, image: np.ndarray, label: str, weights: dict | None
) -> tuple[np.ndarray, float]:
    """``denoise_learned`` on ``args.backend``; the result and the seconds taken.

    ``weights`` None: the shipped model nearest to the noise level estimated from the image.
    """
    if image.ndim != 2:
        raise ValueError(f"--method learned takes grey 2-D images, received shape {image.shape}")
    if weights is None:
        sigma, how, path = choose_shipped(image)
        weights = load_weights(path)
    else:
        sigma, how = (weights["sigma"], "the network's") if args.sigma is None else (args.sigma, "given")
    trained = weights["sigma"]
    print(sigma_header(sigma, how, None if how == "the network's" else trained))
    mismatch = sigma_mismatch(sigma, trained)
    if mismatch is not None:
        print(f"nlref denoise: warning: {mismatch}")
    print(f"nlref denoise: {label}, learned network (sigma {trained:.4g}, {args.backend})", flush=True)
    xp = namespace_by_name(args.backend)
    t0 = time.perf_counter()
    result = denoise_learned(asarray(image, xp), weights)
    synchronize(xp)
    return to_numpy(result), time.perf_counter() - t0


def _denoise(args: argparse.Namespace, image: np.ndarray, label: str) -> tuple[np.ndarray, float]:
    """``nl_means`` with the options' parameters on ``args.backend``; the result and the seconds taken."""
    xp = namespace_by_name(args.backend)
    kwargs = nl_means_kwargs_from_args(args, image)
    progress = args.progress if args.progress is not None else image.size > PROGRESS_PIXELS
    print(sigma_header(kwargs["sigma"], "estimated" if args.sigma is None else "given"))
    details = ", ".join(nl_means_details(kwargs))
    print(f"nlref denoise: {label}: non-local means, {details}; nlref on {args.backend}", flush=True)
    t0 = time.perf_counter()
    result = nl_means(asarray(image, xp), progress=progress, **kwargs)
    synchronize(xp)
    return to_numpy(result), time.perf_counter() - t0


def _denoise_bm3d(args: argparse.Namespace, image: np.ndarray, label: str) -> tuple[np.ndarray, float]:
    """``bm3d`` on ``args.backend`` (sigma estimated when absent); the result and the seconds taken."""
    axis = resolve_channel_axis(args.channel_axis, tuple(image.shape))
    sigma = args.sigma if args.sigma is not None else estimate_sigma(image, channel_axis=axis)
    print(sigma_header(sigma, "estimated" if args.sigma is None else "given"))
    if sigma <= 0:
        raise ValueError(f"--method bm3d needs sigma > 0, the image gives {sigma:g}: pass --sigma")
    print(f"nlref denoise: {label}, bm3d ({args.backend})", flush=True)
    xp = namespace_by_name(args.backend)
    progress = args.progress if args.progress is not None else image.size > PROGRESS_PIXELS
    t0 = time.perf_counter()
    result = bm3d(asarray(image, xp), sigma, channel_axis=axis, progress=progress)
    synchronize(xp)
    return to_numpy(result), time.perf_counter() - t0


def _check_result(result: np.ndarray) -> None:
    """Never write a non-finite image (nor one that NaN would turn into zeros when cast): exit 2 instead."""
    bad = int(np.count_nonzero(~np.isfinite(result)))
    if bad:
        raise RuntimeError(f"the result holds {bad} non-finite value(s) of {result.size}; nothing written")


def run(args: argparse.Namespace) -> int:
    """The ``nlref denoise`` command (returns the exit status).

    Raises
    ------
    ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError
        Found before any work (see :func:`nlref.io.check_output`, :func:`nlref.io.check_writable`).
    OSError
        Writing the result failed.
    """
    weights = _learned_weights(args)
    if args.method == "nl_means" and stream.wants_streaming(args):
        return stream.run_streaming(args)
    raw = _read_checked(args)
    colour, alpha = split_alpha(raw) if has_alpha(args.channel_axis, raw.shape) else (raw, None)
    image = to_float(colour)
    clean = None
    if args.add_noise is not None:
        clean, image = image, add_gaussian_noise(image, args.add_noise, seed=args.seed)
    label = f"{args.input} {raw.shape} {raw.dtype}" + (", alpha copied" if alpha is not None else "")
    if args.method == "bm3d":
        result, seconds = _denoise_bm3d(args, image, label)
    elif args.method == "learned":
        result, seconds = _denoise_learned(args, image, label, weights)
    else:
        result, seconds = _denoise(args, image, label)
    if clean is not None:
        data_range = 1.0 if raw.dtype.kind == "u" else None
        print(
            f"PSNR noisy: {psnr(clean, image, data_range=data_range):.2f} dB, "
            f"denoised: {psnr(clean, result, data_range=data_range):.2f} dB"
        )
    _check_result(result)
    result = from_float(result, raw.dtype)
    if alpha is not None:
        result = join_alpha(result, alpha)
    write_image(args.output, result, overwrite=args.overwrite)
    print(f"wrote {args.output} ({raw.dtype}) in {seconds:.2f} s")
    return 0
