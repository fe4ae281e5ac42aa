"""The five layer kinds of a C2D / I3D model: how each is built from its spec and how it runs.

A model (:mod:`nlref.nn.video.models`) is a list of specs, dicts whose ``"op"`` is
one of the kinds of :data:`MODEL_LAYERS`; this module turns a spec into
parameters (at build time) and into a call of a block of :mod:`nlref.nn.video.blocks`
(at run time).  Every entry of the table has the same signatures::

    forward(x, params, state, spec, *, train, rng) -> (out, cache, new_state)
    backward(dout, cache, spec, *, need_dx)        -> (dx, grads)

    kind       spec keys                                          block
    stem       stride, t_pad                                      conv1 + bn1 + ReLU
    max_pool   kernel_size, stride, padding                       max pool (pool1, pool2)
    block      name, block, n_convs, stride, stride_conv, proj,   basic / bottleneck residual block
               t_pad
    nonlocal   name, mode, subsample, space_time                  non-local block (spacetime, space, time)
    head       dropout                                            global average pool, dropout, fc

A kind that is not in the table is an error (:func:`lookup_layer`), never
skipped.  The layers run with ``check=False``: the parameters were checked
when :func:`nlref.nn.video.build_model` made them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layers.init import gaussian, he_normal, ones, zeros
from ..layers.params import unscope
from ..layers.pool import max_pool_backward, max_pool_forward
from ..nl.block import init_nonlocal_params
from .blocks import (
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

__all__ = [
    "MODEL_LAYERS",
    "BLOCKS",
    "lookup_layer",
    "stem_layer",
    "pool_layer",
    "block_layer",
    "nonlocal_layer",
    "head_layer",
]

# The convolutions of a residual block (kernels before inflation), the one with the stage's
# spatial stride (1-based, as :mod:`nlref.nn.video.blocks` implements it), output channels / width.
BLOCKS = {
    "basic": dict(kernels=((1, 3, 3), (1, 3, 3)), stride_conv=1, expansion=1),
    "bottleneck": dict(kernels=((1, 1, 1), (1, 3, 3), (1, 1, 1)), stride_conv=2, expansion=4),
}

# ----------------------------------------------------------------------------- building


def _conv_bn_params(rng, name, c_in, c_out, kernel, dtype, xp):
    """He-initialised bias-free conv ``name.w``, its BN (gamma 1, beta 0) and the BN's running statistics.

    The BN is named after the conv: ``res3.0.conv1`` -> ``res3.0.bn1``, ``res3.0.proj`` -> ``res3.0.proj_bn``.
    """
    params = {f"{name}.w": he_normal((c_out, c_in, *kernel), rng, dtype=dtype, xp=xp)}
    bn = name.replace("conv", "bn") if "conv" in name else name + "_bn"
    params[f"{bn}.gamma"] = ones(c_out, dtype=dtype, xp=xp)
    params[f"{bn}.beta"] = zeros(c_out, dtype=dtype, xp=xp)
    state = {
        f"{bn}.running_mean": zeros(c_out, dtype=dtype, xp=xp),
        f"{bn}.running_var": ones(c_out, dtype=dtype, xp=xp),
    }
    return params, state


def stem_layer(
    rng: Any, c_in: int, c_out: int, kernel: tuple, stride: tuple, t_pad: str, dtype: Any, xp: Any
) -> tuple[dict, dict, dict]:
    """Spec, parameters (``conv1.w``, ``bn1.*``) and BN state of the stem."""
    params, state = _conv_bn_params(rng, "conv1", c_in, c_out, kernel, dtype, xp)
    return {"op": "stem", "stride": stride, "t_pad": t_pad}, params, state


def pool_layer(kernel_size: tuple, stride: tuple, padding: tuple) -> tuple[dict, dict, dict]:
    """Spec of a max pool (no parameters): pool1 ``3x3x3``, pool2 ``3x1x1`` (time only)."""
    return {"op": "max_pool", "kernel_size": kernel_size, "stride": stride, "padding": padding}, {}, {}


def block_layer(
    rng: Any,
    name: str,
    block: str,
    c_in: int,
    inner: int,
    stride: int,
    t_kernels: list[int],
    t_pad: str,
    dtype: Any,
    xp: Any,
) -> tuple[dict, dict, dict]:
    """Spec, parameters and BN state of one residual block; conv ``j`` gets ``t_kernels[j]`` frames.

    The shortcut is a 1x1x1 projection (``name.proj``, ``name.proj_bn``) when
    the stride or the number of channels changes.
    """
    kernels = [(kt, *k[1:]) for kt, k in zip(t_kernels, BLOCKS[block]["kernels"])]
    c_out = inner * BLOCKS[block]["expansion"]
    chans = [c_in] + [inner] * (len(kernels) - 1) + [c_out]
    params, state = {}, {}
    for j, k in enumerate(kernels):
        p, st = _conv_bn_params(rng, f"{name}.conv{j + 1}", chans[j], chans[j + 1], k, dtype, xp)
        params.update(p)
        state.update(st)
    proj = stride != 1 or c_in != c_out
    if proj:
        p, st = _conv_bn_params(rng, f"{name}.proj", c_in, c_out, (1, 1, 1), dtype, xp)
        params.update(p)
        state.update(st)
    spec = {
        "op": "block",
        "name": name,
        "block": block,
        "n_convs": len(kernels),
        "stride": (1, stride, stride),
        "stride_conv": BLOCKS[block]["stride_conv"],
        "proj": proj,
        "t_pad": t_pad,
    }
    return spec, params, state


def nonlocal_layer(
    rng: Any,
    name: str,
    channels: int,
    mode: str,
    subsample: bool,
    space_time: str,
    dtype: Any,
    xp: Any,
    *,
    init: str = "fan_in",
    window: tuple | None = None,
) -> tuple[dict, dict, dict]:
    """Spec, parameters (``name.theta.w``, ...) and BN state of a non-local block (``name``: ``"res3.0.nl"``).

    ``subsample`` is dropped for "time" blocks, whose frames are single pixels.
    ``init``: :func:`nlref.nn.init_nonlocal_params`; ``window``: local keys only
    (:func:`nlref.nn.local_window_mask`), a list in the spec so that it saves as JSON.
    """
    p, st = init_nonlocal_params(channels, mode=mode, ndim=3, rng=rng, dtype=dtype, xp=xp, init=init)
    spec = {
        "op": "nonlocal",
        "name": name,
        "mode": mode,
        "subsample": subsample and space_time != "time",
        "space_time": space_time,
        "window": None if window is None else list(window),
    }
    return spec, unscope(p, name), unscope(st, name)


def head_layer(
    rng: Any, c_in: int, num_classes: int, dropout: float, dtype: Any, xp: Any
) -> tuple[dict, dict, dict]:
    """Spec and parameters of the classifier: ``fc.w ~ N(0, 0.01^2)`` (K, C), ``fc.b = 0`` (K,)."""
    params = {
        "fc.w": gaussian((num_classes, c_in), 0.01, rng, dtype=dtype, xp=xp),
        "fc.b": zeros(num_classes, dtype=dtype, xp=xp),
    }
    return {"op": "head", "dropout": float(dropout)}, params, {}


# ----------------------------------------------------------------------------- running


def _padding_mode(spec):
    # "replicate" pads time only: H and W keep the zero padding of the 2-D network
    return ("replicate", "zeros", "zeros") if spec["t_pad"] == "replicate" else "zeros"


def _stem_forward(x, params, state, spec, *, train, rng):
    return conv_bn_relu_forward(
        x, params, state, "conv1", "bn1", stride=spec["stride"], padding_mode=_padding_mode(spec), train=train
    )


def _stem_backward(dout, cache, spec, *, need_dx):
    return conv_bn_relu_backward(dout, cache, need_dx=need_dx)  # the clip rarely needs its gradient


def _pool_forward(x, params, state, spec, *, train, rng):
    out, cache = max_pool_forward(
        x, kernel_size=spec["kernel_size"], stride=spec["stride"], padding=spec["padding"], check=False
    )
    return out, cache, {}


def _pool_backward(dout, cache, spec, *, need_dx):
    return max_pool_backward(dout, cache)


_RESIDUAL = {
    "basic": (basic_block_forward, basic_block_backward),
    "bottleneck": (bottleneck_block_forward, bottleneck_block_backward),
}


def _block_forward(x, params, state, spec, *, train, rng):
    forward, _ = _RESIDUAL[spec["block"]]
    return forward(
        x,
        params,
        state,
        spec["name"],
        stride=spec["stride"],
        proj=spec["proj"],
        padding_mode=_padding_mode(spec),
        train=train,
    )


def _block_backward(dout, cache, spec, *, need_dx):
    _, backward = _RESIDUAL[spec["block"]]
    return backward(dout, cache)


def _nonlocal_forward(x, params, state, spec, *, train, rng):
    return space_time_nonlocal_forward(
        x,
        params,
        state,
        spec["name"],
        mode=spec["mode"],
        train=train,
        subsample=spec["subsample"],
        space_time=spec["space_time"],
        window=spec.get("window"),
    )


def _nonlocal_backward(dout, cache, spec, *, need_dx):
    return space_time_nonlocal_backward(dout, cache)


def _head_forward(x, params, state, spec, *, train, rng):
    out, cache = head_forward(x, params, dropout=spec["dropout"], train=train, rng=rng)
    return out, cache, {}


def _head_backward(dout, cache, spec, *, need_dx):
    return head_backward(dout, cache)


MODEL_LAYERS: dict[str, tuple[Callable, Callable]] = {
    "stem": (_stem_forward, _stem_backward),  # conv1 + BN + ReLU
    "max_pool": (_pool_forward, _pool_backward),  # pool1, pool2
    "block": (_block_forward, _block_backward),  # basic or bottleneck residual block
    "nonlocal": (_nonlocal_forward, _nonlocal_backward),  # non-local block over spacetime / space / time
    "head": (_head_forward, _head_backward),  # global average pool, dropout, fc
}


def lookup_layer(spec: dict) -> tuple[Callable, Callable]:
    """The ``(forward, backward)`` of a spec; ``ValueError`` for a kind that :data:`MODEL_LAYERS` lacks."""
    op = spec.get("op") if isinstance(spec, dict) else None
    if op not in MODEL_LAYERS:
        raise ValueError(
            f"model: unknown layer kind {op!r} in spec {spec!r}; known kinds: {list(MODEL_LAYERS)}"
        )
    if op == "block" and spec.get("block") not in _RESIDUAL:
        raise ValueError(
            f"model: unknown residual block {spec.get('block')!r} in spec {spec!r}; "
            f"known blocks: {list(_RESIDUAL)}"
        )
    return MODEL_LAYERS[op]
