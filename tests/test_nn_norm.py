"""batch_norm: forward against the formula with numpy.var, running statistics, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import batch_norm_backward, batch_norm_forward


def make(xp, rng, shape):
    C = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    params = {"gamma": rng.standard_normal(C), "beta": rng.standard_normal(C)}
    state = {"running_mean": rng.standard_normal(C), "running_var": rng.random(C) + 0.5}
    to = lambda d: {k: xp.asarray(v) for k, v in d.items()}  # noqa: E731
    return x, params, state, xp.asarray(x), to(params), to(state)


SHAPES = [(4, 3), (2, 3, 5), (2, 2, 3, 4), (2, 2, 2, 3, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_train_mode_normalises_with_batch_statistics(xp, rng, shape):
    x, p, s, x_, p_, s_ = make(xp, rng, shape)
    out, _, new = batch_norm_forward(x_, p_, s_, train=True, momentum=0.2, eps=1e-5)
    axes = (0,) + tuple(range(2, x.ndim))
    b = (1, -1) + (1,) * (x.ndim - 2)
    mu, var = x.mean(axis=axes), np.var(x, axis=axes)
    ref = p["gamma"].reshape(b) * (x - mu.reshape(b)) / np.sqrt(var.reshape(b) + 1e-5) + p["beta"].reshape(b)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(new["running_mean"]), 0.8 * s["running_mean"] + 0.2 * mu, rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(new["running_var"]), 0.8 * s["running_var"] + 0.2 * np.var(x, axis=axes, ddof=1), rtol=1e-12
    )


def test_state_is_returned_not_mutated(xp, rng):
    x, p, s, x_, p_, s_ = make(xp, rng, (2, 3, 4))
    batch_norm_forward(x_, p_, s_, train=True)
    np.testing.assert_array_equal(to_numpy(s_["running_mean"]), s["running_mean"])
    np.testing.assert_array_equal(to_numpy(s_["running_var"]), s["running_var"])


def test_eval_mode_uses_running_statistics(xp, rng):
    x, p, s, x_, p_, s_ = make(xp, rng, (2, 3, 4, 4))
    out, _, new = batch_norm_forward(x_, p_, s_, train=False, eps=1e-3)
    b = (1, -1, 1, 1)
    x_hat = (x - s["running_mean"].reshape(b)) / np.sqrt(s["running_var"].reshape(b) + 1e-3)
    ref = p["gamma"].reshape(b) * x_hat + p["beta"].reshape(b)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-10)
    np.testing.assert_array_equal(to_numpy(new["running_mean"]), s["running_mean"])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_passes_gradcheck(xp, rng, shape, train):
    _, _, _, x_, p_, s_ = make(xp, rng, shape)
    report = gradcheck(
        lambda x, p: batch_norm_forward(x, p, s_, train=train), batch_norm_backward, x_, p_, eps=1e-5
    )
    assert report.worst_error < 1e-6


def test_zero_gamma_makes_output_beta(xp, rng):
    """The non-local block's identity initialisation: BN with gamma = 0 outputs beta."""
    _, _, _, x_, p_, s_ = make(xp, rng, (2, 3, 4))
    p_["gamma"] = xp.zeros(3)
    out, _, _ = batch_norm_forward(x_, p_, s_, train=True)
    np.testing.assert_allclose(to_numpy(out), np.broadcast_to(to_numpy(p_["beta"])[None, :, None], (2, 3, 4)))


def test_float32_in_float32_out(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 4)).astype(np.float32))
    params = {"gamma": xp.ones(3, dtype=np.float32), "beta": xp.zeros(3, dtype=np.float32)}
    state = {"running_mean": xp.zeros(3, dtype=np.float32), "running_var": xp.ones(3, dtype=np.float32)}
    out, cache, new = batch_norm_forward(x, params, state, train=True)
    dx, grads = batch_norm_backward(out, cache)
    assert out.dtype == dx.dtype == grads["gamma"].dtype == new["running_var"].dtype == np.float32


def test_batch_norm_rejects_bad_arguments():
    x = np.zeros((2, 3, 4))
    p = {"gamma": np.ones(3), "beta": np.zeros(3)}
    s = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    with pytest.raises(ValueError, match="gamma"):
        batch_norm_forward(x, {"gamma": np.ones(4), "beta": np.zeros(3)}, s, train=True)
    with pytest.raises(ValueError, match="running_var"):
        batch_norm_forward(x, p, {"running_mean": np.zeros(3)}, train=True)
    with pytest.raises(ValueError, match="more than one value"):
        batch_norm_forward(np.zeros((1, 3)), p, s, train=True)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm_forward(x, p, s, train=True, momentum=2.0)
    with pytest.raises(TypeError, match="train"):
        batch_norm_forward(x, p, s, train="yes")
    with pytest.raises(TypeError, match="float16"):
        batch_norm_forward(x.astype(np.float16), p, s, train=True)
    with pytest.raises(ValueError, match="x must have shape"):
        batch_norm_forward(np.zeros(3), p, s, train=True)


def test_check_false_skips_validation_but_computes_the_same(rng):
    x, params, state, *_ = make(np, rng, (4, 3, 5))
    out, _, st = batch_norm_forward(x, params, state, train=True)
    out2, _, st2 = batch_norm_forward(x, params, state, train=True, check=False)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(st2["running_var"], st["running_var"])
    with pytest.raises(TypeError, match="train"):
        batch_norm_forward(x, params, state, train=1)
    batch_norm_forward(x, params, state, train=1, check=False)  # the caller vouched for its arguments
    with pytest.raises(ValueError, match="more than one value"):  # a property of the data: always checked
        batch_norm_forward(x[:1, :, :1], params, state, train=True, check=False)
