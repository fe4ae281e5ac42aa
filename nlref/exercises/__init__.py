"""nlref.exercises: the checkers of the notebooks' exercises ("implement it, then check it").

Each notebook ends with exercises; in the ones that ask for code, the learner fills in a blank
function and passes it to a checker here.  The checker runs it on small seeded inputs, compares
the result with the library's answer (an oracle or :func:`nlref.gradcheck.gradcheck`), prints one
line and returns an :class:`ExerciseResult` (passed, the worst entry, got and expected there).
A blank that still raises ``NotImplementedError`` prints
``not implemented yet: the library's answer is nlref....`` and returns a result that did not
pass, so a notebook runs from top to bottom with its blanks.

This package is part of the face, beside the notebook runner (:mod:`nlref.notebooks`): the
library never imports it.  The checkers, by notebook:

* 01 non-local means: :func:`check_nlm_weight`;
* 02 fast non-local means: :func:`check_box_sum`;
* 02b BM3D: :func:`check_hard_threshold`;
* 03 the non-local operation: :func:`check_embedded_gaussian`;
* 04 backprop: :func:`check_softmax_backward`, :func:`check_dot_product_backward`;
* 05 video networks: :func:`check_inflate`;
* 06 learned denoiser: :func:`check_denoiser_step` (its oracle: :func:`reference_denoiser_step`).

The modules: :mod:`~nlref.exercises.core` (the result and the comparison),
:mod:`~nlref.exercises.classical` (01-02b) and :mod:`~nlref.exercises.networks` (03-06).
"""

from __future__ import annotations

from .classical import check_box_sum, check_hard_threshold, check_nlm_weight
from .core import ExerciseResult
from .networks import (
    check_denoiser_step,
    check_dot_product_backward,
    check_embedded_gaussian,
    check_inflate,
    check_softmax_backward,
    reference_denoiser_step,
)

__all__ = [
    "ExerciseResult",
    "check_nlm_weight",
    "check_box_sum",
    "check_hard_threshold",
    "check_embedded_gaussian",
    "check_softmax_backward",
    "check_dot_product_backward",
    "check_inflate",
    "check_denoiser_step",
    "reference_denoiser_step",
]
