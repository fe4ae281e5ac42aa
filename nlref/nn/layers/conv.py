"""N-dimensional convolution (1-D, 2-D, 3-D) as im2col + one matrix product.

This is the workhorse of the C2D/I3D backbones (ResNet-50 with 3x3 / 3x3x3 /
1x1x1 kernels, He et al. CVPR 2016; Wang et al. CVPR 2018, Table 1).  Like
every nlref layer it is a pair ``conv_forward`` / ``conv_backward`` written by
hand, with no autograd.

How it works: for each of the ``K = prod(kernel_size)`` kernel offsets the
input positions that offset reads form one strided slice of the padded input.
Stacking those ``K`` slices gives the "column" matrix ``cols: (C*K, N*P)``
(P output positions per sample) and the convolution of the whole batch is one
product ``W (C_out, C*K) @ cols``; the ``K`` slices are one strided view of
the padded input (:func:`nlref.nn.layers._common.windows`), gathered with one copy.
The backward's ``dx`` is, at stride 1, the transposed convolution: ``dout``
padded by the kernel span and correlated with the flipped kernel, in and out
channels swapped -- again im2col and one product.  A strided kernel instead
adds each entry of ``dcols = W^T dout`` back where its column entry was read,
with one scatter-add at the flat indices of the windows (col2im).  In shapes::

    x (N, C_in, *S) -> pad (zeros or replicated edges) -> cols (C_in*K, N*P)
    out = W (C_out, C_in*K) @ cols  -> (N, C_out, *O)
    stride 1:  dout -> pad -> cols' (C_out*K, N*S_pad);  dx_pad = flip(W)^T (C_in, C_out*K) @ cols'
    strided:   dcols = W^T (C_in*K, C_out) @ dout (C_out, N*P) -> scatter-add into dx_pad (C_in, N, *S_pad)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import get_namespace
from ._common import (
    check_layer_input,
    check_param,
    fold_replicated_borders,
    inner_slices,
    output_shape,
    pad_spatial,
    padding_modes,
    replicate_borders,
    same_backend,
    window_config,
    window_index,
    windows,
)

__all__ = ["conv_forward", "conv_backward", "conv_output_shape"]


def conv_output_shape(
    spatial: tuple[int, ...], kernel_size: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> tuple[int, ...]:
    """Spatial output shape ``floor((S + 2p - d (k - 1) - 1) / s) + 1`` per axis.

    Shared by convolution and pooling; raises ``ValueError`` when the
    (dilated) kernel is larger than the padded input.
    """
    k, s, p, d = window_config(len(spatial), kernel_size, stride, padding, dilation)
    return output_shape(spatial, k, s, p, d)


def conv_forward(
    x: Any,
    params: dict[str, Any],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    padding_mode: Any = "zeros",
    check: bool = True,
) -> tuple[Any, tuple]:
    """Cross-correlation of ``x`` with ``params["w"]`` (the "convolution" of deep learning).

    ``out[n, o, i] = b[o] + sum_{c, k} w[o, c, k] * x_pad[n, c, i * s + k * d]``

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *S), float32 or float64
        Input with 1, 2 or 3 spatial axes ``S``.
    params : dict
        ``"w"``: (C_out, C_in, *k) kernel; ``"b"``: (C_out,) bias, optional.
    stride, padding, dilation : int or tuple of ints, one per spatial axis
        Padding on both sides of every spatial axis.
    padding_mode : {"zeros", "replicate"} or tuple of them, one per spatial axis
        What the padding holds: zeros, or copies of the first / last slice
        (``numpy.pad(mode="edge")``).  The I3D models pad time with
        ``("replicate", "zeros", "zeros")`` so that a clip of identical frames
        gives exactly the output of the 2-D network the kernels were inflated
        from (:func:`nlref.nn.video.inflate_2d_to_3d`).
    check : bool
        Validate the arguments (the default).  Callers that have checked the
        shapes once -- a model built by :func:`nlref.nn.video.build_model` --
        pass False.

    Returns
    -------
    out : ndarray, shape (N, C_out, *O)
        ``O = floor((S + 2p - d (k - 1) - 1) / s) + 1``.
    cache : tuple
        What :func:`conv_backward` needs, including the column matrix
        ``cols: (C_in * prod(k), N * prod(O))`` -- the memory cost of this layer
        (for a 1x1(x1) kernel at stride 1 it is ``x`` with N and C swapped).

    Raises
    ------
    ValueError
        Wrong ndim, channel mismatch between ``x`` and ``w``, negative padding or padding
        above ``dilation * (kernel_size - 1)`` on an axis (an output of padding only),
        non-positive stride/dilation, kernel larger than the padded input,
        unknown padding mode.
    TypeError
        Non-float or float16 arrays, dtype mismatch, NumPy and CuPy mixed.
    """
    if check:
        _check_conv_args(x, params)
    w, b = params["w"], params.get("b")
    n = x.ndim - 2
    k, s, p, d = window_config(n, tuple(w.shape[2:]), stride, padding, dilation)
    if any(pi > di * (ki - 1) for pi, di, ki in zip(p, d, k)):  # else outputs of padding only
        raise ValueError(
            f"conv_forward: padding must be at most dilation * (kernel_size - 1) on every axis, "
            f"received padding {p} for kernel_size {k}, dilation {d}"
        )
    modes = padding_modes(padding_mode, n)
    o_shape = output_shape(x.shape[2:], k, s, p, d)
    return _conv_forward(get_namespace(x), x, w, b, k, s, p, d, o_shape, modes)


def _check_conv_args(x: Any, params: Any) -> None:
    n = check_layer_input(x, "x")
    w = check_param(params, "w", None, x.dtype, "conv_forward")
    if w.ndim != x.ndim:
        raise ValueError(
            f"conv_forward: params['w'] must have shape (C_out, C_in, *kernel) with {n} kernel "
            f"axes to match x of shape {tuple(x.shape)}, received shape {tuple(w.shape)}"
        )
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"conv_forward: channel mismatch, x has C_in={x.shape[1]} channels but params['w'] "
            f"of shape {tuple(w.shape)} expects C_in={w.shape[1]}"
        )
    b = check_param(params, "b", (w.shape[0],), x.dtype, "conv_forward", required=False)
    same_backend(x, w, b)


def _swap_nc(a: Any) -> Any:
    """``(N, C, *S) <-> (C, N, *S)`` (a view): with C first, one 2-D matmul covers the whole batch."""
    return a.swapaxes(0, 1)


def _conv_forward(xp, x, w, b, k, s, p, d, o_shape, modes=None):
    N, C = x.shape[:2]
    C_out, K, P = w.shape[0], int(np.prod(k)), int(np.prod(o_shape))
    modes = modes or ("zeros",) * len(k)
    x_pad = replicate_borders(pad_spatial(_swap_nc(x), p), p, modes)  # (C, N, *S_pad)
    if K == 1 and all(si == 1 for si in s):
        cols = x_pad.reshape(C, N * P)  # 1x1(x1) kernel: the columns are x itself
    else:  # (C, N, *O, *k) windows -> (C, *k, N, *O): one copy
        win = windows(x_pad, k, s, d, o_shape)
        n = len(k)
        cols = win.transpose((0,) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(1, 2 + n)))
        cols = cols.reshape(C * K, N * P)
    w2 = w.reshape(C_out, C * K)
    out = w2 @ cols  # (C_out, C*K) @ (C*K, N*P): one matrix product for the batch
    if b is not None:
        out += b[:, None]
    cache = (tuple(x.shape), w2, tuple(w.shape), cols, b is not None, (k, s, p, d, o_shape, modes))
    return xp.ascontiguousarray(_swap_nc(out.reshape((C_out, N) + o_shape))), cache


def conv_backward(dout: Any, cache: tuple, *, need_dx: bool = True) -> tuple[Any, dict[str, Any]]:
    """Gradients of :func:`conv_forward`.

    With ``out = W cols + b`` (``W: (C_out, C_in*K)``, ``cols: (C_in*K, N*P)``):

    * ``dW = dout cols^T``, ``db = sum_{n, i} dout[n, :, i]``;
    * ``dx_pad[c, j] = sum_{o, k: i s + k d = j} w[o, c, k] dout[o, i]``: at
      stride 1, the transposed convolution (:func:`_transposed_conv`, one
      im2col product); at other strides, ``dcols = W^T dout`` with each entry
      added back where its column entry was read (:func:`_col2im`, one
      scatter-add; the transposed convolution would multiply ``prod(s)``
      times as many zeros); with ``padding_mode="replicate"`` the gradient
      reaching the padding is added onto the edge slice it copied; ``dx`` is
      ``dx_pad`` without its padding.

    Either way the backward briefly needs about the memory of ``cols`` again.

    Parameters
    ----------
    dout : ndarray, shape (N, C_out, *O)
    cache : tuple from :func:`conv_forward`
    need_dx : bool
        False skips ``dx`` (returned as None): the first layer of a network
        needs only the weight gradients, and ``dx`` is half of its backward.

    Returns
    -------
    dx : ndarray, shape (N, C_in, *S), or None when ``need_dx`` is False
    grads : dict
        ``{"w": (C_out, C_in, *k), "b": (C_out,)}`` (``"b"`` only when the forward had a bias).
    """
    x_shape, w2, w_shape, cols, has_bias, (k, s, p, d, o_shape, modes) = cache
    xp = get_namespace(dout)
    N, C = x_shape[:2]
    C_out, K = w_shape[0], int(np.prod(k))
    d2 = _swap_nc(dout).reshape(C_out, -1)  # (C_out, N*P)
    grads = {"w": (d2 @ cols.T).reshape(w_shape)}  # C-contiguous: a flat optimiser gathers it without a copy
    if has_bias:
        grads["b"] = d2.sum(axis=1)
    if not need_dx:
        return None, grads
    padded = (C, N) + tuple(S + 2 * pi for S, pi in zip(x_shape[2:], p))
    if K == 1 and all(si == 1 for si in s):
        dx_pad = (w2.T @ d2).reshape(padded)  # 1x1(x1) kernel: dx = W^T dout
    elif all(si == 1 for si in s):
        dx_pad = _transposed_conv(xp, d2.reshape((C_out, N) + o_shape), w2.reshape(w_shape), padded, k, d)
    else:
        dx_pad = _col2im(xp, w2.T @ d2, padded, k, s, d, o_shape)
    fold_replicated_borders(dx_pad, p, modes)
    dx = _swap_nc(dx_pad[inner_slices(x_shape[2:], p)] if any(p) else dx_pad)
    return xp.ascontiguousarray(dx), grads


def _transposed_conv(xp, dout_c, w, padded, k, d):
    """``dx_pad[c, n, j] = sum_{o, kk: i + kk d = j} w[o, c, kk] dout[o, n, i]`` (stride 1) as one product.

    With ``dout_c: (C_out, N, *O)`` zero-padded by the kernel span less one,
    ``u[d (k - 1) + i] = dout[i]``, the sum is
    ``dx_pad[j] = sum_kk' w[k - 1 - kk'] u[j + kk' d]``: the correlation of ``u``
    with the flipped kernel (in and out channels swapped), whose output grid
    is ``S_pad`` -- im2col of ``u`` and one product.  Returns ``dx_pad: (C_in, N, *S_pad)``.
    """
    C_out, C, n, K = w.shape[0], w.shape[1], len(k), int(np.prod(k))
    u = pad_spatial(dout_c, tuple(di * (ki - 1) for ki, di in zip(k, d)))
    win = windows(u, k, (1,) * n, d, padded[2:])  # (C_out, N, *S_pad, *k)
    cols = win.transpose((0,) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(1, 2 + n)))
    cols = cols.reshape(C_out * K, -1)  # (C_out*K, N*prod(S_pad)): one copy
    w_flip = w[(slice(None), slice(None)) + (slice(None, None, -1),) * n].swapaxes(0, 1)
    return (w_flip.reshape(C, C_out * K) @ cols).reshape(padded)


def _col2im(xp, dcols, padded, k, s, d, o_shape):
    """``dx_pad: (C, N, *S_pad)`` with every entry of ``dcols: (C*K, N*P)`` added where its column read.

    One scatter-add at the flat indices of the windows
    (:func:`nlref.nn.layers._common.window_index`), laid out as ``cols`` and gathered
    into one contiguous vector (NumPy's ``add.at`` is fast on 1-D indices);
    overlapping windows add up in kernel-offset order.
    """
    n = len(k)
    index = window_index(xp, padded, k, s, d, o_shape)  # (C, N, *O, *k)
    index = index.transpose((0,) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(1, 2 + n)))  # as cols
    dx_pad = xp.zeros(padded, dtype=dcols.dtype)
    xp.add.at(dx_pad.reshape(-1), index.reshape(-1), dcols.reshape(-1))
    return dx_pad
