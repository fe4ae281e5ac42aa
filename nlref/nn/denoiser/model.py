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

The non-local block here has no BatchNorm: ``z = W_z y + x`` with ``W_z = 0``
at the start (the paper's identity initialisation without BN).  Its search
window is computed by offsets (:func:`nlref.nn.nl.windowed_attention_forward`,
the loop of fast non-local means): memory O(P (2 window + 1)^2) for P = H W
positions, never the dense (N, P, P) masked affinity
(:func:`nlref.nn.nl.local_window_mask` builds that mask for display and tests).  Train on small
patches and denoise large images tile by tile (:mod:`nlref.denoise.learned`),
which is exact because the network only sees :func:`receptive_radius` pixels
around each output pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace
from ..layers.conv import conv_backward, conv_forward
from ..layers.elementwise import relu_backward, relu_forward
from ..layers.init import as_generator, he_normal, ones, zeros
from ..layers.linear import linear_backward, linear_forward
from ..layers.norm import batch_norm_backward, batch_norm_forward
from ..layers.params import scope, unscope
from ..nl.offsets import windowed_attention_backward, windowed_attention_forward
from ..nl.op import nonlocal_op_backward, nonlocal_op_forward

__all__ = [
    "DENOISER_ARCH_KEYS",
    "build_denoiser",
    "denoiser_backward",
    "denoiser_forward",
    "receptive_radius",
    "windowed_nonlocal_backward",
    "windowed_nonlocal_forward",
]

#: The keyword arguments of :func:`build_denoiser` that define an architecture (recorded in weights files).
DENOISER_ARCH_KEYS = ("width", "depth", "nl_blocks", "window", "inner_channels")


def receptive_radius(model: list[dict]) -> int:
    """Pixels on each side of an output pixel that it depends on: 1 per 3x3 conv, ``window`` per NL block."""
    return sum(
        1 if spec["op"] == "conv" else spec["window"] if spec["op"] == "nonlocal" else 0 for spec in model
    )


# ----------------------------------------------------------------------------- the windowed block


def windowed_nonlocal_forward(x: Any, params: dict, *, window: int | None) -> tuple:
    """``z = W_z y + x``, ``y_i = sum_j softmax_j(theta_i . phi_j / sqrt(C_i)) g_j`` over the search window.

    Embedded Gaussian of Wang et al. (CVPR 2018, Eq. 3 and 6) with the official
    ``C_i ** -0.5`` scale, no subsampling and no BN after ``W_z``; the window
    ``|j_a - i_a| <= window`` is visited offset by offset
    (:func:`nlref.nn.nl.windowed_attention_forward`), as fast non-local means does.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    params : dict
        ``theta.w, phi.w, g.w`` (C_i, C), ``theta.b, phi.b, g.b`` (C_i,),
        ``w_z.w`` (C, C_i), ``w_z.b`` (C,) -- the names of :func:`nlref.nn.nl.init_nonlocal_params`.
    window : int or None
        Search-window radius (None: every position, the dense block of Wang et al.).

    Returns
    -------
    z : ndarray, like x
    cache : tuple
    """
    xp = get_namespace(x)
    n, _c, *spatial = x.shape
    caches, emb = {}, {}
    for name in ("theta", "phi", "g"):
        emb[name], caches[name] = linear_forward(x, scope(params, name), check=False)  # (N, C_i, H, W)
    ci = emb["g"].shape[1]
    if window is None:  # the whole map: the dense op on flattened positions (N, P, C_i)
        flat = [
            xp.ascontiguousarray(emb[b].reshape(n, ci, -1).transpose(0, 2, 1)) for b in ("theta", "phi", "g")
        ]
        y, caches["op"] = nonlocal_op_forward(*flat, f="embedded_gaussian", scale=ci**-0.5, memory="dense")
        y = y.transpose(0, 2, 1).reshape(n, ci, *spatial)
    else:
        y, caches["window"] = windowed_attention_forward(
            emb["theta"], emb["phi"], emb["g"], window=window, scale=ci**-0.5, check=False
        )
    wy, caches["w_z"] = linear_forward(y, scope(params, "w_z"), check=False)
    return wy + x, (caches, tuple(x.shape))


def windowed_nonlocal_backward(dz: Any, cache: tuple) -> tuple[Any, dict]:
    """Backward of :func:`windowed_nonlocal_forward`: ``(dx, grads)``; dx sums the shortcut, theta, phi, g."""
    caches, shape = cache
    n, _c, *spatial = shape
    grads = {}
    dy, g = linear_backward(dz, caches["w_z"])
    grads.update(unscope(g, "w_z"))
    ci = dy.shape[1]
    if "window" in caches:
        demb = windowed_attention_backward(dy, caches["window"])
    else:
        (dq, dk, dv), _ = nonlocal_op_backward(dy.reshape(n, ci, -1).transpose(0, 2, 1), caches["op"])
        demb = [d.transpose(0, 2, 1).reshape(n, ci, *spatial) for d in (dq, dk, dv)]
    dx = dz.copy()
    for name, d in zip(("theta", "phi", "g"), demb):
        dxi, g = linear_backward(d, caches[name])
        grads.update(unscope(g, name))
        dx += dxi
    return dx, grads


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
    gen = as_generator(rng)
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
            for b in ("theta", "phi", "g"):
                params[f"{name}.{b}.w"] = he_normal((ci, width), gen, dtype=dtype, xp=xp)
                params[f"{name}.{b}.b"] = zeros(ci, dtype=dtype, xp=xp)
            params[f"{name}.w_z.w"] = zeros((width, ci), dtype=dtype, xp=xp)
            params[f"{name}.w_z.b"] = zeros(width, dtype=dtype, xp=xp)
    conv("conv_out", width, 1, True)
    # a small last layer: the network starts near R(y) = 0 (output = input); with the full He scale the
    # first hundreds of steps only undo a random noise estimate (26.96 vs 21.31 dB validation PSNR after
    # 400 steps of the no-NL default, measured)
    params["conv_out.w"] *= 0.1
    return model, params, state


def _conv_f(x, p, spec, ctx):
    return conv_forward(x, p, padding=1, check=False)


def _bn_f(x, p, spec, ctx):
    out, cache, new = batch_norm_forward(
        x, p, scope(ctx["state"], spec["name"]), train=ctx["train"], check=False
    )
    ctx["new_state"].update(unscope(new, spec["name"]))
    return out, cache


def _relu_f(x, p, spec, ctx):
    return relu_forward(x)


def _nl_f(x, p, spec, ctx):
    return windowed_nonlocal_forward(x, p, window=spec["window"])


_LAYERS = {
    "conv": (_conv_f, conv_backward),
    "bn": (_bn_f, batch_norm_backward),
    "relu": (_relu_f, relu_backward),
    "nonlocal": (_nl_f, windowed_nonlocal_backward),
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
    ctx = {"state": state, "train": bool(train), "new_state": dict(state)}
    caches, x = [], y
    for spec in model:
        forward, _ = _LAYERS[spec["op"]]  # KeyError on an unknown op: no silent else
        x, cache = forward(x, scope(params, spec["name"]), spec, ctx)
        caches.append(cache if keep_cache else None)
    return x, caches, ctx["new_state"]


def denoiser_backward(dnoise, cache, model) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`denoiser_forward`: ``(dy, grads)`` with grads keyed like params."""
    grads, d = {}, dnoise
    for spec, c in zip(reversed(model), reversed(cache)):
        _, backward = _LAYERS[spec["op"]]
        d, g = backward(d, c)
        grads.update(unscope(g, spec["name"]))
    return d, grads
