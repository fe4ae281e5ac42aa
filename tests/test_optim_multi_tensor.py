"""Multi-tensor (flat-buffer) SGD and Adam against the per-tensor optimisers of nlref.nn.train.optim."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.nn.train import (
    adam_init,
    adam_step,
    multi_tensor_adam_step,
    multi_tensor_sgd_step,
    sgd_init,
    sgd_step,
)
from nlref.nn.video import build_model


def network_params(xp, dtype=np.float64):
    """The parameters of a small NL C2D: conv, BN, non-local and fc tensors of many shapes."""
    _, params, _ = build_model("c2d", layout="tiny", width=4, nl_blocks=1, rng=0, dtype=dtype, xp=xp)
    return params


def random_grads(xp, rng, params, n):
    return [
        {k: xp.asarray(rng.standard_normal(v.shape).astype(v.dtype)) for k, v in params.items()}
        for _ in range(n)
    ]


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
