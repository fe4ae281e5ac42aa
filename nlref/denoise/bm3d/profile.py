"""BM3D's parameters, as a table a learner can print (Lebrun, IPOL 2012, Sec. 4).

The two steps of BM3D (Dabov, Foi, Katkovnik, Egiazarian, TIP 2007) each have a
block size ``k``, a largest group ``N``, a step ``p`` between reference blocks,
a search window ``n x n``, a matching threshold ``tau_match`` and a Kaiser
window ``beta``.  Lebrun's analysis ("An Analysis and Implementation of the BM3D
Image Denoising Method", Image Processing On Line 2 (2012), pp. 175-213) fixes
them by the noise level, with one change of profile above ``sigma = 40`` (on
the 0-255 scale): larger blocks and looser matching, because at high noise the
distance between two noisy blocks is dominated by the noise.

``tau_match`` is a mean squared difference per pixel on the 0-255 scale (the
article's ``d(P, Q) = ||P - Q||^2 / k^2``); :func:`match_threshold` puts it on
the image's scale (an image in [0, 1], as :func:`nlref.denoise.bm3d` expects).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StepParams", "bm3d_profile", "match_threshold", "reference_positions", "HIGH_NOISE"]

# Above this noise level (0-255 scale) the article switches to its high-noise profile.
HIGH_NOISE = 40.0


@dataclass(frozen=True)
class StepParams:
    """The parameters of one BM3D step (names as in Lebrun 2012, Sec. 4).

    Attributes
    ----------
    block : int
        ``k``: blocks are ``k x k`` (``k^hard``, ``k^wien``).
    max_group : int
        ``N``: at most ``N`` blocks per group, a power of 2 (``N^hard``, ``N^wien``).
    step : int
        ``p``: reference blocks every ``p`` pixels along each axis (``p^hard``, ``p^wien``).
    window : int
        ``n``: the search window is ``n x n`` block positions centred on the reference.
    tau_match : float
        Largest mean squared difference (0-255 scale) of a block kept in a group.
    transform_2d : str
        ``"bior1.5"`` or ``"dct"``: the 2-D transform of every block.
    beta : float
        Shape of the Kaiser window used in the aggregation.
    lambda_3d : float or None
        Hard threshold ``lambda_3D sigma`` on the 3-D spectrum (step 1 only).
    """

    block: int
    max_group: int
    step: int
    window: int
    tau_match: float
    transform_2d: str
    beta: float
    lambda_3d: float | None = None


def bm3d_profile(sigma_255: float) -> tuple[StepParams, StepParams]:
    """``(hard, wiener)`` parameters for noise ``sigma_255`` on the 0-255 scale.

    Lebrun 2012, Sec. 4 ("Parameters"): step 1 ``k = 8``, ``N = 16``, ``p = 3``,
    ``n = 39``, ``tau_match = 2500``, ``lambda_3D = 2.7``, Bior1.5, Kaiser
    ``beta = 2``; step 2 ``k = 8``, ``N = 32``, ``p = 3``, ``n = 39``,
    ``tau_match = 400``, DCT, ``beta = 2``.  Above ``sigma = 40``: step 1
    ``k = 12`` with the DCT (Bior1.5 is defined on powers of 2 only) and
    ``tau_match = 5000``; step 2 ``k = 11`` and ``tau_match = 3500`` (Dabov et
    al.'s high-noise profile, as the article reports it).
    """
    high = sigma_255 > HIGH_NOISE
    hard = StepParams(
        block=12 if high else 8,
        max_group=16,
        step=3,
        window=39,
        tau_match=5000.0 if high else 2500.0,
        transform_2d="dct" if high else "bior1.5",
        beta=2.0,
        lambda_3d=2.7,
    )
    wiener = StepParams(
        block=11 if high else 8,
        max_group=32,
        step=3,
        window=39,
        tau_match=3500.0 if high else 400.0,
        transform_2d="dct",
        beta=2.0,
    )
    return hard, wiener


def match_threshold(params: StepParams, scale: float = 1.0) -> float:
    """``tau_match`` as a *sum* of squared differences over a block of an image in [0, 1].

    ``||P - Q||^2 < tau_match k^2 / 255^2``; ``scale`` multiplies the image
    (the front door may scale a huge or tiny image by a power of 2).
    """
    k = params.block
    return params.tau_match * k * k / (255.0 * 255.0) * scale * scale


def reference_positions(n_positions: int, step: int) -> list[int]:
    """Top-left coordinates of the reference blocks along one axis.

    Every ``step``-th block position ``0, p, 2p, ...``, and the last position
    ``n_positions - 1`` so that every pixel is covered (Lebrun 2012, Sec. 2.2).
    """
    refs = list(range(0, n_positions, step))
    if refs[-1] != n_positions - 1:
        refs.append(n_positions - 1)
    return refs
