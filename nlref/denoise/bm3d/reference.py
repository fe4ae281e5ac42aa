"""BM3D, one reference block at a time: the form to read next to the article.

Lebrun's "An Analysis and Implementation of the BM3D Image Denoising Method"
(IPOL 2012, Sec. 2) describes each step for one reference block ``P``:

1. *grouping*: every block ``Q`` whose corner lies in the ``n x n`` window
   around ``P``'s, with ``d(P, Q) = ||P - Q||^2 / k^2 < tau_match``, sorted by
   distance; keep at most ``N`` and cut to a power of 2 (``P`` itself first);
2. *collaborative filtering*: 3-D transform, hard threshold (step 1) or
   Wiener shrinkage by the basic estimate (step 2), inverse transform;
3. *aggregation*: every filtered block goes back where it came from,
   weighted by the group's weight and a Kaiser window.

:func:`reference_step` is those three lines in two loops.  It is slow
(``O(pixels x window x k^2)`` Python-level work) and exists to be read and to
test :mod:`nlref.denoise.bm3d.vectorised` against: the two agree to round-off.
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from .api import run_bm3d
from .filtering import GroupTransform, forward_3d, inverse_3d
from .matching import rounded_distance
from .profile import StepParams, reference_positions
from .transforms import kaiser_window

__all__ = ["match_reference", "reference_step", "bm3d_reference"]


def match_reference(guide: Any, y: int, x: int, params: StepParams, threshold: float) -> list:
    """Corners ``(qy, qx)`` of the group of the reference block at ``(y, x)``, reference first.

    Distances are rounded as in the vectorised form
    (:func:`~nlref.denoise.bm3d.matching.rounded_distance`); ties keep the
    row-major scan order (Python's sort is stable).
    """
    k, half = params.block, params.window // 2
    P, Q = guide.shape[0] - k + 1, guide.shape[1] - k + 1
    R = guide[y : y + k, x : x + k]
    found = []
    for qy in range(max(0, y - half), min(P, y + half + 1)):
        for qx in range(max(0, x - half), min(Q, x + half + 1)):
            if (qy, qx) != (y, x):
                d = float(rounded_distance(((R - guide[qy : qy + k, qx : qx + k]) ** 2).sum()))  # k^2 d(P, Q)
                if d < threshold:
                    found.append((d, qy, qx))
    found.sort(key=lambda f: f[0])
    members = [(y, x)] + [(qy, qx) for _, qy, qx in found]
    n = min(len(members), params.max_group)
    return members[: 1 << (n.bit_length() - 1)]  # the largest power of 2 <= n


def reference_step(
    images: list,
    guide: Any,
    params: StepParams,
    threshold: float,
    group_filter: Any,
    transform: GroupTransform,
    rows: tuple = (),
    progress: Any = None,
) -> Any:
    """One BM3D step, reference block by reference block (arguments as in
    :func:`nlref.denoise.bm3d.vectorised.collaborative_step`; ``rows`` and ``progress`` are unused)."""
    xp = get_namespace(guide)
    H, W, k = guide.shape[0], guide.shape[1], params.block
    C = images[0].shape[0]
    num, den = xp.zeros((C, H, W)), xp.zeros((C, H, W))
    K = xp.asarray(kaiser_window(k, params.beta), dtype=guide.dtype)
    for y in reference_positions(H - k + 1, params.step):
        for x in reference_positions(W - k + 1, params.step):
            members = match_reference(guide, y, x, params, threshold)
            # one group per image, (C, 1, s, k, k): every channel uses the blocks found on the guide
            groups = [
                xp.stack([im[:, qy : qy + k, qx : qx + k] for qy, qx in members], axis=1)[:, None]
                for im in images
            ]
            spec, weight = group_filter([forward_3d(g, transform) for g in groups])
            estimate = inverse_3d(spec, transform)[:, 0]  # (C, s, k, k)
            w = weight[:, 0, None, None]  # (C, 1, 1)
            for j, (qy, qx) in enumerate(members):
                num[:, qy : qy + k, qx : qx + k] += w * K * estimate[:, j]
                den[:, qy : qy + k, qx : qx + k] += w * K
    return (num / den).astype(guide.dtype)


def bm3d_reference(
    image: Any, sigma: float, *, channel_axis: int | None = None, stage: str = "both", data_range: Any = None
) -> Any:
    """:func:`nlref.denoise.bm3d` computed by :func:`reference_step` (same checks; equal to round-off)."""
    return run_bm3d(
        image,
        sigma,
        channel_axis=channel_axis,
        stage=stage,
        max_batch_bytes=None,
        step=reference_step,
        data_range=data_range,
    )
