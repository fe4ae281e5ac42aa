"""The windowed non-local operation by offsets against the dense masked form, finite differences, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn.nl import (
    attention_weights,
    local_window_mask,
    nonlocal_op_backward,
    nonlocal_op_forward,
    window_offsets,
    windowed_attention_backward,
    windowed_attention_forward,
    windowed_attention_map,
)

CASES = [  # (spatial shape, window radius)
    ((9,), 0),
    ((9,), 2),
    ((9,), 20),
    ((5, 6), 1),
    ((5, 6), 3),
    ((5, 6), 6),
    ((3, 4, 5), 1),
    ((3, 4, 5), (0, 2, None)),
    ((3, 4, 5), 9),
]


def _inputs(xp, spatial, dtype=np.float64, n=2, ci=3, cg=4, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(xp.asarray(rng.normal(size=(n, c, *spatial)).astype(dtype)) for c in (ci, ci, cg))


def _flat(a):
    """(N, C, *S) -> (N, P, C), the positions-first layout of the dense op."""
    return a.reshape(a.shape[0], a.shape[1], -1).transpose(0, 2, 1)


def _dense(xp, theta, phi, g, window, scale):
    spatial = tuple(theta.shape[2:])
    mask = local_window_mask(spatial, window, xp=xp)
    y, cache = nonlocal_op_forward(
        _flat(theta), _flat(phi), _flat(g), f="embedded_gaussian", scale=scale, mask=mask, memory="dense"
    )
    return y.transpose(0, 2, 1).reshape(g.shape), cache


@pytest.mark.parametrize("spatial, window", CASES)
def test_forward_equals_the_dense_masked_operation(xp, spatial, window):
    theta, phi, g = _inputs(xp, spatial)
    y, _ = windowed_attention_forward(theta, phi, g, window=window, scale=0.7)
    y_ref, _ = _dense(xp, theta, phi, g, window, 0.7)
    np.testing.assert_allclose(to_numpy(y), to_numpy(y_ref), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial", [(7,), (4, 5), (2, 3, 4)])
def test_a_window_covering_the_map_equals_the_unmasked_dense_operation(xp, spatial):
    theta, phi, g = _inputs(xp, spatial)
    y, _ = windowed_attention_forward(theta, phi, g, window=max(spatial), scale=0.5)
    y_ref, _ = nonlocal_op_forward(_flat(theta), _flat(phi), _flat(g), f="embedded_gaussian", scale=0.5)
    y_ref = to_numpy(y_ref).transpose(0, 2, 1).reshape(y.shape)
    np.testing.assert_allclose(to_numpy(y), y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial, window", CASES)
def test_backward_equals_the_dense_masked_backward(xp, spatial, window):
    theta, phi, g = _inputs(xp, spatial)
    y, cache = windowed_attention_forward(theta, phi, g, window=window, scale=0.7)
    _, cache_ref = _dense(xp, theta, phi, g, window, 0.7)
    dy = xp.asarray(np.random.default_rng(9).normal(size=y.shape))
    grads = windowed_attention_backward(dy, cache)
    (dq, dk, dv), _ = nonlocal_op_backward(_flat(dy), cache_ref)
    for got, ref, name in zip(grads, (dq, dk, dv), ("dtheta", "dphi", "dg")):
        ref = ref.transpose(0, 2, 1).reshape(got.shape)
        np.testing.assert_allclose(to_numpy(got), to_numpy(ref), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("spatial, window", [((6,), 2), ((4, 5), 1), ((2, 3, 4), (1, 1, None))])
def test_gradients_match_finite_differences(xp, spatial, window):
    theta, phi, g = _inputs(xp, spatial, n=1, ci=2, cg=2, seed=4)
    report = gradcheck(
        lambda a, b, c, p: windowed_attention_forward(a, b, c, window=window, scale=0.8),
        lambda d, cache: (windowed_attention_backward(d, cache), {}),
        (theta, phi, g),
    )
    assert report.worst_error < 1e-6


def test_window_zero_returns_g(xp):
    theta, phi, g = _inputs(xp, (4, 5))
    y, _ = windowed_attention_forward(theta, phi, g, window=0, scale=1.0)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(g))


def test_two_pixels_by_hand(xp):
    # 1-D map of 2 pixels, one channel, window 1: y_i = sum_j e^{theta_i phi_j} g_j / sum_j e^{theta_i phi_j}
    theta = xp.asarray([[[1.0, 2.0]]])
    phi = xp.asarray([[[0.0, 1.0]]])
    g = xp.asarray([[[10.0, 20.0]]])
    y, _ = windowed_attention_forward(theta, phi, g, window=1)
    w0 = math.exp(1.0) / (1.0 + math.exp(1.0))  # pixel 0 on pixel 1: logits 0, 1
    w1 = math.exp(2.0) / (1.0 + math.exp(2.0))  # pixel 1 on pixel 1: logits 0, 2
    expected = [10 * (1 - w0) + 20 * w0, 10 * (1 - w1) + 20 * w1]
    np.testing.assert_allclose(to_numpy(y)[0, 0], expected, rtol=1e-14)


def test_float32_stays_float32_and_finite_for_large_logits(xp):
    theta, phi, g = _inputs(xp, (8, 8), dtype=np.float32)
    y, cache = windowed_attention_forward(theta * 1e3, phi * 1e3, g, window=3, scale=1.0)
    grads = windowed_attention_backward(xp.ones_like(y), cache)
    for a in (y, *grads):
        assert a.dtype == np.float32 and bool(xp.isfinite(a).all())


def test_offsets_are_clipped_to_the_map():
    assert len(window_offsets((3, 50), 10**9)) == 5 * 99
    assert window_offsets((4,), 1) == [(-1,), (0,), (1,)]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"phi": np.zeros((1, 3, 4, 4))}, ValueError, "phi must have the shape of theta"),
        ({"g": np.zeros((1, 2, 4, 5))}, ValueError, "g \\(N, C_g, \\*S\\)"),
        ({"g": np.zeros((1, 2, 4, 4), dtype=np.float32)}, TypeError, "share one dtype"),
        ({"window": -1}, ValueError, "window must be"),
        ({"scale": float("nan")}, TypeError, "scale must be"),
        ({"theta": np.full((1, 2, 4, 4), np.nan)}, ValueError, "theta must be finite"),
    ],
)
def test_bad_arguments_get_a_clear_error(kwargs, error, match):
    args = {"theta": np.zeros((1, 2, 4, 4)), "phi": np.zeros((1, 2, 4, 4)), "g": np.zeros((1, 2, 4, 4))}
    args.update(kwargs)
    options = {"window": args.pop("window", 1), "scale": args.pop("scale", None)}
    with pytest.raises(error, match=match):
        windowed_attention_forward(args["theta"], args["phi"], args["g"], **options)


@pytest.mark.parametrize("position", [0, 13, (4, 5), (2, 0)])
def test_attention_map_is_the_row_of_the_dense_masked_affinity(xp, position):
    theta, phi, g = _inputs(xp, (5, 6))
    _, cache = windowed_attention_forward(theta, phi, g, window=2, scale=0.7)
    flat = position if isinstance(position, int) else int(np.ravel_multi_index(position, (5, 6)))
    row = attention_weights(
        _flat(theta),
        _flat(phi),
        f="embedded_gaussian",
        scale=0.7,
        mask=local_window_mask((5, 6), 2, xp=xp),
        rows=[flat],
    )
    got = windowed_attention_map(cache, position)
    np.testing.assert_allclose(to_numpy(got).reshape(2, -1), to_numpy(row)[:, 0], rtol=1e-12, atol=1e-15)
