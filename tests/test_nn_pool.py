"""max/avg/global pooling: forward against loops, backward by gradcheck and by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import (
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    max_pool_backward,
    max_pool_forward,
)


def pool_loop(x, k, s, p, reduce, pad_value):
    """One window at a time (tiny shapes only)."""
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p], constant_values=pad_value)
    O = [(S + 2 * pi - ki) // si + 1 for S, pi, ki, si in zip(x.shape[2:], p, k, s)]
    out = np.zeros(x.shape[:2] + tuple(O))
    for i in itertools.product(*(range(o) for o in O)):
        window = xpad[
            (slice(None), slice(None)) + tuple(slice(a * si, a * si + ki) for a, si, ki in zip(i, s, k))
        ]
        out[(slice(None), slice(None)) + i] = reduce(window.reshape(x.shape[:2] + (-1,)), axis=-1)
    return out


CASES = [  # (x shape, kernel, stride, padding) as per-axis tuples
    ((2, 3, 8), (3,), (2,), (1,)),
    ((2, 2, 6, 7), (2, 2), (2, 2), (0, 0)),
    ((1, 2, 7, 6), (3, 3), (2, 1), (1, 1)),
    ((1, 2, 5, 6, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1)),  # the paper's pool1
    ((1, 2, 6, 3, 4), (3, 1, 1), (2, 1, 1), (1, 0, 0)),  # pool2: time only
    ((2, 2, 4, 6, 6), (1, 2, 2), (1, 2, 2), (0, 0, 0)),  # non-local subsampling
]


def distinct_values(rng, shape):
    """No ties and gaps of 0.1, so the arg-max is stable under finite differences."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_max_pool_matches_loop_and_passes_gradcheck(xp, rng, shape, k, s, p):
    x = distinct_values(rng, shape)
    out, _ = max_pool_forward(xp.asarray(x), kernel_size=k, stride=s, padding=p)
    np.testing.assert_array_equal(to_numpy(out), pool_loop(x, k, s, p, np.max, -np.inf))
    mode = "full" if x.size <= 300 else "random"
    gradcheck(
        lambda x, _: max_pool_forward(x, kernel_size=k, stride=s, padding=p),
        max_pool_backward,
        xp.asarray(x),
        mode=mode,
    )


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_avg_pool_matches_loop_and_passes_gradcheck(xp, rng, shape, k, s, p):
    x = rng.standard_normal(shape)
    out, _ = avg_pool_forward(xp.asarray(x), kernel_size=k, stride=s, padding=p)
    np.testing.assert_allclose(to_numpy(out), pool_loop(x, k, s, p, np.mean, 0.0), rtol=1e-12, atol=1e-12)
    mode = "full" if x.size <= 300 else "random"
    gradcheck(
        lambda x, _: avg_pool_forward(x, kernel_size=k, stride=s, padding=p),
        avg_pool_backward,
        xp.asarray(x),
        mode=mode,
    )


def test_max_pool_routes_tied_gradient_to_first_maximum_only(xp):
    x = xp.asarray(np.array([[[1.0, 3.0, 3.0, 2.0]]]))
    out, cache = max_pool_forward(x, kernel_size=4)
    dx, grads = max_pool_backward(xp.ones_like(out), cache)
    np.testing.assert_array_equal(to_numpy(dx), [[[0.0, 1.0, 0.0, 0.0]]])
    assert grads == {}


def test_max_pool_overlapping_windows_accumulate_gradient(xp):
    x = xp.asarray(np.array([[[0.0, 5.0, 1.0, 0.0, 0.0]]]))
    out, cache = max_pool_forward(x, kernel_size=3, stride=1)  # windows' maxima: 5, 5, 1
    dx, _ = max_pool_backward(xp.asarray(np.array([[[1.0, 2.0, 4.0]]])), cache)
    np.testing.assert_array_equal(to_numpy(dx), [[[0.0, 1.0 + 2.0, 4.0, 0.0, 0.0]]])


def test_max_pool_padding_never_wins_for_negative_inputs(xp):
    x = xp.asarray(-np.ones((1, 1, 4, 4)) - np.arange(16).reshape(1, 1, 4, 4))
    out, _ = max_pool_forward(x, kernel_size=3, stride=2, padding=1)
    assert float(out.max()) < 0


def test_global_avg_pool_is_the_spatial_mean_and_passes_gradcheck(xp, rng):
    x = rng.standard_normal((2, 3, 2, 3, 4))
    out, _ = global_avg_pool_forward(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(out), x.mean(axis=(2, 3, 4)), rtol=1e-12)
    gradcheck(lambda x, _: global_avg_pool_forward(x), global_avg_pool_backward, xp.asarray(x))


