"""SGD (momentum, weight decay), Adam and the step schedule against hand-computed steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.io import save_npz_atomic
from nlref.nn.layers import params_to_numpy, to_backend
from nlref.nn.train import adam_init, adam_step, sgd_init, sgd_step


def scalar_params(xp, value, dtype=np.float64):
    return {"res2.0.conv1.w": xp.full((2, 3), value, dtype=dtype)}


def test_sgd_two_steps_by_hand(xp):
    params = scalar_params(xp, 1.0)
    state = sgd_init(params)
    grads = {"res2.0.conv1.w": xp.full((2, 3), 0.5)}
    p1, s1 = sgd_step(params, grads, state, lr=0.1, momentum=0.9, weight_decay=0.01)
    # g = 0.5 + 0.01 * 1 = 0.51; v = 0.51; p = 1 - 0.1 * 0.51 = 0.949
    np.testing.assert_allclose(to_numpy(p1["res2.0.conv1.w"]), 0.949, rtol=1e-14)
    p2, s2 = sgd_step(p1, grads, s1, lr=0.1, momentum=0.9, weight_decay=0.01)
    # g = 0.5 + 0.00949 = 0.50949; v = 0.9 * 0.51 + 0.50949 = 0.96849; p = 0.949 - 0.096849 = 0.852151
    np.testing.assert_allclose(to_numpy(p2["res2.0.conv1.w"]), 0.852151, rtol=1e-14)
    np.testing.assert_allclose(to_numpy(s2["velocity.res2.0.conv1.w"]), 0.96849, rtol=1e-14)
    assert int(s2["step"]) == 2


def test_sgd_returns_new_dicts_and_keeps_float32(xp):
    params = scalar_params(xp, 1.0, np.float32)
    state = sgd_init(params)
    grads = {"res2.0.conv1.w": xp.ones((2, 3), dtype=np.float32)}
    new_params, new_state = sgd_step(params, grads, state, lr=0.1)
    assert float(params["res2.0.conv1.w"][0, 0]) == 1.0
    assert float(state["velocity.res2.0.conv1.w"][0, 0]) == 0.0
    assert int(state["step"]) == 0
    assert new_params["res2.0.conv1.w"].dtype == new_state["velocity.res2.0.conv1.w"].dtype == np.float32


def test_parameters_without_gradient_are_left_alone(xp):
    params = {"a": xp.ones(2), "b": xp.ones(2)}
    new, _ = sgd_step(params, {"a": xp.ones(2)}, sgd_init(params), lr=0.5, weight_decay=0.0)
    assert new["b"] is params["b"] and float(new["a"][0]) == 0.5
    with pytest.raises(ValueError, match="not in params"):
        sgd_step(params, {"c": xp.ones(2)}, sgd_init(params), lr=0.5)
    with pytest.raises(ValueError, match="shape"):
        sgd_step(params, {"a": xp.ones(3)}, sgd_init(params), lr=0.5)


def test_adam_two_steps_by_hand(xp):
    params = scalar_params(xp, 1.0)
    state = adam_init(params)
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    grads = {"res2.0.conv1.w": xp.full((2, 3), 0.5)}
    p1, s1 = adam_step(params, grads, state, lr=lr, betas=(b1, b2), eps=eps)
    # m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25: p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(to_numpy(p1["res2.0.conv1.w"]), 1 - 0.1 * 0.5 / (0.5 + 1e-8), rtol=1e-12)
    p2, s2 = adam_step(p1, {"res2.0.conv1.w": xp.full((2, 3), -1.0)}, s1, lr=lr, betas=(b1, b2), eps=eps)
    m, v = 0.9 * 0.05 + 0.1 * -1.0, 0.999 * 0.00025 + 0.001 * 1.0
    expected = float(p1["res2.0.conv1.w"][0, 0]) - lr * (m / (1 - b1**2)) / (math.sqrt(v / (1 - b2**2)) + eps)
    np.testing.assert_allclose(to_numpy(p2["res2.0.conv1.w"]), expected, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(s2["m.res2.0.conv1.w"]), m, rtol=1e-12)
    assert int(s2["step"]) == 2


def test_adam_weight_decay_is_added_to_the_gradient(xp):
    params = scalar_params(xp, 2.0)
    zero = {"res2.0.conv1.w": xp.full((2, 3), 0.0)}
    a, _ = adam_step(params, zero, adam_init(params), lr=0.1, weight_decay=0.5)
    b, _ = adam_step(params, {"res2.0.conv1.w": xp.full((2, 3), 1.0)}, adam_init(params), lr=0.1)
    np.testing.assert_allclose(to_numpy(a["res2.0.conv1.w"]), to_numpy(b["res2.0.conv1.w"]), rtol=1e-12)


@pytest.mark.parametrize("init,step", [(sgd_init, sgd_step), (adam_init, adam_step)])
def test_state_saves_to_npz_and_training_resumes_exactly(xp, rng, tmp_path, init, step):
    params = {"fc.w": xp.asarray(rng.standard_normal((3, 4))), "fc.b": xp.asarray(rng.standard_normal(3))}
    grads = [{k: xp.asarray(rng.standard_normal(v.shape)) for k, v in params.items()} for _ in range(4)]
    p, s = params, init(params)
    for g in grads[:2]:
        p, s = step(p, g, s, lr=0.01)
    opt = {f"opt.{k}": v for k, v in params_to_numpy(s).items()}
    save_npz_atomic(tmp_path / "ckpt.npz", {**params_to_numpy(p), **opt})
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    p_r = to_backend({k: v for k, v in loaded.items() if not k.startswith("opt.")}, xp)
    s_r = to_backend({k[4:]: v for k, v in loaded.items() if k.startswith("opt.")}, xp)
    for g in grads[2:]:
        p, s = step(p, g, s, lr=0.01)
        p_r, s_r = step(p_r, g, s_r, lr=0.01)
    for k in p:
        np.testing.assert_array_equal(to_numpy(p[k]), to_numpy(p_r[k]))
    assert int(s_r["step"]) == 4


def test_optimisers_reject_bad_hyperparameters():
    params = {"w": np.ones(2)}
    with pytest.raises(ValueError, match="lr"):
        sgd_step(params, params, sgd_init(params), lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        sgd_step(params, params, sgd_init(params), lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        adam_step(params, params, adam_init(params), lr=0.1, betas=(0.9, 1.5))
