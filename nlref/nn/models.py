"""C2D and I3D video ResNets with 0 / 1 / 5 / 10 non-local blocks (Wang et al., CVPR 2018, Sec. 4).

This is where the layers and the non-local block become the paper's video
networks.  A model is three plain things:

* ``model``: a list of layer *specs* (dicts: ``{"op": "block", "name":
  "res3.1", ...}``) that :func:`model_forward` walks in order;
* ``params``: one flat dict of named arrays (``"res3.1.conv2.w"``,
  ``"res3.1.nl.theta.w"``, ``"fc.w"``) that saves to ``.npz`` as it is;
* ``state``: the BatchNorm running statistics (``"res3.1.bn2.running_mean"``).

**C2D** (paper Table 1): conv1 ``1 x 7 x 7`` stride (2, 2, 2), pool1 max
``3 x 3 x 3`` stride 2, res2, pool2 max ``3 x 1 x 1`` stride (2, 1, 1), res3,
res4, res5 (bottleneck blocks, ResNet-50 depth 3/4/6/3), global average pool,
dropout, fc.  Every convolution is ``1 x k x k``: time is touched only by the
pooling layers.  **I3D** inflates one kernel every two residual blocks --
``inflate="3x3x3"`` (the 3x3 conv) or ``"3x1x1"`` (the first 1x1 conv, the
paper's NL I3D) -- and the stem to ``5 x 7 x 7``.  As in the official code
(facebookresearch/video-nonlocal-net) block ``i`` of res2-res4 is inflated
when ``i`` is even, of res5 when ``i`` is odd.

**Tiny layout** (``layout="tiny"``, for the synthetic task of
:mod:`nlref.data.synthetic_video`; PAPER_NOTES): conv1 ``1 x 5 x 5`` stride
(1, 2, 2), pool1 max ``3 x 3 x 3`` stride (1, 2, 2), res2 / pool2 / res3 /
res4 with one *basic* block each (two 3x3 convs; width ``w``, ``2w``, ``4w``),
global average pool, fc.  Its temporal receptive field is 5 frames
(:func:`temporal_receptive_field`).  I3D inflates the first conv of each block
to ``3 x 3 x 3`` and the stem to ``3 x 5 x 5``.

**Non-local blocks** go after residual blocks, as in the paper: ``nl_blocks=1``
right before the last residual block of res4; ``5`` after every other block
of res3 and res4, counted from each stage's last block (2 + 3 with ResNet-50
depths, blocks 1, 3 of res3 and 1, 3, 5 of res4); ``10`` after every block of
res3 and res4.  With fewer blocks per stage the *rules* are kept, so the
counts shrink: with the tiny depth (1, 1, 1) 1 block goes after res3.0 and
5 or 10 give 2 blocks (after res3.0 and res4.0); with depth (1, 2, 2) they give
1 / 2 / 4.  :func:`count_nonlocal` says how many a model has.
``nl_space_time`` restricts the attention: "spacetime" (all T H W positions),
"space" (within each frame: frames are folded into the batch axis around the
block) or "time" (across frames at each position: positions folded into the
batch axis).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_namespace
from .conv import conv_backward, conv_forward
from .init import as_generator, gaussian, he_normal, ones, zeros
from .layers import dropout_backward, dropout_forward, linear_backward, linear_forward, relu_backward, relu_forward
from .norm import batch_norm_backward, batch_norm_forward
from .params import scope, unscope
from .pool import global_avg_pool_backward, global_avg_pool_forward, max_pool_backward, max_pool_forward

__all__ = [
    "c2d",
    "i3d",
    "build_model",
    "model_forward",
    "model_backward",
    "inflate_2d_to_3d",
    "nonlocal_positions",
    "count_nonlocal",
    "temporal_receptive_field",
]

# Defaults of the two layouts: stem kernel (C2D / I3D), stem stride, pool1 / pool2 stride,
# depth, width, block type.
_LAYOUTS = {
    "resnet50": dict(stem=((1, 7, 7), (5, 7, 7)), stem_stride=(2, 2, 2), pool1_stride=(2, 2, 2),
                     depth=(3, 4, 6, 3), width=64, block="bottleneck"),
    "tiny": dict(stem=((1, 5, 5), (3, 5, 5)), stem_stride=(1, 2, 2), pool1_stride=(1, 2, 2),
                 depth=(1, 1, 1), width=8, block="basic"),
}
_NL_MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")


# ----------------------------------------------------------------------------- placement rules


def nonlocal_positions(depth: tuple[int, ...], nl_blocks: int) -> list[str]:
    """Names of the residual blocks followed by a non-local block (paper, Sec. 4.1).

    ``depth`` lists the blocks of res2, res3, res4 (, res5).  See the module
    docstring for how the rules scale to smaller depths.

    >>> nonlocal_positions((3, 4, 6, 3), 5)
    ['res3.1', 'res3.3', 'res4.1', 'res4.3', 'res4.5']
    >>> nonlocal_positions((3, 4, 6, 3), 1)
    ['res4.4']
    """
    n3, n4 = depth[1], depth[2]
    if nl_blocks == 0:
        return []
    if nl_blocks == 1:  # right before the last residual block of res4
        return [f"res4.{n4 - 2}"] if n4 >= 2 else [f"res3.{n3 - 1}"]
    if nl_blocks == 5:  # every other block, ending with the stage's last one
        return [f"res{s}.{i}" for s, n in ((3, n3), (4, n4)) for i in range(n) if (n - 1 - i) % 2 == 0]
    if nl_blocks == 10:
        return [f"res{s}.{i}" for s, n in ((3, n3), (4, n4)) for i in range(n)]
    raise ValueError(f"nl_blocks must be 0, 1, 5 or 10, received {nl_blocks!r}")


def count_nonlocal(model: list[dict]) -> int:
    """Number of non-local blocks in a model."""
    return sum(spec["op"] == "nonlocal" for spec in model)


def _inflated(stage: int, i: int) -> bool:
    # official video-nonlocal-net: blocks 0, 2, ... of res2-res4 and 1, 3, ... of res5
    return i % 2 == (1 if stage == 5 else 0)


# ----------------------------------------------------------------------------- builders


def _conv_bn_params(rng, name: str, c_in: int, c_out: int, kernel: tuple, dtype, xp) -> tuple[dict, dict]:
    """He-initialised bias-free conv + BN (gamma 1, beta 0) named ``name`` and ``bn_name``."""
    params = {f"{name}.w": he_normal((c_out, c_in, *kernel), rng, dtype=dtype, xp=xp)}
    bn = name.replace("conv", "bn") if "conv" in name else name + "_bn"
    params.update({f"{bn}.gamma": ones(c_out, dtype=dtype, xp=xp), f"{bn}.beta": zeros(c_out, dtype=dtype, xp=xp)})
    state = {f"{bn}.running_mean": zeros(c_out, dtype=dtype, xp=xp), f"{bn}.running_var": ones(c_out, dtype=dtype, xp=xp)}
    return params, state


def build_model(
    arch: str = "c2d",
    *,
    layout: str = "tiny",
    depth: tuple[int, ...] | None = None,
    width: int | None = None,
    block: str | None = None,
    in_channels: int = 3,
    num_classes: int = 2,
    nl_blocks: int = 0,
    nl_mode: str = "embedded_gaussian",
    nl_subsample: bool = False,
    nl_space_time: str = "spacetime",
    inflate: str = "3x3x3",
    temporal_padding: str = "zeros",
    dropout: float = 0.0,
    rng: Any = 0,
    dtype: Any = np.float32,
    xp: Any = np,
) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """Build a C2D or I3D ResNet, with or without non-local blocks.

    Parameters
    ----------
    arch : {"c2d", "i3d"}
    layout : {"tiny", "resnet50"}
        Stem, strides and the defaults of ``depth`` / ``width`` / ``block``
        (module docstring).
    depth : tuple of 3 or 4 ints, optional
        Residual blocks in res2, res3, res4 (, res5); e.g. ``(3, 4, 6, 3)``.
    width : int, optional
        Channels of res2 (inner channels of its bottlenecks); doubled per stage.
    block : {"basic", "bottleneck"}, optional
        Two 3x3 convs, or 1x1 -> 3x3 -> 1x1 with 4x expansion (He et al., CVPR 2016).
        The spatial stride of a stage is on its first block's 3x3 conv.
    in_channels, num_classes : int
    nl_blocks : {0, 1, 5, 10}
        Non-local blocks, placed by :func:`nonlocal_positions`.
    nl_mode : {"embedded_gaussian", "gaussian", "dot_product", "concatenation"}
    nl_subsample : bool
        Max-pool phi and g by (1, 2, 2) (paper Sec. 3.3); ignored by "time" blocks
        and on 1-pixel feature maps.
    nl_space_time : {"spacetime", "space", "time"}
    inflate : {"3x3x3", "3x1x1"}
        I3D only: which kernel of an inflated block gets 3 frames; "3x1x1"
        needs bottleneck blocks (the 1x1 conv it inflates).
    temporal_padding : {"zeros", "replicate"}
        How temporal (I3D) convolutions pad time.  "zeros" is the official
        code; "replicate" repeats the first/last frame, so that a clip of
        identical frames gives exactly the C2D output after
        :func:`inflate_2d_to_3d` (zero padding changes the border frames).
    dropout : float
        Dropout before fc (the paper uses 0.5).
    rng : numpy.random.Generator or int
        Seed of the He / Gaussian initialisation.
    dtype, xp
        float32 / float64; ``numpy`` or ``cupy`` (draws happen on the host).

    Returns
    -------
    model : list of dict
        Layer specs for :func:`model_forward`.
    params : dict
        Flat named parameters.
    state : dict
        BatchNorm running statistics.
    """
    if arch not in ("c2d", "i3d"):
        raise ValueError(f"arch must be 'c2d' or 'i3d', received {arch!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(_LAYOUTS)}, received {layout!r}")
    lay = _LAYOUTS[layout]
    depth = tuple(lay["depth"] if depth is None else depth)
    width = lay["width"] if width is None else width
    block = lay["block"] if block is None else block
    if len(depth) not in (3, 4) or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in depth):
        raise ValueError(f"depth must be 3 or 4 ints >= 1 (blocks of res2..res4/res5), received {depth!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an int >= 1, received {width!r}")
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck', received {block!r}")
    if inflate not in ("3x3x3", "3x1x1"):
        raise ValueError(f"inflate must be '3x3x3' or '3x1x1', received {inflate!r}")
    if arch == "i3d" and inflate == "3x1x1" and block == "basic":
        raise ValueError("inflate='3x1x1' needs bottleneck blocks (it inflates their first 1x1 conv); "
                         "use inflate='3x3x3' with basic blocks")
    if nl_mode not in _NL_MODES:
        raise ValueError(f"nl_mode must be one of {_NL_MODES}, received {nl_mode!r}")
    if nl_space_time not in ("spacetime", "space", "time"):
        raise ValueError(f"nl_space_time must be 'spacetime', 'space' or 'time', received {nl_space_time!r}")
    if temporal_padding not in ("zeros", "replicate"):
        raise ValueError(f"temporal_padding must be 'zeros' or 'replicate', received {temporal_padding!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
    nl_after = set(nonlocal_positions(depth, nl_blocks))
    rng = as_generator(rng)
    i3d_ = arch == "i3d"
    pad = temporal_padding

    stem_k = lay["stem"][1 if i3d_ else 0]
    params, state = _conv_bn_params(rng, "conv1", in_channels, width, stem_k, dtype, xp)
    model = [
        {"op": "stem", "stride": lay["stem_stride"], "t_pad": pad},
        {"op": "max_pool", "kernel_size": (3, 3, 3), "stride": lay["pool1_stride"], "padding": (1, 1, 1)},
    ]
    expansion = 4 if block == "bottleneck" else 1
    c_in = width
    for s, n_blocks in enumerate(depth):
        stage = s + 2
        if stage == 3:  # pool2: time only
            model.append({"op": "max_pool", "kernel_size": (3, 1, 1), "stride": (2, 1, 1), "padding": (1, 0, 0)})
        inner = width * 2 ** s
        c_out = inner * expansion
        for i in range(n_blocks):
            name = f"res{stage}.{i}"
            stride = 2 if (stage > 2 and i == 0) else 1
            kt = 3 if (i3d_ and _inflated(stage, i)) else 1
            if block == "basic":
                kernels = [(kt, 3, 3), (1, 3, 3)]
                chans = [(c_in, inner), (inner, c_out)]
            else:
                k1, k2 = ((kt, 1, 1), (1, 3, 3)) if inflate == "3x1x1" else ((1, 1, 1), (kt, 3, 3))
                kernels = [k1, k2, (1, 1, 1)]
                chans = [(c_in, inner), (inner, inner), (inner, c_out)]
            for j, (k, (ci, co)) in enumerate(zip(kernels, chans)):
                p, st = _conv_bn_params(rng, f"{name}.conv{j + 1}", ci, co, k, dtype, xp)
                params.update(p)
                state.update(st)
            proj = stride != 1 or c_in != c_out
            if proj:
                p, st = _conv_bn_params(rng, f"{name}.proj", c_in, c_out, (1, 1, 1), dtype, xp)
                params.update(p)
                state.update(st)
            model.append({"op": "block", "name": name, "block": block, "n_convs": len(kernels),
                          "stride": (1, stride, stride), "stride_conv": 1 if block == "basic" else 2,
                          "proj": proj, "t_pad": pad})
            c_in = c_out
            if name in nl_after:
                from .nonlocal_block import init_nonlocal_params

                p, st = init_nonlocal_params(c_out, mode=nl_mode, ndim=3, rng=rng, dtype=dtype, xp=xp)
                params.update(unscope(p, f"{name}.nl"))
                state.update(unscope(st, f"{name}.nl"))
                model.append({"op": "nonlocal", "name": f"{name}.nl", "mode": nl_mode,
                              "subsample": nl_subsample and nl_space_time != "time", "space_time": nl_space_time})
    params["fc.w"] = gaussian((num_classes, c_in), 0.01, rng, dtype=dtype, xp=xp)
    params["fc.b"] = zeros(num_classes, dtype=dtype, xp=xp)
    model.append({"op": "head", "dropout": float(dropout)})
    return model, params, state


def c2d(**kwargs: Any) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """C2D ResNet (2-D convolutions only); keyword arguments of :func:`build_model`."""
    return build_model("c2d", **kwargs)


def i3d(**kwargs: Any) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """I3D ResNet (one kernel inflated every two blocks); keyword arguments of :func:`build_model`."""
    return build_model("i3d", **kwargs)


# ----------------------------------------------------------------------------- forward / backward


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
        out, c = _conv_bn(out, params, state, f"{name}.conv{j}", f"{name}.bn{j}", stride, spec["t_pad"], train,
                          new_state)
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
    from .nonlocal_block import nonlocal_block_forward

    name, st = spec["name"], spec["space_time"]
    # subsample phi and g by (1, 2, 2), except on feature maps of a single pixel
    sub = (1, 2, 2) if spec["subsample"] and min(x.shape[3:]) >= 2 else None
    z, cache, s = nonlocal_block_forward(get_namespace(x).ascontiguousarray(_fold(x, st)), scope(params, name),
                                         scope(state, name), mode=spec["mode"], subsample=sub, train=train)
    new_state.update(unscope(s, name))
    return _unfold(z, st, x.shape), (cache, x.shape)


def _nonlocal_backward(dout, cache, spec, grads):
    from .nonlocal_block import nonlocal_block_backward

    c, shape = cache
    st = spec["space_time"]
    dx, g = nonlocal_block_backward(get_namespace(dout).ascontiguousarray(_fold(dout, st)), c)
    grads.update(unscope(g, spec["name"]))
    return _unfold(dx, st, shape)


def model_forward(
    x: Any, params: dict[str, Any], state: dict[str, Any], model: list[dict], *, train: bool, rng: Any = None
) -> tuple[Any, list, dict[str, Any]]:
    """Run a C2D / I3D network on a batch of clips.

    Parameters
    ----------
    x : ndarray, shape (N, C, T, H, W), float32 or float64
    params, state, model
        As returned by :func:`build_model`.
    train : bool
        BatchNorm batch statistics and dropout (True) or running statistics (False).
    rng : numpy.random.Generator or int, optional
        Dropout mask (needed when training with dropout > 0).

    Returns
    -------
    logits : ndarray, shape (N, num_classes)
    cache : list
        For :func:`model_backward`.
    new_state : dict
        Updated BatchNorm running statistics (the input ``state`` is not modified).
    """
    if not hasattr(x, "ndim") or x.ndim != 5:
        raise ValueError(f"x must be a clip batch of shape (N, C, T, H, W), received {getattr(x, 'shape', type(x))}")
    if x.shape[1] != params["conv1.w"].shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the model expects {params['conv1.w'].shape[1]}")
    new_state: dict[str, Any] = {}
    caches = []
    out = x
    for spec in model:
        op = spec["op"]
        if op == "stem":
            out, c = _conv_bn(out, params, state, "conv1", "bn1", spec["stride"], spec["t_pad"], train, new_state)
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


def model_backward(dlogits: Any, cache: list, *, return_dx: bool = False):
    """Gradients of the loss w.r.t. every parameter, given ``dL/dlogits``.

    Returns
    -------
    grads : dict
        Same keys as ``params``.
    dx : ndarray, shape (N, C, T, H, W)
        Only with ``return_dx=True``, returned first: ``(dx, grads)``.
    """
    grads: dict[str, Any] = {}
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


# ----------------------------------------------------------------------------- inflation and receptive field


def inflate_2d_to_3d(params2d: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Inflate 2-D kernels to the 3-D shapes of ``target`` (Carreira & Zisserman 2017; Wang et al. Sec. 4.1).

    A kernel ``w`` of shape ``(C_out, C_in, k, k)`` or ``(C_out, C_in, 1, k, k)``
    becomes ``w3[:, :, t] = w / T`` for each of the ``T`` frames of the target
    kernel: the sum over time of the inflated kernel is the 2-D one, so on a
    clip whose frames are all equal the 3-D network computes the 2-D network's
    features (exactly, with ``temporal_padding="replicate"``).  Other arrays
    (BN, fc, non-local 1x1x1 convs) are copied.

    Parameters
    ----------
    params2d : dict
        Parameters of a C2D network (or 2-D kernels of an image ResNet with the same names).
    target : dict
        Parameters (or just arrays of the right shapes) of the I3D network,
        e.g. from :func:`i3d` with the same depth, width and non-local blocks.

    Returns
    -------
    dict with the keys and shapes of ``target``, on the backend of ``params2d``.
    """
    missing = sorted(set(target) - set(params2d))
    extra = sorted(set(params2d) - set(target))
    if missing or extra:
        raise ValueError(f"params2d and target must have the same keys; missing in params2d: {missing[:3]}, "
                         f"not in target: {extra[:3]}")
    out = {}
    for key, ref in target.items():
        w = params2d[key]
        shape = tuple(ref.shape)
        if w.ndim == len(shape) - 1:  # a genuinely 2-D kernel: add the time axis
            w = w[:, :, None]
        if tuple(w.shape) == shape:
            out[key] = w.copy()
        elif w.ndim == 5 and w.shape[2] == 1 and (w.shape[:2], w.shape[3:]) == (shape[:2], shape[3:]):
            xp = get_namespace(w)
            out[key] = xp.repeat(w, shape[2], axis=2) / w.dtype.type(shape[2])
        else:
            raise ValueError(f"cannot inflate {key!r} of shape {tuple(params2d[key].shape)} to {shape}")
    return out


def temporal_receptive_field(model: list[dict], params: dict[str, Any]) -> float:
    """Frames seen by one unit before the head (``inf`` once a space-time or time non-local block is passed).

    ``rf += (k_t - 1) * jump`` and ``jump *= s_t`` through every conv and
    pool; the tiny C2D gives ``1 + 2 * 1 + 2 * 1 = 5`` frames (pool1, pool2).
    """
    rf, jump = 1, 1

    def layer(k, s):
        nonlocal rf, jump
        rf += (k - 1) * jump
        jump *= s

    for spec in model:
        if spec["op"] == "stem":
            layer(params["conv1.w"].shape[2], spec["stride"][0])
        elif spec["op"] == "max_pool":
            layer(spec["kernel_size"][0], spec["stride"][0])
        elif spec["op"] == "block":
            for j in range(1, spec["n_convs"] + 1):
                layer(params[f"{spec['name']}.conv{j}.w"].shape[2], 1)
        elif spec["op"] == "nonlocal" and spec["space_time"] != "space":
            return float("inf")
    return float(rf)