def test_stride_defaults_to_kernel_size(xp, rng):
    x = xp.asarray(rng.standard_normal((1, 1, 6, 6)))
    a, _ = max_pool_forward(x, kernel_size=2)
    b, _ = max_pool_forward(x, kernel_size=2, stride=2)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize(
    "shape,kwargs,error,match",
    [
        ((1, 1, 4, 4), {"kernel_size": 3, "padding": 2}, ValueError, "half the kernel"),
        ((1, 1, 2, 2), {"kernel_size": 3}, ValueError, "kernel larger than the padded input"),
        ((1, 1, 4, 4), {"kernel_size": 2, "stride": 0}, ValueError, "stride"),
        ((1, 1, 4, 4), {"kernel_size": (2, 2, 2)}, ValueError, "kernel_size"),
        ((4, 4), {"kernel_size": 2}, ValueError, "x must have shape"),
    ],
)
def test_pools_reject_bad_arguments(shape, kwargs, error, match):
    for pool in (max_pool_forward, avg_pool_forward):
        with pytest.raises(error, match=match):
            pool(np.zeros(shape), **kwargs)


def test_pools_reject_float16():
    with pytest.raises(TypeError, match="float16"):
        max_pool_forward(np.zeros((1, 1, 4, 4), np.float16), kernel_size=2)


@st.composite
def pool_configs(draw):
    n = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    s = tuple(draw(st.integers(1, 3)) for _ in range(n))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    S = tuple(max(1, ki - 2 * pi) + draw(st.integers(0, 3)) for ki, pi in zip(k, p))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *S), k, s, p


@settings(max_examples=40, deadline=None)
@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_pools_match_loops_for_random_configurations(config, seed):
    shape, k, s, p = config
    x = distinct_values(np.random.default_rng(seed), shape)
    np.testing.assert_array_equal(
        max_pool_forward(x, kernel_size=k, stride=s, padding=p)[0], pool_loop(x, k, s, p, np.max, -np.inf)
    )
    np.testing.assert_allclose(
        avg_pool_forward(x, kernel_size=k, stride=s, padding=p)[0],
        pool_loop(x, k, s, p, np.mean, 0.0),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("layer", ["max", "avg", "global"])
def test_check_false_skips_validation_but_computes_the_same(rng, layer):
    x = rng.standard_normal((2, 3, 6, 6))
    run = {
        "max": lambda x, **kw: max_pool_forward(x, kernel_size=3, stride=2, padding=1, **kw)[0],
        "avg": lambda x, **kw: avg_pool_forward(x, kernel_size=3, stride=2, padding=1, **kw)[0],
        "global": lambda x, **kw: global_avg_pool_forward(x, **kw)[0],
    }[layer]
    np.testing.assert_array_equal(run(x, check=False), run(x))
    with pytest.raises(TypeError, match="float16"):
        run(x.astype(np.float16))
    run(x.astype(np.float16), check=False)


def max_pool_backward_by_offsets(x, dout, k, s, p):
    """The former backward: offset by offset, each window served by its first offset equal to the max."""
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p], constant_values=-np.inf)
    out = pool_loop(x, k, s, p, np.max, -np.inf)
    dx_pad, taken = np.zeros_like(xpad), np.zeros(out.shape, dtype=bool)
    for off in itertools.product(*(range(ki) for ki in k)):
        sl = (slice(None), slice(None)) + tuple(
            slice(o, o + si * (O - 1) + 1, si) for o, si, O in zip(off, s, out.shape[2:])
        )
        mask = (xpad[sl] == out) & ~taken
        dx_pad[sl] += dout * mask
        taken |= mask
    return dx_pad[(slice(None), slice(None)) + tuple(slice(pi, pi + S) for S, pi in zip(x.shape[2:], p))]


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_max_pool_scatter_backward_equals_the_former_per_offset_masks_with_many_ties(xp, rng, shape, k, s, p):
    x = rng.integers(0, 3, shape).astype(np.float32)  # three values: ties in almost every window
    out, cache = max_pool_forward(xp.asarray(x), kernel_size=k, stride=s, padding=p)
    np.testing.assert_array_equal(to_numpy(out), pool_loop(x, k, s, p, np.max, -np.inf))
    dout = rng.integers(1, 5, out.shape).astype(np.float32)  # small integers: the sums are exact
    dx, _ = max_pool_backward(xp.asarray(dout), cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    np.testing.assert_array_equal(to_numpy(dx), max_pool_backward_by_offsets(x, dout, k, s, p))
