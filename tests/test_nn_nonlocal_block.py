"""Tests of nlref.nn.nl.block: the non-local block of Wang et al. (CVPR 2018).

Oracles: an independent NumPy implementation written from Sec. 3 of the paper
(einsum 1x1 convolutions, reshape max-pooling, the explicit (2d, P, P')
concatenation tensor the PyTorch ports build, hand-written batch norm), finite
differences (nlref.gradcheck) and the dense form for the chunked one.
"""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import asarray, to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn.nl import NONLOCAL_MODES, init_nonlocal_params, nonlocal_block_backward, nonlocal_block_forward

SHAPES = {1: (2, 4, 6), 2: (2, 4, 4, 4), 3: (2, 4, 2, 4, 4)}
KERNELS = {1: 2, 2: 2, 3: (1, 2, 2)}
SUBSAMPLE = [None, "before_conv", "after_conv"]


def random_block(rng, xp, mode, ndim, *, bn=True, dtype=np.float64, weight=0.5):
    """A block whose every parameter is random (the init would make gradients trivially zero)."""
    x = asarray(rng.standard_normal(SHAPES[ndim]), xp, dtype)
    params, state = init_nonlocal_params(4, mode=mode, ndim=ndim, bn=bn, dtype=dtype, xp=xp)
    params = {k: asarray(weight * rng.standard_normal(v.shape), xp, dtype) for k, v in params.items()}
    if bn:
        state = {
            "bn.running_mean": asarray(0.1 * rng.standard_normal(4), xp, dtype),
            "bn.running_var": asarray(0.5 + rng.random(4), xp, dtype),
        }
    return x, params, state


def subsample_args(ndim, sub):
    return {} if sub is None else {"subsample": KERNELS[ndim], "pool_order": sub}


