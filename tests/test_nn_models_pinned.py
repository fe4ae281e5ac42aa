"""Model outputs pinned: bit-identical to nlref's model code before the blocks.py refactor (issue #12).

Two oracles:

* a frozen copy of the former model-level forward/backward of nlref/nn/models.py
  (commit e1499d8: hand-made temporal padding, if/elif dispatch), running on the
  same layers; today's :func:`model_forward` / :func:`model_backward` must give
  the same logits, BN statistics and gradients *bit for bit*;
* logits recorded from that code for three tiny models (a changed initialisation
  order or parameter name shows up there even if both forwards changed), and the
  checkpoint names of a tiny non-local model.
"""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import get_namespace
from nlref.nn import (
    conv_backward,
    conv_forward,
    dropout_backward,
    dropout_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    linear_backward,
    linear_forward,
    max_pool_backward,
    max_pool_forward,
    nonlocal_block_backward,
    nonlocal_block_forward,
    relu_backward,
    relu_forward,
)
from nlref.nn.layers import batch_norm_backward, batch_norm_forward, scope, unscope
from nlref.nn.video import build_model, model_backward, model_forward

# ----------------------------------------------------------------------------- frozen copy (do not edit)
# fmt: off


def _conv(x, w, stride, t_pad):
    """Conv with 'same' padding; ``t_pad="replicate"`` repeats edge frames instead of zero-padding time."""
    p = tuple(k // 2 for k in w.shape[2:])
    if t_pad == "replicate" and p[0]:
        xp = get_namespace(x)
        x = xp.concatenate([x[:, :, :1]] * p[0] + [x] + [x[:, :, -1:]] * p[0], axis=2)
        out, cache = conv_forward(x, {"w": w}, stride=stride, padding=(0, *p[1:]))
        return out, (cache, p[0])
    out, cache = conv_forward(x, {"w": w}, stride=stride, padding=p)
    return out, (cache, 0)


def _conv_backward(dout, cache, need_dx=True):
    cache, pt = cache
    dx, grads = conv_backward(dout, cache, need_dx=need_dx)
    if pt and need_dx:  # fold the gradient of the repeated edge frames back onto them
        inner = dx[:, :, pt:-pt].copy()
        inner[:, :, :1] += dx[:, :, :pt].sum(axis=2, keepdims=True)
        inner[:, :, -1:] += dx[:, :, -pt:].sum(axis=2, keepdims=True)
        dx = inner
    return dx, grads


def _conv_bn(x, params, state, conv, bn, stride, t_pad, train, new_state):
    out, c1 = _conv(x, params[f"{conv}.w"], stride, t_pad)
    out, c2, st = batch_norm_forward(out, scope(params, bn), scope(state, bn), train=train)
    new_state.update(unscope(st, bn))
    return out, (conv, bn, c1, c2)


def _conv_bn_backward(dout, cache, grads, need_dx=True):
    conv, bn, c1, c2 = cache
    dout, g = batch_norm_backward(dout, c2)
    grads.update(unscope(g, bn))
    dx, g = _conv_backward(dout, c1, need_dx)
    grads[f"{conv}.w"] = g["w"]
    return dx


def _block_forward(x, params, state, spec, train, new_state):
    name, caches = spec["name"], []
    out = x
    for j in range(1, spec["n_convs"] + 1):
        stride = spec["stride"] if j == spec["stride_conv"] else 1
        out, c = _conv_bn(out, params, state, f"{name}.conv{j}", f"{name}.bn{j}", stride, spec["t_pad"],
                          train, new_state)
        caches.append(("conv_bn", c))
        if j < spec["n_convs"]:
            out, c = relu_forward(out)
            caches.append(("relu", c))
    short, c_proj = x, None
    if spec["proj"]:
        short, c_proj = _conv_bn(x, params, state, f"{name}.proj", f"{name}.proj_bn", spec["stride"], "zeros",
                                 train, new_state)
    out, c_relu = relu_forward(out + short)
    return out, (caches, c_proj, c_relu)


def _block_backward(dout, cache, grads):
    caches, c_proj, c_relu = cache
    d_sum, _ = relu_backward(dout, c_relu)
    d = d_sum
    for kind, c in reversed(caches):
        d = _conv_bn_backward(d, c, grads) if kind == "conv_bn" else relu_backward(d, c)[0]
    return d + (_conv_bn_backward(d_sum, c_proj, grads) if c_proj is not None else d_sum)


def _fold(x, space_time):
    """Fold frames ("space") or positions ("time") into the batch axis around a non-local block."""
    n, c, t, h, w = x.shape
    if space_time == "space":  # (N, C, T, H, W) -> (N T, C, 1, H, W): attention within each frame
        return x.transpose(0, 2, 1, 3, 4).reshape(n * t, c, 1, h, w)
    if space_time == "time":  # -> (N H W, C, T, 1, 1): attention across frames at each position
        return x.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c, t, 1, 1)
    return x


