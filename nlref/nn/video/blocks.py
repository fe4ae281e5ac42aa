"""The building blocks of the C2D / I3D ResNets: layer sandwiches with hand-written backwards.

Like CS231n's ``layer_utils.py``, each block chains a few layers of
:mod:`nlref.nn` into one forward/backward pair with an explicit cache; the
network of :mod:`nlref.nn.video.models` is a list of these blocks.  Parameters stay in
the model's flat dict, under the names a checkpoint uses (``"res3.0.conv1.w"``,
``"res3.0.bn1.gamma"``); a block gets the names of its layers and returns its
gradients and BatchNorm statistics under the same names::

    conv_bn       x (N, C, T, H, W) -> conv (stride s, 'same' padding) -> BN    (N, C', T', H', W')
    conv_bn_relu  conv_bn -> ReLU                                 (the stem: conv1 / bn1)
    basic block   x -> conv_bn_relu (3x3, stride) -> conv_bn (3x3) ─┐
                  x -> [proj: conv_bn 1x1x1, stride] ───────────────+─> ReLU       (He et al., CVPR 2016)
    bottleneck    x -> conv_bn_relu 1x1 -> conv_bn_relu 3x3 (stride) -> conv_bn 1x1 (4x channels) ─┐
                  x -> [proj] ───────────────────────────────────────────────────────────────────+─> ReLU
    head          x -> global average pool (N, C) -> dropout -> fc (N, num_classes)
    space / time  x (N, C, T, H, W) -> fold -> non-local block -> unfold (Wang et al., CVPR 2018, Sec. 4)

The space/time fold restricts a non-local block's attention: "space" puts the
``T`` frames in the batch axis, ``(N T, C, 1, H, W)``, so each frame attends
within itself (affinity ``(N T, HW, HW)``); "time" puts the ``H W`` positions in
the batch axis, ``(N H W, C, T, 1, 1)``, so each position attends across frames
(affinity ``(N HW, T, T)``); "spacetime" leaves ``x`` as it is (``(N, THW, THW)``).

The blocks call the layers with ``check=False``: a model validates its
parameters once, when :func:`nlref.nn.video.build_model` creates them.
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from ..layers.conv import conv_backward, conv_forward
from ..layers.elementwise import (
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
)
from ..layers.linear import linear_backward, linear_forward
from ..layers.norm import batch_norm_backward, batch_norm_forward
from ..layers.params import scope, unscope
from ..layers.pool import global_avg_pool_backward, global_avg_pool_forward
from ..nl.block import nonlocal_block_backward, nonlocal_block_forward

__all__ = [
    "conv_bn_forward",
    "conv_bn_backward",
    "conv_bn_relu_forward",
    "conv_bn_relu_backward",
    "basic_block_forward",
    "basic_block_backward",
    "bottleneck_block_forward",
    "bottleneck_block_backward",
    "head_forward",
    "head_backward",
    "space_time_fold",
    "space_time_unfold",
    "space_time_nonlocal_forward",
    "space_time_nonlocal_backward",
    "SPACE_TIME",
]

SPACE_TIME = ("spacetime", "space", "time")


# ----------------------------------------------------------------------------- conv + BN (+ ReLU)


def conv_bn_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    conv: str,
    bn: str,
    *,
    stride: Any = 1,
    padding_mode: Any = "zeros",
    train: bool,
) -> tuple[Any, tuple, dict[str, Any]]:
    """``BN(conv(x))``: a bias-free convolution with 'same' padding (``k // 2``), then BatchNorm.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, T, H, W)
    params, state : dict
        The model's flat dicts; this block reads ``params[conv + ".w"]``,
        ``params[bn + ".gamma"]``, ``params[bn + ".beta"]`` and the running
        statistics ``state[bn + ".running_mean"]``, ``state[bn + ".running_var"]``.
    conv, bn : str
        Names of the two layers, e.g. ``"res3.0.conv1"`` and ``"res3.0.bn1"``.
    stride, padding_mode
        Of :func:`nlref.nn.conv_forward`.
    train : bool
        Batch statistics (True) or running statistics (False).

    Returns
    -------
    out : ndarray, shape (N, C_out, T', H', W')
    cache : tuple
    new_state : dict
        The BN running statistics under ``bn + "."``.
    """
    w = params[f"{conv}.w"]
    padding = tuple(k // 2 for k in w.shape[2:])
    out, c_conv = conv_forward(
        x, {"w": w}, stride=stride, padding=padding, padding_mode=padding_mode, check=False
    )
    out, c_bn, st = batch_norm_forward(out, scope(params, bn), scope(state, bn), train=train, check=False)
    return out, (conv, bn, c_conv, c_bn), unscope(st, bn)


def conv_bn_backward(dout: Any, cache: tuple, *, need_dx: bool = True) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`conv_bn_forward`: ``(dx, grads)``, grads under the layers' names.

    ``need_dx=False`` (the first layer of a network) skips ``dx`` (returned as None).
    """
    conv, bn, c_conv, c_bn = cache
    d, g_bn = batch_norm_backward(dout, c_bn)
    dx, g_conv = conv_backward(d, c_conv, need_dx=need_dx)
    grads = unscope(g_bn, bn)
    grads[f"{conv}.w"] = g_conv["w"]
    return dx, grads


def conv_bn_relu_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    conv: str,
    bn: str,
    *,
    stride: Any = 1,
    padding_mode: Any = "zeros",
    train: bool,
) -> tuple[Any, tuple, dict[str, Any]]:
    """``ReLU(BN(conv(x)))``; arguments and returns as :func:`conv_bn_forward`."""
    out, c_cb, st = conv_bn_forward(
        x, params, state, conv, bn, stride=stride, padding_mode=padding_mode, train=train
    )
    out, c_relu = relu_forward(out, check=False)
    return out, (c_cb, c_relu), st


def conv_bn_relu_backward(dout: Any, cache: tuple, *, need_dx: bool = True) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`conv_bn_relu_forward`: ``(dx, grads)``."""
    c_cb, c_relu = cache
    d, _ = relu_backward(dout, c_relu)
    return conv_bn_backward(d, c_cb, need_dx=need_dx)


# ----------------------------------------------------------------------------- residual blocks


def _residual_forward(x, params, state, name, strides, proj, stride, padding_mode, train):
    """``ReLU(F(x) + shortcut(x))``, ``F`` = conv_bn_relu ... conv_bn; ``strides[j]`` on conv ``j + 1``."""
    out, caches, new_state = x, [], {}
    n = len(strides)
    for j, s in enumerate(strides, start=1):
        layer = conv_bn_forward if j == n else conv_bn_relu_forward  # the last BN's output meets the shortcut
        out, c, st = layer(
            out,
            params,
            state,
            f"{name}.conv{j}",
            f"{name}.bn{j}",
            stride=s,
            padding_mode=padding_mode,
            train=train,
        )
        caches.append(c)
        new_state.update(st)
    short, c_proj = x, None
    if proj:  # 1x1x1 projection when the stride or the width changes
        short, c_proj, st = conv_bn_forward(
            x, params, state, f"{name}.proj", f"{name}.proj_bn", stride=stride, train=train
        )
        new_state.update(st)
    out, c_relu = relu_forward(out + short, check=False)
    return out, (caches, c_proj, c_relu), new_state


def _residual_backward(dout, cache):
    caches, c_proj, c_relu = cache
    d_sum, _ = relu_backward(dout, c_relu)
    d, grads = d_sum, {}
    for j, c in reversed(list(enumerate(caches, start=1))):
        d, g = (conv_bn_backward if j == len(caches) else conv_bn_relu_backward)(d, c)
        grads.update(g)
    if c_proj is None:  # identity shortcut: the gradient passes through
        return d + d_sum, grads
    d_short, g = conv_bn_backward(d_sum, c_proj)
    grads.update(g)
    return d + d_short, grads


def basic_block_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    name: str,
    *,
    stride: Any = 1,
    proj: bool = False,
    padding_mode: Any = "zeros",
    train: bool,
) -> tuple[Any, tuple, dict[str, Any]]:
    """Basic residual block ``ReLU(BN(conv2(ReLU(BN(conv1(x))))) + shortcut(x))`` (He et al., CVPR 2016).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, T, H, W)
    params, state : dict
        The model's flat dicts, read under ``name``: ``conv1``/``bn1``,
        ``conv2``/``bn2`` and, with ``proj``, ``proj``/``proj_bn``.
    name : str
        The block's name, e.g. ``"res3.0"``.
    stride : tuple of 3 ints
        On conv1 and the projection, e.g. ``(1, 2, 2)`` for the first block of a stage.
    proj : bool
        Shortcut through a 1x1x1 conv + BN (when the stride or the width
        changes) instead of the identity.
    padding_mode
        Of the 3x3 convolutions (:func:`nlref.nn.conv_forward`).
    train : bool

    Returns
    -------
    out : ndarray, shape (N, C_out, T, H', W')
    cache : tuple
    new_state : dict
        BN running statistics under the block's names.
    """
    return _residual_forward(x, params, state, name, [stride, 1], proj, stride, padding_mode, train)


def basic_block_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`basic_block_forward`: ``(dx, grads)``; ``dx`` sums the branch and the shortcut."""
    return _residual_backward(dout, cache)


