"""Tests of nlref.nn.nl.op: the generic non-local operation and its backward.

Oracles: a plain double loop over (i, j) written from Eq. (1) of Wang et al.
(CVPR 2018), centred finite differences (nlref.gradcheck), and the dense form for the chunked one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlref.backend import PeakMemory, asarray, to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn.nl import attention_weights, nonlocal_op_backward, nonlocal_op_forward
from nlref.nn.nl import op as nlop

FUNCS = ["gaussian", "embedded_gaussian", "dot_product", "concatenation"]


def make_inputs(
    rng, xp, n=2, nq=5, nk=7, d=3, c=2, dtype=np.float64, f="embedded_gaussian", bias=False, mask=False
):
    q = rng.standard_normal((n, nq, d))
    k = rng.standard_normal((n, nk, d))
    v = rng.standard_normal((n, nk, c))
    kw = {}
    if f == "concatenation":
        kw["w_f"] = asarray(rng.standard_normal(2 * d), xp, dtype)
    if bias:
        kw["key_bias"] = asarray(rng.standard_normal((n, nk)), xp, dtype)
    if mask:
        m = rng.random((nq, nk)) < 0.6
        m[:, 0] = False  # first chunk fully masked for some rows in chunked runs
        m[np.arange(nq), rng.integers(1, nk, nq)] = True
        m[0, :4] = False
        kw["mask"] = asarray(m, xp)
    return tuple(asarray(a, xp, dtype) for a in (q, k, v)), kw


def loop_nonlocal(q, k, v, f, normalize=True, scale=None, key_bias=None, mask=None, w_f=None):
    """y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j), one (i, j) pair at a time."""
    q, k, v = (to_numpy(a) for a in (q, k, v))
    n, nq, d = q.shape
    nk = k.shape[1]
    y = np.zeros((n, nq, v.shape[2]))
    for b in range(n):
        for i in range(nq):
            fij = []
            for j in range(nk):
                if f in ("gaussian", "embedded_gaussian"):
                    if mask is not None and not to_numpy(mask)[i, j]:
                        fij.append(0.0)
                        continue
                    s = float(q[b, i] @ k[b, j]) * (1.0 if scale is None else scale)
                    s += 0.0 if key_bias is None else float(to_numpy(key_bias)[b, j])
                    fij.append(math.exp(s))
                elif f == "dot_product":
                    fij.append(float(q[b, i] @ k[b, j]))
                else:
                    pair = np.concatenate([q[b, i], k[b, j]])  # [theta_i, phi_j]
                    fij.append(max(0.0, float(to_numpy(w_f) @ pair)))
            if f in ("gaussian", "embedded_gaussian"):
                c_norm = sum(fij)
            else:
                c_norm = nk if normalize else 1
            y[b, i] = sum(fj * v[b, j] for j, fj in enumerate(fij)) / c_norm
    return y


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("memory", ["dense", "chunked"])
def test_each_function_matches_the_loop_definition(xp, rng, f, memory):
    extra = f in ("gaussian", "embedded_gaussian")
    (q, k, v), kw = make_inputs(rng, xp, f=f, bias=extra, mask=extra)
    scale = 0.7 if extra else None
    y, _ = nonlocal_op_forward(q, k, v, f=f, scale=scale, memory=memory, chunk_size=3, **kw)
    np.testing.assert_allclose(
        to_numpy(y), loop_nonlocal(q, k, v, f, scale=scale, **kw), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("f", ["dot_product", "concatenation"])
def test_normalize_false_is_the_raw_sum(xp, rng, f):
    (q, k, v), kw = make_inputs(rng, xp, f=f)
    y, _ = nonlocal_op_forward(q, k, v, f=f, normalize=False, **kw)
    np.testing.assert_allclose(to_numpy(y), loop_nonlocal(q, k, v, f, normalize=False, **kw), rtol=1e-12)


def test_dot_product_normalises_by_number_of_key_positions(xp, rng):
    (q, k, _), _ = make_inputs(rng, xp, nk=11)
    ones = xp.ones((q.shape[0], 11, 1))
    y, _ = nonlocal_op_forward(q, k, ones, f="dot_product")
    expected = (to_numpy(q) * to_numpy(k).mean(axis=1, keepdims=True)).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)


def test_gaussian_attention_rows_sum_to_one_and_are_returned(xp, rng):
    (q, k, v), _ = make_inputs(rng, xp)
    y, _, att = nonlocal_op_forward(
        q, k, v, f="embedded_gaussian", memory="chunked", chunk_size=2, return_attention=True
    )
    assert att.shape == (2, 5, 7)
    np.testing.assert_allclose(to_numpy(att).sum(axis=2), 1.0, rtol=1e-14)
    np.testing.assert_allclose(to_numpy(att @ v), to_numpy(y), rtol=1e-12)
    rows = attention_weights(q, k, f="embedded_gaussian", rows=[3])
    np.testing.assert_allclose(to_numpy(rows)[:, 0], to_numpy(att)[:, 3], rtol=1e-14)


def test_large_logits_give_finite_output(xp, rng):
    (q, k, v), _ = make_inputs(rng, xp)
    q = q * 1e3  # logits of order 1e3-1e4: exp would overflow without the max shift
    for memory in ("dense", "chunked"):
        y, cache = nonlocal_op_forward(q, k, v, f="embedded_gaussian", memory=memory, chunk_size=3)
        (dq, dk, dv), _ = nonlocal_op_backward(xp.ones_like(y), cache)
        for a in (y, dq, dk, dv):
            assert bool(xp.isfinite(a).all())
    # the largest logit wins: y_i is (almost exactly) v at argmax_j q_i . k_j
    s = to_numpy(q) @ to_numpy(k).transpose(0, 2, 1)
    np.testing.assert_allclose(
        to_numpy(y), np.take_along_axis(to_numpy(v), s.argmax(2)[..., None], 1), atol=1e-6
    )


@pytest.mark.parametrize("f", FUNCS)
def test_chunked_agrees_with_dense_forward_and_gradients(xp, rng, f):
    extra = f in ("gaussian", "embedded_gaussian")
    (q, k, v), kw = make_inputs(rng, xp, nq=9, nk=13, d=4, c=3, f=f, bias=extra, mask=extra)
    dy = asarray(rng.standard_normal((2, 9, 3)), xp)
    out = {}
    for memory in ("dense", "chunked"):
        y, cache = nonlocal_op_forward(
            q, k, v, f=f, scale=0.3 if extra else None, memory=memory, chunk_size=4, **kw
        )
        assert cache["memory"] == memory
        out[memory] = (y, *nonlocal_op_backward(dy, cache)[0], *nonlocal_op_backward(dy, cache)[1].values())
    for a, b in zip(out["dense"], out["chunked"]):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("memory", ["dense", "chunked"])
def test_gradients_match_finite_differences(xp, rng, f, memory):
    extra = f in ("gaussian", "embedded_gaussian")
    (q, k, v), kw = make_inputs(rng, xp, n=2, nq=4, nk=5, d=3, c=2, f=f, bias=extra, mask=extra)
    mask = kw.pop("mask", None)  # not differentiable: a fixed option
    opts = dict(f=f, scale=0.8 if extra else None, mask=mask, memory=memory, chunk_size=2)

    def forward(q, k, v, params):
        return nonlocal_op_forward(q, k, v, **opts, **params)

    report = gradcheck(forward, nonlocal_op_backward, (q, k, v), kw, mode="full")
    assert report.worst_error < 1e-6
    assert {e.name for e in report.entries} == {"x0", "x1", "x2", *kw}


def test_output_is_invariant_to_permuting_key_positions(xp, rng):
    for f in FUNCS:
        (q, k, v), kw = make_inputs(rng, xp, f=f, bias=f.endswith("gaussian"))
        perm = rng.permutation(7)
        kw_p = dict(kw)
        if "key_bias" in kw:
            kw_p["key_bias"] = kw["key_bias"][:, perm]
        y, _ = nonlocal_op_forward(q, k, v, f=f, memory="dense", **kw)
        y_p, _ = nonlocal_op_forward(q, k[:, perm], v[:, perm], f=f, memory="dense", **kw_p)
        np.testing.assert_allclose(to_numpy(y_p), to_numpy(y), rtol=1e-12, atol=1e-14)


def test_float32_stays_float32(xp, rng):
    for f in FUNCS:
        (q, k, v), kw = make_inputs(rng, xp, f=f, dtype=np.float32)
        for memory in ("dense", "chunked"):
            scale = np.float64(0.5) if f.endswith("gaussian") else None  # a float64 scalar must not promote
            y, cache = nonlocal_op_forward(q, k, v, f=f, scale=scale, memory=memory, chunk_size=3, **kw)
            (dq, dk, dv), grads = nonlocal_op_backward(xp.ones_like(y), cache)
            assert {a.dtype for a in (y, dq, dk, dv, *grads.values())} == {np.dtype(np.float32)}


def test_auto_switches_to_chunked_above_the_documented_size(rng, monkeypatch):
    (q, k, v), _ = make_inputs(rng, np)  # 2 * 5 * 7 = 70 affinity entries
    assert nonlocal_op_forward(q, k, v, f="embedded_gaussian")[1]["memory"] == "dense"
    assert nonlocal_op_forward(q, k, v, f="dot_product")[1]["memory"] == "chunked"
    monkeypatch.setattr(nlop, "AUTO_DENSE_MAX_ELEMENTS", 69)
    assert nonlocal_op_forward(q, k, v, f="embedded_gaussian")[1]["memory"] == "chunked"


@pytest.mark.parametrize("f", ["embedded_gaussian", "dot_product", "concatenation"])
def test_chunked_form_never_holds_the_affinity_matrix(rng, f):
    n, npos, d = 1, 1500, 4
    (q, k, v), kw = make_inputs(rng, np, n=n, nq=npos, nk=npos, d=d, c=d, f=f)
    affinity_bytes = n * npos * npos * 8
    peaks = {}
    for memory in ("dense", "chunked"):
        with PeakMemory(np) as pm:
            y, cache = nonlocal_op_forward(q, k, v, f=f, memory=memory, chunk_size=64, **kw)
            nonlocal_op_backward(y, cache)
        peaks[memory] = pm.peak
    assert peaks["dense"] > affinity_bytes
    assert peaks["chunked"] < affinity_bytes / 4


def test_bad_input_is_rejected_with_named_arguments(rng):
    (q, k, v), kw = make_inputs(rng, np, f="concatenation")
    cases = [
        (dict(query=q[0]), ValueError, "query"),
        (dict(key=k[:, :, :2]), ValueError, "key"),
        (dict(value=v[:, :3]), ValueError, "value"),
        (dict(f="cosine"), ValueError, "f must be"),
        (dict(memory="lazy"), ValueError, "memory"),
        (dict(f="concatenation"), ValueError, "w_f"),
        (dict(f="dot_product", scale=2.0), ValueError, "scale"),
        (dict(mask=np.zeros((5, 7), bool)), ValueError, "mask"),
        (dict(mask=np.ones((5, 6), bool)), ValueError, "mask"),
        (dict(key_bias=np.zeros((2, 6))), ValueError, "key_bias"),
        (dict(normalize=False), ValueError, "normalize"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(query=q.astype(np.int64)), TypeError, "query"),
        (dict(query=q.astype(np.float32)), TypeError, "dtype"),
    ]
    for change, err, word in cases:
        args = dict(query=q, key=k, value=v, f="embedded_gaussian") | change
        with pytest.raises(err, match=word):
            nonlocal_op_forward(args.pop("query"), args.pop("key"), args.pop("value"), **args)


def test_mixed_backends_raise_type_error(rng, fake_cupy_array):
    (q, k, v), _ = make_inputs(rng, np)
    with pytest.raises(TypeError, match="mixed array backends"):
        nonlocal_op_forward(q, fake_cupy_array(k), v, f="embedded_gaussian")
