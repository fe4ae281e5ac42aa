"""Fuzz: the nn forwards against direct oracles on tiny shapes, and their refusals.

Convolution, pooling, batch norm, the linear map, softmax and the non-local
operation are each compared with a direct NumPy formula (a loop over kernel
offsets, ``einsum``, ``scipy.special.softmax``), on random shapes, strides,
paddings and dilations; the non-local block must be the identity at its
initialisation (BN gamma = 0) and finite for random weights.  Wrong types,
dtypes and shapes must give one clear error.  Outcomes are counted by
:mod:`fuzz_harness`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import softmax as softmax_oracle

from nlref.nn import (
    avg_pool_forward,
    batch_norm_forward,
    conv_forward,
    init_nonlocal_params,
    linear_forward,
    max_pool_forward,
    nonlocal_block_forward,
    nonlocal_op_forward,
    softmax,
)

pytestmark = pytest.mark.fuzz

FLOATS = (np.float32, np.float64)


def _outputs(result):
    """What an nn forward returns that must be finite: ``out`` and a new BN state, not the cache."""
    return [result[0]] + [r for r in result[2:] if isinstance(r, dict)]


def nn_attempt(api, fn, *args, **kwargs):
    return attempt(api, fn, *args, finite_part=_outputs, **kwargs)


def _random(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _tol(dtype):
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


@st.composite
def windows(draw):
    """A layer's spatial geometry: n axes, input size, kernel, stride, padding, dilation."""
    n = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 2)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    size = tuple(draw(st.integers(di * (ki - 1) + 1, 5)) for ki, di in zip(k, d))
    return n, size, k, s, p, d


def _windows_of(x_pad, k, s, d, out_shape):
    """For every kernel offset, the strided slice of ``x_pad`` it multiplies: (offset, slice)."""
    for off in itertools.product(*(range(ki) for ki in k)):
        index = tuple(
            slice(o * di, o * di + (m - 1) * si + 1, si) for o, di, si, m in zip(off, d, s, out_shape)
        )
        yield off, x_pad[(slice(None), slice(None)) + index]


def _out_shape(size, k, s, p, d):
    return tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip(size, k, s, p, d))


@given(
    geo=windows(),
    dtype=st.sampled_from(FLOATS),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    seed=st.integers(0, 99),
)
def test_conv_forward_matches_a_loop_over_kernel_offsets(geo, dtype, c_in, c_out, seed):
    n, size, k, s, p, d = geo
    rng = np.random.default_rng(seed)
    x = _random(rng, (2, c_in) + size, dtype)
    params = {"w": _random(rng, (c_out, c_in) + k, dtype), "b": _random(rng, (c_out,), dtype)}
    got = nn_attempt("conv_forward", conv_forward, x, params, stride=s, padding=p, dilation=d)
    o = _out_shape(size, k, s, p, d)
    x_pad = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    want = np.zeros((2, c_out) + o) + params["b"].astype(np.float64).reshape((1, c_out) + (1,) * n)
    for off, xs in _windows_of(x_pad, k, s, d, o):
        want += np.einsum("nc...,oc->no...", xs, params["w"][(slice(None), slice(None)) + off])
    np.testing.assert_allclose(got.value[0], want, **_tol(dtype))
    got.correct()


@given(
    geo=windows(),
    dtype=st.sampled_from(FLOATS),
    kind=st.sampled_from(("max", "avg")),
    seed=st.integers(0, 99),
)
def test_pooling_matches_a_loop_over_the_window(geo, dtype, kind, seed):
    n, size, k, s, p, _ = geo
    d = (1,) * n
    rng = np.random.default_rng(seed)
    x = _random(rng, (2, 2) + size, dtype, scale=1e3)
    fn = max_pool_forward if kind == "max" else avg_pool_forward
    got = nn_attempt(f"{kind}_pool_forward", fn, x, kernel_size=k, stride=s, padding=p)
    o = _out_shape(size, k, s, p, d)
    fill = -np.inf if kind == "max" else 0.0
    x_pad = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pi, pi) for pi in p], constant_values=fill)
    parts = np.stack([xs for _, xs in _windows_of(x_pad, k, s, d, o)])
    want = parts.max(axis=0) if kind == "max" else parts.mean(axis=0)
    np.testing.assert_allclose(got.value[0], want, **_tol(dtype))
    got.correct()