def bottleneck_block_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    name: str,
    *,
    stride: Any = 1,
    proj: bool = False,
    padding_mode: Any = "zeros",
    train: bool,
) -> tuple[Any, tuple, dict[str, Any]]:
    """Bottleneck residual block: 1x1 -> 3x3 (stride) -> 1x1 (4x channels), plus the shortcut.

    ``ReLU(BN(conv3(ReLU(BN(conv2(ReLU(BN(conv1(x)))))))) + shortcut(x))``
    (He et al., CVPR 2016, Fig. 5); as the official video-nonlocal-net code,
    the stride is on the 3x3 conv.  Arguments and returns as
    :func:`basic_block_forward`, with ``conv3``/``bn3`` in addition.
    """
    return _residual_forward(x, params, state, name, [1, stride, 1], proj, stride, padding_mode, train)


def bottleneck_block_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`bottleneck_block_forward`: ``(dx, grads)``."""
    return _residual_backward(dout, cache)


# ----------------------------------------------------------------------------- classifier head


def head_forward(
    x: Any, params: dict[str, Any], *, dropout: float = 0.0, train: bool, rng: Any = None
) -> tuple[Any, tuple]:
    """Global average pool, dropout, fully connected: ``(N, C, T, H, W) -> (N, num_classes)``.

    ``params``: the model's flat dict, read under ``"fc."`` (``"fc.w"``: (K, C), ``"fc.b"``: (K,)).
    ``rng`` draws the dropout mask (needed when training with ``dropout > 0``).
    """
    h, c_pool = global_avg_pool_forward(x, check=False)
    h, c_drop = dropout_forward(h, p=dropout, train=train, rng=rng, check=False)
    out, c_fc = linear_forward(h, scope(params, "fc"), check=False)
    return out, (c_pool, c_drop, c_fc)


def head_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`head_forward`: ``(dx, {"fc.w", "fc.b"})``."""
    c_pool, c_drop, c_fc = cache
    d, g = linear_backward(dout, c_fc)
    d, _ = dropout_backward(d, c_drop)
    dx, _ = global_avg_pool_backward(d, c_pool)
    return dx, unscope(g, "fc")


