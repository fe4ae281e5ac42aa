"""C2D and I3D video ResNets with 0 / 1 / 5 / 10 non-local blocks (Wang et al., CVPR 2018, Sec. 4).

This is where the blocks of :mod:`nlref.nn.blocks` become the paper's video
networks.  A model is data, three plain things:

* ``model``: a list of layer *specs* (dicts: ``{"op": "block", "name":
  "res3.1", ...}``); :func:`model_forward` walks it in order and
  :func:`model_backward` in reverse, each through the table
  :data:`MODEL_LAYERS` = ``{op: (forward, backward)}`` (print it);
* ``params``: one flat dict of named arrays (``"res3.1.conv2.w"``,
  ``"res3.1.nl.theta.w"``, ``"fc.w"``) that saves to ``.npz`` as it is;
* ``state``: the BatchNorm running statistics (``"res3.1.bn2.running_mean"``).

Pipeline of the ResNet-50 C2D (paper Table 1, a 32-frame 224x224 clip)::

    x                                                             (N, 3, 32, 224, 224)
    stem      conv1 1x7x7, stride (2, 2, 2) + BN + ReLU           (N, 64, 16, 112, 112)
    max_pool  pool1 3x3x3, stride 2                               (N, 64, 8, 56, 56)
    block     res2: 3 bottlenecks                                 (N, 256, 8, 56, 56)
    max_pool  pool2 3x1x1, stride (2, 1, 1): time only            (N, 256, 4, 56, 56)
    block     res3: 4 bottlenecks, first at stride (1, 2, 2)      (N, 512, 4, 28, 28)
    nonlocal  after some blocks of res3 and res4 (placement below)
    block     res4: 6 bottlenecks                                 (N, 1024, 4, 14, 14)
    block     res5: 3 bottlenecks                                 (N, 2048, 4, 7, 7)
    head      global average pool, dropout, fc                    (N, num_classes)

The layouts are the table :data:`LAYOUTS`, the residual blocks :data:`BLOCKS`.
Every C2D convolution is ``1 x k x k``: time is touched only by the pooling
layers.  **I3D** inflates the stem to ``5 x 7 x 7`` and one kernel every two
residual blocks to 3 frames -- ``inflate="3x3x3"`` (the 3x3 conv) or
``"3x1x1"`` (the first 1x1 conv, the paper's NL I3D).  Which blocks is the
table :data:`I3D_INFLATION` (:func:`inflation_table` spells it out per block);
with ResNet-50 depths it is the official code's ``use_temp_convs_2 = [1, 0, 1]``,
``use_temp_convs_3 = [1, 0, 1, 0]``, ``use_temp_convs_4 = [1, 0, 1, 0, 1, 0]``,
``use_temp_convs_5 = [0, 1, 0]`` (facebookresearch/video-nonlocal-net).

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
"space" (within each frame) or "time" (across frames at each position); see
:mod:`nlref.nn.blocks`.

Arguments are validated once, by :func:`build_model`; the forward checks only
the clip and runs every layer with ``check=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_namespace
from ._common import check_float, same_backend
from .blocks import (
    SPACE_TIME,
    basic_block_backward,
    basic_block_forward,
    bottleneck_block_backward,
    bottleneck_block_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    head_backward,
    head_forward,
    space_time_nonlocal_backward,
    space_time_nonlocal_forward,
)
from .init import as_generator, gaussian, he_normal, ones, zeros
from .nonlocal_block import NONLOCAL_MODES, init_nonlocal_params
from .params import unscope
from .pool import max_pool_backward, max_pool_forward

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
    "inflation_table",
    "LAYOUTS",
    "BLOCKS",
    "I3D_INFLATION",
    "INFLATED_CONV",
    "MODEL_LAYERS",
]

# ----------------------------------------------------------------------------- tables

# Stem kernel (C2D, I3D), stem stride, pool1 stride, and the defaults of depth, width, block.
LAYOUTS = {
    "resnet50": dict(stem=((1, 7, 7), (5, 7, 7)), stem_stride=(2, 2, 2), pool1_stride=(2, 2, 2),
                     depth=(3, 4, 6, 3), width=64, block="bottleneck"),
    "tiny": dict(stem=((1, 5, 5), (3, 5, 5)), stem_stride=(1, 2, 2), pool1_stride=(1, 2, 2),
                 depth=(1, 1, 1), width=8, block="basic"),
}
# The convolutions of a residual block before inflation, the one with the stage's spatial
# stride (1-based, as :mod:`nlref.nn.blocks` implements it) and the output channels / width.
BLOCKS = {
    "basic": dict(kernels=((1, 3, 3), (1, 3, 3)), stride_conv=1, expansion=1),
    "bottleneck": dict(kernels=((1, 1, 1), (1, 3, 3), (1, 1, 1)), stride_conv=2, expansion=4),
}
# I3D: whether block i of a stage has a temporal kernel is I3D_INFLATION[stage][i % 2]
# (blocks 0, 2, ... of res2-res4 and 1, 3, ... of res5, as the official code).
I3D_INFLATION = {"res2": (1, 0), "res3": (1, 0), "res4": (1, 0), "res5": (0, 1)}
# (block, inflate) -> index of the conv that gets 3 frames in an inflated block.
INFLATED_CONV = {("basic", "3x3x3"): 0, ("bottleneck", "3x3x3"): 1, ("bottleneck", "3x1x1"): 0}
T_INFLATED = 3  # frames of an inflated residual-block kernel


def inflation_table(depth: tuple[int, ...]) -> dict[str, list[int]]:
    """Which residual blocks of an I3D network have a temporal kernel (1) and which not (0).

    >>> inflation_table((3, 4, 6, 3))
    {'res2': [1, 0, 1], 'res3': [1, 0, 1, 0], 'res4': [1, 0, 1, 0, 1, 0], 'res5': [0, 1, 0]}
    """
    return {f"res{s}": [I3D_INFLATION[f"res{s}"][i % 2] for i in range(n)] for s, n in zip(range(2, 6), depth)}


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


# ----------------------------------------------------------------------------- builders


def _conv_bn_params(rng, name: str, c_in: int, c_out: int, kernel: tuple, dtype, xp) -> tuple[dict, dict]:
    """He-initialised bias-free conv + BN (gamma 1, beta 0): ``name.w``, ``bn.gamma``, ``bn.beta``.

    The BN is named after the conv (``res3.0.conv1`` -> ``res3.0.bn1``, ``res3.0.proj`` -> ``res3.0.proj_bn``).
    """
    params = {f"{name}.w": he_normal((c_out, c_in, *kernel), rng, dtype=dtype, xp=xp)}
    bn = name.replace("conv", "bn") if "conv" in name else name + "_bn"
    params.update({f"{bn}.gamma": ones(c_out, dtype=dtype, xp=xp), f"{bn}.beta": zeros(c_out, dtype=dtype, xp=xp)})
    state = {f"{bn}.running_mean": zeros(c_out, dtype=dtype, xp=xp),
             f"{bn}.running_var": ones(c_out, dtype=dtype, xp=xp)}
    return params, state


def _residual_block(rng, name, block, c_in, inner, stride, kt, inflate, t_pad, dtype, xp):
    """Spec, parameters and BN state of one residual block; ``kt`` frames on its inflated conv."""
    kernels = [list(k) for k in BLOCKS[block]["kernels"]]
    if kt > 1:
        kernels[INFLATED_CONV[(block, inflate)]][0] = kt
    c_out = inner * BLOCKS[block]["expansion"]
    chans = [c_in] + [inner] * (len(kernels) - 1) + [c_out]
    params, state = {}, {}
    for j, k in enumerate(kernels):
        p, st = _conv_bn_params(rng, f"{name}.conv{j + 1}", chans[j], chans[j + 1], tuple(k), dtype, xp)
        params.update(p)
        state.update(st)
    proj = stride != 1 or c_in != c_out
    if proj:
        p, st = _conv_bn_params(rng, f"{name}.proj", c_in, c_out, (1, 1, 1), dtype, xp)
        params.update(p)
        state.update(st)
    spec = {"op": "block", "name": name, "block": block, "n_convs": len(kernels), "stride": (1, stride, stride),
            "stride_conv": BLOCKS[block]["stride_conv"], "proj": proj, "t_pad": t_pad}
    return spec, params, state


def _check_build_args(arch, depth, width, block, inflate, nl_mode, nl_space_time, temporal_padding, dropout):
    if len(depth) not in (3, 4) or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in depth):
        raise ValueError(f"depth must be 3 or 4 ints >= 1 (blocks of res2..res4/res5), received {depth!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an int >= 1, received {width!r}")
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {tuple(BLOCKS)}, received {block!r}")
    if inflate not in ("3x3x3", "3x1x1"):
        raise ValueError(f"inflate must be '3x3x3' or '3x1x1', received {inflate!r}")
    if arch == "i3d" and (block, inflate) not in INFLATED_CONV:
        raise ValueError(f"inflate={inflate!r} needs bottleneck blocks (it inflates their first 1x1 conv); "
                         "use inflate='3x3x3' with basic blocks")
    if nl_mode not in NONLOCAL_MODES:
        raise ValueError(f"nl_mode must be one of {NONLOCAL_MODES}, received {nl_mode!r}")
    if nl_space_time not in SPACE_TIME:
        raise ValueError(f"nl_space_time must be one of {SPACE_TIME}, received {nl_space_time!r}")
    if temporal_padding not in ("zeros", "replicate"):
        raise ValueError(f"temporal_padding must be 'zeros' or 'replicate', received {temporal_padding!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")


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
        Which positions a non-local block compares (:mod:`nlref.nn.blocks`).
    inflate : {"3x3x3", "3x1x1"}
        I3D only: which kernel of an inflated block gets 3 frames
        (:data:`INFLATED_CONV`); "3x1x1" needs bottleneck blocks (the 1x1 conv
        it inflates).  Which blocks are inflated: :func:`inflation_table`.
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
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, received {layout!r}")
    lay = LAYOUTS[layout]
    depth = tuple(lay["depth"] if depth is None else depth)
    width = lay["width"] if width is None else width
    block = lay["block"] if block is None else block
    _check_build_args(arch, depth, width, block, inflate, nl_mode, nl_space_time, temporal_padding, dropout)
    nl_after = set(nonlocal_positions(depth, nl_blocks))
    rng = as_generator(rng)
    temporal = inflation_table(depth) if arch == "i3d" else None

    params, state = _conv_bn_params(rng, "conv1", in_channels, width, lay["stem"][arch == "i3d"], dtype, xp)
    model = [
        {"op": "stem", "stride": lay["stem_stride"], "t_pad": temporal_padding},
        {"op": "max_pool", "kernel_size": (3, 3, 3), "stride": lay["pool1_stride"], "padding": (1, 1, 1)},
    ]
    c_in = width
    for s, n_blocks in enumerate(depth):
        stage = s + 2
        if stage == 3:  # pool2: time only
            model.append({"op": "max_pool", "kernel_size": (3, 1, 1), "stride": (2, 1, 1), "padding": (1, 0, 0)})
        for i in range(n_blocks):
            name = f"res{stage}.{i}"
            kt = T_INFLATED if temporal and temporal[f"res{stage}"][i] else 1
            stride = 2 if (stage > 2 and i == 0) else 1
            spec, p, st = _residual_block(rng, name, block, c_in, width * 2 ** s, stride, kt, inflate,
                                          temporal_padding, dtype, xp)
            model.append(spec)
            params.update(p)
            state.update(st)
            c_in = params[f"{name}.conv{spec['n_convs']}.w"].shape[0]
            if name in nl_after:
                p, st = init_nonlocal_params(c_in, mode=nl_mode, ndim=3, rng=rng, dtype=dtype, xp=xp)
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


# ----------------------------------------------------------------------------- the layer table
# Every entry: forward(x, params, state, spec, *, train, rng) -> (out, cache, new_state)
#              backward(dout, cache, spec, *, need_dx) -> (dx, grads)


def _padding_mode(spec):
    # "replicate" pads time only: H and W keep the zero padding of the 2-D network
    return ("replicate", "zeros", "zeros") if spec["t_pad"] == "replicate" else "zeros"


def _stem_forward(x, params, state, spec, *, train, rng):
    return conv_bn_relu_forward(x, params, state, "conv1", "bn1", stride=spec["stride"],
                                padding_mode=_padding_mode(spec), train=train)


def _stem_backward(dout, cache, spec, *, need_dx):
    return conv_bn_relu_backward(dout, cache, need_dx=need_dx)  # the clip rarely needs its gradient


def _pool_forward(x, params, state, spec, *, train, rng):
    out, cache = max_pool_forward(x, kernel_size=spec["kernel_size"], stride=spec["stride"],
                                  padding=spec["padding"], check=False)
    return out, cache, {}


def _pool_backward(dout, cache, spec, *, need_dx):
    return max_pool_backward(dout, cache)


_RESIDUAL = {"basic": (basic_block_forward, basic_block_backward),
             "bottleneck": (bottleneck_block_forward, bottleneck_block_backward)}


def _block_forward(x, params, state, spec, *, train, rng):
    forward, _ = _RESIDUAL[spec["block"]]
    return forward(x, params, state, spec["name"], stride=spec["stride"], proj=spec["proj"],
                   padding_mode=_padding_mode(spec), train=train)


def _block_backward(dout, cache, spec, *, need_dx):
    _, backward = _RESIDUAL[spec["block"]]
    return backward(dout, cache)


def _nonlocal_forward(x, params, state, spec, *, train, rng):
    return space_time_nonlocal_forward(x, params, state, spec["name"], mode=spec["mode"],
                                       subsample=spec["subsample"], space_time=spec["space_time"], train=train)


def _nonlocal_backward(dout, cache, spec, *, need_dx):
    return space_time_nonlocal_backward(dout, cache)


def _head_forward(x, params, state, spec, *, train, rng):
    out, cache = head_forward(x, params, dropout=spec["dropout"], train=train, rng=rng)
    return out, cache, {}


def _head_backward(dout, cache, spec, *, need_dx):
    return head_backward(dout, cache)


MODEL_LAYERS = {
    "stem": (_stem_forward, _stem_backward),  # conv1 + BN + ReLU
    "max_pool": (_pool_forward, _pool_backward),  # pool1, pool2
    "block": (_block_forward, _block_backward),  # basic or bottleneck residual block
    "nonlocal": (_nonlocal_forward, _nonlocal_backward),  # non-local block over spacetime / space / time
    "head": (_head_forward, _head_backward),  # global average pool, dropout, fc
}


def _layer(spec: dict) -> tuple:
    """The (forward, backward) pair of a spec; a clear error for a kind the table does not know."""
    op = spec.get("op") if isinstance(spec, dict) else None
    if op not in MODEL_LAYERS:
        raise ValueError(f"model: unknown layer kind {op!r} in spec {spec!r}; known kinds: {list(MODEL_LAYERS)}")
    return MODEL_LAYERS[op]


# ----------------------------------------------------------------------------- forward / backward


def _check_clip(x: Any, params: dict[str, Any], train: Any) -> None:
    if not hasattr(x, "ndim") or x.ndim != 5:
        raise ValueError(f"x must be a clip batch of shape (N, C, T, H, W), received {getattr(x, 'shape', type(x))}")
    check_float(x, "x")
    w = params["conv1.w"]
    if x.dtype != w.dtype:
        raise TypeError(f"x must have the dtype of the model's parameters ({w.dtype}), received {x.dtype}")
    same_backend(x, w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the model expects {w.shape[1]}")
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"train must be a bool, received {train!r}")


def model_forward(
    x: Any, params: dict[str, Any], state: dict[str, Any], model: list[dict], *, train: bool, rng: Any = None
) -> tuple[Any, list, dict[str, Any]]:
    """Run a C2D / I3D network on a batch of clips: each spec's forward from :data:`MODEL_LAYERS`, in order.

    Parameters
    ----------
    x : ndarray, shape (N, C, T, H, W), float32 or float64
    params, state, model
        As returned by :func:`build_model` (validated there, so the layers run with ``check=False``).
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
    _check_clip(x, params, train)
    layers = [_layer(spec) for spec in model]  # every kind known before any work
    new_state: dict[str, Any] = {}
    caches = []
    out = x
    for spec, (forward, _) in zip(model, layers):
        out, c, st = forward(out, params, state, spec, train=train, rng=rng)
        new_state.update(st)
        caches.append(c)
    return out, list(zip(model, caches)), new_state


