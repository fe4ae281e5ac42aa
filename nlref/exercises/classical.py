"""Checkers of the classical notebooks: non-local means (01), its fast form (02) and BM3D (02b).

Each checker builds a tiny seeded input, runs the learner's function and the library's answer
on it, and prints one line (:mod:`nlref.exercises.core`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..denoise import nl_means_pixelwise
from ..denoise.bm3d.filtering import hard_threshold
from ..denoise.fast import window_sum
from .core import ExerciseResult, compare_all, finish, run_checker

__all__ = ["check_nlm_weight", "check_box_sum", "check_hard_threshold"]


def _nlm_from_weights(
    nlm_weight: Callable, v: np.ndarray, s: int, d: int, h: float, sigma: float
) -> np.ndarray:
    """Non-local means of the 2-D image ``v`` with the learner's ``nlm_weight(patch_i, patch_j, h, sigma)``.

    The loop of :func:`nlref.denoise.nl_means_pixelwise` with the uniform patch kernel: patches
    completed by reflection at the border, the search window clipped to the image.
    """
    r = s // 2
    padded = np.pad(v, r, mode="reflect")
    out = np.empty_like(v)
    H, W = v.shape
    for y in range(H):
        for x in range(W):
            p_i = padded[y : y + s, x : x + s]
            num = den = 0.0
            for yj in range(max(0, y - d), min(H, y + d + 1)):
                for xj in range(max(0, x - d), min(W, x + d + 1)):
                    w = float(nlm_weight(p_i.copy(), padded[yj : yj + s, xj : xj + s].copy(), h, sigma))
                    num, den = num + w * v[yj, xj], den + w
            out[y, x] = num / den
    return out


def check_nlm_weight(nlm_weight: Callable[..., float]) -> ExerciseResult:
    """Check a learner's non-local means weight through the denoised image it gives.

    ``nlm_weight(patch_i, patch_j, h, sigma)`` takes two ``(s, s)`` patches and returns
    ``w(i, j) = exp(-max(d2 - 2 sigma^2, 0) / h^2)`` with ``d2`` the mean of
    ``(patch_i - patch_j)^2`` (Buades, Coll, Morel, CVPR 2005, Eq. 1-2; IPOL 2011, Eq. 2).
    The checker denoises a seeded 8 x 8 image (patch 3, window 5 x 5) with these weights,
    once with ``sigma = 0`` and once with ``sigma > 0``, and compares every pixel with
    :func:`nlref.denoise.nl_means_pixelwise` (uniform kernel, ``distance_scale="patch"``).

    Returns
    -------
    ExerciseResult
        ``output`` names the case, ``worst_index`` is the pixel ``(y, x)``.
    """

    def check() -> ExerciseResult:
        rng = np.random.default_rng(0)
        v = np.clip(np.linspace(0.2, 0.8, 8)[None, :] + 0.1 * rng.standard_normal((8, 8)), 0, 1)
        pairs = []
        for sigma in (0.0, 0.1):
            h = 0.15
            mine = _nlm_from_weights(nlm_weight, v, 3, 2, h, sigma)
            ref = nl_means_pixelwise(
                v, 3, 2, h=h, sigma=sigma, patch_weights="uniform", distance_scale="patch"
            )
            pairs.append((f"denoised pixel (sigma={sigma:g})", mine, ref))
        hint = "d2 is the mean over the patch; the exponent is -max(d2 - 2 sigma^2, 0) / h^2"
        return finish("check_nlm_weight", compare_all(pairs), hint)

    return run_checker("check_nlm_weight", "nlref.denoise.nl_means_pixelwise", nlm_weight, check)


def check_box_sum(box_sum: Callable[[Any, int], Any]) -> ExerciseResult:
    """Check a learner's box filter (the sums of every ``size x size`` window of an image).

    ``box_sum(image, size)`` returns ``out[y, x] = sum(image[y:y + size, x:x + size])`` for
    every window inside the image, shape ``(H - size + 1, W - size + 1)``: the patch distance
    of fast non-local means, ``d2_t(x) = sum_k D_t(x + k)`` (Darbon et al. 2008; IPOL 2011,
    Sec. 3), for instance from an integral image.  Compared with
    :func:`nlref.denoise.fast.window_sum` along both axes, on a seeded 9 x 11 image for
    ``size`` 1, 3 and 4.
    """

    def check() -> ExerciseResult:
        image = np.random.default_rng(0).standard_normal((9, 11))
        pairs = [
            (
                f"box_sum(image, {size})",
                box_sum(image.copy(), size),
                window_sum(window_sum(image, size, 0), size, 1),
            )
            for size in (1, 3, 4)
        ]
        hint = "with an integral image S, a window's sum is S[y2, x2] - S[y1, x2] - S[y2, x1] + S[y1, x1]"
        return finish("check_box_sum", compare_all(pairs), hint)

    return run_checker("check_box_sum", "nlref.denoise.fast.window_sum", box_sum, check)


def check_hard_threshold(hard_threshold_fn: Callable[[Any, float], tuple]) -> ExerciseResult:
    """Check a learner's hard threshold of a group's 3-D spectrum (BM3D step 1).

    ``hard_threshold_fn(spectrum, threshold)`` takes the spectrum ``(s, k*k)`` of one group and
    ``threshold = lambda_3D sigma``; it returns the spectrum with every coefficient of
    ``|c| <= threshold`` set to 0, and the aggregation weight ``1 / N_kept`` (1 when nothing is
    kept) (Dabov et al., TIP 2007, Eq. 10; Lebrun, IPOL 2012, Sec. 2.4).  Compared with
    :func:`nlref.denoise.bm3d.filtering.hard_threshold` on three seeded groups: an ordinary one,
    one with coefficients exactly at the threshold, and one where nothing survives.
    """

    def check() -> ExerciseResult:
        rng = np.random.default_rng(0)
        spec = 2.0 * rng.standard_normal((4, 16))
        at_threshold = spec.copy()
        at_threshold[0, :3] = [2.7, -2.7, 2.7000001]
        pairs = []
        for case, group, threshold in (
            ("ordinary", spec, 2.7),
            ("at the threshold", at_threshold, 2.7),
            ("nothing kept", spec, 100.0),
        ):
            kept, weight = hard_threshold_fn(group.copy(), threshold)
            ref_kept, ref_weight = hard_threshold(group[None, None], [threshold])
            pairs += [
                (f"spectrum ({case})", kept, ref_kept[0, 0]),
                (f"weight ({case})", weight, ref_weight[0, 0]),
            ]
        hint = "keep |c| > threshold (strictly); weight 1 / N_kept, 1 if nothing is kept"
        return finish("check_hard_threshold", compare_all(pairs), hint)

    return run_checker(
        "check_hard_threshold", "nlref.denoise.bm3d.filtering.hard_threshold", hard_threshold_fn, check
    )
