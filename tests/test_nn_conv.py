"""conv_forward / conv_backward: forward against direct loops and scipy, backward by gradcheck."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import conv_backward, conv_forward, conv_output_shape


def conv_loop(x, w, b, stride, padding, dilation):
    """Direct definition: one dot product per output position (tiny shapes only)."""
    n = x.ndim - 2
    s, p, d = (tuple([v] * n) if isinstance(v, int) else v for v in (stride, padding, dilation))
    k = w.shape[2:]
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    O = [(S + 2 * pi - di * (ki - 1) - 1) // si + 1 for S, pi, di, ki, si in zip(x.shape[2:], p, d, k, s)]
    out = np.zeros((x.shape[0], w.shape[0], *O))
    for i in itertools.product(*(range(o) for o in O)):
        window = xpad[
            (slice(None), slice(None))
            + tuple(slice(ii * si, ii * si + di * (ki - 1) + 1, di) for ii, si, di, ki in zip(i, s, d, k))
        ]
        axes = (range(1, x.ndim), range(1, x.ndim))
        out[(slice(None), slice(None)) + i] = np.tensordot(window, w, axes=axes)
    return out + (0 if b is None else b.reshape((1, -1) + (1,) * n))


CASES = [  # (x shape, w shape, stride, padding, dilation)
    ((2, 3, 7), (4, 3, 3), 1, 0, 1),
    ((2, 3, 9), (2, 3, 2), 2, 1, 2),
    ((2, 2, 5, 6), (3, 2, 3, 3), 1, 1, 1),
    ((1, 3, 7, 6), (2, 3, 3, 2), (2, 1), (1, 0), (1, 2)),
    ((2, 4, 5, 5), (3, 4, 1, 1), 1, 0, 1),
    ((1, 2, 4, 5, 5), (2, 2, 3, 3, 3), 1, 1, 1),
    ((1, 2, 5, 4, 6), (3, 2, 3, 1, 1), (2, 1, 1), (1, 0, 0), 1),
    ((2, 2, 3, 4, 4), (2, 2, 1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1)),
]


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", CASES)
def test_conv_forward_matches_direct_loop(xp, rng, x_shape, w_shape, stride, padding, dilation):
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    out, _ = conv_forward(
        xp.asarray(x),
        {"w": xp.asarray(w), "b": xp.asarray(b)},
        stride=stride,
        padding=padding,
        dilation=dilation,
    )
    np.testing.assert_allclose(
        to_numpy(out), conv_loop(x, w, b, stride, padding, dilation), rtol=1e-10, atol=1e-10
    )


def test_conv3d_matches_scipy_signal_correlate(xp, rng):
    x = rng.standard_normal((2, 3, 4, 6, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3, 3)).astype(np.float32)
    out, _ = conv_forward(xp.asarray(x), {"w": xp.asarray(w)})
    ref = np.array(
        [
            [sum(scipy.signal.correlate(x[n, c], w[o, c], mode="valid") for c in range(3)) for o in range(2)]
            for n in range(2)
        ]
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", CASES)
def test_conv_backward_passes_gradcheck(xp, rng, x_shape, w_shape, stride, padding, dilation):
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    mode = "full" if x.size + w.size < 400 else "random"
    report = gradcheck(
        lambda x, p: conv_forward(x, p, stride=stride, padding=padding, dilation=dilation),
        conv_backward,
        xp.asarray(x),
        {"w": xp.asarray(w), "b": xp.asarray(b)},
        mode=mode,
    )
    assert report.worst_error < 1e-6


def test_conv_without_bias_returns_only_w_gradient(xp, rng):
    x, w = xp.asarray(rng.standard_normal((1, 2, 5))), xp.asarray(rng.standard_normal((3, 2, 3)))
    out, cache = conv_forward(x, {"w": w})
    _, grads = conv_backward(xp.ones_like(out), cache)
    assert set(grads) == {"w"}
    gradcheck(conv_forward, conv_backward, x, {"w": w})


def test_conv_backward_without_dx_gives_the_same_weight_gradients(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 4, 6, 6)))
    params = {"w": xp.asarray(rng.standard_normal((4, 3, 3, 3, 3))), "b": xp.asarray(rng.standard_normal(4))}
    out, cache = conv_forward(x, params, stride=(1, 2, 2), padding=1)
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx_full, full = conv_backward(dout, cache)
    dx, partial = conv_backward(dout, cache, need_dx=False)
    assert dx is None and dx_full.shape == x.shape
    # weight gradients by finite differences are covered above; here: identical to the full backward
    for key in ("w", "b"):
        np.testing.assert_array_equal(to_numpy(partial[key]), to_numpy(full[key]))


def test_conv_output_shape_follows_formula():
    assert conv_output_shape((8, 28, 28), 3, stride=1, padding=1) == (8, 28, 28)
    assert conv_output_shape((32, 224, 224), (1, 7, 7), stride=(2, 2, 2), padding=(0, 3, 3)) == (16, 112, 112)
    assert conv_output_shape((9,), 3, dilation=2) == (5,)


def test_conv_float32_stays_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    w = xp.asarray(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    out, cache = conv_forward(x, {"w": w}, padding=1)
    dx, grads = conv_backward(out, cache)
    assert out.dtype == dx.dtype == grads["w"].dtype == np.float32


@pytest.mark.parametrize(
    "x_shape,w_shape,kwargs,error,match",
    [
        ((1, 3, 5, 5), (2, 4, 3, 3), {}, ValueError, "channel mismatch"),
        ((1, 3, 2, 2), (2, 3, 3, 3), {}, ValueError, "kernel larger than the padded input"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": 0}, ValueError, "stride"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": (1, -1)}, ValueError, "stride"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": -1}, ValueError, "padding"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"dilation": 0}, ValueError, "dilation"),
        ((5, 5), (2, 5), {}, ValueError, "x must have shape"),
        ((1, 3, 5, 5), (2, 3, 3), {}, ValueError, "kernel axes"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": (1, 1, 1)}, ValueError, "stride"),
    ],
)
def test_conv_rejects_bad_arguments(x_shape, w_shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv_forward(np.zeros(x_shape), {"w": np.zeros(w_shape)}, **kwargs)


def test_conv_rejects_float16_mixed_dtypes_and_mixed_backends(fake_cupy_array):
    x, w = np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 3, 3))
    with pytest.raises(TypeError, match="float16"):
        conv_forward(x.astype(np.float16), {"w": w.astype(np.float16)})
    with pytest.raises(TypeError, match="dtype"):
        conv_forward(x.astype(np.float32), {"w": w})
    with pytest.raises(TypeError, match="mixed array backends"):
        conv_forward(x, {"w": fake_cupy_array(w)})
    with pytest.raises(ValueError, match="'w'"):
        conv_forward(x, {"b": np.zeros(1)})
    with pytest.raises(ValueError, match="params\\['b'\\]"):
        conv_forward(x, {"w": w, "b": np.zeros(3)})


@st.composite
def conv_configs(draw):
    n = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 3)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    p = tuple(draw(st.integers(0, min(2, d_ * (k_ - 1)))) for k_, d_ in zip(k, d))  # conv_forward's limit
    S = tuple(max(1, d_ * (k_ - 1) + 1 - 2 * p_) + draw(st.integers(0, 3)) for k_, d_, p_ in zip(k, d, p))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))), S, k, s, p, d


@settings(max_examples=40, deadline=None)
@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv_matches_loop_and_its_backward_is_the_adjoint(config, seed):
    """Forward against the loop; and <conv(x), y> = <x, dx(y)> = <w, dw(y)> (conv is bilinear)."""
    (N, C_in, C_out), S, k, s, p, d = config
    g = np.random.default_rng(seed)
    x, w = g.standard_normal((N, C_in, *S)), g.standard_normal((C_out, C_in, *k))
    out, cache = conv_forward(x, {"w": w}, stride=s, padding=p, dilation=d)
    np.testing.assert_allclose(out, conv_loop(x, w, None, s, p, d), rtol=1e-10, atol=1e-10)
    y = g.standard_normal(out.shape)
    dx, grads = conv_backward(y, cache)
    assert np.isclose((out * y).sum(), (x * dx).sum(), rtol=1e-10, atol=1e-10)
    assert np.isclose((out * y).sum(), (w * grads["w"]).sum(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- padding_mode


def _edge_pad_then_zero_pad(x, p, modes):
    """Oracle: numpy.pad(mode="edge") on the replicate axes, then zeros on the others."""
    edge = [(0, 0), (0, 0)] + [(pi, pi) if m == "replicate" else (0, 0) for pi, m in zip(p, modes)]
    zero = [0 if m == "replicate" else pi for pi, m in zip(p, modes)]
    return np.pad(x, edge, mode="edge"), tuple(zero)


@pytest.mark.parametrize(
    "modes", [("replicate", "zeros", "zeros"), ("replicate",) * 3, ("zeros", "replicate", "zeros")]
)
def test_replicate_padding_equals_edge_padding_by_numpy_pad(xp, rng, modes):
    x = rng.standard_normal((2, 3, 4, 5, 6))
    w = rng.standard_normal((4, 3, 3, 3, 3))
    p = (2, 1, 1)  # 2 > the 1 frame a 3-frame kernel needs: every padded frame must be the edge frame
    xe, zero = _edge_pad_then_zero_pad(x, p, modes)
    expected, _ = conv_forward(xe, {"w": w}, padding=zero)
    out, _ = conv_forward(xp.asarray(x), {"w": xp.asarray(w)}, padding=p, padding_mode=modes)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "mode", ["replicate", ("replicate", "zeros", "zeros"), ("zeros", "replicate", "replicate")]
)
def test_replicate_padding_backward_passes_gradcheck(xp, rng, mode):
    x = xp.asarray(rng.standard_normal((2, 2, 3, 4, 4)))
    w = xp.asarray(rng.standard_normal((3, 2, 3, 3, 3)))
    report = gradcheck(
        lambda x, p: conv_forward(x, p, stride=(1, 2, 1), padding=(1, 1, 2), padding_mode=mode),
        conv_backward,
        x,
        {"w": w},
    )
    assert report.worst_error < 1e-6


def test_temporal_replicate_padding_is_bit_identical_to_concatenating_edge_frames(rng):
    # The models' former hand-made temporal padding: repeat the edge frames, zero-pad H and W only,
    # and fold the gradient of the repeated frames back onto the edge frames.
    x = rng.standard_normal((2, 3, 5, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((2, 4, 5, 6, 6)).astype(np.float32)
    xc = np.concatenate([x[:, :, :1], x, x[:, :, -1:]], axis=2)
    old, c_old = conv_forward(xc, {"w": w}, padding=(0, 1, 1))
    dxc, g_old = conv_backward(dout, c_old)
    dx_old = dxc[:, :, 1:-1].copy()
    dx_old[:, :, :1] += dxc[:, :, :1].sum(axis=2, keepdims=True)
    dx_old[:, :, -1:] += dxc[:, :, -1:].sum(axis=2, keepdims=True)
    new, c_new = conv_forward(x, {"w": w}, padding=1, padding_mode=("replicate", "zeros", "zeros"))
    dx_new, g_new = conv_backward(dout, c_new)
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(dx_new, dx_old)
    np.testing.assert_array_equal(g_new["w"], g_old["w"])


@pytest.mark.parametrize("mode", ["reflect", ("replicate", "zeros"), 3])
def test_conv_rejects_unknown_padding_modes(mode):
    with pytest.raises(ValueError, match="padding_mode"):
        conv_forward(
            np.zeros((1, 2, 4, 4, 4)), {"w": np.zeros((1, 2, 3, 3, 3))}, padding=1, padding_mode=mode
        )


def test_check_false_skips_validation_but_computes_the_same(rng):
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_array_equal(
        conv_forward(x, {"w": w}, padding=1, check=False)[0], conv_forward(x, {"w": w}, padding=1)[0]
    )
    with pytest.raises(TypeError, match="dtype"):  # the check that check=False leaves to the caller
        conv_forward(x.astype(np.float32), {"w": w})
    conv_forward(x.astype(np.float32), {"w": w}, check=False)


# ----------------------------------------------------------------------------- the former col2im


def col2im_by_offsets(dout, w, x_shape, stride, padding, dilation):
    """The former backward: dcols = W^T dout, each offset's block added into its slice of dx_pad."""
    n = len(x_shape) - 2
    s, p, d = (tuple([v] * n) if isinstance(v, int) else tuple(v) for v in (stride, padding, dilation))
    k, (N, C), O = w.shape[2:], x_shape[:2], dout.shape[2:]
    dcols = w.reshape(w.shape[0], -1).T @ dout.swapaxes(0, 1).reshape(w.shape[0], -1)
    dcols = dcols.reshape((C, -1, N) + O)
    dx_pad = np.zeros((C, N) + tuple(S + 2 * pi for S, pi in zip(x_shape[2:], p)), dtype=dout.dtype)
    for i, off in enumerate(itertools.product(*(range(ki) for ki in k))):
        sl = tuple(slice(oi * di, oi * di + si * (Oi - 1) + 1, si) for oi, di, si, Oi in zip(off, d, s, O))
        dx_pad[(slice(None), slice(None)) + sl] += dcols[:, i]
    inner = tuple(slice(pi, pi + S) for S, pi in zip(x_shape[2:], p))
    return dx_pad[(slice(None), slice(None)) + inner].swapaxes(0, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", CASES)
def test_dx_equals_the_former_per_offset_slice_adds(
    xp, rng, dtype, x_shape, w_shape, stride, padding, dilation
):
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    out, cache = conv_forward(
        xp.asarray(x), {"w": xp.asarray(w)}, stride=stride, padding=padding, dilation=dilation
    )
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, _ = conv_backward(xp.asarray(dout), cache)
    assert dx.dtype == dtype and dx.flags.c_contiguous
    expected = col2im_by_offsets(dout, w, x_shape, stride, padding, dilation)
    strided = any(si != 1 for si in ((stride,) if isinstance(stride, int) else stride))
    if xp is np and strided:  # scatter-add: the same additions in the same order, bit for bit
        np.testing.assert_array_equal(dx, expected)
    else:  # transposed convolution: the same sums in another order
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(to_numpy(dx), expected, rtol=tol, atol=tol)


def test_weight_gradients_are_c_contiguous(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    out, cache = conv_forward(x, {"w": w, "b": np.zeros(4)}, padding=1)
    _, grads = conv_backward(np.ones_like(out), cache)
    assert grads["w"].flags.c_contiguous and grads["b"].flags.c_contiguous
