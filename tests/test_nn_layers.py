"""linear, relu, dropout, softmax, cross-entropy, initialisers and parameter dicts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import (
    dropout_backward,
    dropout_forward,
    he_normal,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    scope,
    softmax,
    softmax_cross_entropy,
    unscope,
)
from nlref.nn.layers import gaussian, merge, ones, params_to_numpy, to_backend, zeros


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 2, 3), (1, 3, 2, 2, 3)])
def test_linear_is_a_channel_matmul_and_passes_gradcheck(xp, rng, shape):
    x, w, b = rng.standard_normal(shape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    out, _ = linear_forward(xp.asarray(x), {"w": xp.asarray(w), "b": xp.asarray(b)})
    ref = np.moveaxis(np.tensordot(w, x, axes=(1, 1)), 0, 1) + b.reshape((1, 4) + (1,) * (x.ndim - 2))
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-12, atol=1e-12)
    gradcheck(linear_forward, linear_backward, xp.asarray(x), {"w": xp.asarray(w), "b": xp.asarray(b)})
    gradcheck(linear_forward, linear_backward, xp.asarray(x), {"w": xp.asarray(w)})


def test_linear_rejects_channel_mismatch_and_float16():
    with pytest.raises(ValueError, match="C_in=3"):
        linear_forward(np.zeros((2, 3, 4)), {"w": np.zeros((4, 5))})
    with pytest.raises(TypeError, match="float16"):
        linear_forward(np.zeros((2, 3), np.float16), {"w": np.zeros((4, 3), np.float16)})


def test_relu_forward_and_gradcheck(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    out, _ = relu_forward(xp.asarray(x))
    np.testing.assert_array_equal(to_numpy(out), np.where(x > 0, x, 0))
    gradcheck(lambda x, _: relu_forward(x), relu_backward, xp.asarray(x))


def test_dropout_is_inverted_seeded_and_identity_in_eval(xp, rng):
    x = xp.asarray(np.ones((200, 50)))
    a, _ = dropout_forward(x, p=0.3, train=True, rng=7)
    b, _ = dropout_forward(x, p=0.3, train=True, rng=np.random.default_rng(7))
    a_np = to_numpy(a)
    np.testing.assert_array_equal(a_np, to_numpy(b))
    assert set(np.unique(a_np)) == {0.0, 1 / 0.7}
    assert abs((a_np == 0).mean() - 0.3) < 0.02
    e, cache = dropout_forward(x, p=0.3, train=False)
    assert e is x and dropout_backward(x, cache)[0] is x


def test_dropout_passes_gradcheck(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 4, 5)))
    gradcheck(lambda x, _: dropout_forward(x, p=0.5, train=True, rng=3), dropout_backward, x)


def test_dropout_rejects_bad_p_and_missing_rng():
    with pytest.raises(ValueError, match="p must"):
        dropout_forward(np.zeros(3), p=1.0, train=True, rng=0)
    with pytest.raises(ValueError, match="rng"):
        dropout_forward(np.zeros(3), p=0.5, train=True)


def test_softmax_matches_scipy_and_is_stable(xp, rng):
    x = rng.standard_normal((3, 4, 7)) * 5
    np.testing.assert_allclose(
        to_numpy(softmax(xp.asarray(x))), scipy.special.softmax(x, axis=-1), rtol=1e-12
    )
    np.testing.assert_allclose(
        to_numpy(softmax(xp.asarray(x), axis=1)), scipy.special.softmax(x, axis=1), rtol=1e-12
    )
    big = to_numpy(softmax(xp.asarray(np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32))))
    assert np.isfinite(big).all() and big[0, 0] == 1.0


def test_cross_entropy_matches_scipy_log_softmax(xp, rng):
    logits, labels = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    loss, dlogits = softmax_cross_entropy(xp.asarray(logits), xp.asarray(labels))
    ref = -scipy.special.log_softmax(logits, axis=1)[np.arange(6), labels].mean()
    assert isinstance(loss, float) and abs(loss - ref) < 1e-12
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(
        to_numpy(dlogits), (scipy.special.softmax(logits, axis=1) - onehot) / 6, rtol=1e-12
    )


def test_cross_entropy_gradient_passes_gradcheck(xp, rng):
    labels = xp.asarray(rng.integers(0, 4, 5))

    def forward(z, _):
        loss, dz = softmax_cross_entropy(z, labels)
        return xp.asarray(loss), dz

    gradcheck(forward, lambda dout, dz: (dout * dz, {}), xp.asarray(rng.standard_normal((5, 4))))


def test_cross_entropy_is_finite_for_huge_logits(xp):
    logits = xp.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32))
    loss, d = softmax_cross_entropy(logits, xp.asarray(np.array([1, 1])))
    assert np.isfinite(loss) and abs(loss - 1e4) < 1 and np.isfinite(to_numpy(d)).all()


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must lie in"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="integer"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_he_normal_has_std_sqrt_two_over_fan_in(xp):
    w = to_numpy(he_normal((64, 32, 3, 3), 0, xp=xp))
    assert w.dtype == np.float32 and w.shape == (64, 32, 3, 3)
    assert abs(w.std() - np.sqrt(2 / (32 * 9))) < 0.02 * np.sqrt(2 / (32 * 9))
    assert abs(to_numpy(he_normal((10, 1000), 0, fan_in=50)).std() - np.sqrt(2 / 50)) < 0.01


def test_initialisers_are_seeded_and_typed(xp):
    a = to_numpy(gaussian((100, 10), 0.01, 3, xp=xp, dtype=np.float64))
    b = to_numpy(gaussian((100, 10), 0.01, np.random.default_rng(3), xp=xp, dtype=np.float64))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64 and abs(a.std() - 0.01) < 0.001
    assert float(zeros(3, xp=xp).sum()) == 0 and float(ones((2, 2), xp=xp).sum()) == 4
    with pytest.raises(TypeError, match="float32 or float64"):
        zeros(3, dtype=np.float16)
    with pytest.raises(TypeError, match="rng"):
        gaussian(3, 1.0, "seed")


def test_scope_unscope_merge_round_trip(xp):
    params = {"nl.theta.w": 1, "nl.theta.b": 2, "nl.phi.w": 3, "fc.w": 4}
    theta = scope(params, "nl.theta")
    assert theta == {"w": 1, "b": 2}
    assert unscope(theta, "nl.theta") == {"nl.theta.w": 1, "nl.theta.b": 2}
    assert merge(unscope(theta, "nl.theta"), {"fc.w": 4}) == {"nl.theta.w": 1, "nl.theta.b": 2, "fc.w": 4}
    with pytest.raises(ValueError, match="duplicate"):
        merge({"a": 1}, {"a": 2})
    moved = to_backend({"w": np.ones(3)}, xp)
    assert type(moved["w"]).__module__.split(".")[0] == xp.__name__
    assert isinstance(params_to_numpy(moved)["w"], np.ndarray)


def test_nlref_nn_exports_the_contract_names():
    import nlref.nn
    import nlref.nn.layers
    import nlref.nn.train

    layers = """linear_forward linear_backward conv_forward conv_backward
    batch_norm_forward batch_norm_backward
    relu_forward relu_backward max_pool_forward max_pool_backward avg_pool_forward avg_pool_backward
    global_avg_pool_forward global_avg_pool_backward dropout_forward dropout_backward
    softmax softmax_cross_entropy
    he_normal gaussian zeros ones scope unscope merge to_backend params_to_numpy""".split()
    optimisers = "sgd_init sgd_step adam_init adam_step".split()
    missing = [name for name in layers if not callable(getattr(nlref.nn.layers, name, None))]
    missing += [name for name in optimisers if not callable(getattr(nlref.nn.train, name, None))]
    assert not missing and set(layers) <= set(nlref.nn.layers.__all__)
    assert set(optimisers) <= set(nlref.nn.train.__all__)


@pytest.mark.parametrize("layer", ["linear", "relu", "dropout"])
def test_check_false_skips_validation_but_computes_the_same(rng, layer):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 3))
    run = {
        "linear": lambda x, **kw: linear_forward(x, {"w": w}, **kw)[0],
        "relu": lambda x, **kw: relu_forward(x, **kw)[0],
        "dropout": lambda x, **kw: dropout_forward(x, p=0.5, train=True, rng=3, **kw)[0],
    }[layer]
    np.testing.assert_array_equal(run(x, check=False), run(x))
    with pytest.raises(TypeError):  # an integer array: rejected by the check, not looked at without it
        run(np.ones((2, 3, 4), dtype=np.int64))
    run(np.ones((2, 3, 4), dtype=np.int64) if layer == "relu" else x.astype(np.float32), check=False)
