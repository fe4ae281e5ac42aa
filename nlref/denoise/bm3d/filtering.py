"""Collaborative filtering of one batch of groups: the heart of BM3D.

A batch is ``m`` groups of ``s`` blocks each, ``(m, s, k, k)``, for each of
``C`` channels, ``(C, m, s, k, k)`` (grey: ``C = 1``; colour: the three channels
of one group share its blocks' positions).  Both forms of
BM3D call these functions: the reference loop with ``m = 1``
(:mod:`nlref.denoise.bm3d.reference`), the vectorised form with every group of
one size at once (:mod:`nlref.denoise.bm3d.vectorised`).

    group (m, s, k, k) --T B T^T--> (m, s, k*k) --H along s--> spectrum (m, s, k*k)
    step 1: hard threshold at lambda_3D sigma;   weight 1 / N_kept
    step 2: Wiener w = |B|^2 / (|B|^2 + sigma^2); weight 1 / ||w||^2
    spectrum --H^T--> --T^-1 . T^-T--> estimates of the s blocks (m, s, k, k)

The weights are Dabov et al.'s ``1 / (sigma^2 N_kept)`` and ``1 / (sigma^2 ||w||^2)``
(TIP 2007, Eqs. 10 and 14; Lebrun, IPOL 2012, Sec. 2.4) without the factor
``1 / sigma^2``, which is the same for every group and cancels in the
aggregation's division.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace
from .transforms import hadamard_matrix, transform_2d_matrix

__all__ = [
    "GroupTransform",
    "group_transform",
    "forward_3d",
    "inverse_3d",
    "per_channel",
    "hard_threshold",
    "wiener_shrink",
]


class GroupTransform:
    """The 3-D transform of groups of ``k x k`` blocks, as matrices on the image's backend.

    ``forward2 = T (x) T`` acts on row-major flattened blocks, so that
    ``vec(T B T^T) = forward2 @ vec(B)``; ``hadamard[s]`` is the orthonormal
    Walsh-Hadamard matrix of each group size ``s``.
    """

    def __init__(self, name: str, k: int, max_group: int, xp: Any, dtype: Any) -> None:
        T, T_inv = transform_2d_matrix(name, k)
        self.k = k
        self.forward2 = xp.asarray(np.kron(T, T).T, dtype=dtype)  # right-multiplies row vectors
        self.inverse2 = xp.asarray(np.kron(T_inv, T_inv).T, dtype=dtype)
        sizes = [2**j for j in range(max_group.bit_length()) if 2**j <= max_group]
        self.hadamard = {s: xp.asarray(hadamard_matrix(s), dtype=dtype) for s in sizes}


def group_transform(name: str, k: int, max_group: int, like: Any) -> GroupTransform:
    """A :class:`GroupTransform` on ``like``'s backend and dtype."""
    return GroupTransform(name, k, max_group, get_namespace(like), like.dtype)


def forward_3d(blocks: Any, tr: GroupTransform) -> Any:
    """Spectrum ``(..., s, k*k)`` of groups ``(..., s, k, k)``: 2-D transform of each block, H along s."""
    lead, k = blocks.shape[:-2], tr.k
    X = (blocks.reshape(-1, k * k) @ tr.forward2).reshape(lead + (k * k,))
    return tr.hadamard[lead[-1]] @ X if lead[-1] > 1 else X


def inverse_3d(spec: Any, tr: GroupTransform) -> Any:
    """Blocks ``(..., s, k, k)`` from a spectrum ``(..., s, k*k)`` (inverse of :func:`forward_3d`)."""
    s, k = spec.shape[-2], tr.k
    X = tr.hadamard[s].T @ spec if s > 1 else spec
    return (X.reshape(-1, k * k) @ tr.inverse2).reshape(spec.shape[:-1] + (k, k))


def per_channel(values: Any, like: Any) -> Any:
    """``values: (C,)`` (floats) as an array ``(C, 1, 1, 1)`` of ``like``'s backend and dtype, capped
    at the dtype's largest value (a huge sigma or threshold stays huge instead of overflowing)."""
    xp = get_namespace(like)
    capped = np.minimum(np.asarray(values, dtype=np.float64), float(np.finfo(like.dtype).max))
    return xp.asarray(capped.reshape(-1, 1, 1, 1), dtype=like.dtype)


def hard_threshold(spec: Any, threshold: Any) -> tuple[Any, Any]:
    """Step 1: zero the coefficients with ``|c| <= lambda_3D sigma_c``; weight ``1 / N_kept``.

    ``spec: (C, m, s, k*k)``, ``threshold: (C,)`` floats.  Returns
    ``(spectrum, weight (C, m))``; a group with no coefficient kept gets weight
    1 (Lebrun 2012, Sec. 2.4).
    """
    xp = get_namespace(spec)
    keep = xp.abs(spec) > per_channel(threshold, spec)
    spec = spec * keep
    n_kept = keep.sum(axis=(-2, -1))
    weight = 1.0 / xp.maximum(n_kept, 1).astype(spec.dtype)
    return spec, weight


def wiener_shrink(spec_noisy: Any, spec_basic: Any, sigma: Any) -> tuple[Any, Any]:
    """Step 2: ``w = B^2 / (B^2 + sigma_c^2)`` from the basic spectrum ``B``; weight ``1 / ||w||^2``.

    ``spec_noisy, spec_basic: (C, m, s, k*k)``, ``sigma: (C,)`` floats.
    Returns ``(w * spec_noisy, weight (C, m))``.  ``||w||^2`` is floored at the
    dtype's epsilon, so a group shrunk to zero cannot give an infinite weight.
    """
    xp = get_namespace(spec_noisy)
    ftype = spec_noisy.dtype.type
    b2 = spec_basic * spec_basic
    sigma2 = np.minimum(np.asarray(sigma, dtype=np.float64), 1e150) ** 2  # beyond: every w is 0 anyway
    denom = b2 + per_channel(sigma2, spec_noisy)
    w = b2 / xp.maximum(denom, ftype(np.finfo(spec_noisy.dtype).tiny))
    norm2 = (w * w).sum(axis=(-2, -1))
    weight = 1.0 / xp.maximum(norm2, ftype(np.finfo(spec_noisy.dtype).eps))
    return w * spec_noisy, weight
