"""nlref.nn.video.blocks: the sandwiches against hand-composed layers, gradcheck, space/time folding."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import (
    batch_norm_forward,
    conv_forward,
    init_nonlocal_params,
    nonlocal_block_forward,
    relu_forward,
)
from nlref.nn.layers import unscope
from nlref.nn.video import (
    basic_block_backward,
    basic_block_forward,
    bottleneck_block_backward,
    bottleneck_block_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    head_backward,
    head_forward,
    space_time_fold,
    space_time_nonlocal_backward,
    space_time_nonlocal_forward,
    space_time_unfold,
)


def _conv_bn(rng, name, bn, c_in, c_out, k):
    params = {
        f"{name}.w": rng.standard_normal((c_out, c_in, *k)) / np.sqrt(c_in * np.prod(k)),
        f"{bn}.gamma": 0.5 + rng.random(c_out),
        f"{bn}.beta": 0.1 * rng.standard_normal(c_out),
    }
    state = {
        f"{bn}.running_mean": 0.1 * rng.standard_normal(c_out),
        f"{bn}.running_var": 0.5 + rng.random(c_out),
    }
    return params, state


def _block_params(rng, kind, c_in, inner, proj):
    convs = [(1, 3, 3), (1, 3, 3)] if kind == "basic" else [(1, 1, 1), (3, 3, 3), (1, 1, 1)]
    c_out = inner if kind == "basic" else 4 * inner
    chans = [c_in] + [inner] * (len(convs) - 1) + [c_out]
    params, state = {}, {}
    for j, k in enumerate(convs, start=1):
        p, s = _conv_bn(rng, f"b.conv{j}", f"b.bn{j}", chans[j - 1], chans[j], k)
        params.update(p)
        state.update(s)
    if proj:
        p, s = _conv_bn(rng, "b.proj", "b.proj_bn", c_in, c_out, (1, 1, 1))
        params.update(p)
        state.update(s)
    return params, state


def _by_hand(x, params, state, conv, bn, stride, train, relu=True):
    """Reference: the public layers one after the other (with their checks on)."""
    w = params[f"{conv}.w"]
    out, _ = conv_forward(x, {"w": w}, stride=stride, padding=tuple(k // 2 for k in w.shape[2:]))
    out, _, _ = batch_norm_forward(
        out,
        {"gamma": params[f"{bn}.gamma"], "beta": params[f"{bn}.beta"]},
        {"running_mean": state[f"{bn}.running_mean"], "running_var": state[f"{bn}.running_var"]},
        train=train,
    )
    return relu_forward(out)[0] if relu else out


# ----------------------------------------------------------------------------- forward against the layers


@pytest.mark.parametrize("train", [False, True])
def test_conv_bn_relu_equals_the_three_layers_in_a_row(xp, rng, train):
    params, state = _conv_bn(rng, "conv1", "bn1", 3, 4, (3, 5, 5))
    x = rng.standard_normal((2, 3, 4, 8, 8))
    out, _, new = conv_bn_relu_forward(
        xp.asarray(x),
        {k: xp.asarray(v) for k, v in params.items()},
        {k: xp.asarray(v) for k, v in state.items()},
        "conv1",
        "bn1",
        stride=(1, 2, 2),
        train=train,
    )
    np.testing.assert_allclose(
        to_numpy(out), _by_hand(x, params, state, "conv1", "bn1", (1, 2, 2), train), rtol=1e-12, atol=1e-12
    )
    assert set(new) == set(state)


@pytest.mark.parametrize("kind, proj", [("basic", False), ("basic", True), ("bottleneck", True)])
def test_residual_block_equals_relu_of_branch_plus_shortcut(rng, kind, proj):
    c_in, inner = (4, 4) if not proj else (3, 2)
    params, state = _block_params(rng, kind, c_in, inner, proj)
    x = rng.standard_normal((2, c_in, 3, 6, 6))
    stride = (1, 2, 2) if proj else 1
    n = 2 if kind == "basic" else 3
    strides = [stride, 1] if kind == "basic" else [1, stride, 1]  # the stride is on the 3x3 conv
    h = x
    for j in range(1, n + 1):
        h = _by_hand(h, params, state, f"b.conv{j}", f"b.bn{j}", strides[j - 1], False, relu=j < n)
    short = _by_hand(x, params, state, "b.proj", "b.proj_bn", stride, False, relu=False) if proj else x
    forward = basic_block_forward if kind == "basic" else bottleneck_block_forward
    out, _, _ = forward(x, params, state, "b", stride=stride, proj=proj, train=False)
    np.testing.assert_allclose(out, np.maximum(h + short, 0), rtol=1e-12, atol=1e-12)


def test_block_with_zero_last_gamma_and_beta_is_relu_of_its_input(rng):
    # BN(conv2 ...) = 0 when gamma = beta = 0: only the identity shortcut is left (hand-computed).
    params, state = _block_params(rng, "basic", 4, 4, False)
    params["b.bn2.gamma"][:] = 0
    params["b.bn2.beta"][:] = 0
    x = rng.standard_normal((2, 4, 3, 5, 5))
    out, _, _ = basic_block_forward(x, params, state, "b", train=True)
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_head_is_mean_then_fc(rng):
    x = rng.standard_normal((2, 6, 2, 3, 3))
    params = {"fc.w": rng.standard_normal((4, 6)), "fc.b": rng.standard_normal(4)}
    out, _ = head_forward(x, params, train=False)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3, 4)) @ params["fc.w"].T + params["fc.b"], rtol=1e-12)


# ----------------------------------------------------------------------------- gradients


def _check(forward, backward, x, params, state, **kw):
    def f(x, p):
        out, cache, _ = forward(x, p, state, **kw)
        return out, cache

    return gradcheck(f, backward, x, params, mode="random", n_directions=3)


def test_conv_bn_relu_passes_gradcheck(xp, rng):
    params, state = _conv_bn(rng, "c", "n", 2, 3, (3, 3, 3))
    x = xp.asarray(rng.standard_normal((2, 2, 3, 5, 5)))
    p = {k: xp.asarray(v) for k, v in params.items()}
    s = {k: xp.asarray(v) for k, v in state.items()}
    report = _check(
        conv_bn_relu_forward,
        conv_bn_relu_backward,
        x,
        p,
        s,
        conv="c",
        bn="n",
        padding_mode=("replicate", "zeros", "zeros"),
        train=True,
    )
    assert report.worst_error < 1e-6


@pytest.mark.parametrize("kind, proj", [("basic", False), ("basic", True), ("bottleneck", True)])
def test_residual_blocks_pass_gradcheck(rng, kind, proj):
    c_in = 4 if not proj else 3
    params, state = _block_params(rng, kind, c_in, 4 if not proj else 2, proj)
    forward, backward = {
        "basic": (basic_block_forward, basic_block_backward),
        "bottleneck": (bottleneck_block_forward, bottleneck_block_backward),
    }[kind]
    x = rng.standard_normal((2, c_in, 3, 6, 6))
    report = _check(
        forward, backward, x, params, state, name="b", stride=(1, 2, 2) if proj else 1, proj=proj, train=True
    )
    assert report.worst_error < 1e-6


def test_head_passes_gradcheck(rng):
    params = {"fc.w": rng.standard_normal((4, 6)), "fc.b": rng.standard_normal(4)}
    report = gradcheck(
        lambda x, p: head_forward(x, p, dropout=0.5, train=True, rng=3),
        head_backward,
        rng.standard_normal((2, 6, 2, 3, 3)),
        params,
    )
    assert report.worst_error < 1e-6


# ----------------------------------------------------------------------------- space / time folding


@pytest.mark.parametrize("space_time", ["spacetime", "space", "time"])
def test_unfold_inverts_fold(rng, space_time):
    x = rng.standard_normal((2, 3, 4, 5, 6))
    folded = space_time_fold(x, space_time)
    expected = {"spacetime": (2, 3, 4, 5, 6), "space": (8, 3, 1, 5, 6), "time": (60, 3, 4, 1, 1)}[space_time]
    assert folded.shape == expected
    np.testing.assert_array_equal(space_time_unfold(folded, space_time, x.shape), x)


def _nonlocal_params(rng, mode="embedded_gaussian"):
    p, s = init_nonlocal_params(8, mode=mode, rng=1, dtype=np.float64)
    p["bn.gamma"] = 0.5 + rng.random(8)  # the block starts as the identity: make it do something
    return unscope(p, "nl"), unscope(s, "nl"), p, s


@pytest.mark.parametrize("space_time", ["space", "time"])
def test_space_and_time_blocks_equal_a_loop_over_frames_or_positions(rng, space_time):
    params, state, local_p, local_s = _nonlocal_params(rng)
    x = rng.standard_normal((2, 8, 4, 3, 3))
    z, _, _ = space_time_nonlocal_forward(
        x, params, state, "nl", mode="embedded_gaussian", subsample=False, space_time=space_time, train=False
    )
    expected = np.empty_like(x)
    if space_time == "space":  # each frame on its own
        for t in range(4):
            expected[:, :, t : t + 1] = nonlocal_block_forward(
                x[:, :, t : t + 1], local_p, local_s, mode="embedded_gaussian", train=False
            )[0]
    else:  # each position on its own, across frames
        for i in range(3):
            for j in range(3):
                expected[:, :, :, i : i + 1, j : j + 1] = nonlocal_block_forward(
                    x[:, :, :, i : i + 1, j : j + 1], local_p, local_s, mode="embedded_gaussian", train=False
                )[0]
    np.testing.assert_allclose(z, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("space_time, subsample", [("spacetime", True), ("space", True), ("time", False)])
def test_space_time_nonlocal_passes_gradcheck(rng, space_time, subsample):
    params, state, _, _ = _nonlocal_params(rng, mode="dot_product")
    x = rng.standard_normal((2, 8, 3, 4, 4))
    report = _check(
        space_time_nonlocal_forward,
        space_time_nonlocal_backward,
        x,
        params,
        state,
        name="nl",
        mode="dot_product",
        subsample=subsample,
        space_time=space_time,
        train=True,
    )
    assert report.worst_error < 1e-6


def test_single_pixel_frames_are_not_subsampled(rng):
    params, state, local_p, local_s = _nonlocal_params(rng)
    x = rng.standard_normal((2, 8, 4, 1, 1))
    z, _, _ = space_time_nonlocal_forward(
        x, params, state, "nl", mode="embedded_gaussian", subsample=True, space_time="spacetime", train=False
    )
    expected = nonlocal_block_forward(x, local_p, local_s, mode="embedded_gaussian", train=False)[0]
    np.testing.assert_array_equal(z, expected)
