"""The front door of BM3D: check, convert, pick the profile, run both steps.

``bm3d(image, sigma)`` follows the shape of nlref's other denoisers: one call,
NumPy or CuPy in, the same backend out, every bad argument refused with a
one-line message before any work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._validation import check_array, check_channel_axis, check_finite, check_positive
from ...backend import as_float_image, float_dtype_for, get_namespace
from .._common import safe_exponent
from .colour import OPPONENT, channel_sigmas, from_luminance_chrominance, to_luminance_chrominance
from .filtering import group_transform, hard_threshold, wiener_shrink
from .profile import bm3d_profile, match_threshold, reference_positions
from .vectorised import collaborative_step, plan_bands

__all__ = ["bm3d", "run_bm3d", "DEFAULT_MAX_BATCH_BYTES", "STAGES"]

DEFAULT_MAX_BATCH_BYTES = 256 * 2**20
STAGES = ("both", "hard")


def _check_layout(image: Any, channel_axis: Any) -> int | None:
    """The channel axis as a non-negative int (or None), after checking the image's shape."""
    if channel_axis is None:
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            raise ValueError(
                f"image of shape {tuple(image.shape)} looks like a colour image: pass channel_axis=-1 "
                "(grey images are 2-D)"
            )
        if image.ndim != 2:
            raise ValueError(f"image must be a 2-D grey image, received shape {tuple(image.shape)}")
        return None
    if image.ndim != 3:
        raise ValueError(
            f"with channel_axis={channel_axis!r} image must be 3-D (rows, columns, RGB), "
            f"received shape {tuple(image.shape)}"
        )
    ch = check_channel_axis(channel_axis, image.ndim)
    if image.shape[ch] != 3:
        raise ValueError(
            f"colour BM3D needs 3 (RGB) channels on channel_axis={channel_axis}, received {image.shape[ch]} "
            f"(shape {tuple(image.shape)}); drop an alpha channel first"
        )
    return ch


def _check(
    image: Any, sigma: Any, stage: Any, max_batch_bytes: Any, channel_axis: Any, data_range: Any
) -> int | None:
    """Every check of :func:`bm3d`'s arguments (one-line errors naming the argument)."""
    check_array(image, "image")
    float_dtype_for(image.dtype)  # TypeError for complex / object images
    ch = _check_layout(image, channel_axis)
    if image.size == 0:
        raise ValueError(f"image must not be empty, received shape {tuple(image.shape)}")
    check_positive(sigma, "sigma")
    if data_range is not None:
        check_positive(data_range, "data_range")
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, received {stage!r}")
    if max_batch_bytes is not None:
        if isinstance(max_batch_bytes, bool) or not isinstance(max_batch_bytes, (int, np.integer)):
            raise TypeError(f"max_batch_bytes must be None or an int, received {max_batch_bytes!r}")
        if max_batch_bytes <= 0:
            raise ValueError(f"max_batch_bytes must be > 0, received {max_batch_bytes}")
    check_finite(image, "image")
    return ch