def _unfold(y, space_time, shape):
    n, c, t, h, w = shape
    if space_time == "space":
        return y.reshape(n, t, c, h, w).transpose(0, 2, 1, 3, 4)
    if space_time == "time":
        return y.reshape(n, h, w, c, t).transpose(0, 3, 4, 1, 2)
    return y


def _nonlocal_forward(x, params, state, spec, train, new_state):
    name, st = spec["name"], spec["space_time"]
    # subsample phi and g by (1, 2, 2), except on feature maps of a single pixel
    sub = (1, 2, 2) if spec["subsample"] and min(x.shape[3:]) >= 2 else None
    z, cache, s = nonlocal_block_forward(get_namespace(x).ascontiguousarray(_fold(x, st)),
                                         scope(params, name), scope(state, name), mode=spec["mode"],
                                         subsample=sub, train=train)
    new_state.update(unscope(s, name))
    return _unfold(z, st, x.shape), (cache, x.shape)


def _nonlocal_backward(dout, cache, spec, grads):
    c, shape = cache
    st = spec["space_time"]
    dx, g = nonlocal_block_backward(get_namespace(dout).ascontiguousarray(_fold(dout, st)), c)
    grads.update(unscope(g, spec["name"]))
    return _unfold(dx, st, shape)


def old_model_forward(
    x, params, state, model, *, train, rng=None
):
    if not hasattr(x, "ndim") or x.ndim != 5:
        raise ValueError("x must be a clip batch of shape (N, C, T, H, W), "
                         f"received {getattr(x, 'shape', type(x))}")
    if x.shape[1] != params["conv1.w"].shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the model expects {params['conv1.w'].shape[1]}")
    new_state = {}
    caches = []
    out = x
    for spec in model:
        op = spec["op"]
        if op == "stem":
            out, c = _conv_bn(out, params, state, "conv1", "bn1", spec["stride"], spec["t_pad"], train,
                              new_state)
            out, c2 = relu_forward(out)
            c = (c, c2)
        elif op == "max_pool":
            out, c = max_pool_forward(out, kernel_size=spec["kernel_size"], stride=spec["stride"],
                                      padding=spec["padding"])
        elif op == "block":
            out, c = _block_forward(out, params, state, spec, train, new_state)
        elif op == "nonlocal":
            out, c = _nonlocal_forward(out, params, state, spec, train, new_state)
        else:  # head: global average pool, dropout, fc
            h, c1 = global_avg_pool_forward(out)
            h, c2 = dropout_forward(h, p=spec["dropout"], train=train, rng=rng)
            out, c3 = linear_forward(h, scope(params, "fc"))
            c = (c1, c2, c3)
        caches.append(c)
    return out, list(zip(model, caches)), new_state


def old_model_backward(dlogits, cache, *, return_dx=False):
    grads = {}
    d = dlogits
    for spec, c in reversed(cache):
        op = spec["op"]
        if op == "head":
            c1, c2, c3 = c
            d, g = linear_backward(d, c3)
            grads.update(unscope(g, "fc"))
            d, _ = dropout_backward(d, c2)
            d, _ = global_avg_pool_backward(d, c1)
        elif op == "nonlocal":
            d = _nonlocal_backward(d, c, spec, grads)
        elif op == "block":
            d = _block_backward(d, c, grads)
        elif op == "max_pool":
            d, _ = max_pool_backward(d, c)
        else:  # stem
            d, _ = relu_backward(d, c[1])
            # the clip needs no gradient unless asked for: skip the stem's dx
            d = _conv_bn_backward(d, c[0], grads, need_dx=return_dx)
    return (d, grads) if return_dx else grads


# fmt: on
# ----------------------------------------------------------------------------- the pins