# ----------------------------------------------------------------------------- space / time folding


def space_time_fold(x: Any, space_time: str) -> Any:
    """Fold frames ("space") or positions ("time") of ``x: (N, C, T, H, W)`` into the batch axis."""
    n, c, t, h, w = x.shape
    if space_time == "space":  # (N, C, T, H, W) -> (N T, C, 1, H, W): attention within each frame
        return x.transpose(0, 2, 1, 3, 4).reshape(n * t, c, 1, h, w)
    if space_time == "time":  # -> (N H W, C, T, 1, 1): attention across frames at each position
        return x.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c, t, 1, 1)
    return x


def space_time_unfold(y: Any, space_time: str, shape: tuple[int, ...]) -> Any:
    """Inverse of :func:`space_time_fold`: back to ``shape = (N, C, T, H, W)``."""
    n, c, t, h, w = shape
    if space_time == "space":
        return y.reshape(n, t, c, h, w).transpose(0, 2, 1, 3, 4)
    if space_time == "time":
        return y.reshape(n, h, w, c, t).transpose(0, 3, 4, 1, 2)
    return y


def space_time_nonlocal_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    name: str,
    *,
    mode: str,
    subsample: bool,
    space_time: str,
    train: bool,
    window: Any = None,
) -> tuple[Any, tuple, dict[str, Any]]:
    """A non-local block over space-time, space or time: fold, the block, unfold.

    Parameters
    ----------
    x : ndarray, shape (N, C, T, H, W)
    params, state : dict
        The model's flat dicts, read under ``name`` (e.g. ``"res3.0.nl"``).
    mode : str
        One of :data:`nlref.nn.NONLOCAL_MODES`.
    subsample : bool
        Max-pool phi and g by (1, 2, 2) (paper Sec. 3.3), except on frames of a
        single pixel.
    space_time : {"spacetime", "space", "time"}
        Which positions attend to each other (module docstring).
    train : bool
    window : None or sequence of (int or None), optional
        ``(k_t, k_y, k_x)`` local window of the keys (None on an axis: all of it),
        on the folded map (:func:`nlref.nn.nonlocal_block_forward`).

    Returns
    -------
    z : ndarray, shape (N, C, T, H, W)
    cache : tuple
    new_state : dict
        The block's BN running statistics under ``name + "."``.
    """
    sub = (1, 2, 2) if subsample and min(x.shape[3:]) >= 2 else None
    folded = get_namespace(x).ascontiguousarray(space_time_fold(x, space_time))
    # build_model has checked the block's parameters; the clip was checked by model_forward
    z, cache, st = nonlocal_block_forward(
        folded,
        scope(params, name),
        scope(state, name),
        mode=mode,
        subsample=sub,
        train=train,
        window=None if window is None else tuple(window),
        check=False,
    )
    cache = (cache, name, space_time, tuple(x.shape))
    return space_time_unfold(z, space_time, x.shape), cache, unscope(st, name)


def space_time_nonlocal_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`space_time_nonlocal_forward`: fold ``dout``, the block's backward, unfold."""
    c, name, space_time, shape = cache
    folded = get_namespace(dout).ascontiguousarray(space_time_fold(dout, space_time))
    dx, g = nonlocal_block_backward(folded, c)
    return space_time_unfold(dx, space_time, shape), unscope(g, name)