def _pad_to(u: Any, k: int) -> tuple[Any, tuple[slice, ...]]:
    """Reflect-pad each spatial axis of ``u: (C, H, W)`` shorter than ``k`` to ``k`` (as scikit-image
    pads small images; a side of 1 is repeated)."""
    xp = get_namespace(u)
    pads = [(0, 0)] + [((k - n) // 2, k - n - (k - n) // 2) if n < k else (0, 0) for n in u.shape[1:]]
    crop = (slice(None),) + tuple(slice(a, a + n) for (a, _), n in zip(pads[1:], u.shape[1:]))
    if not any(a or b for a, b in pads):
        return u, crop
    return xp.pad(u, pads, mode="reflect" if min(u.shape[1:]) > 1 else "edge"), crop


def _progress_bar(enabled: bool, shape: tuple, params: tuple) -> Any:
    """A tqdm bar over the reference rows of the steps to run (None when disabled)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    total = sum(len(reference_positions(shape[0] - p.block + 1, p.step)) for p in params)
    return tqdm(total=total, desc="bm3d", unit="rows")


def run_bm3d(
    image: Any,
    sigma: float,
    *,
    channel_axis: Any,
    stage: str,
    max_batch_bytes: int | None,
    step: Callable,
    progress: bool = False,
    data_range: float | None = None,
) -> Any:
    """Check, convert, run step 1 (and step 2) with ``step`` (vectorised or reference form)."""
    ch = _check(image, sigma, stage, max_batch_bytes, channel_axis, data_range)
    xp = get_namespace(image)
    D = 1.0 if data_range is None else float(data_range)
    hard, wiener = bm3d_profile(255.0 * float(sigma) / D)
    u = as_float_image(image)
    u = u[None] if ch is None else xp.moveaxis(u, ch, 0)  # (C, H, W)
    # a huge or tiny image is scaled by a power of 2 (exact), sigma and tau with it, before the
    # colour transform (whose rows sum |a| <= 1, but whose inverse could overflow near the maximum)
    max_abs = float(xp.abs(u).max())
    e = safe_exponent(max_abs, 4.0 * max(hard.block, wiener.block) ** 2 * wiener.max_group, u.dtype)
    scale = math.ldexp(1.0, -e)
    if e:
        u = xp.ldexp(u, -e)
    A = OPPONENT if ch is not None else np.ones((1, 1))
    u = xp.ascontiguousarray(to_luminance_chrominance(u, A))
    u, crop = _pad_to(u, max(hard.block, wiener.block))
    s = channel_sigmas(float(sigma), A) * scale  # (C,): the noise of each (transformed) channel
    cap = DEFAULT_MAX_BATCH_BYTES if max_batch_bytes is None else int(max_batch_bytes)
    C, H, W = u.shape
    item = u.dtype.itemsize

    def run(images: list, guide: Any, params: Any, group_filter: Callable) -> Any:
        rows = plan_bands(H, W, params, item, C * len(images), cap)
        tr = group_transform(params.transform_2d, params.block, params.max_group, u)
        threshold = match_threshold(params, scale * D)
        return step(images, guide, params, threshold, group_filter, tr, rows, bar)

    bar = _progress_bar(progress, (H, W), (hard, wiener) if stage == "both" else (hard,))
    lam = hard.lambda_3d * s
    # groups are found on channel 0: the grey image, or the luminance of a colour one
    basic = run([u], u[0], hard, lambda sp: hard_threshold(sp[0], lam))
    out = basic
    if stage == "both":
        out = run([u, basic], basic[0], wiener, lambda sp: wiener_shrink(sp[0], sp[1], s))
    if bar is not None:
        bar.close()
    out = from_luminance_chrominance(out[crop], A)
    if e:
        out = xp.ldexp(xp.clip(out, -max_abs * scale, max_abs * scale), e)
    return xp.ascontiguousarray(out[0] if ch is None else xp.moveaxis(out, 0, ch))


def bm3d(
    image: Any,
    sigma: float,
    *,
    channel_axis: int | None = None,
    stage: str = "both",
    max_batch_bytes: int | None = None,
    progress: bool = False,
    data_range: float | None = None,
) -> Any:
    """Denoise a grey or colour image with BM3D (Dabov, Foi, Katkovnik, Egiazarian, TIP 2007).

    Both steps as specified in M. Lebrun, "An Analysis and Implementation of
    the BM3D Image Denoising Method", Image Processing On Line 2 (2012),
    pp. 175-213 (cited below as [L], with its section):

    1. *Hard thresholding* on the noisy image ``v``: for reference blocks
       every ``p`` pixels, group up to ``N^hard`` similar ``k x k`` blocks of
       the search window, 2-D transform each (Bior1.5), 1-D Walsh-Hadamard
       transform along the group, zero the coefficients ``<= lambda_3D sigma``,
       invert, and aggregate the block estimates with weights
       ``1 / N_kept`` and a Kaiser window: the *basic estimate* ``u1``.
    2. *Wiener filtering*: group again on ``u1`` (cleaner matches), transform
       the noisy and the basic groups (2-D DCT, then Walsh-Hadamard), multiply
       the noisy spectrum by ``w = B^2 / (B^2 + sigma^2)`` from the basic
       spectrum ``B``, invert, aggregate with weights ``1 / ||w||^2``.

    Colour images (``channel_axis`` given) follow CBM3D (Dabov et al., ICIP
    2007; [L] Sec. 2.6): the RGB values go to the opponent colour space
    ``Y = (R + G + B) / 3``, ``C1 = (R - B) / 2``, ``C2 = (R - 2 G + B) / 4``,
    the groups are found on the luminance ``Y`` only -- it carries most of the
    signal at the lowest noise (``sigma / sqrt 3``), so its matches are the
    most reliable -- and the two chrominance channels reuse them; each channel
    is filtered at its own noise ``sigma ||A_c||``
    (:mod:`nlref.denoise.bm3d.colour`).  The opponent space is the one of
    CBM3D's reference code and of the ``bm3d`` package's ``bm3d_rgb``.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, 3)
        Grey or RGB image (NumPy or CuPy), values on the [0, 1] scale: integer
        images are converted as ``img_as_float`` does.  Float images keep their
        dtype (float32 or float64; float16 computes in float32).
    sigma : float
        Standard deviation of the Gaussian noise on the image's scale.  The
        parameters follow ``255 sigma`` ([L] Sec. 4):

        ========================== ==================== ==================
        parameter                  ``255 sigma <= 40``  ``> 40``
        ========================== ==================== ==================
        step 1 block ``k^hard``    8 (Bior1.5)          12 (DCT)
        step 1 ``N^hard``          16                   16
        step 1 ``p^hard``          3                    3
        step 1 window ``n^hard``   39                   39
        step 1 ``tau_match^hard``  2500                 5000
        ``lambda_3D``              2.7                  2.7
        step 2 block ``k^wien``    8 (DCT)              11 (DCT)
        step 2 ``N^wien``          32                   32
        step 2 ``p^wien``          3                    3
        step 2 window ``n^wien``   39                   39
        step 2 ``tau_match^wien``  400                  3500
        Kaiser ``beta``            2                    2
        ========================== ==================== ==================

        ``tau_match`` bounds the mean squared difference ``||P - Q||^2 / k^2``
        of two blocks on the 0-255 scale ([L] Sec. 2.2); see
        :func:`nlref.denoise.bm3d.bm3d_profile`.
    channel_axis : int, optional
        The axis of the three RGB channels (``-1`` for ``(H, W, 3)``); None
        (the default) for a grey 2-D image.  Like scikit-image's argument.
    stage : {"both", "hard"}
        ``"hard"`` returns the basic estimate of step 1.
    max_batch_bytes : int, optional
        Cap on the temporaries of the vectorised form (default 256 MiB).
        Matching holds, per row of ``n_c = ceil(W / p) + 1`` reference
        blocks, ``n_c (n^2 (2 b + 5) + N^2 + N (2 b + 24)) + 5 p W b`` bytes
        (distances to the ``n^2`` offsets of the window, masks, the offset
        loop's images), plus ``5 k W b``; filtering holds, per reference
        block, ``N k^2 ((3 g + 3) b + 24)`` bytes (blocks, spectra, estimates,
        the ``bincount`` index and weights), plus ``24 N n_c`` per row of the
        band.  ``b`` is the bytes per value, ``g`` the channels of the
        images filtered (``C`` in step 1, ``2 C`` in step 2; ``C = 1`` grey,
        3 colour); :func:`nlref.denoise.bm3d.vectorised.plan_bands` picks the
        rows per band and the references per chunk.  Besides this, the call
        holds up to about twenty ``C x H x W`` arrays (image, basic estimate,
        ``float64`` accumulators; 289 MiB traced for a 256 x 256 RGB image at
        the default cap).  A cap below one row of references is an error.

    progress : bool
        Show a tqdm bar over the rows of reference blocks of both steps.
    data_range : float, optional
        The span of values the parameters refer to: the profile is chosen by
        ``255 sigma / data_range`` and ``tau_match`` is scaled by
        ``data_range^2``, so ``bm3d(a x, a sigma, data_range=a)`` is
        ``a bm3d(x, sigma)`` (exactly for a power of 2).  Default 1: float
        images on [0, 1] (and integer images, converted to [0, 1] first).  Pass
        255 for a float image on [0, 255]: without it, its blocks are matched
        against thresholds 255^2 times too small, and ``sigma`` picks the
        high-noise profile.

    Returns
    -------
    ndarray, (H, W)
        The denoised image, float, on the input's backend.

    Raises
    ------
    TypeError
        ``image`` not an array or not real; ``sigma`` or ``max_batch_bytes``
        not a number.
    ValueError
        Not a 2-D image without ``channel_axis`` (a colour-looking one gets a
        hint), not 3 channels on ``channel_axis`` (2, or 4 with alpha), an
        axis out of range, empty, NaN/inf pixels, ``sigma <= 0``,
        ``data_range <= 0`` or not finite, an unknown
        ``stage``, a ``max_batch_bytes`` too small for one row of reference
        blocks.

    Notes
    -----
    * **Block matching is NLM's patch distance**: the distances of all
      reference blocks to all blocks of their windows come from the offset
      loop of :mod:`nlref.denoise.fast` (one squared-difference image and one
      ``k x k`` box sum per offset), the true ``k x k`` mean squared difference.
    * **Ties** in distance are broken by scan order (the block met first in a
      row-major scan wins); the reference block is always first in its group.
    * **Borders**: blocks lie inside the image and the search window is
      clipped to it; reference blocks are on the grid ``0, p, 2p, ...`` plus
      the last position, so every pixel is covered.  An image with a side
      shorter than the block is reflect-padded to the block's size (as
      scikit-image's ``denoise_nl_means`` pads small images; a side of 1 is
      repeated) and the result cropped back.
    * **Weights** drop the constant factor ``1 / sigma^2`` of [L] Sec. 2.4.
    * Images near the float range's limits are scaled by a power of 2 (exact)
      before and after, so the result stays finite.

    References
    ----------
    K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, "Image Denoising by Sparse
    3-D Transform-Domain Collaborative Filtering", IEEE TIP 16(8), 2007.
    M. Lebrun, "An Analysis and Implementation of the BM3D Image Denoising
    Method", IPOL 2 (2012), pp. 175-213.

    Examples
    --------
    >>> import numpy as np
    >>> from nlref.denoise import bm3d
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 1, 32), (32, 1))
    >>> out = bm3d(clean + rng.normal(0, 0.1, clean.shape), 0.1)
    >>> bool(np.abs(out - clean).mean() < 0.05)
    True
    """
    return run_bm3d(
        image,
        sigma,
        channel_axis=channel_axis,
        stage=stage,
        max_batch_bytes=max_batch_bytes,
        step=collaborative_step,
        progress=bool(progress),
        data_range=data_range,
    )
