"""Checkers of the network notebooks: the operation (03), backprop (04), video (05), denoiser (06).

Forward exercises are compared with the library's forward; backward exercises go through
:func:`nlref.gradcheck.gradcheck` (centred finite differences in float64), so the oracle is
the forward alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..gradcheck import gradcheck
from ..nn import nonlocal_op_forward, softmax
from ..nn.denoiser import build_denoiser, denoiser_backward, denoiser_forward
from ..nn.train import adam_init, adam_step
from ..nn.video import inflate_2d_to_3d
from .core import ExerciseResult, compare_all, finish, from_gradcheck, run_checker

__all__ = [
    "check_embedded_gaussian",
    "check_softmax_backward",
    "check_dot_product_backward",
    "check_inflate",
    "check_denoiser_step",
    "reference_denoiser_step",
]


def check_embedded_gaussian(embedded_gaussian: Callable[[Any, Any, Any], Any]) -> ExerciseResult:
    """Check a learner's embedded Gaussian non-local operation (self-attention) of one sample.

    ``embedded_gaussian(theta, phi, g)`` with ``theta: (P, d)``, ``phi: (P', d)``,
    ``g: (P', c)`` returns ``y: (P, c)``, ``y_i = sum_j softmax_j(theta_i^T phi_j) g_j``
    (Wang et al., CVPR 2018, Eq. 1 and 3).  Compared with :func:`nlref.nn.nonlocal_op_forward`
    (``f="embedded_gaussian"``) on seeded inputs, once ordinary and once with logits near 10^3,
    where ``exp`` overflows unless the row maximum is subtracted first.
    """

    def check() -> ExerciseResult:
        rng = np.random.default_rng(0)
        theta, phi, g = rng.standard_normal((6, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
        pairs = []
        for case, scale in (("ordinary", 1.0), ("large logits", 20.0)):
            th, ph = scale * theta, scale * phi
            ref, _ = nonlocal_op_forward(th[None], ph[None], g[None], f="embedded_gaussian", memory="dense")
            pairs.append((f"y ({case})", embedded_gaussian(th.copy(), ph.copy(), g.copy()), ref[0]))
        hint = "softmax over j (each row sums to 1); subtract the row maximum before exp"
        return finish("check_embedded_gaussian", compare_all(pairs), hint)

    return run_checker("check_embedded_gaussian", "nlref.nn.nonlocal_op_forward", embedded_gaussian, check)


def check_softmax_backward(softmax_backward: Callable[[Any, Any], Any]) -> ExerciseResult:
    """Check a learner's softmax backward by finite differences.

    ``softmax_backward(dA, A)`` with ``A = softmax(S)`` along the last axis returns ``dS``:
    ``dS_ij = A_ij (dA_ij - sum_k A_ik dA_ik)`` (notebook 04, Step 2).  The forward is
    :func:`nlref.nn.softmax`; :func:`nlref.gradcheck.gradcheck` compares every element of
    ``dS`` with centred differences in float64 (relative error at most 1e-6).
    """

    def check() -> ExerciseResult:
        S = np.random.default_rng(0).standard_normal((2, 3, 5))
        report = gradcheck(
            lambda s, p: (softmax(s, axis=-1), softmax(s, axis=-1)),
            lambda dA, A: (softmax_backward(dA.copy(), A.copy()), {}),
            S,
            raise_on_failure=False,
        )
        hint = "dS = A * (dA - sum_k A_k dA_k), the sum over the last axis, kept as a column"
        return finish("check_softmax_backward", from_gradcheck(report, {"x": "dS"}), hint)

    return run_checker(
        "check_softmax_backward", "nlref.nn.nl.softmax_affinity_backward", softmax_backward, check
    )


def check_dot_product_backward(dot_product_backward: Callable[..., tuple]) -> ExerciseResult:
    """Check a learner's backward of the dot-product non-local operation by finite differences.

    The forward is the heart of the dot-product block, ``y = (1 / P') (theta phi^T) g``
    (Wang et al., CVPR 2018, Eq. 4), ``theta: (N, P, d)``, ``phi: (N, P', d)``,
    ``g: (N, P', c)`` (:func:`nlref.nn.nonlocal_op_forward`, ``f="dot_product"``).
    ``dot_product_backward(dy, theta, phi, g)`` returns ``(dtheta, dphi, dg)``;
    :func:`nlref.gradcheck.gradcheck` compares every element with centred differences in
    float64.
    """

    def forward(theta, phi, g, params):
        y, _ = nonlocal_op_forward(theta, phi, g, f="dot_product", memory="dense")
        return y, (theta, phi, g)

    def check() -> ExerciseResult:
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(s) for s in ((2, 4, 3), (2, 5, 3), (2, 5, 2))]
        report = gradcheck(
            forward,
            lambda dy, c: (tuple(dot_product_backward(dy.copy(), *(a.copy() for a in c))), {}),
            inputs,
            raise_on_failure=False,
        )
        names = {"x0": "dtheta", "x1": "dphi", "x2": "dg"}
        hint = "A = theta phi^T / P'; dg = A^T dy, dA = dy g^T / P', dtheta = dA phi, dphi = dA^T theta"
        return finish("check_dot_product_backward", from_gradcheck(report, names), hint)

    return run_checker(
        "check_dot_product_backward", "nlref.nn.nl.dot_affinity_backward", dot_product_backward, check
    )


def check_inflate(inflate: Callable[[Any, int], Any]) -> ExerciseResult:
    """Check a learner's I3D inflation of a 2-D convolution kernel.

    ``inflate(w, t)`` turns ``w: (C_out, C_in, k_h, k_w)`` into ``(C_out, C_in, t, k_h, k_w)``
    with ``w3[:, :, s] = w / t`` for every frame ``s``, so that on a clip of equal frames the
    3-D convolution gives the 2-D one (Carreira & Zisserman, CVPR 2017; Wang et al., CVPR
    2018, Sec. 4.1).  Compared with :func:`nlref.nn.video.inflate_2d_to_3d` for a 3 x 3 kernel
    inflated to 3 x 3 x 3 and a 1 x 1 kernel inflated to 5 x 1 x 1.
    """

    def check() -> ExerciseResult:
        rng = np.random.default_rng(0)
        pairs = []
        for shape, t in (((4, 2, 3, 3), 3), ((2, 3, 1, 1), 5)):
            w = rng.standard_normal(shape)
            ref = inflate_2d_to_3d({"w": w}, {"w": np.zeros(shape[:2] + (t,) + shape[2:])})["w"]
            pairs.append((f"inflate(w {shape}, t={t})", inflate(w.copy(), t), ref))
        hint = "repeat w along a new time axis 2 and divide by t: the sum over time is w"
        return finish("check_inflate", compare_all(pairs), hint)

    return run_checker("check_inflate", "nlref.nn.video.inflate_2d_to_3d", inflate, check)


def reference_denoiser_step(model, params, state, opt_state, y, noise, lr) -> tuple:
    """One Adam step of the denoiser on ``(y, noise)``: the step of
    :func:`nlref.nn.train.train_denoiser`, from its public parts.

    ``L = mean((R(y) - noise)^2)``, so ``dL/dR = 2 (R(y) - noise) / size``; returns
    ``(loss, params, state, opt_state)``, new dicts (the inputs are untouched).
    """
    out, cache, new_state = denoiser_forward(y, params, state, model, train=True)
    diff = out - noise
    _, grads = denoiser_backward(diff * (2.0 / diff.size), cache, model)
    new_params, new_opt = adam_step(params, grads, opt_state, lr=lr)
    return float((diff * diff).mean()), new_params, new_state, new_opt


def check_denoiser_step(denoiser_step: Callable[..., tuple]) -> ExerciseResult:
    """Check a learner's training step of the learned denoiser.

    ``denoiser_step(model, params, state, opt_state, y, noise, lr)`` returns
    ``(loss, params, state, opt_state)``: the forward in training mode, the loss
    ``L = mean((R(y) - n)^2)`` of the predicted noise (DnCNN's residual learning, Zhang et al.,
    TIP 2017), its gradient through :func:`nlref.nn.denoiser.denoiser_backward`, and one
    :func:`nlref.nn.train.adam_step`.  Compared, loss, parameters, BatchNorm statistics and
    Adam's moments (which catch a gradient off by a factor), with :func:`reference_denoiser_step`
    on a tiny float64 network (width 4, depth 2, one block of window 1) and a batch of two
    8 x 8 patches.
    """

    def check() -> ExerciseResult:
        tiny = dict(width=4, depth=2, nl_blocks=1, window=1, inner_channels=2)
        model, params, state = build_denoiser(**tiny, rng=0, dtype=np.float64)
        rng = np.random.default_rng(0)
        noise = 0.1 * rng.standard_normal((2, 1, 8, 8))
        y = rng.random((2, 1, 8, 8)) + noise
        args = (model, params, state, adam_init(params), y, noise, 1e-3)
        mine = denoiser_step(*_copies(args))
        ref = reference_denoiser_step(*args)
        if not isinstance(mine, tuple) or len(mine) != 4:
            note = f"returned {type(mine).__name__}, expected (loss, params, state, opt_state)"
            found = dict(passed=False, output="the step", index=None, got=None, expected=None, note=note)
            return finish("check_denoiser_step", found)
        pairs = [("loss", mine[0], ref[0])]
        # Adam's moments before the parameters: a gradient off by a factor shows there as that factor
        for what, i in (("state", 2), ("opt_state", 3), ("params", 1)):
            got, expected = mine[i], ref[i]
            pairs += [
                (f"{what}[{k!r}]", got.get(k) if hasattr(got, "get") else got, v) for k, v in expected.items()
            ]
        hint = "L = mean((R(y) - n)^2): dL/dR = 2 (R(y) - n) / R.size; then adam_step"
        return finish("check_denoiser_step", compare_all(pairs, rtol=1e-6, atol=1e-12), hint)

    answer = "nlref.nn.train.train_denoiser (its step: denoiser_forward, denoiser_backward, adam_step)"
    return run_checker("check_denoiser_step", answer, denoiser_step, check)


def _copies(args: tuple) -> tuple:
    """Deep enough copies of the step's arguments that a learner's in-place update cannot touch ours."""
    model, params, state, opt_state, y, noise, lr = args
    copy = lambda d: {k: np.array(v, copy=True) for k, v in d.items()}  # noqa: E731
    return model, copy(params), copy(state), copy(opt_state), y.copy(), noise.copy(), lr
