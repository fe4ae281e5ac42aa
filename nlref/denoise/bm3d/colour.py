"""Colour BM3D (CBM3D): group on the luminance, filter every channel with those groups.

Dabov, Foi, Katkovnik, Egiazarian, "Color image denoising via sparse 3D
collaborative filtering with grouping constraint in luminance-chrominance
space" (ICIP 2007): the RGB image goes to a luminance-chrominance space, where
the luminance carries most of the signal (so its blocks match reliably, at a
lower noise level than any RGB channel) and the chrominances are smooth.  The
groups are found on the luminance alone and reused, position for position, by
the two chrominance channels; each channel is filtered with its own noise level
``sigma_c = sigma ||A_c||`` (the row ``A_c`` of the colour transform applied to
i.i.d. noise of standard deviation ``sigma`` per RGB channel).

nlref uses the *opponent* colour space of CBM3D's reference code (also the
default of the ``bm3d`` package's ``bm3d_rgb`` and one of the spaces of Lebrun's
IPOL 2012 implementation): ``Y = (R + G + B) / 3`` is the plain mean, so a grey
image stored as RGB (``R = G = B``) has zero chrominance and its luminance is
the grey image itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace

__all__ = ["OPPONENT", "to_luminance_chrominance", "from_luminance_chrominance", "channel_sigmas"]

# rows: luminance, then two chrominances (CBM3D's opponent transform)
OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [1 / 2, 0.0, -1 / 2], [1 / 4, -1 / 2, 1 / 4]])


def _apply(A: np.ndarray, u: Any) -> Any:
    """``A @ u`` over the channel axis of ``u: (C, H, W)``."""
    xp = get_namespace(u)
    return xp.tensordot(xp.asarray(A, dtype=u.dtype), u, axes=1)


def to_luminance_chrominance(u: Any, A: np.ndarray = OPPONENT) -> Any:
    """RGB ``u: (3, H, W)`` to ``(Y, C1, C2)``: ``(3, H, W)``."""
    return _apply(A, u)


def from_luminance_chrominance(v: Any, A: np.ndarray = OPPONENT) -> Any:
    """The inverse of :func:`to_luminance_chrominance`."""
    return _apply(np.linalg.inv(A), v)


def channel_sigmas(sigma: float, A: np.ndarray = OPPONENT) -> np.ndarray:
    """Noise of each transformed channel, ``sigma ||A_c||_2``, for i.i.d. RGB noise ``sigma``."""
    return sigma * np.linalg.norm(A, axis=1)
