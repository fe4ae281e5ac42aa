"""C2D and I3D video ResNets with 0 / 1 / 5 / 10 non-local blocks (Wang et al., CVPR 2018, Sec. 4).

This is where the blocks of :mod:`nlref.nn.video.blocks` become the paper's video networks.  A model
is data, three plain things: ``model``, a list of layer specs (``{"op": "block", "name": "res3.1",
...}``) that :func:`model_forward` walks in order and :func:`model_backward` in reverse through
the table :data:`MODEL_LAYERS` = ``{op: (forward, backward)}`` (print it; the kinds are in
:mod:`nlref.nn.video.layers`); ``params``, one flat dict of named arrays (``"res3.1.conv2.w"``,
``"res3.1.nl.theta.w"``, ``"fc.w"``) that saves to ``.npz`` as it is; ``state``, the BatchNorm
running statistics::

    op        layer: ResNet-50 (paper Table 1) | tiny (PAPER_NOTES)  ResNet-50, 32x224x224  tiny, 16x32x32
    stem      conv1 1x7x7 s(2,2,2) | 1x5x5 s(1,2,2); BN; ReLU        (N, 64, 16, 112, 112)  (N, 8, 16, 16, 16)
    max_pool  pool1 3x3x3, s(2,2,2) | s(1,2,2)                        (N, 64, 8, 56, 56)     (N, 8, 16, 8, 8)
    block     res2: 3 bottlenecks | 1 basic block                     (N, 256, 8, 56, 56)    (N, 8, 16, 8, 8)
    max_pool  pool2 3x1x1, s(2,1,1): time only                        (N, 256, 4, 56, 56)    (N, 8, 8, 8, 8)
    block     res3: 4 | 1, the first at s(1,2,2)  [+ nonlocal]        (N, 512, 4, 28, 28)    (N, 16, 8, 4, 4)
    block     res4: 6 | 1                         [+ nonlocal]        (N, 1024, 4, 14, 14)   (N, 32, 8, 2, 2)
    block     res5: 3 | -                                             (N, 2048, 4, 7, 7)
    head      global average pool, dropout, fc                        (N, num_classes)

The layouts are the table :data:`LAYOUTS`, the blocks :data:`BLOCKS` (a bottleneck is 1x1 -> 3x3
-> 1x1 with 4x expansion, a basic block two 3x3 convs).  Every C2D convolution is ``1 x k x k``:
only the pools touch time, and the tiny C2D sees 5 frames (:func:`temporal_receptive_field`).
**I3D** inflates the stem to 5 (tiny: 3) frames and one conv every two residual blocks to 3
frames: which blocks is the table :data:`I3D_INFLATION` (spelt out by :func:`inflation_table`;
for ResNet-50 the official code's ``use_temp_convs_2 = [1, 0, 1]`` ... ``use_temp_convs_5 =
[0, 1, 0]``, facebookresearch/video-nonlocal-net), which conv is :data:`INFLATED_CONV`
(``inflate="3x3x3"``: the 3x3 conv; ``"3x1x1"``: the first 1x1 conv, the paper's NL I3D).

**Non-local blocks** go after residual blocks (:func:`nonlocal_positions`):
``nl_blocks=1`` right before the last residual block of res4; ``5`` after every
other block of res3 and res4, counted from each stage's last block (blocks 1, 3
of res3 and 1, 3, 5 of res4 with ResNet-50 depths); ``10`` after every block of
res3 and res4.  With fewer blocks per stage the *rules* are kept, so the counts
shrink: the tiny depth (1, 1, 1) gets 1 block after res3.0 and 2 (after res3.0
and res4.0) for 5 or 10; depth (1, 2, 2) gets 1 / 2 / 4 (:func:`count_nonlocal`).
``nl_space_time``: attention over "spacetime", "space" or "time" (:mod:`nlref.nn.video.blocks`).

Arguments are validated once, by :func:`build_model`; the forward checks only the clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers._common import check_float, same_backend
from ..layers.init import as_generator
from ..nl._checks import NONLOCAL_MODES
from ..nl.block import NONLOCAL_INITS
from ..nl.window import as_window
from .blocks import SPACE_TIME
from .layers import (
    BLOCKS,
    block_layer,
    head_layer,
    lookup_layer,
    nonlocal_layer,
    pool_layer,
    stem_layer,
)

__all__ = [
    "c2d",
    "i3d",
    "build_model",
    "model_forward",
    "model_backward",
    "nonlocal_positions",
    "count_nonlocal",
    "inflation_table",
    "LAYOUTS",
    "I3D_INFLATION",
    "INFLATED_CONV",
]

# ----------------------------------------------------------------------------- tables

# Stem kernel (C2D, I3D), stem stride, pool1 stride, and the defaults of depth, width, block.
LAYOUTS = {
    "resnet50": dict(
        stem=((1, 7, 7), (5, 7, 7)),
        stem_stride=(2, 2, 2),
        pool1_stride=(2, 2, 2),
        depth=(3, 4, 6, 3),
        width=64,
        block="bottleneck",
    ),
    "tiny": dict(
        stem=((1, 5, 5), (3, 5, 5)),
        stem_stride=(1, 2, 2),
        pool1_stride=(1, 2, 2),
        depth=(1, 1, 1),
        width=8,
        block="basic",
    ),
}
# I3D: block i of a stage has a temporal kernel if I3D_INFLATION[stage][i % 2] (the official code).
I3D_INFLATION = {"res2": (1, 0), "res3": (1, 0), "res4": (1, 0), "res5": (0, 1)}
# (block, inflate) -> index of the conv that gets 3 frames in an inflated block.
INFLATED_CONV = {("basic", "3x3x3"): 0, ("bottleneck", "3x3x3"): 1, ("bottleneck", "3x1x1"): 0}
T_INFLATED = 3  # frames of an inflated residual-block kernel


def inflation_table(depth: tuple[int, ...]) -> dict[str, list[int]]:
    """Which residual blocks of an I3D network have a temporal kernel (1) and which not (0).

    >>> inflation_table((3, 4, 6, 3))
    {'res2': [1, 0, 1], 'res3': [1, 0, 1, 0], 'res4': [1, 0, 1, 0, 1, 0], 'res5': [0, 1, 0]}
    """
    stages = [f"res{s}" for s in range(2, 2 + len(depth))]
    return {stage: [I3D_INFLATION[stage][i % 2] for i in range(n)] for stage, n in zip(stages, depth)}


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


def _check_build_args(arch, layout, depth, width, block, inflate, nl_mode, nl_space_time, t_pad, dropout):
    """The layout and the arguments with the layout's defaults filled in: ``(lay, depth, width, block)``."""
    if arch not in ("c2d", "i3d"):
        raise ValueError(f"arch must be 'c2d' or 'i3d', received {arch!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, received {layout!r}")
    lay = LAYOUTS[layout]
    depth = tuple(lay["depth"] if depth is None else depth)
    width = lay["width"] if width is None else width
    block = lay["block"] if block is None else block
    if len(depth) not in (3, 4) or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in depth):
        raise ValueError(f"depth must be 3 or 4 ints >= 1 (blocks of res2..res4/res5), received {depth!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an int >= 1, received {width!r}")
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {tuple(BLOCKS)}, received {block!r}")
    if inflate not in ("3x3x3", "3x1x1"):
        raise ValueError(f"inflate must be '3x3x3' or '3x1x1', received {inflate!r}")
    if arch == "i3d" and (block, inflate) not in INFLATED_CONV:
        raise ValueError(
            f"inflate={inflate!r} needs bottleneck blocks (it inflates their first 1x1 conv); "
            "use inflate='3x3x3' with basic blocks"
        )
    if nl_mode not in NONLOCAL_MODES:
        raise ValueError(f"nl_mode must be one of {NONLOCAL_MODES}, received {nl_mode!r}")
    if nl_space_time not in SPACE_TIME:
        raise ValueError(f"nl_space_time must be one of {SPACE_TIME}, received {nl_space_time!r}")
    if t_pad not in ("zeros", "replicate"):
        raise ValueError(f"temporal_padding must be 'zeros' or 'replicate', received {t_pad!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
    return lay, depth, width, block


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
    nl_init: str = "fan_in",
    nl_window: Any = None,
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
        Stem, strides and the defaults of ``depth`` / ``width`` / ``block`` (:data:`LAYOUTS`).
    depth : tuple of 3 or 4 ints, optional
        Residual blocks in res2, res3, res4 (, res5); e.g. ``(3, 4, 6, 3)``.
    width : int, optional
        Channels of res2 (inner channels of its bottlenecks); doubled per stage.
    block : {"basic", "bottleneck"}, optional
        Two 3x3 convs, or 1x1 -> 3x3 -> 1x1 with 4x expansion (He et al., CVPR 2016;
        :data:`BLOCKS`).  A stage's spatial stride is on its first block's 3x3 conv.
    in_channels, num_classes : int
    nl_blocks : {0, 1, 5, 10}
        Non-local blocks, placed by :func:`nonlocal_positions`.
    nl_mode : {"embedded_gaussian", "gaussian", "dot_product", "concatenation"}
    nl_subsample : bool
        Max-pool phi and g by (1, 2, 2) (paper Sec. 3.3); ignored by "time" blocks
        and on 1-pixel feature maps.
    nl_space_time : {"spacetime", "space", "time"}
        Which positions a non-local block compares (:mod:`nlref.nn.video.blocks`).
    nl_init : {"fan_in", "official"}
        The blocks' 1x1x1 weights: std ``1 / sqrt(fan_in)`` (default, training from
        scratch) or 0.01 (the official code, fine-tuning a pretrained trunk);
        :func:`nlref.nn.init_nonlocal_params`.
    nl_window : None, int or tuple of 3 (int or None)
        None: non-local.  Otherwise each query sees only keys within ``(k_t, k_y, k_x)``
        positions of the block's input map (``(1, None, None)``: +-1 frame, whole frame):
        the locality ablation (:func:`nlref.nn.local_window_mask`).
    inflate : {"3x3x3", "3x1x1"}
        I3D only: which kernel of an inflated block gets 3 frames
        (:data:`INFLATED_CONV`); "3x1x1" needs bottleneck blocks (the 1x1 conv
        it inflates).  Which blocks are inflated: :func:`inflation_table`.
    temporal_padding : {"zeros", "replicate"}
        How temporal (I3D) convolutions pad time.  "zeros" is the official code;
        "replicate" repeats the first/last frame, so that a clip of identical frames gives
        exactly the C2D output after :func:`inflate_2d_to_3d` (zeros change the border frames).
    dropout : float
        Dropout before fc (the paper uses 0.5).
    rng : numpy.random.Generator or int
        Seed of the He / Gaussian initialisation.
    dtype, xp
        float32 / float64; ``numpy`` or ``cupy`` (draws happen on the host).

    Returns
    -------
    (model, params, state)
        The layer specs for :func:`model_forward`, the flat named parameters, the BN running statistics.
    """
    lay, depth, width, block = _check_build_args(
        arch, layout, depth, width, block, inflate, nl_mode, nl_space_time, temporal_padding, dropout
    )
    if nl_init not in NONLOCAL_INITS:
        raise ValueError(f"nl_init must be one of {NONLOCAL_INITS}, received {nl_init!r}")
    nl_window = None if nl_window is None else as_window(nl_window, 3)
    nl_after = set(nonlocal_positions(depth, nl_blocks))
    rng = as_generator(rng)
    temporal = inflation_table(depth) if arch == "i3d" else None
    new = dict(t_pad=temporal_padding, dtype=dtype, xp=xp)
    model, params, state = [], {}, {}

    def add(layer):
        model.append(layer[0])
        params.update(layer[1])
        state.update(layer[2])

    add(stem_layer(rng, in_channels, width, lay["stem"][arch == "i3d"], lay["stem_stride"], **new))
    add(pool_layer((3, 3, 3), lay["pool1_stride"], (1, 1, 1)))
    c_in = width
    for s, n_blocks in enumerate(depth):
        stage = s + 2
        if stage == 3:  # pool2: time only
            add(pool_layer((3, 1, 1), (2, 1, 1), (1, 0, 0)))
        for i in range(n_blocks):
            name = f"res{stage}.{i}"
            t_kernels = [1] * len(BLOCKS[block]["kernels"])
            if temporal and temporal[f"res{stage}"][i]:
                t_kernels[INFLATED_CONV[(block, inflate)]] = T_INFLATED
            stride = 2 if (stage > 2 and i == 0) else 1
            add(block_layer(rng, name, block, c_in, width * 2**s, stride, t_kernels, **new))
            c_in = width * 2**s * BLOCKS[block]["expansion"]
            if name in nl_after:
                add(
                    nonlocal_layer(
                        rng,
                        f"{name}.nl",
                        c_in,
                        nl_mode,
                        nl_subsample,
                        nl_space_time,
                        dtype,
                        xp,
                        init=nl_init,
                        window=nl_window,
                    )
                )
    add(head_layer(rng, c_in, num_classes, dropout, dtype, xp))
    return model, params, state


def c2d(**kwargs: Any) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """C2D ResNet (2-D convolutions only); keyword arguments of :func:`build_model`."""
    return build_model("c2d", **kwargs)


def i3d(**kwargs: Any) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """I3D ResNet (one kernel inflated every two blocks); keyword arguments of :func:`build_model`."""
    return build_model("i3d", **kwargs)


# ----------------------------------------------------------------------------- forward / backward


def _check_clip(x: Any, params: dict[str, Any], train: Any) -> None:
    """The one check of every step: the clip (and ``train``), against the model's first kernel."""
    if not hasattr(x, "ndim") or x.ndim != 5:
        received = getattr(x, "shape", type(x))
        raise ValueError(f"x must be a clip batch of shape (N, C, T, H, W), received {received}")
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
    layers = [lookup_layer(spec) for spec in model]  # every kind known before any work
    new_state: dict[str, Any] = {}
    caches, out = [], x
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
        _, backward = lookup_layer(spec)
        # the first layer skips its dx unless the clip's gradient is asked for
        d, g = backward(d, c, spec, need_dx=return_dx or i > 0)
        grads.update(g)
    return (d, grads) if return_dx else grads