# --------------------------------------------------------------------------- oracle
def oracle_block(x, p, state, mode, kernel=None, order="before_conv", scale=None, train=True, eps=1e-5):
    """z = BN(W_z y) + x written directly from the paper, NumPy float64."""
    x = to_numpy(x)
    p = {k: to_numpy(v) for k, v in p.items()}
    n, c = x.shape[:2]
    sp = x.shape[2:]
    expand = (1, -1) + (1,) * len(sp)

    def conv(name, a):
        return np.einsum("oc,nc...->no...", p[f"{name}.w"], a) + p[f"{name}.b"].reshape(expand)

    def pool(a):
        k = (kernel,) * len(sp) if isinstance(kernel, int) else kernel
        cut = a[(slice(None), slice(None)) + tuple(slice(0, s - s % ki) for s, ki in zip(a.shape[2:], k))]
        shape = list(cut.shape[:2])
        for s, ki in zip(cut.shape[2:], k):
            shape += [s // ki, ki]
        return cut.reshape(shape).max(axis=tuple(range(3, 3 + 2 * len(k), 2)))

    flat = lambda a: a.reshape(n, a.shape[1], -1).transpose(0, 2, 1)  # noqa: E731
    theta = x if mode == "gaussian" else conv("theta", x)
    xs = pool(x) if kernel is not None and order == "before_conv" else x
    phi = xs if mode == "gaussian" else conv("phi", xs)
    g = conv("g", xs)
    if kernel is not None and order == "after_conv":
        phi, g = pool(phi), pool(g)
    t, ph, gv = flat(theta), flat(phi), flat(g)
    n_keys = ph.shape[1]
    if mode in ("gaussian", "embedded_gaussian"):
        s = np.einsum("nid,njd->nij", t, ph) * (1.0 if scale is None else scale)
        e = np.exp(s - s.max(axis=2, keepdims=True))
        att = e / e.sum(axis=2, keepdims=True)
    elif mode == "dot_product":
        att = np.einsum("nid,njd->nij", t, ph) / n_keys
    else:  # the ports' (N, 2d, P, P') concatenation tensor, then w_f and ReLU
        pairs = np.concatenate(
            [
                np.broadcast_to(t[:, :, None, :], t.shape[:2] + (n_keys, t.shape[2])),
                np.broadcast_to(ph[:, None, :, :], (n, t.shape[1]) + ph.shape[1:]),
            ],
            axis=3,
        )
        att = np.maximum(pairs @ p["concat.w"], 0) / n_keys
    y = (att @ gv).transpose(0, 2, 1).reshape((n, -1) + sp)
    wy = conv("w_z", y)
    if "bn.gamma" in p:
        axes = (0,) + tuple(range(2, x.ndim))
        if train:
            mu, var = wy.mean(axis=axes), wy.var(axis=axes)
        else:
            mu, var = to_numpy(state["bn.running_mean"]), to_numpy(state["bn.running_var"])
        wy = p["bn.gamma"].reshape(expand) * (wy - mu.reshape(expand)) / np.sqrt(
            var.reshape(expand) + eps
        ) + p["bn.beta"].reshape(expand)
    return wy + x, att


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("mode", NONLOCAL_MODES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("sub", SUBSAMPLE)
def test_forward_matches_the_paper_oracle(xp, rng, mode, ndim, sub):
    x, p, s = random_block(rng, xp, mode, ndim)
    scale = 0.5 if mode.endswith("gaussian") else None
    for train in (True, False):
        z, _, _, att = nonlocal_block_forward(
            x, p, s, mode=mode, scale=scale, train=train, return_attention=True, **subsample_args(ndim, sub)
        )
        kernel = None if sub is None else KERNELS[ndim]
        z_ref, att_ref = oracle_block(x, p, s, mode, kernel, sub or "before_conv", scale=scale, train=train)
        np.testing.assert_allclose(to_numpy(z), z_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_numpy(att), att_ref, rtol=1e-10, atol=1e-14)


def test_pool_orders_differ_and_before_conv_is_the_default(rng):
    x, p, s = random_block(rng, np, "embedded_gaussian", 3)
    z_default = nonlocal_block_forward(x, p, s, mode="embedded_gaussian", subsample=(1, 2, 2))[0]
    z_before = nonlocal_block_forward(
        x, p, s, mode="embedded_gaussian", subsample=(1, 2, 2), pool_order="before_conv"
    )[0]
    z_after = nonlocal_block_forward(
        x, p, s, mode="embedded_gaussian", subsample=(1, 2, 2), pool_order="after_conv"
    )[0]
    np.testing.assert_array_equal(z_default, z_before)
    assert np.abs(z_before - z_after).max() > 1e-3


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_attention_has_one_row_per_position_and_one_column_per_key(rng, mode):
    x, p, s = random_block(rng, np, mode, 3)
    att = nonlocal_block_forward(x, p, s, mode=mode, subsample=(1, 2, 2), return_attention=True)[3]
    assert att.shape == (2, 2 * 4 * 4, 2 * 2 * 2)
    if mode.endswith("gaussian"):
        np.testing.assert_allclose(att.sum(axis=2), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- identity at init
@pytest.mark.parametrize("mode", NONLOCAL_MODES)
@pytest.mark.parametrize("bn", [True, False])
def test_block_is_the_identity_at_initialisation(xp, rng, mode, bn):
    for ndim in (1, 2, 3):
        x = asarray(rng.standard_normal(SHAPES[ndim]).astype(np.float32), xp)
        params, state = init_nonlocal_params(4, mode=mode, ndim=ndim, bn=bn, rng=1, xp=xp)
        for train in (True, False):
            for sub in SUBSAMPLE:
                z, _, new_state = nonlocal_block_forward(
                    x, params, state, mode=mode, train=train, **subsample_args(ndim, sub)
                )
                assert z.dtype == np.float32
                assert bool((z == x).all())
                assert set(new_state) == set(state)


def test_init_follows_the_official_code(rng):
    params, state = init_nonlocal_params(64, mode="concatenation", rng=3)
    assert params["theta.w"].shape == (32, 64) and params["w_z.w"].shape == (64, 32)
    assert params["concat.w"].shape == (64,)
    assert 0.008 < params["theta.w"].std() < 0.012  # Gaussian std 0.01
    assert not params["theta.b"].any() and not params["bn.gamma"].any()
    assert not state["bn.running_mean"].any() and (state["bn.running_var"] == 1).all()
    gauss, _ = init_nonlocal_params(8, mode="gaussian", bn=False)
    assert set(gauss) == {"g.w", "g.b", "w_z.w", "w_z.b"} and not gauss["w_z.w"].any()


# --------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_permuting_positions_permutes_the_output(xp, rng, mode):
    """Without subsampling the block sees an unordered set of positions: permuting the
    positions of x permutes z the same way (key order never matters)."""
    x, p, s = random_block(rng, xp, mode, 2)
    perm = rng.permutation(16)
    flat = lambda a: a.reshape(2, 4, 16)  # noqa: E731
    x_perm = flat(x)[:, :, perm].reshape(x.shape)
    z = nonlocal_block_forward(x, p, s, mode=mode)[0]
    z_perm = nonlocal_block_forward(x_perm, p, s, mode=mode)[0]
    np.testing.assert_allclose(to_numpy(flat(z_perm)), to_numpy(flat(z)[:, :, perm]), rtol=1e-12, atol=1e-12)


def test_bn_state_is_returned_not_mutated(rng):
    x, p, s = random_block(rng, np, "dot_product", 2)
    before = {k: v.copy() for k, v in s.items()}
    _, _, new_train = nonlocal_block_forward(x, p, s, mode="dot_product", train=True)
    _, _, new_eval = nonlocal_block_forward(x, p, s, mode="dot_product", train=False)
    for k in s:
        np.testing.assert_array_equal(s[k], before[k])
        np.testing.assert_array_equal(new_eval[k], before[k])
        assert not np.allclose(new_train[k], before[k])


# --------------------------------------------------------------------------- gradients
def block_fns(mode, ndim, sub, memory, train):
    def forward(x, params):
        # 2 or 3 blocks of queries and of keys per axis: several tiles, few Python iterations
        return nonlocal_block_forward(
            x,
            params,
            STATE,
            mode=mode,
            train=train,
            memory=memory,
            chunk_size={1: 4, 2: 6, 3: 12}[ndim],
            scale=0.7 if mode.endswith("gaussian") else None,
            **subsample_args(ndim, sub),
        )

    STATE = {}
    return forward, nonlocal_block_backward, STATE


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("sub", SUBSAMPLE)
@pytest.mark.parametrize("memory", ["dense", "chunked"])
@pytest.mark.parametrize("train", [True, False], ids=["bn_train", "bn_eval"])
def test_gradients_match_finite_differences(xp, rng, mode, ndim, sub, memory, train):
    # eps = 1e-5: at 1e-6 the round-off of the exactly-zero gradients (biases before a
    # softmax or a training-mode BN) reaches the 1e-8 absolute floor
    x, params, state = random_block(rng, xp, mode, ndim)
    forward, backward, st = block_fns(mode, ndim, sub, memory, train)
    st.update(state)
    report = gradcheck(
        forward, backward, x, params, mode="full" if ndim == 1 else "random", n_directions=4, eps=1e-5
    )
    assert report.worst_error < 1e-6


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_gradients_without_bn_match_finite_differences(xp, rng, mode):
    x, params, state = random_block(rng, xp, mode, 2, bn=False)
    forward, backward, _ = block_fns(mode, 2, "after_conv", "auto", True)
    assert gradcheck(forward, backward, x, params, mode="full").worst_error < 1e-6


@pytest.mark.parametrize("mode", NONLOCAL_MODES)
def test_chunked_and_dense_blocks_agree_in_forward_and_every_gradient(xp, rng, mode):
    x, p, s = random_block(rng, xp, mode, 3)
    dz = asarray(rng.standard_normal(x.shape), xp)
    res = {}
    for memory in ("dense", "chunked"):
        z, cache, _ = nonlocal_block_forward(
            x, p, s, mode=mode, subsample=(1, 2, 2), memory=memory, chunk_size=3
        )
        assert cache["op"]["memory"] == memory
        res[memory] = (z, *nonlocal_block_backward(dz, cache))
    zd, dxd, gd = res["dense"]
    zc, dxc, gc = res["chunked"]
    np.testing.assert_allclose(to_numpy(zc), to_numpy(zd), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dxc), to_numpy(dxd), rtol=1e-12, atol=1e-12)
    assert set(gc) == set(gd) == set(p)
    for k in gd:
        np.testing.assert_allclose(to_numpy(gc[k]), to_numpy(gd[k]), rtol=1e-12, atol=1e-12, err_msg=k)


def test_float32_block_runs_and_keeps_its_dtype(xp, rng):
    x, p, s = random_block(rng, xp, "embedded_gaussian", 3, dtype=np.float32)
    z, cache, new_state = nonlocal_block_forward(
        x, p, s, mode="embedded_gaussian", subsample=(1, 2, 2), memory="chunked"
    )
    dx, grads = nonlocal_block_backward(xp.ones_like(z), cache)
    assert {a.dtype for a in (z, dx, *grads.values(), *new_state.values())} == {np.dtype(np.float32)}


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_with_named_arguments(rng):
    x, p, s = random_block(rng, np, "embedded_gaussian", 2)
    p_gauss, s_gauss = init_nonlocal_params(4, mode="gaussian", dtype=np.float64)
    cases = [
        (dict(x=x[0, 0]), ValueError, "x must have shape"),
        (dict(x=x[:, :3]), ValueError, r"params\['g.w'\] must have shape"),
        (dict(subsample=5), ValueError, "subsample kernel"),
        (dict(subsample=(2, 2, 2)), ValueError, "subsample"),
        (dict(mode="attention"), ValueError, "mode must be one of"),
        (dict(pool_order="middle"), ValueError, "pool_order"),
        (dict(memory="lazy"), ValueError, "memory"),
        (dict(params=p_gauss, state=s_gauss), ValueError, "params do not match mode"),
        (dict(state={}), ValueError, "state"),
        (dict(x=x.astype(np.float32)), TypeError, "dtype of x"),
        (dict(scale=0.5, mode="dot_product", params={k: v for k, v in p.items()}), ValueError, "scale"),
    ]
    for change, err, word in cases:
        args = dict(x=x, params=p, state=s, mode="embedded_gaussian") | change
        with pytest.raises(err, match=word):
            nonlocal_block_forward(args.pop("x"), args.pop("params"), args.pop("state"), **args)
    with pytest.raises(ValueError, match="mode"):
        init_nonlocal_params(4, mode="cosine")


def test_mixed_backends_raise_type_error(rng, fake_cupy_array):
    x, p, s = random_block(rng, np, "embedded_gaussian", 2)
    p["theta.w"] = fake_cupy_array(p["theta.w"])
    with pytest.raises(TypeError, match="mixed array backends"):
        nonlocal_block_forward(x, p, s, mode="embedded_gaussian")


def test_fan_in_init_draws_each_weight_with_std_one_over_sqrt_fan_in():
    params, _ = init_nonlocal_params(256, mode="concatenation", init="fan_in", rng=2)
    for name, fan_in in (("theta.w", 256), ("phi.w", 256), ("g.w", 256), ("w_z.w", 128), ("concat.w", 256)):
        assert abs(float(params[name].std()) * np.sqrt(fan_in) - 1) < 0.1, name
    assert not params["bn.gamma"].any()  # still the identity at start
    fixed, _ = init_nonlocal_params(256, std=0.5, init="fan_in", rng=2)  # std wins over init
    assert abs(float(fixed["theta.w"].std()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="init"):
        init_nonlocal_params(4, init="xavier")
