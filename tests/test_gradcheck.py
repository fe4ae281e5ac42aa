"""nlref.gradcheck must catch wrong backwards, not only bless right ones."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.gradcheck import GradcheckError, GradcheckReport, gradcheck
from nlref.nn import (
    batch_norm_backward,
    batch_norm_forward,
    linear_backward,
    linear_forward,
    softmax_cross_entropy,
)


def matmul_forward(a, b, params):
    return a @ b, (a, b)


def matmul_backward(dout, cache):
    a, b = cache
    return (dout @ b.T, a.T @ dout), {}


def wrong_transpose_backward(dout, cache):
    """db = a dout instead of a^T dout (square a, so the shapes still agree)."""
    a, b = cache
    return (dout @ b.T, a @ dout), {}


def factor_two_w_backward(dout, cache):
    dx, grads = linear_backward(dout, cache)
    return dx, {**grads, "w": 2 * grads["w"]}


def matvec_forward(x, params):
    """out = W x for x: (C, M), W: (C, C)."""
    return params["w"] @ x, (x, params["w"])


def matvec_backward(dout, cache):
    x, w = cache
    return w.T @ dout, {"w": dout @ x.T}


def transposed_w_backward(dout, cache):
    """dx = W dout instead of W^T dout (square W, so the shapes still agree)."""
    x, w = cache
    return w @ dout, {"w": dout @ x.T}


def missing_bias_backward(dout, cache):
    dx, grads = linear_backward(dout, cache)
    return dx, {"w": grads["w"]}


def bn_backward_without_mean_term(dout, cache):
    """Training-mode BN backward that forgets that the batch mean depends on x."""
    x_hat, gamma, inv_std, train, axes = cache
    b = (1, -1) + (1,) * (dout.ndim - 2)
    g = dout * gamma.reshape(b)
    dx = (g - x_hat * (g * x_hat).mean(axis=axes).reshape(b)) * inv_std.reshape(b)
    return dx, {"gamma": (dout * x_hat).sum(axis=axes), "beta": dout.sum(axis=axes)}


@pytest.fixture
def linear_case(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    params = {"w": xp.asarray(rng.standard_normal((4, 4))), "b": xp.asarray(rng.standard_normal(4))}
    return x, params


@pytest.mark.parametrize("mode", ["full", "random"])
def test_passes_a_right_backward_and_reports_every_name(linear_case, mode):
    x, params = linear_case
    report = gradcheck(linear_forward, linear_backward, x, params, mode=mode)
    assert isinstance(report, GradcheckReport) and report.passed
    assert [e.name for e in report.entries] == ["x", "w", "b"]
    assert report.worst_error < 1e-6
    assert report["w"].n_checked == (16 if mode == "full" else 10)


@pytest.mark.parametrize("mode", ["full", "random"])
def test_fails_on_a_gradient_off_by_a_factor_and_names_the_parameter(linear_case, mode):
    x, params = linear_case
    with pytest.raises(GradcheckError, match="FAILED for w") as info:
        gradcheck(linear_forward, factor_two_w_backward, x, params, mode=mode)
    assert isinstance(info.value, AssertionError)
    report = gradcheck(linear_forward, factor_two_w_backward, x, params, mode=mode, raise_on_failure=False)
    assert report.failed == ["w"]
    entry = report["w"]
    assert entry.worst_error == pytest.approx(1 / 2, rel=1e-4)  # |2a - a| / |2a|
    assert entry.analytic == pytest.approx(2 * entry.numeric, rel=1e-5)


def test_fails_on_a_wrong_transpose(xp, rng):
    x, params = xp.asarray(rng.standard_normal((4, 3))), {"w": xp.asarray(rng.standard_normal((4, 4)))}
    assert gradcheck(matvec_forward, matvec_backward, x, params).passed
    report = gradcheck(matvec_forward, transposed_w_backward, x, params, raise_on_failure=False)
    assert report.failed == ["x"]
    assert len(report["x"].where) == 2  # index of the worst element of x


def test_fails_on_a_wrong_transpose_between_two_inputs(xp, rng):
    a, b = xp.asarray(rng.standard_normal((3, 3))), xp.asarray(rng.standard_normal((3, 3)))
    assert gradcheck(matmul_forward, matmul_backward, (a, b), {}).passed
    report = gradcheck(matmul_forward, wrong_transpose_backward, (a, b), {}, raise_on_failure=False)
    assert report.failed == ["x1"]


def test_fails_on_a_missing_bias_gradient(linear_case):
    x, params = linear_case
    with pytest.raises(GradcheckError, match="no gradient"):
        gradcheck(linear_forward, missing_bias_backward, x, params)
    report = gradcheck(linear_forward, missing_bias_backward, x, params, raise_on_failure=False)
    assert report.failed == ["b"] and report.worst_error == float("inf")


@pytest.mark.parametrize("mode", ["full", "random"])
def test_fails_on_a_missing_term(xp, rng, mode):
    x = xp.asarray(rng.standard_normal((3, 2, 4)) + 2.0)
    params = {"gamma": xp.asarray(rng.standard_normal(2)), "beta": xp.asarray(rng.standard_normal(2))}
    state = {"running_mean": xp.zeros(2), "running_var": xp.ones(2)}
    fwd = lambda x, p: batch_norm_forward(x, p, state, train=True)  # noqa: E731
    assert gradcheck(fwd, batch_norm_backward, x, params, mode=mode, eps=1e-5).passed
    report = gradcheck(fwd, bn_backward_without_mean_term, x, params, mode=mode, raise_on_failure=False)
    assert report.failed == ["x"] and report.worst_error > 1e-2


def test_report_prints_a_table_with_analytic_and_numeric_values(linear_case):
    x, params = linear_case
    report = gradcheck(linear_forward, factor_two_w_backward, x, params, raise_on_failure=False)
    text = str(report)
    assert "FAILED for w" in text and "analytic" in text and "numeric" in text
    assert text.count("\n") == 4  # headline, column names, x, w, b
    assert f"{report['w'].worst_error:.3e}" in text


def test_caller_arrays_are_neither_modified_nor_required_float64(xp, rng):
    x32 = rng.standard_normal((2, 3)).astype(np.float32)
    w32 = rng.standard_normal((2, 3)).astype(np.float32)
    x, params = xp.asarray(x32), {"w": xp.asarray(w32)}
    gradcheck(linear_forward, linear_backward, x, params)
    np.testing.assert_array_equal(to_numpy(x), x32)
    np.testing.assert_array_equal(to_numpy(params["w"]), w32)
    assert x.dtype == np.float32


def test_random_mode_is_seeded(linear_case):
    x, params = linear_case
    options = dict(mode="random", seed=3, raise_on_failure=False)
    a = gradcheck(linear_forward, factor_two_w_backward, x, params, **options)
    b = gradcheck(linear_forward, factor_two_w_backward, x, params, **options)
    assert a["w"].analytic == b["w"].analytic and a["w"].where == b["w"].where


def test_rejects_bad_arguments(linear_case):
    x, params = linear_case
    with pytest.raises(ValueError, match="mode"):
        gradcheck(linear_forward, linear_backward, x, params, mode="some")
    with pytest.raises(ValueError, match="eps"):
        gradcheck(linear_forward, linear_backward, x, params, eps=0)
    with pytest.raises(TypeError, match="floating"):
        gradcheck(linear_forward, linear_backward, np.zeros((2, 3), dtype=int), params)


def test_checks_a_scalar_loss_returned_as_a_float(xp, rng):
    labels = xp.asarray(np.array([0, 2, 1]))
    forward = lambda z, _: softmax_cross_entropy(z, labels)  # noqa: E731  (loss, dlogits)
    x = xp.asarray(rng.standard_normal((3, 4)))
    assert gradcheck(forward, lambda dout, dz: (dout * dz, {}), x).passed
    wrong = gradcheck(
        forward,
        lambda dout, dz: (2 * dout * dz, {}),
        xp.asarray(rng.standard_normal((3, 4))),
        raise_on_failure=False,
    )
    assert wrong.failed == ["x"]


def test_fails_on_a_nan_gradient(linear_case):
    x, params = linear_case

    def nan_backward(dout, cache):
        dx, grads = linear_backward(dout, cache)
        return dx, {**grads, "b": grads["b"] * float("nan")}

    report = gradcheck(linear_forward, nan_backward, x, params, raise_on_failure=False)
    assert report.failed == ["b"] and report.worst_error == float("inf")


def _linear_case(rng):
    x = rng.standard_normal((2, 3))
    return x, {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(4)}


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_non_callable_forward_or_backward_is_named(rng, which):
    x, params = _linear_case(rng)
    fns = {"forward": linear_forward, "backward": linear_backward, which: "not a function"}
    with pytest.raises(TypeError, match=f"gradcheck: {which} must be a callable .*received str"):
        gradcheck(fns["forward"], fns["backward"], x, params)


@pytest.mark.parametrize(
    "returned,received", [(None, "NoneType"), ((1, 2, 3), "tuple of 3"), ([1, 2], "list of 2")]
)
def test_backward_returning_the_wrong_structure_is_named(rng, returned, received):
    x, params = _linear_case(rng)
    with pytest.raises(TypeError, match=rf"backward must return \(dx, grads\), received {received}$"):
        gradcheck(linear_forward, lambda dout, cache: returned, x, params)


def test_backward_grads_that_are_not_a_dict_are_named(rng):
    x, params = _linear_case(rng)

    def list_grads(dout, cache):
        dx, grads = linear_backward(dout, cache)
        return dx, list(grads.values())

    with pytest.raises(TypeError, match="backward's grads must be a dict .*received list of 2"):
        gradcheck(linear_forward, list_grads, x, params)


def test_one_dx_array_for_two_inputs_is_named(rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    match = r"tuple of 2 input gradients for 2 inputs, received ndarray of shape \(3, 3\)"
    with pytest.raises(TypeError, match=match):
        gradcheck(matmul_forward, lambda dout, cache: (dout, {}), (a, b))


@pytest.mark.parametrize("returned,received", [(None, "NoneType"), ("out", "str")])
def test_forward_returning_the_wrong_structure_is_named(rng, returned, received):
    x, params = _linear_case(rng)
    with pytest.raises(TypeError, match=f"forward must return \\(out, cache\\).*received {received}$"):
        gradcheck(lambda x, p: returned, linear_backward, x, params)
    with pytest.raises(TypeError, match=f"forward's out must be an array or a float, received {received}$"):
        gradcheck(lambda x, p: (returned, None), linear_backward, x, params)