def model_backward(dlogits: Any, cache: list, *, return_dx: bool = False) -> Any:
    """Gradients of the loss w.r.t. every parameter, given ``dL/dlogits``: the specs' backwards in reverse.

    Returns
    -------
    grads : dict
        Same keys as ``params``.
    dx : ndarray, shape (N, C, T, H, W)
        Only with ``return_dx=True``, returned first: ``(dx, grads)``.
    """
    grads: dict[str, Any] = {}
    d = dlogits
    for i in reversed(range(len(cache))):
        spec, c = cache[i]
        _, backward = _layer(spec)
        # the first layer skips its dx unless the clip's gradient is asked for
        d, g = backward(d, c, spec, need_dx=return_dx or i > 0)
        grads.update(g)
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
    for spec in model:
        _layer(spec)
        op = spec["op"]
        if op == "stem":
            kernels, strides = [params["conv1.w"].shape[2]], [spec["stride"][0]]
        elif op == "max_pool":
            kernels, strides = [spec["kernel_size"][0]], [spec["stride"][0]]
        elif op == "block":
            kernels = [params[f"{spec['name']}.conv{j}.w"].shape[2] for j in range(1, spec["n_convs"] + 1)]
            strides = [1] * len(kernels)
        elif op == "nonlocal" and spec["space_time"] != "space":
            return float("inf")
        else:  # a "space" non-local block or the head: no temporal window
            kernels, strides = [], []
        for k, s in zip(kernels, strides):
            rf += (k - 1) * jump
            jump *= s
    return float(rf)
