"""The notebooks' exercise checkers: each accepts the library's answer, rejects a planted wrong one
(saying where), and turns the notebook's blank (``NotImplementedError``) into a printed line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import nlref.exercises as ex
from nlref.denoise.bm3d.filtering import hard_threshold
from nlref.denoise.fast import window_sum
from nlref.nn import nonlocal_op_backward, nonlocal_op_forward
from nlref.nn.denoiser import build_denoiser, denoiser_backward, denoiser_forward
from nlref.nn.train import DENOISER_PRESETS, adam_init, adam_step, noisy_batch, step_rng, train_denoiser
from nlref.nn.train.step import AUG
from nlref.nn.video import inflate_2d_to_3d


def nlm_weight(patch_i, patch_j, h, sigma):
    d2 = ((patch_i - patch_j) ** 2).mean()
    return np.exp(-max(d2 - 2 * sigma**2, 0.0) / h**2)


def box_sum(image, size):
    return window_sum(window_sum(image, size, 0), size, 1)


def threshold(spectrum, t):
    kept, weight = hard_threshold(spectrum[None, None], [t])
    return kept[0, 0], weight[0, 0]


def embedded_gaussian(theta, phi, g):
    return nonlocal_op_forward(theta[None], phi[None], g[None], f="embedded_gaussian")[0][0]


def softmax_without_the_max(theta, phi, g):
    with np.errstate(over="ignore", invalid="ignore"):  # exp overflows: inf / inf
        e = np.exp(theta @ phi.T)
        return (e / e.sum(axis=1, keepdims=True)) @ g


def softmax_backward(dA, A):
    return A * (dA - (A * dA).sum(axis=-1, keepdims=True))


def dot_product_backward(dy, theta, phi, g):
    _, cache = nonlocal_op_forward(theta, phi, g, f="dot_product", memory="dense")
    return nonlocal_op_backward(dy, cache)[0]


def inflate(w, t):
    target = {"w": np.zeros(w.shape[:2] + (t,) + w.shape[2:])}
    return inflate_2d_to_3d({"w": w}, target)["w"]


def step_without_the_two(model, params, state, opt_state, y, noise, lr):
    """dL/dR off by a factor 2: Adam's first update divides most of it out, its moments do not."""
    out, cache, new_state = denoiser_forward(y, params, state, model, train=True)
    diff = out - noise
    _, grads = denoiser_backward(diff / diff.size, cache, model)
    new_params, new_opt = adam_step(params, grads, opt_state, lr=lr)
    return float((diff * diff).mean()), new_params, new_state, new_opt


# (checker, the library's answer, a planted wrong answer, the output where it must be caught)
CASES = {
    "nlm_weight": (
        ex.check_nlm_weight,
        nlm_weight,
        lambda p, q, h, s: np.exp(-((p - q) ** 2).sum() / h**2),  # a sum, not a mean
        "denoised pixel (sigma=0)",
    ),
    "box_sum": (ex.check_box_sum, box_sum, lambda x, s: box_sum(x, s) / s**2, "box_sum(image, 3)"),
    "hard_threshold": (
        ex.check_hard_threshold,
        threshold,
        lambda sp, t: (sp * (np.abs(sp) >= t), 1 / max((np.abs(sp) >= t).sum(), 1)),  # >= instead of >
        "spectrum (at the threshold)",
    ),
    "embedded_gaussian": (
        ex.check_embedded_gaussian,
        embedded_gaussian,
        softmax_without_the_max,
        "y (large logits)",
    ),
    "softmax_backward": (
        ex.check_softmax_backward,
        softmax_backward,
        lambda dA, A: A * (dA - (A * dA).sum(axis=-2, keepdims=True)),  # summed over the wrong axis
        "dS",
    ),
    "dot_product_backward": (
        ex.check_dot_product_backward,
        dot_product_backward,
        lambda dy, t, p, g: (*dot_product_backward(dy, t, p, g)[:2], 0 * g),  # dg forgotten
        "dg",
    ),
    "inflate": (ex.check_inflate, inflate, lambda w, t: np.repeat(w[:, :, None], t, axis=2), "inflate(w"),
    "denoiser_step": (ex.check_denoiser_step, ex.reference_denoiser_step, step_without_the_two, "opt_state"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_accepts_the_library_answer(name, capsys):
    check, right, _, _ = CASES[name]
    result = check(right)
    assert result.passed and result.exercise == f"check_{name}"
    assert capsys.readouterr().out.strip() == result.message
    assert result.message.startswith(f"check_{name}: passed")


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_rejects_a_planted_wrong_answer_and_says_where(name, capsys):
    check, right, wrong, output = CASES[name]
    result = check(wrong)
    assert not result.passed
    assert result.output.startswith(output), result.message
    assert result.worst_index is not None and result.got is not None and result.expected is not None
    assert result.got != pytest.approx(result.expected, rel=1e-6) or not np.isfinite(result.got)
    assert f"FAILED at {result.output}" in result.message
    assert capsys.readouterr().out.strip() == result.message


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_blank_prints_where_the_answer_lives_and_does_not_raise(name, capsys):
    check = CASES[name][0]

    def blank(*args):
        raise NotImplementedError("fill me in")

    result = check(blank)
    out = capsys.readouterr().out.strip()
    assert not result.passed and result.worst_index is None
    assert out.startswith("not implemented yet: the library's answer is nlref.")
    assert out == result.message


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_non_callable_gets_one_line(name):
    with pytest.raises(TypeError, match=f"check_{name} needs your function.*received int"):
        CASES[name][0](3)


def test_result_is_frozen():
    result = ex.check_inflate(inflate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = False


def test_a_wrong_shape_is_reported_not_raised(capsys):
    result = ex.check_inflate(lambda w, t: w)
    assert not result.passed and "returned shape (4, 2, 3, 3), expected (4, 2, 3, 3, 3)" in result.message


def test_a_missing_gradient_is_reported():
    result = ex.check_dot_product_backward(lambda dy, t, p, g: (t, p))
    assert not result.passed and result.output == "dg" and "no gradient" in result.message


def test_reference_denoiser_step_is_the_step_of_train_denoiser():
    """The checker's oracle against the trainer: one step of train_denoiser from the same start."""
    cfg = dataclasses.replace(DENOISER_PRESETS["quick"], steps=1, eval_every=1, n_val=1, dtype="float64")
    images = [np.random.default_rng(0).random((24, 24))]
    run = train_denoiser(cfg, images, progress=False)
    model, params, state = build_denoiser(**cfg.arch(), rng=cfg.seed, dtype=np.float64)
    y, noise = noisy_batch(
        images,
        step_rng(cfg.seed, AUG, 0),
        n=cfg.batch_size,
        patch=cfg.patch,
        sigma=cfg.sigma,
        dtype=np.float64,
    )
    opt = adam_init(params)
    _, new_params, _, _ = ex.reference_denoiser_step(model, params, state, opt, y, noise, cfg.lr)
    assert run["step"] == 1
    for k, v in new_params.items():
        np.testing.assert_allclose(run["params"][k], v, rtol=1e-12, atol=1e-15, err_msg=k)