CONFIGS = [
    ("c2d", dict(nl_blocks=5, nl_subsample=True)),
    ("i3d", dict(nl_blocks=1, nl_space_time="space", temporal_padding="replicate", nl_mode="dot_product")),
    ("c2d", dict(nl_blocks=1, nl_space_time="time", nl_mode="concatenation", dropout=0.3)),
    (
        "i3d",
        dict(
            layout="resnet50",
            depth=(1, 2, 1, 1),
            width=2,
            inflate="3x1x1",
            temporal_padding="replicate",
            nl_blocks=10,
        ),
    ),
    ("i3d", dict(layout="resnet50", depth=(2, 2, 2, 2), width=2, nl_blocks=1, nl_mode="gaussian")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("arch, kw", CONFIGS)
def test_forward_and_backward_are_bit_identical_to_the_former_model_code(rng, arch, kw, dtype):
    kw = {"width": 4, **kw}
    m, p, s = build_model(arch, dtype=dtype, rng=3, **kw)
    for k in p:  # non-zero non-local BN gammas, so that every block contributes
        if k.endswith(".gamma"):
            p[k] = p[k] + dtype(0.5)
    x = rng.standard_normal((2, 3, 8, 16, 16)).astype(dtype)
    for train in (True, False):
        new = model_forward(x, p, s, m, train=train, rng=5)
        old = old_model_forward(x, p, s, m, train=train, rng=5)
        np.testing.assert_array_equal(new[0], old[0])
        assert list(new[2]) == list(old[2])
        for k in old[2]:
            np.testing.assert_array_equal(new[2][k], old[2][k])
        dlogits = np.cos(new[0])
        dx_new, g_new = model_backward(dlogits, new[1], return_dx=True)
        dx_old, g_old = old_model_backward(dlogits, old[1], return_dx=True)
        np.testing.assert_array_equal(dx_new, dx_old)
        assert list(g_new) == list(g_old)
        for k in g_old:
            np.testing.assert_array_equal(g_new[k], g_old[k])


# logits of build_model(arch, width=2, dtype=float64, rng=0, **kw) with every BN gamma + 0.5, in training
# mode, on default_rng(0).standard_normal((2, 3, 8, 8, 8)); recorded with the code of commit e1499d8.
RECORDED = [
    (
        "c2d",
        {},
        [[0.012520821915771623, 0.029546145442619933], [0.0019938334193025714, -0.018843295646837115]],
    ),
    (
        "i3d",
        {"temporal_padding": "replicate"},
        [[-0.017713129024762585, 0.027822815626180226], [0.03368780037344502, 0.031141010525666802]],
    ),
    (
        "c2d",
        {"nl_blocks": 1, "nl_init": "official"},  # the init of e1499d8; the default is now "fan_in"
        [[-0.02768125659442241, 0.035357874191096414], [-0.028987822000536904, -0.018000275872272212]],
    ),
]


@pytest.mark.parametrize("arch, kw, logits", RECORDED)
def test_logits_of_tiny_models_match_the_recorded_values(arch, kw, logits):
    m, p, s = build_model(arch, width=2, dtype=np.float64, rng=0, **kw)
    for k in p:
        if k.endswith(".gamma"):
            p[k] = p[k] + 0.5
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8, 8))
    out, _, _ = model_forward(x, p, s, m, train=True)
    np.testing.assert_allclose(out, logits, rtol=1e-9, atol=1e-15)  # BLAS may round differently elsewhere


# build_model("c2d", nl_blocks=1) at commit e1499d8: the names (and order) a checkpoint holds
PARAM_NAMES = [
    "conv1.w",
    "bn1.gamma",
    "bn1.beta",
    "res2.0.conv1.w",
    "res2.0.bn1.gamma",
    "res2.0.bn1.beta",
    "res2.0.conv2.w",
    "res2.0.bn2.gamma",
    "res2.0.bn2.beta",
    "res3.0.conv1.w",
    "res3.0.bn1.gamma",
    "res3.0.bn1.beta",
    "res3.0.conv2.w",
    "res3.0.bn2.gamma",
    "res3.0.bn2.beta",
    "res3.0.proj.w",
    "res3.0.proj_bn.gamma",
    "res3.0.proj_bn.beta",
    "res3.0.nl.theta.w",
    "res3.0.nl.theta.b",
    "res3.0.nl.phi.w",
    "res3.0.nl.phi.b",
    "res3.0.nl.g.w",
    "res3.0.nl.g.b",
    "res3.0.nl.w_z.w",
    "res3.0.nl.w_z.b",
    "res3.0.nl.bn.gamma",
    "res3.0.nl.bn.beta",
    "res4.0.conv1.w",
    "res4.0.bn1.gamma",
    "res4.0.bn1.beta",
    "res4.0.conv2.w",
    "res4.0.bn2.gamma",
    "res4.0.bn2.beta",
    "res4.0.proj.w",
    "res4.0.proj_bn.gamma",
    "res4.0.proj_bn.beta",
    "fc.w",
    "fc.b",
]
STATE_NAMES = [
    "bn1.running_mean",
    "bn1.running_var",
    "res2.0.bn1.running_mean",
    "res2.0.bn1.running_var",
    "res2.0.bn2.running_mean",
    "res2.0.bn2.running_var",
    "res3.0.bn1.running_mean",
    "res3.0.bn1.running_var",
    "res3.0.bn2.running_mean",
    "res3.0.bn2.running_var",
    "res3.0.proj_bn.running_mean",
    "res3.0.proj_bn.running_var",
    "res3.0.nl.bn.running_mean",
    "res3.0.nl.bn.running_var",
    "res4.0.bn1.running_mean",
    "res4.0.bn1.running_var",
    "res4.0.bn2.running_mean",
    "res4.0.bn2.running_var",
    "res4.0.proj_bn.running_mean",
    "res4.0.proj_bn.running_var",
]


def test_checkpoint_names_are_unchanged():
    _, p, s = build_model("c2d", nl_blocks=1)
    assert list(p) == PARAM_NAMES
    assert list(s) == STATE_NAMES
