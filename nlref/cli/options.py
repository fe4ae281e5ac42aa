"""``nlref denoise`` options -> keyword arguments of :func:`nlref.denoise.nl_means`.

Shared by both paths of the command, the in-memory one (:mod:`nlref.cli.denoise`)
and the streaming one (:mod:`nlref.cli.stream`), so that they denoise with the
same parameters:

* argument types checked while parsing (``20/255`` accepted as a number);
* :func:`nl_means_kwargs_from_args`: sigma (estimated by Immerkaer's method
  when absent), ``h = 0.8 sigma`` or the IPOL 2011 table, patch sizes;
* alpha: with ``--channel-axis auto``, a grey+alpha ``(H, W, 2)`` or RGBA
  ``(H, W, 4)`` image has its last channel taken as alpha, which is copied
  unchanged (as scikit-image and image editors do): :func:`has_alpha`,
  :func:`split_alpha`, :func:`join_alpha`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from ..denoise import estimate_sigma, ipol_parameters

__all__ = [
    "nl_means_kwargs_from_args",
    "nl_means_details",
    "resolve_channel_axis",
    "has_alpha",
    "split_alpha",
    "join_alpha",
    "sigma_header",
    "unit_sigma",
]


# ---------------------------------------------------------------- argument types


def scalar(text: str) -> float:
    """A float, or a fraction such as ``20/255``."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number such as 0.08 or 20/255, received {text!r}"
        ) from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, received {text!r}")
    return value


def unit_sigma(text: str) -> float:
    """A noise level on the [0, 1] scale of the image (``0.098`` or ``25/255``); above 1 is refused.

    The one sigma convention of ``nlref`` and ``benchmarks/``: every option that takes a noise
    level takes it on the image's [0, 1] scale; a value above 1 is almost surely on the 0-255
    scale, so it is refused with the fraction that was probably meant.
    """
    value = scalar(text)
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"sigma is on the [0, 1] scale of the image, received {text!r}; for {value:g} on the 0-255 "
            f"scale write {value:g}/255"
        )
    if value < 0:
        raise argparse.ArgumentTypeError(f"sigma must be >= 0, received {text!r}")
    return value


def sigma(text: str) -> float | None:
    """``--sigma``: a noise level on [0, 1] (:func:`unit_sigma`), or ``auto`` (None: estimated)."""
    return None if text == "auto" else unit_sigma(text)


def _ints(text: str) -> int | tuple[int, ...]:
    """``7`` or a per-axis ``1,7,7``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int or comma-separated ints, received {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def patch_size(text: str) -> int | tuple[int, ...]:
    """``--patch-size``: odd positive ints, checked while parsing (before any work)."""
    value = _ints(text)
    if any(v <= 0 or v % 2 == 0 for v in ((value,) if isinstance(value, int) else value)):
        raise argparse.ArgumentTypeError(
            f"patch size must be odd and positive (the patch is centred), received {text!r}"
        )
    return value


def patch_distance(text: str) -> int | tuple[int, ...]:
    """``--patch-distance``: ints >= 0, checked while parsing."""
    value = _ints(text)
    if any(v < 0 for v in ((value,) if isinstance(value, int) else value)):
        raise argparse.ArgumentTypeError(f"patch distance must be >= 0, received {text!r}")
    return value


def positive(text: str) -> float:
    """``--h``: a number > 0, checked while parsing."""
    value = scalar(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"h must be > 0, received {text!r}")
    return value


def channel_axis(text: str) -> int | str | None:
    """``--channel-axis``: ``auto``, ``none`` or an int."""
    if text in ("auto", "none", "None"):
        return None if text.lower() == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or an int, received {text!r}") from None


# ---------------------------------------------------------------- alpha


def has_alpha(channel_axis_option: Any, shape: tuple[int, ...]) -> bool:
    """True when ``--channel-axis auto`` meets grey+alpha ``(H, W, 2)`` or RGBA ``(H, W, 4)``."""
    return channel_axis_option == "auto" and len(shape) == 3 and shape[-1] in (2, 4)


def split_alpha(image: Any) -> tuple[Any, Any]:
    """``(H, W, 2|4)`` -> grey ``(H, W)`` or RGB ``(H, W, 3)``, and alpha ``(H, W, 1)`` (NumPy or Dask)."""
    colour = image[..., :-1]
    if colour.shape[-1] == 1:
        colour = colour[..., 0]
    return colour, image[..., -1:]


def join_alpha(colour: Any, alpha: Any, concatenate: Callable[..., Any] = np.concatenate) -> Any:
    """Inverse of :func:`split_alpha`; ``concatenate`` is ``np.concatenate`` or ``dask.array.concatenate``."""
    if colour.ndim < alpha.ndim:
        colour = colour[..., None]
    return concatenate([colour, alpha], axis=-1)


# ---------------------------------------------------------------- options -> nl_means


def sigma_header(sigma: float, how: str, model_sigma: float | None = None) -> str:
    """The line every ``nlref denoise`` method prints first: ``nlref denoise: sigma 0.0784 (estimated)``.

    With ``model_sigma`` (``--method learned``), the model chosen for it:
    ``nlref denoise: sigma 0.196 (estimated) -> model sigma 0.196``.
    """
    model = "" if model_sigma is None else f" -> model sigma {model_sigma:.3g}"
    return f"nlref denoise: sigma {sigma:.3g} ({how}){model}"


def resolve_channel_axis(value: Any, shape: tuple[int, ...] | None) -> int | None:
    """``auto``: the last axis if a 3-D image has 3 or 4 entries there, else no colour axis."""
    if value != "auto":
        return value
    if shape is not None and len(shape) == 3 and shape[-1] in (3, 4):
        return -1
    return None


def nl_means_kwargs_from_args(
    args: argparse.Namespace, image: Any = None, *, shape: tuple[int, ...] | None = None
) -> dict[str, Any]:
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
    if shape is None and image is not None:
        shape = tuple(image.shape)
    axis = resolve_channel_axis(getattr(args, "channel_axis", None), shape)
    noise = getattr(args, "sigma", None)
    if noise is None:
        if image is None:
            raise ValueError("--sigma must be given when the image is not in memory (it cannot be estimated)")
        noise = estimate_sigma(image, channel_axis=axis)
    kwargs: dict[str, Any] = {
        "patch_size": 7,
        "patch_distance": 11,
        "h": 0.8 * noise if noise > 0 else 0.1,
        "sigma": float(noise),
        "fast_mode": bool(getattr(args, "fast_mode", True)),
        "weighting": "skimage",
        "channel_axis": axis,
    }
    if getattr(args, "preset", None) == "ipol":
        if noise <= 0:
            raise ValueError(f"--preset ipol needs sigma > 0, received {noise!r}")
        kwargs.update(ipol_parameters(noise, colour=axis is not None), weighting="ipol")
    for key in ("patch_size", "patch_distance", "h"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def nl_means_details(kwargs: dict[str, Any]) -> list[str]:
    """The parameters of :func:`nlref.denoise.nl_means` in words, for the line printed before the work."""
    kernel = "uniform patch kernel (fast mode)" if kwargs["fast_mode"] else "Gaussian patch kernel (--slow)"
    centre = "IPOL 2011's" if kwargs["weighting"] == "ipol" else "scikit-image's"
    return [
        f"h {kwargs['h']:.3g}",
        f"patch_size {kwargs['patch_size']}",
        f"patch_distance {kwargs['patch_distance']}",
        kernel,
        f"{centre} centre weight",
    ]
