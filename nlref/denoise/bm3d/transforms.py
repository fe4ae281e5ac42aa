"""The transforms of BM3D's collaborative filter, as matrices.

A group is ``s`` blocks of ``k x k`` pixels, ``(s, k, k)``.  BM3D filters it in
a separable 3-D transform domain (Dabov et al., TIP 2007, Sec. III; Lebrun,
IPOL 2012, Sec. 2.3): a 2-D transform ``T`` of each block, ``T B T^T``, then a
1-D transform ``H`` along the group.  All are orthonormal (or, for Bior1.5,
normalised so that every basis vector has unit length), so white noise of
standard deviation ``sigma`` has standard deviation ``sigma`` on every
coefficient and one threshold ``lambda_3D sigma`` fits all of them.

* :func:`dct_matrix` -- the orthonormal DCT-II;
* :func:`bior15_matrix` -- the biorthogonal spline wavelet 1.5, fully
  decomposed with periodic extension (the matrix PyWavelets' ``wavedec(...,
  mode="periodization")`` gives), rows normalised;
* :func:`hadamard_matrix` -- the Walsh-Hadamard transform along the group
  (Sylvester order), defined for sizes that are powers of 2: this is why
  groups have 1, 2, 4, ... blocks;
* :func:`kaiser_window` -- the aggregation window.

The matrices are built on the host (NumPy) once per call; the algorithm moves
them to the image's backend with ``xp.asarray``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["dct_matrix", "bior15_matrix", "hadamard_matrix", "kaiser_window", "transform_2d_matrix"]

# Bior1.5 analysis filters (Cohen-Daubechies-Feauveau spline, 1 / 5 vanishing moments):
# low pass sqrt(2)/2 * [3, -3, -22, 22, 128, 128, 22, -22, -3, 3] / 128, high pass the Haar pair.
_BIOR15_LO = np.sqrt(0.5) * np.array([3, -3, -22, 22, 128, 128, 22, -22, -3, 3]) / 128.0
_BIOR15_HI = np.sqrt(0.5) * np.array([0, 0, 0, 0, -1, 1, 0, 0, 0, 0], dtype=float)


def dct_matrix(k: int) -> np.ndarray:
    """Orthonormal DCT-II, ``(k, k)``: ``C[a, i] = c_a cos(pi (2 i + 1) a / (2 k))``."""
    i = np.arange(k)
    C = np.cos(np.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * k)) * np.sqrt(2.0 / k)
    C[0] /= np.sqrt(2.0)
    return C


def _periodized_level(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of the periodized Bior1.5 analysis of the columns of ``x``: ``(approx, detail)``."""
    n, L = x.shape[0], len(_BIOR15_LO)
    approx, detail = np.zeros((n // 2,) + x.shape[1:]), np.zeros((n // 2,) + x.shape[1:])
    for m in range(n // 2):
        for t in range(L):
            row = x[(2 * m + L // 2 - t) % n]
            approx[m] += _BIOR15_LO[t] * row
            detail[m] += _BIOR15_HI[t] * row
    return approx, detail


def bior15_matrix(k: int) -> np.ndarray:
    """Bior1.5 wavelet transform of length ``k`` (a power of 2) as a ``(k, k)`` matrix.

    Full decomposition (``log2 k`` levels) with periodic extension, coefficients
    ordered coarse to fine ``[a_J, d_J, ..., d_1]``; each row is then scaled to
    unit length (Lebrun 2012, Sec. 2.3: the 2-D transform of step 1).  Not
    orthogonal: the inverse is ``numpy.linalg.inv`` of it.
    """
    if k < 2 or k & (k - 1):
        raise ValueError(f"the Bior1.5 block size must be a power of 2, received {k}")
    a, parts = np.eye(k), []
    while a.shape[0] > 1:
        a, d = _periodized_level(a)
        parts.insert(0, d)
    T = np.vstack([a] + parts)
    return T / np.linalg.norm(T, axis=1, keepdims=True)


def hadamard_matrix(s: int) -> np.ndarray:
    """Orthonormal Walsh-Hadamard matrix of size ``s`` (a power of 2), Sylvester's construction."""
    H = np.ones((1, 1))
    while H.shape[0] < s:
        H = np.block([[H, H], [H, -H]])
    return H / math.sqrt(s)


def transform_2d_matrix(name: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, T_inv)`` for ``"bior1.5"`` or ``"dct"`` of size ``k``."""
    T = bior15_matrix(k) if name == "bior1.5" else dct_matrix(k)
    return T, np.linalg.inv(T)


def kaiser_window(k: int, beta: float) -> np.ndarray:
    """The ``(k, k)`` Kaiser window ``w(i) w(j)`` that weighs each block's pixels in the aggregation.

    It lowers the weight of block borders, where the estimates of overlapping
    blocks disagree most (Dabov et al. 2007, Sec. III-E; Lebrun 2012, ``beta = 2``).
    """
    w = np.kaiser(k, beta)
    return np.outer(w, w)
