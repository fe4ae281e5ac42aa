"""Batch normalisation (Ioffe & Szegedy, ICML 2015) for (N, C, *S) feature maps.

Every convolution of the C2D/I3D ResNets is followed by BatchNorm, and the
non-local block ends with ``BN(W_z y)`` whose scale gamma starts at zero so a
freshly inserted block is the identity (Wang et al. CVPR 2018, Sec. 3.3).
Statistics are per channel over the batch and every spatial position.

The running statistics are *returned*, never updated in place: the forward
gets ``state`` and gives back ``new_state``, so a caller decides when to keep
them (PyTorch convention: ``running = (1 - momentum) running + momentum batch``,
with the unbiased batch variance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_positive
from ...backend import get_namespace
from ._common import channel_shape, check_layer_input, check_param, same_backend

__all__ = ["batch_norm_forward", "batch_norm_backward"]


def batch_norm_forward(
    x: Any,
    params: dict[str, Any],
    state: dict[str, Any],
    *,
    train: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    check: bool = True,
) -> tuple[Any, tuple, dict[str, Any]]:
    """Normalise each channel, then scale and shift: ``out = gamma * x_hat + beta``.

    ``x_hat = (x - mu) / sqrt(var + eps)`` where, per channel ``c`` over the
    ``M = N * prod(S)`` values of the batch, ``mu`` and ``var`` (biased) are the
    batch statistics when ``train`` is true and the running statistics otherwise.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *S) with up to 3 spatial axes
    params : dict
        ``"gamma"``, ``"beta"``: (C,).
    state : dict
        ``"running_mean"``, ``"running_var"``: (C,).  Not modified.
    train : bool
        Batch statistics (and updated running statistics) or running statistics.
    momentum : float in [0, 1]
        Weight of the batch statistics in the running average.
    eps : float > 0
    check : bool
        Validate the arguments (the default); False when the caller already did
        (a model from :func:`nlref.nn.video.build_model`).

    Returns
    -------
    out : ndarray, like ``x``
    cache : tuple
    new_state : dict
        ``running_mean = (1 - momentum) running_mean + momentum mu`` and
        ``running_var = (1 - momentum) running_var + momentum var * M / (M - 1)``
        in training; the same arrays as ``state`` in evaluation.
    """
    if check:
        _check_bn_args(x, params, state, train, momentum, eps)
    gamma, beta = params["gamma"], params["beta"]
    running_mean, running_var = state["running_mean"], state["running_var"]
    xp = get_namespace(x)
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    M = x.size // C
    if train and M < 2:  # a property of the data, checked always: M - 1 divides below
        raise ValueError(
            f"batch_norm_forward: training needs more than one value per channel, "
            f"received x of shape {tuple(x.shape)}"
        )

    bshape = channel_shape(x.ndim)
    if train:
        mu = x.mean(axis=axes)
        x_hat = x - mu.reshape(bshape)
        # biased: the batch's own variance, squared and summed in float64 so that float32 values
        # near 1e20 (squares near 1e40) stay finite; the running statistic is clipped to the dtype
        var = xp.square(x_hat, dtype=np.float64).mean(axis=axes)
        inv_std = xp.divide(1.0, xp.sqrt(var + eps), dtype=x.dtype)  # sqrt(var) ~ |x_hat| fits x's dtype
        m, r = running_mean.dtype.type(momentum), running_mean.dtype
        unbiased = r.type(momentum * M / (M - 1))  # m times Bessel's correction, folded on the host
        with np.errstate(over="ignore"):  # a float64 var above r's range casts to inf, then clips to its max
            var_r = xp.minimum(var, r.type(np.finfo(r).max / 4), dtype=r)
        new_state = {
            "running_mean": (1 - m) * running_mean + m * mu.astype(r, copy=False),
            "running_var": (1 - m) * running_var + unbiased * var_r,
        }
    else:
        mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        x_hat = x - mu.reshape(bshape)
        new_state = {"running_mean": running_mean, "running_var": running_var}
        inv_std = 1.0 / xp.sqrt(var + x.dtype.type(eps))
    x_hat *= inv_std.reshape(bshape)  # in place: x_hat is our own temporary
    out = gamma.reshape(bshape) * x_hat + beta.reshape(bshape)
    return out, (x_hat, gamma, inv_std, bool(train), axes), new_state


def _check_bn_args(x: Any, params: Any, state: Any, train: Any, momentum: float, eps: float) -> None:
    check_layer_input(x, "x", min_spatial=0)
    C = x.shape[1]
    gamma = check_param(params, "gamma", (C,), x.dtype, "batch_norm_forward")
    beta = check_param(params, "beta", (C,), x.dtype, "batch_norm_forward")
    if not isinstance(state, dict):
        raise TypeError(f"batch_norm_forward: state must be a dict, received {type(state).__name__}")
    running_mean = check_param(state, "running_mean", (C,), None, "batch_norm_forward")
    running_var = check_param(state, "running_var", (C,), running_mean.dtype, "batch_norm_forward")
    same_backend(x, gamma, beta, running_mean, running_var)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"batch_norm_forward: train must be a bool, received {train!r}")
    check_positive(eps, "eps")
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"batch_norm_forward: momentum must be in [0, 1], received {momentum!r}")


def batch_norm_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`batch_norm_forward`.

    ``dbeta = sum dout``, ``dgamma = sum dout * x_hat`` (sums over the ``M``
    values of a channel, i.e. over N and S).

    * training (mu and var depend on x):
      ``dx = gamma * inv_std * (dout - dbeta / M - x_hat * dgamma / M)``,
      the usual ``inv_std * (g - mean(g) - x_hat * mean(g * x_hat))`` with
      ``g = gamma * dout``, whose two means are ``dbeta`` and ``dgamma`` again;
    * evaluation (running statistics are constants): ``dx = gamma * inv_std * dout``.

    Returns
    -------
    dx : ndarray, like ``dout``
    grads : dict with ``"gamma"``, ``"beta"``: (C,)
    """
    x_hat, gamma, inv_std, train, axes = cache
    b = channel_shape(dout.ndim)
    dbeta, dgamma = dout.sum(axis=axes), (dout * x_hat).sum(axis=axes)
    scale = (gamma * inv_std).reshape(b)
    if train:
        M = dout.dtype.type(dout.size // dout.shape[1])
        dx = (dout - (dbeta / M).reshape(b) - x_hat * (dgamma / M).reshape(b)) * scale
    else:
        dx = dout * scale
    return dx, {"gamma": dgamma, "beta": dbeta}
