"""Tests of the local-window option: nlref.nn.local_window_mask and ``window=`` of the op and the block.

Oracles: brute-force loops over (query, key) pairs written from the definition,
a plain loop of ``y_i = 1/|W(i)| sum_{j in W(i)} f(x_i, x_j) g(x_j)``,
hand-computed window-0 cases, finite differences (nlref.gradcheck) and window=None.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nlref.backend import asarray, to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn import NONLOCAL_MODES, local_window_mask, nonlocal_op_forward
from nlref.nn.nl import init_nonlocal_params, nonlocal_block_backward, nonlocal_block_forward


def loop_mask(shape, window, stride):
    """True where a pooled key cell holds an input position within the window of the query."""
    window = (window,) * len(shape) if isinstance(window, int) else window
    stride = (stride,) * len(shape) if isinstance(stride, int) else stride
    key_shape = [n // s for n, s in zip(shape, stride)]
    queries = list(itertools.product(*map(range, shape)))
    keys = list(itertools.product(*map(range, key_shape)))
    mask = np.zeros((len(queries), len(keys)), bool)
    for a, i in enumerate(queries):
        for b, j in enumerate(keys):
            cells = itertools.product(*(range(jj * s, jj * s + s) for jj, s in zip(j, stride)))
            mask[a, b] = any(
                all(k is None or abs(c - ii) <= k for c, ii, k in zip(cell, i, window)) for cell in cells
            )
    return mask


@pytest.mark.parametrize(
    "shape, window, stride",
    [
        ((7,), 2, 1),
        ((4, 5), (1, 2), 1),
        ((3, 4, 4), (1, None, None), 1),
        ((3, 4, 4), (0, 1, None), 1),
        ((8,), 0, 2),
        ((6, 6), (1, 0), (1, 2)),
        ((2, 5, 4), (None, 1, 1), (1, 2, 2)),
    ],
)
def test_mask_matches_a_loop_over_pairs(xp, shape, window, stride):
    mask = local_window_mask(shape, window, stride=stride, xp=xp)
    np.testing.assert_array_equal(to_numpy(mask), loop_mask(shape, window, stride))


def test_window_without_subsampling_is_the_nlm_search_window():
    i = np.arange(6)
    np.testing.assert_array_equal(local_window_mask((6,), 1), np.abs(i[:, None] - i[None, :]) <= 1)


def test_a_query_left_without_keys_is_rejected():
    # 5 positions pooled by 2 -> 2 keys covering positions 0-3: position 4 is out of reach with window 0
    with pytest.raises(ValueError, match="without a key"):
        local_window_mask((5,), 0, stride=2)
    assert local_window_mask((5,), 1, stride=2).any(axis=1).all()
    for bad in (-1, (1, 2), 1.5, "a"):
        with pytest.raises((TypeError, ValueError), match="window"):
            local_window_mask((5,), bad)


def loop_windowed(q, k, v, mask, f, w_f=None):
    """y_i = 1/C_i sum_{j in W(i)} f(x_i, x_j) g(x_j), C_i = sum_j f (Gaussians) or |W(i)|."""
    y = np.zeros((q.shape[0], q.shape[1], v.shape[2]))
    for b, i in itertools.product(range(q.shape[0]), range(q.shape[1])):
        js = np.flatnonzero(mask[i])
        if f.endswith("gaussian"):
            fij = np.exp(np.array([q[b, i] @ k[b, j] for j in js]))
            c_norm = fij.sum()
        elif f == "dot_product":
            fij, c_norm = np.array([q[b, i] @ k[b, j] for j in js]), len(js)
        else:
            fij = np.array([max(0.0, w_f @ np.concatenate([q[b, i], k[b, j]])) for j in js])
            c_norm = len(js)
        y[b, i] = (fij[:, None] * v[b, js]).sum(axis=0) / c_norm
    return y


@pytest.mark.parametrize("f", NONLOCAL_MODES)
@pytest.mark.parametrize("memory", ["dense", "chunked"])
def test_windowed_op_matches_the_loop_with_the_window_size_as_normaliser(xp, rng, f, memory):
    if f == "dot_product" and memory == "chunked":
        pytest.skip("the factorised dot product cannot mask (tested below)")
    q, k, v = (rng.standard_normal(s) for s in [(2, 12, 3), (2, 12, 3), (2, 12, 2)])
    w_f = rng.standard_normal(6) if f == "concatenation" else None
    mask = local_window_mask((3, 4), (1, 1))
    y, _ = nonlocal_op_forward(
        *(asarray(a, xp) for a in (q, k, v)),
        f=f,
        mask=asarray(mask, xp),
        memory=memory,
        chunk_size=5,
        w_f=None if w_f is None else asarray(w_f, xp),
    )
    np.testing.assert_allclose(to_numpy(y), loop_windowed(q, k, v, mask, f, w_f), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f", NONLOCAL_MODES)
def test_window_zero_makes_y_i_depend_on_x_i_only(rng, f):
    # hand-computed: one key per query, so C = 1 and y_i = f(x_i, x_i) g(x_i) / f(x_i, x_i) for the Gaussians
    q, k, v = (rng.standard_normal(s) for s in [(1, 6, 2), (1, 6, 2), (1, 6, 3)])
    w_f = np.array([0.5, -1.0, 2.0, 0.25]) if f == "concatenation" else None
    y, _ = nonlocal_op_forward(q, k, v, f=f, w_f=w_f, mask=local_window_mask((6,), 0))
    if f.endswith("gaussian"):
        expected = v
    elif f == "dot_product":
        expected = (q * k).sum(axis=2, keepdims=True) * v
    else:
        expected = np.maximum(q @ w_f[:2] + k @ w_f[2:], 0)[..., None] * v
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-15)


def random_block(rng, mode, shape, bn=True):
    x = rng.standard_normal(shape)
    params, state = init_nonlocal_params(shape[1], mode=mode, bn=bn, dtype=np.float64)
    params = {k: 0.5 * rng.standard_normal(a.shape) for k, a in params.items()}
    return x, params, state


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_block_window_covering_the_whole_input_equals_no_window_exactly(rng, mode):
    x, p, s = random_block(rng, mode, (2, 4, 3, 4, 4))
    dz = rng.standard_normal(x.shape)
    out = {}
    for window in (None, (2, 3, 3), (5, None, 9)):
        z, cache, _ = nonlocal_block_forward(x, p, s, mode=mode, window=window, memory="dense")
        out[window] = (z, *nonlocal_block_backward(dz, cache))
    for window in [(2, 3, 3), (5, None, 9)]:
        np.testing.assert_array_equal(out[window][0], out[None][0])
        np.testing.assert_array_equal(out[window][1], out[None][1])
        for key in p:
            np.testing.assert_array_equal(out[window][2][key], out[None][2][key], err_msg=key)


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_block_with_window_zero_is_local(rng, mode):
    x, p, s = random_block(rng, mode, (1, 4, 9), bn=False)  # no BN: its batch statistics would mix positions
    z, _, _ = nonlocal_block_forward(x, p, s, mode=mode, window=0)
    x2 = x.copy()
    x2[:, :, 4] += 1.0
    z2, _, _ = nonlocal_block_forward(x2, p, s, mode=mode, window=0)
    changed = np.abs(z2 - z).max(axis=1)[0] > 0
    np.testing.assert_array_equal(changed, np.arange(9) == 4)


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
@pytest.mark.parametrize("sub", [None, (1, 2, 2)])
def test_block_gradients_with_a_window_match_finite_differences(xp, rng, mode, sub):
    x, p, s = random_block(rng, mode, (2, 4, 3, 4, 4))
    x, p = asarray(x, xp), {k: asarray(a, xp) for k, a in p.items()}
    s = {k: asarray(a, xp) for k, a in s.items()}
    memory = "dense" if mode == "dot_product" else "chunked"

    def forward(x, params):
        return nonlocal_block_forward(
            x, params, s, mode=mode, subsample=sub, window=(1, 1, None), memory=memory, chunk_size=7
        )

    report = gradcheck(forward, nonlocal_block_backward, x, p, mode="random", n_directions=4, eps=1e-5)
    assert report.worst_error < 1e-6


@pytest.mark.parametrize("mode", ["gaussian", "embedded_gaussian", "concatenation"])
def test_chunked_and_dense_agree_with_a_window(rng, mode):
    x, p, s = random_block(rng, mode, (2, 4, 3, 4, 4))
    dz = rng.standard_normal(x.shape)
    res = {}
    for memory in ("dense", "chunked"):
        z, cache, _ = nonlocal_block_forward(
            x, p, s, mode=mode, subsample=(1, 2, 2), window=(0, 1, 1), memory=memory, chunk_size=5
        )
        assert cache["op"]["memory"] == memory
        res[memory] = (z, *nonlocal_block_backward(dz, cache))
    np.testing.assert_allclose(res["chunked"][0], res["dense"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res["chunked"][1], res["dense"][1], rtol=1e-12, atol=1e-12)
    for key in p:
        np.testing.assert_allclose(
            res["chunked"][2][key], res["dense"][2][key], rtol=1e-12, atol=1e-12, err_msg=key
        )


def test_dot_product_with_a_window_is_dense_under_auto_and_refused_chunked(rng):
    x, p, s = random_block(rng, "dot_product", (1, 4, 6))
    _, cache, _ = nonlocal_block_forward(x, p, s, mode="dot_product", window=1)
    assert cache["op"]["memory"] == "dense"
    with pytest.raises(ValueError, match="window"):
        nonlocal_block_forward(x, p, s, mode="dot_product", window=1, memory="chunked")
    with pytest.raises(ValueError, match="window"):
        nonlocal_block_forward(x, p, s, mode="dot_product", window=(1, 1))
    with pytest.raises(ValueError, match="mask"):
        q = rng.standard_normal((1, 4, 2))
        nonlocal_op_forward(q, q, q, f="dot_product", mask=np.eye(4, dtype=bool), memory="chunked")


def test_check_false_gives_the_same_result(rng):
    x, p, s = random_block(rng, "embedded_gaussian", (2, 4, 6, 6))
    z, cache, _ = nonlocal_block_forward(x, p, s, mode="embedded_gaussian", subsample=2, window=(1, 1))
    z2, cache2, _ = nonlocal_block_forward(
        x, p, s, mode="embedded_gaussian", subsample=2, window=(1, 1), check=False
    )
    np.testing.assert_array_equal(z2, z)
    np.testing.assert_array_equal(nonlocal_block_backward(z, cache2)[0], nonlocal_block_backward(z, cache)[0])


def test_zero_key_positions_are_rejected_before_numpy_fails(rng):
    q = rng.standard_normal((1, 3, 2))
    with pytest.raises(ValueError, match="at least one position"):
        nonlocal_op_forward(q, q[:, :0], q[:, :0], f="embedded_gaussian")
