"""Denoising with a trained residual non-local network (notebook 06), tile by tile.

Non-local means fixes its weights, ``exp(-d2(i, j) / h^2)`` over a search
window (Buades, Coll, Morel, CVPR 2005); the network of
:mod:`nlref.nn.denoiser` learns them, ``softmax_j(theta_i . phi_j)`` over the
same kind of window (Wang et al., CVPR 2018; Liu et al., NeurIPS 2018), and
learns the rest of the filter too: it predicts the noise, and the result is
``y - R(y)`` (DnCNN's residual learning, Zhang et al., TIP 2017).

The windowed block visits its search window by offsets
(:mod:`nlref.nn.nl.offsets`), so its memory grows like the number of
pixels times the window size, not like the square of the number of pixels;
inference also drops every layer's cache as soon as the layer has run, yet a
large image is still processed in pieces to bound the memory.  This is exact:
an output pixel depends only on the ``r = receptive_radius(model)`` pixels
around it, so the image is cut into ``tile x tile`` pieces that overlap by
``r`` on every side and only the centres are kept.  BatchNorm runs on its
stored statistics, the convolutions' zero padding and the window's clipping
happen only at the real image border, and the result equals the whole-image
forward exactly (tested).

The shipped models (:data:`SHIPPED_WEIGHTS`; the default, :data:`DEFAULT_WEIGHTS`,
at sigma = 25 / 255) were trained on
:data:`nlref.data.training_images.TRAIN_IMAGES`; camera, coins and moon were
never seen.  Retrain them with ``nlref train-denoiser``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_array, check_finite, check_positive
from ..backend import as_float_image, get_namespace
from ..data.images import add_gaussian_noise, load_image
from ..metrics import psnr
from ..nn.denoiser import denoiser_forward, load_denoiser_weights, receptive_radius
from ..nn.layers import to_backend
from .noise import estimate_sigma

__all__ = [
    "DEFAULT_WEIGHTS",
    "SHIPPED_WEIGHTS",
    "SIGMA_TOLERANCE",
    "check_recorded_psnr",
    "choose_shipped",
    "denoise_learned",
    "load_weights",
    "measure_check",
    "shipped_weights",
    "sigma_mismatch",
]

MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"

#: The shipped models, ``{(variant, sigma on the 0-255 scale): file}``, each written by ``nlref
#: train-denoiser --preset P --sigma S/255 --seed 0`` (P = default or no-nl): width 32, depth 8; ``"nl"`` has
#: two windowed non-local blocks (radius 5, C_i = 8), ``"no-nl"`` is the same network without them (the
#: ablation partner, shipped at sigma 25 only).  All four were trained on Train400 (``--data``, recorded
#: in the file with the steps, CPU time and BLAS threads).  About 0.34 MB each.
SHIPPED_WEIGHTS = {
    ("nl", 15): MODELS_DIR / "denoiser_nl_sigma15.npz",
    ("nl", 25): MODELS_DIR / "denoiser_nl_sigma25.npz",
    ("nl", 50): MODELS_DIR / "denoiser_nl_sigma50.npz",
    ("no-nl", 25): MODELS_DIR / "denoiser_nonl_sigma25.npz",
}

#: The default model: the windowed non-local network trained at sigma = 25 / 255.
DEFAULT_WEIGHTS = SHIPPED_WEIGHTS[("nl", 25)]

#: A warning when the image's noise level is more than 30 % away from the model's: each model
#: removes the noise it was trained for (the sigma-25 one on sigma-50 noise: 19 dB instead of 27 dB).
SIGMA_TOLERANCE = 0.3


def shipped_weights(sigma: float | None = None, *, variant: str = "nl") -> Path:
    """The shipped weights file trained nearest to ``sigma`` (image scale, like ``nl_means``).

    Parameters
    ----------
    sigma : float, optional
        Noise standard deviation on the [0, 1] scale of the image; None gives
        :data:`DEFAULT_WEIGHTS` (sigma 25 / 255).  The rule: the shipped noise
        level nearest to ``sigma`` (:data:`SHIPPED_WEIGHTS`), a tie going to the
        higher one (15 up to 20 / 255 exclusive, 25 from 20 to 37.5 / 255
        exclusive, 50 from 37.5 / 255; distances compared to 1e-9 of the 0-255 scale).
    variant : {"nl", "no-nl"}
        With the windowed non-local blocks (sigma 15, 25, 50), or the same
        network without them (sigma 25 only).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError, TypeError
        An unknown ``variant``; ``sigma`` not a finite number > 0.
    """
    if variant not in ("nl", "no-nl"):
        raise ValueError(f"variant must be 'nl' or 'no-nl', received {variant!r}")
    if sigma is None:
        return SHIPPED_WEIGHTS[(variant, 25)]
    check_positive(sigma, "sigma")
    available = {k: v for k, v in SHIPPED_WEIGHTS.items() if k[0] == variant}
    level = 255.0 * float(sigma)
    return min(available.items(), key=lambda kv: (round(abs(kv[0][1] - level), 9), -kv[0][1]))[1]


def choose_shipped(image: Any, sigma: float | None = None) -> tuple[float, str, Path]:
    """The noise level of ``image`` and the shipped model for it: ``(sigma, how, path)``.

    ``sigma`` given: ``how = "given"``; None: estimated from the image
    (:func:`nlref.denoise.estimate_sigma`, Immerkaer's method), ``how = "estimated"``.
    ``path``: :func:`shipped_weights` of it (an estimate of 0, a noise-free image, gets the
    lowest level).
    """
    how = "given"
    if sigma is None:
        sigma, how = estimate_sigma(image), "estimated"
    else:
        check_positive(sigma, "sigma")
    lowest = min(level for variant, level in SHIPPED_WEIGHTS if variant == "nl") / 255.0
    return float(sigma), how, shipped_weights(max(float(sigma), lowest))


def sigma_mismatch(sigma: float, model_sigma: float) -> str | None:
    """A warning text when ``|sigma - model_sigma| > SIGMA_TOLERANCE * model_sigma``, else None."""
    off = abs(sigma - model_sigma) / model_sigma
    if off <= SIGMA_TOLERANCE:
        return None
    return (
        f"the noise level {sigma:.3g} is {100 * off:.0f} % from the model's sigma {model_sigma:.3g} "
        f"(more than {100 * SIGMA_TOLERANCE:.0f} %): the result may be poor; pass weights trained for it"
    )


def load_weights(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load a weights file (default: :data:`DEFAULT_WEIGHTS`) with ``allow_pickle=False``, checked.

    See :func:`nlref.nn.denoiser.load_denoiser_weights` for the checks and the returned dict
    (``sigma``: the noise level the model was trained for, on the [0, 1] scale of images).
    """
    return load_denoiser_weights(DEFAULT_WEIGHTS if path is None else path)


def _tile_starts(n: int, tile: int, core: int, r: int) -> list[tuple[int, int, int]]:
    """(tile start, core start, core stop) along one axis; every tile has size min(tile, n)."""
    if n <= tile:
        return [(0, 0, n)]
    out = []
    for a in range(0, n, core):
        t0 = min(max(a - r, 0), n - tile)  # >= r pixels of context, unless the image border is nearer
        out.append((t0, a, min(a + core, n)))
    return out


#: The smallest core a tile keeps: ``tile >= 2 r + MIN_CORE``, so the work per output pixel stays
#: within a small factor of the whole-image forward (a core of 1 pixel costs ``(2 r + 1)^2`` times more).
MIN_CORE = 16

#: Float images must lie in ``[lo, hi]``: the network was trained on [0, 1] plus noise (wide enough for
#: noise of sigma 0.5 at 4 sigma, narrow enough to catch a 0-255 float image); far outside,
#: its output means nothing (and values near 1e20 overflow float32 inside it).
INPUT_RANGE = (-2, 3)


def _radius(net: dict) -> int:
    """The receptive radius of ``net["model"]``, with one-line errors for a dict that is not weights."""
    if not isinstance(net.get("model"), list):
        raise ValueError(
            "weights must be a path or the dict of load_weights (with 'model', 'params', 'state'), "
            f"received a dict with keys {sorted(net)}"
        )
    if any(spec.get("op") == "nonlocal" and spec.get("window") is None for spec in net["model"]):
        raise ValueError(
            "weights: key 'arch' has window null (blocks over the whole image): such a model has no "
            "finite receptive radius, so denoise_learned cannot apply it in tiles; train it with a window"
        )
    return receptive_radius(net["model"])


def _check_range(y: Any) -> None:
    """Float images on the [0, 1] scale the model was trained on (:data:`INPUT_RANGE`)."""
    xp = get_namespace(y)
    lo, hi = float(xp.min(y)), float(xp.max(y))
    if lo < INPUT_RANGE[0] or hi > INPUT_RANGE[1]:
        raise ValueError(
            f"image must hold values in [{INPUT_RANGE[0]}, {INPUT_RANGE[1]}] (the [0, 1] scale the network "
            f"was trained on), received values in [{lo:.4g}, {hi:.4g}]: divide by the data range first"
        )


def denoise_learned(
    image: Any,
    weights: str | os.PathLike | dict | None = None,
    *,
    sigma: float | None = None,
    tile: int = 256,
    batch_tiles: int = 1,
) -> Any:
    """Denoise a grey image with a trained residual non-local network: ``x_hat = y - R(y)``.

    Parameters
    ----------
    image : ndarray (NumPy or CuPy), shape (H, W)
        Noisy grey image; floats on the [0, 1] scale, or integers (scaled like
        ``img_as_float``).  The model removes the noise level it was trained for
        (``load_weights(...)["sigma"]``, on the [0, 1] scale).  Float values outside
        [-2, 3] (:data:`INPUT_RANGE`) are refused, not rescaled: the network only
        knows the scale it was trained on, so divide by your data range first.
    weights : path-like, dict or None
        A weights file, the dict of :func:`load_weights`, or None for the shipped
        model trained nearest to ``sigma`` (:func:`choose_shipped`).
    sigma : float, optional
        Noise level on the image's [0, 1] scale, to choose a shipped model
        (:func:`shipped_weights`); only with ``weights=None``.  None: estimated
        from the image (:func:`nlref.denoise.estimate_sigma`).  A ``UserWarning``
        when it is more than :data:`SIGMA_TOLERANCE` (30 %) from the chosen model's.
    tile : int
        Side of the pieces the network runs on; at least ``2 r + 16`` with r the
        receptive radius (56 for the shipped models with blocks, r = 20): each piece
        recomputes a border of r pixels and keeps a core of at least 16, so larger
        tiles waste less.  Memory grows like ``batch_tiles * tile**2``: inference keeps no layer caches, and a
        shipped model in float32 peaks at about 2.3 KB a pixel, 142 MiB for a
        256 x 256 tile (measured peak of NumPy allocations; 13.5 KB a pixel if
        the caches were kept, as training must).
    batch_tiles : int
        Tiles per forward call (memory multiplies by it).

    Returns
    -------
    ndarray, shape (H, W)
        Same backend; float32 for float32 input, else float64 (as ``img_as_float``).

    Raises
    ------
    ValueError
        Not a 2-D image, an empty image, non-finite values, float values outside
        [-2, 3], ``tile`` too small, ``sigma`` with ``weights``, a model with
        ``window`` null, bad weights file (the message names the file and the array).

    Examples
    --------
    >>> from nlref.data import load_image, add_gaussian_noise
    >>> noisy = add_gaussian_noise(load_image("camera")[:96, :96], 25 / 255, seed=0)
    >>> denoise_learned(noisy).shape
    (96, 96)
    """
    check_array(image, "image")
    if image.ndim != 2:
        raise ValueError(f"image must be a 2-D grey image (H, W), received shape {tuple(image.shape)}")
    if sigma is not None and weights is not None:
        raise ValueError("sigma chooses a shipped model: pass weights or sigma, not both")
    if image.size == 0:
        raise ValueError(f"image must not be empty, received shape {tuple(image.shape)}")
    y = as_float_image(image)
    check_finite(y, "image")
    _check_range(y)
    if weights is None:
        sigma, _, path = choose_shipped(image, sigma)
        weights = load_weights(path)
        mismatch = sigma_mismatch(sigma, weights["sigma"])
        if mismatch is not None:
            warnings.warn(mismatch, UserWarning, stacklevel=2)
    net = weights if isinstance(weights, dict) else load_weights(weights)
    r = _radius(net)
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 2 * r + MIN_CORE:
        raise ValueError(
            f"tile must be an int >= {2 * r + MIN_CORE} (twice the receptive radius {r} plus a core of "
            f"{MIN_CORE} pixels), received {tile!r}"
        )
    if isinstance(batch_tiles, bool) or not isinstance(batch_tiles, (int, np.integer)) or batch_tiles < 1:
        raise ValueError(f"batch_tiles must be a positive int, received {batch_tiles!r}")
    xp = get_namespace(y)
    dtype = np.dtype(next(iter(net["params"].values())).dtype)
    params, state = to_backend(net["params"], xp), to_backend(net["state"], xp)
    out = xp.empty(y.shape, dtype=dtype)
    th, tw = min(tile, y.shape[0]), min(tile, y.shape[1])
    pieces = [
        (i, j)
        for i in _tile_starts(y.shape[0], tile, tile - 2 * r, r)
        for j in _tile_starts(y.shape[1], tile, tile - 2 * r, r)
    ]
    for b in range(0, len(pieces), batch_tiles):
        group = pieces[b : b + batch_tiles]
        batch = xp.stack([y[i0 : i0 + th, j0 : j0 + tw] for (i0, _, _), (j0, _, _) in group]).astype(dtype)[
            :, None
        ]
        noise, _, _ = denoiser_forward(batch, params, state, net["model"], train=False, keep_cache=False)
        clean = batch[:, 0] - noise[:, 0]
        for k, ((i0, a0, a1), (j0, c0, c1)) in enumerate(group):
            out[a0:a1, c0:c1] = clean[k, a0 - i0 : a1 - i0, c0 - j0 : c1 - j0]
    return out.astype(y.dtype, copy=False)


def check_recorded_psnr(weights: str | os.PathLike | dict | None = None) -> tuple[float, float]:
    """Recompute the PSNR recorded in a weights file's ``check`` entry: ``(recorded, measured)`` in dB.

    The check names a held-out image, a crop, a noise seed and the PSNR the
    model reached there when it was saved (``nlref train-denoiser`` records it).
    """
    net = weights if isinstance(weights, dict) else load_weights(weights)
    check = net["check"]
    if check is None:
        raise ValueError("this weights file records no PSNR check (entry 'check')")
    measured = measure_check(net, check["image"], check["crop"], check["noise_seed"])
    return float(check["psnr"]), measured


def measure_check(net: dict, image: str, crop: list[int], noise_seed: int) -> float:
    """PSNR of the model on ``load_image(image)[crop]`` with noise of its sigma and seed ``noise_seed``."""
    i, j, h, w = crop
    clean = load_image(image)[i : i + h, j : j + w]
    noisy = add_gaussian_noise(clean, net["sigma"], seed=noise_seed)
    return float(psnr(clean, denoise_learned(noisy, net), data_range=1.0))
