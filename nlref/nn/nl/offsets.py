"""The windowed non-local operation by offsets: the memory-saving twin of the dense masked form.

    y_i = sum_{t in W} w_t(i) g_{i+t},   w_t(i) = softmax_t(s_t(i)),   s_t(i) = scale * theta_i . phi_{i+t}

is the embedded-Gaussian non-local operation (Wang et al., CVPR 2018, Eq. 1
and 3) with the keys j = i + t restricted to a search window ``|t_a| <= k_a``
(Buades, Coll, Morel, CVPR 2005; Liu et al., NeurIPS 2018).  The paper's dense
form (:func:`nlref.nn.nonlocal_op_forward` with the boolean (P, P) mask of
:func:`nlref.nn.local_window_mask`) computes all P x P logits and throws away
all but (2k+1)^d of each row: with k = 7 on a 64 x 64 map, 225 of 4096.

Here the loop runs over the *offsets* t of the window instead of the key
positions, as fast non-local means does (Darbon, Cunha, Chan, Osher, Peyre,
ISBI 2008; :mod:`nlref.denoise.fast`).  For one offset every query sees its key
through the same shift, so ``s_t`` is a per-pixel channel dot product of theta
with a shifted slice of phi, computed on the box of queries whose key i + t
lies inside the map (``-inf`` elsewhere: zero weight, as the mask's False)::

    theta, phi (N, C_i, *S)   g (N, C_g, *S)          S = (H, W), (T, H, W), ...
    for each offset t:  s[t] = scale * sum_c theta * shift_t(phi)     (T_w, N, *S)
    w = softmax over the offset axis (max-subtracted)                 (T_w, N, *S)
    for each offset t:  y += w[t] * shift_t(g)                        (N, C_g, *S)

Memory O(N P (2k+1)^d) for the weights, never O(P^2); time O(N P (2k+1)^d C).
Offset 0 is always allowed, so every softmax has a finite maximum and no
NaN/inf arises from finite input.  The backward mirrors the forward: the
softmax backward over the offset axis, and each shifted slice's adjoint adds
the gradient back at i + t.  Tested against the dense masked form.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ...backend import get_namespace
from ..layers._common import check_layer_input
from .window import as_window

__all__ = [
    "window_offsets",
    "windowed_attention_backward",
    "windowed_attention_forward",
    "windowed_attention_map",
]


def window_offsets(spatial: tuple[int, ...], window: Any) -> list[tuple[int, ...]]:
    """Offsets t of the search window ``|t_a| <= k_a`` in C order, clipped to ``|t_a| <= S_a - 1``.

    ``window`` is an int or a per-axis tuple of ints/None (None: the whole axis),
    as :func:`nlref.nn.nl.as_window`.  Larger offsets would point outside the
    map from every query, so the work is bounded by the map, not by ``window``.
    """
    radii = [n - 1 if k is None else min(k, n - 1) for k, n in zip(as_window(window, len(spatial)), spatial)]
    return list(itertools.product(*(range(-r, r + 1) for r in radii)))


def _boxes(spatial, offset):
    """(query index, key index) of the positions i with i + offset inside the map, ``(..., *slices)``.

    Along an axis of size n and offset t the queries are ``max(0, -t) <= i < n - max(0, t)``
    and their keys the same range shifted by t.
    """
    q = tuple(slice(max(0, -t), n - max(0, t)) for n, t in zip(spatial, offset))
    k = tuple(slice(max(0, t), n + min(0, t)) for n, t in zip(spatial, offset))
    return (Ellipsis, *q), (Ellipsis, *k)  # index (N, C, *S) and (N, *S) arrays alike


def _validate(theta, phi, g, window, scale):
    """The checks of :func:`windowed_attention_forward`, before any work."""
    for a, name in ((theta, "theta"), (phi, "phi"), (g, "g")):
        check_layer_input(a, name)  # float32/64, (N, C, *S) with 1-3 spatial axes, finite
    get_namespace(theta, phi, g)  # TypeError on mixed backends
    if not theta.dtype == phi.dtype == g.dtype:
        raise TypeError(f"theta, phi, g must share one dtype, received {theta.dtype}, {phi.dtype}, {g.dtype}")
    n, _ci, *spatial = theta.shape
    if tuple(phi.shape) != tuple(theta.shape) or tuple(g.shape[:1]) + tuple(g.shape[2:]) != (n, *spatial):
        raise ValueError(
            f"phi must have the shape of theta (N, C_i, *S) = {tuple(theta.shape)} and g (N, C_g, *S), "
            f"received phi {tuple(phi.shape)}, g {tuple(g.shape)}"
        )
    if 0 in spatial:
        raise ValueError(f"theta must have at least one position on every spatial axis, received {spatial}")
    as_window(window, len(spatial))  # ValueError/TypeError naming window
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale)
    ):
        raise TypeError(f"scale must be None or a finite real number, received {scale!r}")


def windowed_attention_forward(
    theta: Any, phi: Any, g: Any, *, window: Any, scale: float | None = None, check: bool = True
) -> tuple[Any, dict]:
    """Windowed embedded Gaussian ``y_i = sum_t softmax_t(scale theta_i^T phi_{i+t}) g_{i+t}``, by offsets.

    Equals ``nonlocal_op_forward(query, key, value, f="embedded_gaussian",
    scale=scale, mask=local_window_mask(S, window))`` on the flattened
    positions (Wang et al., CVPR 2018, Eq. 1 and 3, restricted to NLM's search
    window) up to round-off, without the (N, P, P) affinity or the (P, P) mask.

    Parameters
    ----------
    theta, phi : ndarray, shape (N, C_i, *S)
        Query and key embeddings, channels first; S has 1 to 3 axes.
    g : ndarray, shape (N, C_g, *S)
        Values.
    window : int or tuple of (int or None)
        Radius k of the window per axis (``|t_a| <= k_a``; None or k >= S_a: the whole axis).
    scale : float, optional
        Logits ``scale * theta_i . phi_j`` (the official code: ``C_i ** -0.5``); None means 1.
    check : bool
        Validate the arguments (default); False for callers that validated once already.

    Returns
    -------
    y : ndarray, shape (N, C_g, *S)
    cache : dict
        For :func:`windowed_attention_backward`: the inputs, the weights
        ``w`` (T_w, N, *S) with T_w = prod(2 k_a + 1) offsets, and ``y``.

    Raises
    ------
    ValueError, TypeError
        Bad shapes, dtypes, window or scale, non-finite input, mixed NumPy/CuPy arrays.
    """
    if check:
        _validate(theta, phi, g, window, scale)
    xp = get_namespace(theta)
    spatial = tuple(theta.shape[2:])
    offsets = window_offsets(spatial, window)
    sc = 1.0 if scale is None else float(scale)  # a Python float keeps float32 arrays float32
    theta_s = theta * sc
    # logits s_t(i), -inf where i + t lies outside the map: (T_w, N, *S), the only large array
    s = xp.full((len(offsets),) + tuple(theta.shape[:1]) + spatial, -xp.inf, dtype=theta.dtype)
    for t, offset in enumerate(offsets):
        q, k = _boxes(spatial, offset)
        s[t][q] = (theta_s[q] * phi[k]).sum(axis=1)
    s -= s.max(axis=0)  # offset 0 is always allowed: a finite max
    w = xp.exp(s, out=s)
    w /= w.sum(axis=0)
    y = xp.zeros(tuple(g.shape), dtype=g.dtype)
    for t, offset in enumerate(offsets):
        q, k = _boxes(spatial, offset)
        y[q] += w[t][q][:, None] * g[k]
    return y, dict(theta=theta, phi=phi, g=g, w=w, y=y, offsets=offsets, scale=sc)


def windowed_attention_backward(dy: Any, cache: dict) -> tuple[Any, Any, Any]:
    """Backward of :func:`windowed_attention_forward`: ``(dtheta, dphi, dg)``.

    Parameters
    ----------
    dy : ndarray, shape (N, C_g, *S)
        Upstream gradient dL/dy.
    cache : dict
        From the forward.

    Returns
    -------
    dtheta, dphi, dg : ndarray
        Shapes of theta, phi, g.

    Notes
    -----
    Per offset t, with ``dw_t(i) = dy_i . g_{i+t}`` and ``D_i = sum_t w_t dw_t = dy_i . y_i``:
    ``dg_{i+t} += w_t(i) dy_i``; softmax ``ds_t(i) = w_t(i) (dw_t(i) - D_i)``; then
    ``dtheta_i += scale ds_t(i) phi_{i+t}`` and ``dphi_{i+t} += scale ds_t(i) theta_i``.
    Positions outside the map have ``w_t = 0`` and are never visited.
    """
    theta, phi, g, w, y = (cache[key] for key in ("theta", "phi", "g", "w", "y"))
    if tuple(dy.shape) != tuple(y.shape):
        raise ValueError(f"dy must have shape {tuple(y.shape)}, received {tuple(dy.shape)}")
    xp = get_namespace(dy, y)
    spatial, sc = tuple(y.shape[2:]), cache["scale"]
    big_d = (dy * y).sum(axis=1)  # D_i, (N, *S)
    dtheta, dphi, dg = xp.zeros_like(theta), xp.zeros_like(phi), xp.zeros_like(g)
    for t, offset in enumerate(cache["offsets"]):
        q, k = _boxes(spatial, offset)
        w_t = w[t][q]  # (N, *box)
        dg[k] += w_t[:, None] * dy[q]
        ds = w_t * ((dy[q] * g[k]).sum(axis=1) - big_d[q])
        ds *= sc
        dtheta[q] += ds[:, None] * phi[k]
        dphi[k] += ds[:, None] * theta[q]
    return dtheta, dphi, dg


def windowed_attention_map(cache: dict, position: int | tuple[int, ...]) -> Any:
    """The weights ``w_t(i)`` of one query i laid out on the map: (N, *S), 0 outside its window.

    The row i of the dense masked affinity (:func:`nlref.nn.nl.attention_weights`),
    for display (notebook 06); ``position`` is a flat index into S or a tuple of coordinates.
    """
    w, spatial = cache["w"], tuple(cache["y"].shape[2:])
    if isinstance(position, (int, np.integer)):
        if not 0 <= position < math.prod(spatial):
            raise ValueError(f"position must lie in [0, {math.prod(spatial)}), received {position}")
        position = np.unravel_index(int(position), spatial)
    i = tuple(int(a) for a in position)
    if len(i) != len(spatial) or not all(0 <= a < n for a, n in zip(i, spatial)):
        raise ValueError(
            f"position must be a flat index or coordinates inside {spatial}, received {position!r}"
        )
    out = get_namespace(w).zeros((w.shape[1], *spatial), dtype=w.dtype)
    for t, offset in enumerate(cache["offsets"]):
        j = tuple(a + b for a, b in zip(i, offset))
        if all(0 <= a < n for a, n in zip(j, spatial)):
            out[(slice(None), *j)] = w[(t, slice(None), *i)]
    return out
