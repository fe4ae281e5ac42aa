"""Schraudolph's approximate exponential, the one scikit-image's non-local means uses.

scikit-image computes every weight of ``denoise_nl_means`` with ``fast_exp``
(``skimage/_shared/fast_exp.h``), not with ``exp``: a few per cent off, and 0.971
at 0.  :func:`nlref.denoise.nl_means`'s default fast mode takes the same function,
so that the same call gives the same image (``distance_scale="skimage"``); the
textbook form (``distance_scale="patch"``) and slow mode keep the exact ``exp``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_namespace

__all__ = ["schraudolph_exp", "centre_weight"]

#: Schraudolph's constants as scikit-image's ``fast_exp`` uses them: ``2^20 / ln 2`` and
#: ``1023 * 2^20 - 60801`` (the shift of least RMS error).
SCHRAUDOLPH_A = 2.0**20 / math.log(2.0)
SCHRAUDOLPH_BC = 1023 * 2**20 - 60801
#: The same bits written as a float32: ``8 (trunc(A x) + BC) - (1023 - 127) 2^23`` (the float64 result
#: has 20 fraction bits, so a float32 holds it exactly).
SCHRAUDOLPH_BC32 = 8 * SCHRAUDOLPH_BC - (1023 - 127) * 2**23


def schraudolph_exp(x: Any, keep: Any = None) -> Any:
    """``exp(x)`` by Schraudolph's approximation, as scikit-image's ``fast_exp`` computes it; in place.

    The high 32 bits of an IEEE double are set to ``trunc(A x) + BC`` and the low
    32 bits to 0 (N. N. Schraudolph, "A fast, compact approximation of the
    exponential function", Neural Computation 11(4), 1999, Sec. 2): a piecewise
    linear interpolation of ``2^(x / ln 2)`` between powers of two, at most about
    4 % off (``schraudolph_exp(0) = 0.971``).  Valid for ``x <= 0``; ``x`` below -80
    is taken as -80 (``2e-35``), and entries where ``keep`` (a boolean array) is
    False become 0.  A float32 ``x`` is computed in float32 (scikit-image
    multiplies in float64: ``trunc(A x)`` may then differ by 1, a relative change
    of ``2^-20`` in a weight); the result is written with integer operations on
    the IEEE bits, one pass each, no float64 temporaries.
    """
    xp = get_namespace(x)
    xp.maximum(x, x.dtype.type(-80.0), out=x)  # so that the cast below is defined
    x *= x.dtype.type(SCHRAUDOLPH_A)
    if x.dtype == xp.float32:
        bits = x.astype(xp.int32)  # truncates toward zero, as C's cast does
        bits <<= 3
        bits += SCHRAUDOLPH_BC32
    else:
        bits = x.astype(xp.int64)
        bits += SCHRAUDOLPH_BC
        bits <<= 32
    if keep is not None:
        bits *= keep
    x[...] = bits.view(x.dtype)
    return x


def centre_weight(exp: str) -> float:
    """Weight of the offset ``t = 0`` (``d2 = 0``): ``exp(0)`` by the exponential ``exp`` names."""
    return 1.0 if exp == "exact" else float(schraudolph_exp(np.zeros(1))[0])