@given(
    n_spatial=st.integers(0, 3),
    dtype=st.sampled_from(FLOATS),
    train=st.booleans(),
    log_scale=st.sampled_from((-15, -3, 0, 3, 15)),
    constant=st.booleans(),
    seed=st.integers(0, 99),
)
def test_batch_norm_matches_its_formula(n_spatial, dtype, train, log_scale, constant, seed):
    rng = np.random.default_rng(seed)
    shape = (3, 2) + (2,) * n_spatial
    x = _random(rng, shape, dtype, scale=10.0**log_scale)
    if constant:
        x[...] = x.flat[0]
    params = {"gamma": _random(rng, (2,), dtype), "beta": _random(rng, (2,), dtype)}
    state = {"running_mean": _random(rng, (2,), dtype), "running_var": (1 + rng.random(2)).astype(dtype)}
    got = nn_attempt("batch_norm_forward", batch_norm_forward, x, params, state, train=train)
    axes = (0,) + tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    bshape = (1, 2) + (1,) * n_spatial
    if train:
        mu, var = x64.mean(axis=axes), x64.var(axis=axes)
    else:
        mu, var = state["running_mean"].astype(np.float64), state["running_var"].astype(np.float64)
    x_hat = (x64 - mu.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
    want = params["gamma"].reshape(bshape) * x_hat + params["beta"].reshape(bshape)
    # the batch mean's round-off (|x| eps) is amplified by 1 / sqrt(eps_bn) ~ 316 when var ~ 0
    eps = float(np.finfo(dtype).eps)
    tol = {"rtol": 1e3 * eps, "atol": 1e3 * eps * (1 + 10.0**log_scale) * np.abs(params["gamma"]).max()}
    np.testing.assert_allclose(got.value[0], want, **tol)
    got.correct()


@given(
    n_spatial=st.integers(0, 3), dtype=st.sampled_from(FLOATS), bias=st.booleans(), seed=st.integers(0, 99)
)
def test_linear_forward_matches_einsum(n_spatial, dtype, bias, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, (2, 3) + (2,) * n_spatial, dtype)
    params = {"w": _random(rng, (4, 3), dtype)}
    if bias:
        params["b"] = _random(rng, (4,), dtype)
    got = nn_attempt("linear_forward", linear_forward, x, params)
    want = np.einsum("nc...,oc->no...", x.astype(np.float64), params["w"].astype(np.float64))
    if bias:
        want += params["b"].reshape((1, 4) + (1,) * n_spatial)
    np.testing.assert_allclose(got.value[0], want, **_tol(dtype))
    got.correct()


@given(
    dtype=st.sampled_from(FLOATS),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    log_scale=st.sampled_from((0, 2, 30)),
    seed=st.integers(0, 99),
)
def test_softmax_matches_scipy(dtype, shape, log_scale, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, tuple(shape), dtype, scale=10.0**log_scale)
    got = attempt("softmax", softmax, x, axis=-1)
    want = softmax_oracle(x.astype(np.float64), axis=-1)
    np.testing.assert_allclose(got.value, want, **_tol(dtype))
    got.correct()


def _nonlocal_oracle(q, k, v, f, scale, mask, w_f):
    """Wang et al. (2018) Eq. 1 written densely in float64: y_i = 1/C sum_j f(q_i, k_j) v_j."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    allowed = np.ones((q.shape[1], k.shape[1]), bool) if mask is None else mask
    if f in ("gaussian", "embedded_gaussian"):
        logits = (1.0 if scale is None else scale) * np.einsum("nid,njd->nij", q, k)
        logits = np.where(allowed, logits, -np.inf)
        return np.einsum("nij,njc->nic", softmax_oracle(logits, axis=-1), v)
    if f == "dot_product":
        aff = np.einsum("nid,njd->nij", q, k)
    else:
        d = q.shape[2]
        aff = np.maximum(
            (q @ w_f[:d].astype(np.float64))[:, :, None] + (k @ w_f[d:].astype(np.float64))[:, None, :], 0
        )
    aff = np.where(allowed, aff, 0.0) / allowed.sum(axis=1)[None, :, None]
    return np.einsum("nij,njc->nic", aff, v)


@given(
    f=st.sampled_from(("gaussian", "embedded_gaussian", "dot_product", "concatenation")),
    dtype=st.sampled_from(FLOATS),
    nq=st.integers(1, 5),
    nk=st.integers(1, 5),
    masked=st.booleans(),
    memory=st.sampled_from(("auto", "dense", "chunked")),
    scaled=st.booleans(),
    seed=st.integers(0, 99),
)
def test_nonlocal_op_matches_the_dense_formula(f, dtype, nq, nk, masked, memory, scaled, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (
        _random(rng, (2, nq, 3), dtype),
        _random(rng, (2, nk, 3), dtype),
        _random(rng, (2, nk, 2), dtype),
    )
    mask = None
    if masked:
        mask = rng.random((nq, nk)) < 0.6
        mask[np.arange(nq), rng.integers(0, nk, nq)] = True  # every row allows a key
    w_f = _random(rng, (6,), dtype) if f == "concatenation" else None
    scale = 0.5 if scaled and f.endswith("gaussian") else None
    got = nn_attempt(
        "nonlocal_op_forward",
        nonlocal_op_forward,
        q,
        k,
        v,
        f=f,
        scale=scale,
        mask=mask,
        w_f=w_f,
        memory=memory,
        chunk_size=2,
    )
    if got.error is not None:  # the chunked dot product refuses a mask, by design
        assert memory == "chunked" and masked
        return
    want = _nonlocal_oracle(q, k, v, f, scale, mask, w_f)
    np.testing.assert_allclose(got.value[0], want, **_tol(dtype))
    got.correct()


@given(
    mode=st.sampled_from(("gaussian", "embedded_gaussian", "dot_product", "concatenation")),
    dtype=st.sampled_from(FLOATS),
    n_spatial=st.integers(1, 3),
    subsample=st.booleans(),
    train=st.booleans(),
    seed=st.integers(0, 99),
)
def test_nonlocal_block_is_the_identity_at_init_and_finite_after(
    mode, dtype, n_spatial, subsample, train, seed
):
    rng = np.random.default_rng(seed)
    x = _random(rng, (2, 4) + (4,) * n_spatial, dtype)
    params, state = init_nonlocal_params(4, mode=mode, ndim=n_spatial, rng=seed, dtype=dtype)
    sub = 2 if subsample else None

    def attempt(p):
        kwargs = dict(mode=mode, subsample=sub, train=train)
        return nn_attempt("nonlocal_block_forward", nonlocal_block_forward, x, p, state, **kwargs)

    got = attempt(params)
    np.testing.assert_array_equal(got.value[0], x)  # BN gamma = 0: z = x
    got.correct()
    got = attempt({key: _random(rng, a.shape, dtype) for key, a in params.items()})
    assert got.value[0].shape == x.shape
    got.correct()


BAD_X = {
    "list": [[[0.0, 1.0]]],
    "None": None,
    "int": np.zeros((1, 2, 4, 4), np.int64),
    "float16": np.zeros((1, 2, 4, 4), np.float16),
    "complex": np.zeros((1, 2, 4, 4), complex),
    "bool": np.zeros((1, 2, 4, 4), bool),
    "1-D": np.zeros(4),
    "6-D": np.zeros((1, 2, 2, 2, 2, 2)),
    "wrong channels": np.zeros((1, 3, 4, 4)),
}


@given(
    name=st.sampled_from(sorted(BAD_X)),
    layer=st.sampled_from(
        ("conv_forward", "max_pool_forward", "batch_norm_forward", "linear_forward", "nonlocal_block_forward")
    ),
)
def test_invalid_inputs_are_rejected_clearly(name, layer):
    x = BAD_X[name]
    if name == "wrong channels" and layer == "max_pool_forward":
        return  # pooling takes any number of channels
    w = np.ones((2, 2, 3, 3))
    bn = (
        {"gamma": np.ones(2), "beta": np.zeros(2)},
        {"running_mean": np.zeros(2), "running_var": np.ones(2)},
    )
    nl = init_nonlocal_params(2, mode="embedded_gaussian", ndim=2, dtype=np.float64)
    calls = {
        "conv_forward": lambda: conv_forward(x, {"w": w}),
        "max_pool_forward": lambda: max_pool_forward(x, kernel_size=2),
        "batch_norm_forward": lambda: batch_norm_forward(x, *bn, train=True),
        "linear_forward": lambda: linear_forward(x, {"w": np.ones((2, 2))}),
        "nonlocal_block_forward": lambda: nonlocal_block_forward(x, *nl, mode="embedded_gaussian"),
    }
    attempt(layer, calls[layer], must_fail=True)


@given(
    which=st.sampled_from(("stride", "padding", "dilation", "padding_mode")),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 10),
        st.floats(),
        st.text(max_size=2),
        st.lists(st.integers(-1, 3), max_size=3),
    ),
)
def test_adversarial_conv_options_give_a_result_or_a_clear_error(which, value):
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    got = nn_attempt("conv_forward", conv_forward, x, {"w": np.ones((1, 2, 3, 3))}, **{which: value})
    if got.error is None:
        assert got.value[0].ndim == 4
        got.correct()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e20, 1e37])
def test_batch_norm_normalises_float32_values_of_any_finite_scale(scale):
    x = np.array([[1.0], [-1.0], [3.0], [-3.0]], dtype=np.float32) * np.float32(scale)  # x_hat = x / std
    params = {"gamma": np.ones(1, np.float32), "beta": np.zeros(1, np.float32)}
    state = {"running_mean": np.zeros(1, np.float32), "running_var": np.ones(1, np.float32)}
    out, cache, new_state = batch_norm_forward(x, params, state, train=True)
    std = np.sqrt(5.0 * scale**2 + 1e-5)  # biased variance of +-1, +-3 is 5; eps = 1e-5 (the default)
    np.testing.assert_allclose(out.ravel(), x.astype(np.float64).ravel() / std, rtol=1e-5)
    assert np.isfinite(new_state["running_var"]).all() and np.isfinite(cache[2]).all()


@pytest.mark.parametrize("padding", [3, 100, 10**4])
def test_conv_forward_refuses_padding_beyond_the_kernel(padding):
    x = np.ones((1, 1, 6, 7))
    with pytest.raises(ValueError, match=r"padding must be at most dilation \* \(kernel_size - 1\)"):
        conv_forward(x, {"w": np.ones((1, 1, 3, 3))}, padding=padding)
    assert conv_forward(x, {"w": np.ones((1, 1, 3, 3))}, padding=2)[0].shape == (1, 1, 8, 9)


def test_softmax_of_extreme_finite_logits_is_quiet():
    out = softmax(np.array([3e38, -3e38], dtype=np.float32))
    np.testing.assert_array_equal(out, [1.0, 0.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_conv_forward_rejects_non_finite_input(bad):
    x = np.full((1, 1, 4, 4), bad)
    with pytest.raises(ValueError, match="finite"):
        conv_forward(x, {"w": np.ones((1, 1, 3, 3))})
