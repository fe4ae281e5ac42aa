"""A small residual denoiser with windowed non-local blocks: where nlref's two halves meet.

Non-local means (Buades, Coll, Morel, CVPR 2005) averages the pixels of a
search window with fixed weights ``exp(-d2(i, j) / h^2)``; the non-local block
(Wang et al., CVPR 2018) learns them, ``softmax_j(theta(x_i)^T phi(x_j))``.
This network puts the learned block back on the denoising task, restricted to
NLM's search window as in Non-local Recurrent Networks (Liu et al., NeurIPS
2018), inside a DnCNN-style residual network (Zhang et al., TIP 2017) that
predicts the noise ``n`` of ``y = x + n``; the denoised image is ``y - R(y)``::

    y (N, 1, H, W)
    conv0 3x3 -> ReLU                         (N, w, H, W)
    [conv_i 3x3 -> BN -> ReLU] x depth        (N, w, H, W)
        a windowed non-local block after the middle one(s):
        z = W_z softmax_j(theta_i . phi_j / sqrt(C_i)) g_j + x,   |j - i| <= window
    conv_out 3x3                              (N, 1, H, W)   = R(y), the noise

A model is data: ``model`` is a list of layer specs (dicts) that
:func:`denoiser_forward` walks through a ``{op: (forward, backward)}`` table,
``params`` a flat dict (``"conv2.w"``, ``"nl3.theta.w"``) that saves to
``.npz`` as it is, ``state`` the BatchNorm running statistics.

The non-local block is the one of Wang et al. (:func:`nlref.nn.nl.nonlocal_block_forward`)
without BatchNorm: ``z = W_z y + x`` with ``W_z = 0`` at the start (the paper's
identity initialisation without BN).  Its search window is visited by offsets
(``memory="offsets"``, :mod:`nlref.nn.nl.offsets`, the loop of fast non-local
means): memory O(P (2 window + 1)^2) for P = H W positions, never the dense
(N, P, P) masked affinity
(:func:`nlref.nn.nl.local_window_mask` builds that mask for display and tests).  Train on small
patches and denoise large images tile by tile (:mod:`nlref.denoise.learned`),
which is exact because the network only sees :func:`receptive_radius` pixels
around each output pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.conv import conv_backward, conv_forward
from ..layers.elementwise import relu_backward, relu_forward
from ..layers.init import as_generator, he_normal, ones, zeros
from ..layers.norm import batch_norm_backward, batch_norm_forward
from ..layers.params import scope, unscope
from ..nl.block import init_nonlocal_params, nonlocal_block_backward, nonlocal_block_forward

__all__ = [
    "DENOISER_ARCH_KEYS",
    "build_denoiser",
    "denoiser_backward",
    "denoiser_forward",
    "receptive_radius",
    "DENOISER_LAYERS",
]

#: The keyword arguments of :func:`build_denoiser` that define an architecture (recorded in weights files).
DENOISER_ARCH_KEYS = ("width", "depth", "nl_blocks", "window", "inner_channels")


def receptive_radius(model: list[dict]) -> int:
    """Pixels on each side of an output pixel that it depends on: 1 per 3x3 conv, ``window`` per NL block."""
    return sum(
        1 if spec["op"] == "conv" else spec["window"] if spec["op"] == "nonlocal" else 0 for spec in model
    )


# ----------------------------------------------------------------------------- the model


def build_denoiser(
    *, width=32, depth=8, nl_blocks=2, window=5, inner_channels=8, rng=0, dtype=np.float32, xp=np
) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """Build the residual denoiser: its layer table, parameters and BatchNorm state.

    Parameters
    ----------
    width : int
        Channels of every hidden layer (DnCNN uses 64; the shipped models 32).
    depth : int
        Number of conv-BN-ReLU layers between the first and the last conv (DnCNN: 15; shipped: 8).
    nl_blocks : {0, 1, 2}
        Windowed non-local blocks, placed after the middle conv-BN-ReLU layer(s).
    window : int or None
        Search-window radius of the blocks (None: the whole patch).
    inner_channels : int or None
        C_i of theta, phi, g; None gives ``width // 2``, the paper's bottleneck.
        The default, 8, is what the shipped models use: the window's cost grows with C_i.
    rng : int or numpy.random.Generator
        Seed of the He-normal initialisation (theta, phi, g too: PAPER_NOTES,
        "Training from scratch"); ``W_z`` starts at zero so each block starts as the identity.
    dtype, xp
        float32/float64; numpy or cupy.

    Returns
    -------
    model : list of dict
        Layer specs: ``{"op": "conv" | "bn" | "relu" | "nonlocal", "name": ...}``.
    params, state : dict
    """
    for name, v, lo in (("width", width, 1), ("depth", depth, 1), ("nl_blocks", nl_blocks, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, received {v!r}")
    if nl_blocks > min(2, depth):
        raise ValueError(f"nl_blocks must be at most min(2, depth) = {min(2, depth)}, received {nl_blocks}")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0
    ):
        raise ValueError(f"window must be None or an int >= 0, received {window!r}")
    ci = max(width // 2, 1) if inner_channels is None else int(inner_channels)
    gen, he_std = as_generator(rng), float(np.sqrt(2.0 / width))  # he_normal's std for a (C_i, width) 1x1
    model, params, state = [], {}, {}

    def conv(name, c_in, c_out, bias):
        model.append({"op": "conv", "name": name})
        params[f"{name}.w"] = he_normal((c_out, c_in, 3, 3), gen, dtype=dtype, xp=xp)
        if bias:
            params[f"{name}.b"] = zeros(c_out, dtype=dtype, xp=xp)

    conv("conv0", 1, width, True)
    model.append({"op": "relu", "name": "relu0"})
    after = {depth // 2} if nl_blocks == 1 else {depth // 2, depth // 2 + 1} if nl_blocks == 2 else set()
    for i in range(1, depth + 1):
        conv(f"conv{i}", width, width, False)
        model.append({"op": "bn", "name": f"bn{i}"})
        params.update(
            {f"bn{i}.gamma": ones(width, dtype=dtype, xp=xp), f"bn{i}.beta": zeros(width, dtype=dtype, xp=xp)}
        )
        state.update(
            {
                f"bn{i}.running_mean": zeros(width, dtype=dtype, xp=xp),
                f"bn{i}.running_var": ones(width, dtype=dtype, xp=xp),
            }
        )
        model.append({"op": "relu", "name": f"relu{i}"})
        if i in after:
            name = f"nl{i}"
            model.append({"op": "nonlocal", "name": name, "window": window})
            # the block of Wang et al. without BN (W_z = 0: the identity at start), He-scaled embeddings
            nl, _ = init_nonlocal_params(
                width, inner_channels=ci, ndim=2, bn=False, rng=gen, dtype=dtype, xp=xp, std=he_std
            )
            params.update(unscope(nl, name))
    conv("conv_out", width, 1, True)
    # a small last layer: the network starts near R(y) = 0 (output = input); with the full He scale the
    # first hundreds of steps only undo a random noise estimate (26.96 vs 21.31 dB validation PSNR after
    # 400 steps of the no-NL default, measured)
    params["conv_out.w"] *= 0.1
    return model, params, state


# ----------------------------------------------------------------------------- the layer table
# The convention of the video models (nlref.nn.video.layers):
# ``forward(x, params, state, spec, *, train, rng) -> (out, cache, new_state)`` and
# ``backward(dout, cache, spec, *, need_dx) -> (dx, grads)``; params, state, grads keep their full names.


def _conv_forward(x, params, state, spec, *, train, rng):
    out, cache = conv_forward(x, scope(params, spec["name"]), padding=1, check=False)
    return out, cache, {}


def _conv_backward(dout, cache, spec, *, need_dx):
    dx, grads = conv_backward(dout, cache, need_dx=need_dx)
    return dx, unscope(grads, spec["name"])


def _bn_forward(x, params, state, spec, *, train, rng):
    name = spec["name"]
    out, cache, new = batch_norm_forward(x, scope(params, name), scope(state, name), train=train, check=False)
    return out, cache, unscope(new, name)


def _bn_backward(dout, cache, spec, *, need_dx):
    dx, grads = batch_norm_backward(dout, cache)
    return dx, unscope(grads, spec["name"])


def _relu_forward(x, params, state, spec, *, train, rng):
    out, cache = relu_forward(x, check=False)
    return out, cache, {}


def _relu_backward(dout, cache, spec, *, need_dx):
    return relu_backward(dout, cache)


def _nonlocal_forward(x, params, state, spec, *, train, rng):
    """The block of Wang et al. without BN: ``z = W_z y + x``, the window visited by offsets."""
    window = spec["window"]
    z, cache, _ = nonlocal_block_forward(
        x,
        scope(params, spec["name"]),
        {},
        mode="embedded_gaussian",
        scale=int(params[f"{spec['name']}.g.w"].shape[0]) ** -0.5,  # the official C_i ** -0.5
        window=window,
        memory="dense" if window is None else "offsets",
        check=False,
    )
    return z, cache, {}


def _nonlocal_backward(dout, cache, spec, *, need_dx):
    dx, grads = nonlocal_block_backward(dout, cache)
    return dx, unscope(grads, spec["name"])


#: The denoiser's layer kinds: ``{op: (forward, backward)}``.
DENOISER_LAYERS = {
    "conv": (_conv_forward, _conv_backward),
    "bn": (_bn_forward, _bn_backward),
    "relu": (_relu_forward, _relu_backward),
    "nonlocal": (_nonlocal_forward, _nonlocal_backward),
}


def denoiser_forward(y, params, state, model, *, train=False, keep_cache=True) -> tuple[Any, list, dict]:
    """Predicted noise ``R(y)`` of a batch of noisy grey images (the denoised image is ``y - R(y)``).

    Parameters
    ----------
    y : ndarray, shape (N, 1, H, W)
    params, state, model
        From :func:`build_denoiser` (or a weights file).  ``state`` is not modified.
    train : bool
        BatchNorm with batch statistics (True) or running statistics (False).
    keep_cache : bool
        Keep every layer's cache for :func:`denoiser_backward` (default).  False
        drops each one as soon as its layer has run, for inference: the caches
        (the convolutions' im2col copies, BatchNorm's normalised input, the
        window weights) dominate the memory of a forward pass.

    Returns
    -------
    noise : ndarray, shape (N, 1, H, W)
    cache : list
        For :func:`denoiser_backward` (None entries when ``keep_cache`` is False).
    new_state : dict
        Updated BatchNorm running statistics (the same arrays when ``train`` is False).
    """
    if getattr(y, "ndim", 0) != 4 or y.shape[1] != 1:
        raise ValueError(f"y must have shape (N, 1, H, W), received {getattr(y, 'shape', type(y).__name__)}")
    layers = [DENOISER_LAYERS[spec["op"]] for spec in model]  # KeyError on an unknown op: no silent else
    new_state, caches, x = dict(state), [], y
    for spec, (forward, _) in zip(model, layers):
        x, cache, st = forward(x, params, state, spec, train=bool(train), rng=None)
        new_state.update(st)
        caches.append(cache if keep_cache else None)
    return x, caches, new_state


def denoiser_backward(dnoise, cache, model) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`denoiser_forward`: ``(dy, grads)`` with grads keyed like params."""
    grads, d = {}, dnoise
    for i in reversed(range(len(model))):
        _, backward = DENOISER_LAYERS[model[i]["op"]]
        d, g = backward(d, cache[i], model[i], need_dx=True)
        grads.update(g)
    return d, grads
