"""Multi-tensor (flat-buffer) SGD and Adam against the per-tensor optimisers of nlref.nn.optim."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.nn.train import (
    adam_init,
    adam_step,
    flat_adam_init,
    flat_adam_step,
    flat_sgd_init,
    flat_sgd_step,
    flatten_grads,
    flatten_params,
    multi_tensor_adam_step,
    multi_tensor_sgd_step,
    sgd_init,
    sgd_step,
    state_from_dict,
    state_to_dict,
    unflatten,
)
from nlref.nn.video import build_model

SGD = (sgd_init, sgd_step, flat_sgd_init, flat_sgd_step, dict(lr=0.05, momentum=0.9, weight_decay=1e-2))
ADAM = (
    adam_init,
    adam_step,
    flat_adam_init,
    flat_adam_step,
    dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2),
)


def network_params(xp, dtype=np.float64):
    """The parameters of a small NL C2D: conv, BN, non-local and fc tensors of many shapes."""
    _, params, _ = build_model("c2d", layout="tiny", width=4, nl_blocks=1, rng=0, dtype=dtype, xp=xp)
    return params


def random_grads(xp, rng, params, n):
    return [
        {k: xp.asarray(rng.standard_normal(v.shape).astype(v.dtype)) for k, v in params.items()}
        for _ in range(n)
    ]


def test_views_have_the_names_shapes_and_values_of_params_and_write_to_the_buffer(xp):
    params = network_params(xp)
    flat, views = flatten_params(params)
    assert flat.shape == (sum(int(v.size) for v in params.values()),)
    assert list(views) == list(params)
    for k, v in params.items():
        assert views[k].shape == v.shape and views[k].dtype == v.dtype
        np.testing.assert_array_equal(to_numpy(views[k]), to_numpy(v))
    views["fc.b"][...] = 7.0
    assert float(flat[-1]) == 7.0
    flat[0] = -3.0
    assert float(views[next(iter(views))].reshape(-1)[0]) == -3.0


@pytest.mark.parametrize("optimiser", [SGD, ADAM], ids=["sgd", "adam"])
def test_flat_steps_equal_per_tensor_steps(xp, rng, optimiser):
    init, step, flat_init, flat_step, hyper = optimiser
    params = network_params(xp)
    grads = random_grads(xp, rng, params, 5)
    p, s = params, init(params)
    flat, views = flatten_params(params)
    fs = flat_init(flat)
    for g in grads:
        p, s = step(p, g, s, **hyper)
        fs = flat_step(flat, flatten_grads(g, views), fs, **hyper)
    # same equations in the same order: bit for bit on NumPy, to round-off on CuPy (other kernels)
    tol = dict(rtol=0, atol=0) if xp is np else dict(rtol=1e-14, atol=1e-15)
    for k in params:
        np.testing.assert_allclose(to_numpy(views[k]), to_numpy(p[k]), **tol)
    for k, v in state_to_dict(fs, views).items():
        np.testing.assert_allclose(to_numpy(v), to_numpy(s[k]), **tol)
    assert int(fs["step"]) == int(s["step"]) == 5


@pytest.mark.parametrize("optimiser", [SGD, ADAM], ids=["sgd", "adam"])
def test_views_stay_aliased_to_the_buffer_after_steps(xp, rng, optimiser):
    _, _, flat_init, flat_step, hyper = optimiser
    params = network_params(xp)
    flat, views = flatten_params(params)
    before = {k: to_numpy(v).copy() for k, v in views.items()}
    state = flat_init(flat)
    for g in random_grads(xp, rng, params, 2):
        state = flat_step(flat, flatten_grads(g, views), state, **hyper)
    for k, v in unflatten(flat, params).items():
        np.testing.assert_array_equal(to_numpy(views[k]), to_numpy(v))  # the views show the new values
        assert not np.array_equal(to_numpy(views[k]), before[k])


def test_weight_decay_reaches_every_parameter_as_in_sgd_step(xp):
    # zero gradients: only the decay moves the parameters, BatchNorm and biases included
    params = network_params(xp)
    zero = {k: xp.zeros_like(v) for k, v in params.items()}
    p, _ = sgd_step(params, zero, sgd_init(params), lr=0.1, weight_decay=0.5)
    flat, views = flatten_params(params)
    flat_sgd_step(flat, flatten_grads(zero, views), flat_sgd_init(flat), lr=0.1, weight_decay=0.5)
    for k in params:
        np.testing.assert_array_equal(to_numpy(views[k]), to_numpy(p[k]))
        np.testing.assert_allclose(to_numpy(views[k]), 0.95 * to_numpy(params[k]), rtol=1e-15)


def test_state_converts_to_and_from_the_per_tensor_layout(xp, rng):
    params = network_params(xp)
    p, s = params, adam_init(params)
    for g in random_grads(xp, rng, params, 2):
        p, s = adam_step(p, g, s, lr=1e-2)
    flat, views = flatten_params(p)
    fs = state_from_dict(s, views, "adam")
    assert set(state_to_dict(fs, views)) == set(s)
    g = random_grads(xp, rng, params, 1)[0]
    p, s = adam_step(p, g, s, lr=1e-2)
    flat_adam_step(flat, flatten_grads(g, views), fs, lr=1e-2)
    for k in params:
        np.testing.assert_allclose(to_numpy(views[k]), to_numpy(p[k]), rtol=1e-14, atol=1e-15)


def test_float32_stays_float32(xp, rng):
    params = network_params(xp, np.float32)
    flat, views = flatten_params(params)
    state = flat_sgd_init(flat)
    flat_sgd_step(flat, flatten_grads(random_grads(xp, rng, params, 1)[0], views), state, lr=0.1)
    assert flat.dtype == state["velocity"].dtype == views["fc.w"].dtype == np.float32


def test_flat_optimiser_rejects_bad_input():
    params = {"a": np.ones(2), "b": np.ones((2, 3))}
    flat, views = flatten_params(params)
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        flatten_grads({"a": np.ones(2)}, views)
    with pytest.raises(ValueError, match=r"grads\['b'\] must have shape \(2, 3\)"):
        flatten_grads({"a": np.ones(2), "b": np.ones(6)}, views)
    with pytest.raises(TypeError, match="one floating dtype"):
        flatten_params({"a": np.ones(2), "b": np.ones(2, dtype=np.float32)})
    with pytest.raises(ValueError, match="1-D arrays of one shape"):
        flat_sgd_step(flat, np.ones(3), flat_sgd_init(flat), lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        flat_sgd_step(flat, np.ones(8), flat_sgd_init(flat), lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="buffer must hold 8 values"):
        unflatten(np.ones(9), params)


# ----------------------------------------------------------------------------- pure multi-tensor steps

PURE = {
    "sgd": (sgd_init, sgd_step, multi_tensor_sgd_step, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    "adam": (
        adam_init,
        adam_step,
        multi_tensor_adam_step,
        dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2),
    ),
    "adam, no decay": (adam_init, adam_step, multi_tensor_adam_step, dict(lr=1e-2)),
}


@pytest.mark.parametrize("optimiser", PURE.values(), ids=PURE.keys())
def test_multi_tensor_steps_equal_per_tensor_steps_and_leave_their_inputs_alone(xp, rng, optimiser):
    init, step, multi_step, hyper = optimiser
    params = network_params(xp, np.float32)
    p, s = params, init(params)
    mp, ms = params, init(params)
    for g in random_grads(xp, rng, params, 4):
        before = [{k: to_numpy(v).copy() for k, v in d.items()} for d in (mp, ms, g)]
        p, s = step(p, g, s, **hyper)
        new_mp, new_ms = multi_step(mp, g, ms, **hyper)
        for old, d in zip(before, (mp, ms, g)):
            for k in old:
                np.testing.assert_array_equal(to_numpy(d[k]), old[k], err_msg=f"input {k} was modified")
        mp, ms = new_mp, new_ms
    tol = dict(rtol=0, atol=0) if xp is np else dict(rtol=1e-6, atol=1e-7)
    assert list(mp) == list(p) and list(ms) == list(s)
    for k in p:
        np.testing.assert_allclose(to_numpy(mp[k]), to_numpy(p[k]), err_msg=k, **tol)
    for k in s:
        np.testing.assert_allclose(to_numpy(ms[k]), to_numpy(s[k]), err_msg=k, **tol)


def test_multi_tensor_step_without_a_gradient_for_every_parameter_is_the_per_tensor_step(xp, rng):
    params = network_params(xp)
    g = random_grads(xp, rng, params, 1)[0]
    del g["fc.b"]
    expected = sgd_step(params, g, sgd_init(params), lr=0.1)
    got = multi_tensor_sgd_step(params, g, sgd_init(params), lr=0.1)
    for e, d in zip(expected, got):
        for k in e:
            np.testing.assert_array_equal(to_numpy(d[k]), to_numpy(e[k]), err_msg=k)
    assert got[0]["fc.b"] is params["fc.b"]


def test_multi_tensor_steps_validate_like_the_per_tensor_steps(xp):
    params = network_params(xp)
    g = {k: xp.zeros_like(v) for k, v in params.items()}
    with pytest.raises(ValueError, match="lr"):
        multi_tensor_sgd_step(params, g, sgd_init(params), lr=-1.0)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        multi_tensor_adam_step(params, g, adam_init(params), lr=0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"grads\['fc.w'\] must have shape"):
        multi_tensor_sgd_step(params, {**g, "fc.w": g["fc.w"][:1]}, sgd_init(params), lr=0.1)
