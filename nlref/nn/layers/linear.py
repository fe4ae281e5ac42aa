"""The linear layer: ``W x + b`` at every position (a 1x1 / 1x1x1 convolution).

In the non-local block of Wang et al. (CVPR 2018, Sec. 3.2-3.3) theta, phi, g
and W_z are "1x1x1 convolutions", i.e. one matrix ``W: (C_out, C_in)`` applied
at every position.  With the positions of the whole batch as the columns of one
matrix, ``cols: (C_in, N*P)``, the layer is one matrix product, ``out = W cols + b``,
and its backward two more.

``out, cache = linear_forward(x, params)`` and ``dx, grads = linear_backward(dout, cache)``
(CS231n style).
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from ._common import check_layer_input, check_param, same_backend

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x: Any, params: dict[str, Any], *, check: bool = True) -> tuple[Any, tuple]:
    """Channel-mixing linear map at every position (a 1x1 / 1x1x1 convolution).

    ``out[n, :, i] = W x[n, :, i] + b``

    Parameters
    ----------
    x : ndarray, shape (N, C_in) or (N, C_in, *S) with 1 to 3 spatial axes
    params : dict
        ``"w"``: (C_out, C_in); ``"b"``: (C_out,), optional.
    check : bool
        Validate the arguments (the default); False when the caller already did.

    Returns
    -------
    out : ndarray, shape (N, C_out) or (N, C_out, *S)
    cache : tuple
    """
    if check:
        _check_linear_args(x, params)
    w, b = params["w"], params.get("b")
    xp = get_namespace(x)
    cols = x.swapaxes(0, 1).reshape(x.shape[1], -1)  # (C_in, N*P): every position of the batch a column
    out = w @ cols  # (C_out, N*P): one matrix product
    if b is not None:
        out += b[:, None]
    out = out.reshape((w.shape[0], x.shape[0]) + tuple(x.shape[2:])).swapaxes(0, 1)
    return xp.ascontiguousarray(out), (cols, w, b is not None, tuple(x.shape))


def _check_linear_args(x: Any, params: Any) -> None:
    check_layer_input(x, "x", min_spatial=0)
    w = check_param(params, "w", None, x.dtype, "linear_forward")
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(
            f"linear_forward: params['w'] must have shape (C_out, C_in={x.shape[1]}) to match x of shape "
            f"{tuple(x.shape)}, received shape {tuple(w.shape)}"
        )
    b = check_param(params, "b", (w.shape[0],), x.dtype, "linear_forward", required=False)
    same_backend(x, w, b)


def linear_backward(dout: Any, cache: tuple) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`linear_forward`.

    ``dx = W^T dout``, ``dW = sum_{n, i} dout[n, :, i] x[n, :, i]^T``, ``db = sum_{n, i} dout[n, :, i]``.

    Returns
    -------
    dx : ndarray, shape of ``x``
    grads : dict with ``"w"`` (and ``"b"`` when the forward had a bias)
    """
    cols, w, has_bias, x_shape = cache
    xp = get_namespace(dout)
    d = dout.swapaxes(0, 1).reshape(w.shape[0], -1)  # (C_out, N*P), as cols
    grads = {"w": d @ cols.T}  # C-contiguous: a flat optimiser gathers it without a copy
    if has_bias:
        grads["b"] = d.sum(axis=1)
    dx = (w.T @ d).reshape((x_shape[1], x_shape[0]) + x_shape[2:]).swapaxes(0, 1)
    return xp.ascontiguousarray(dx), grads
