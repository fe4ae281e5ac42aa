"""The non-local block of Wang, Girshick, Gupta, He (CVPR 2018, Sec. 3.3, Fig. 2).

    z = BN(W_z y) + x,     y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)

This is the block a video network inserts after a residual block.  It works on
sequences (N, C, L), images (N, C, H, W) and clips (N, C, T, H, W): every
position attends to every (subsampled) position, across space and time.

Pipeline (shapes for a clip, ``P = T*H*W`` positions, ``P'`` after subsampling)::

    x (N, C, T, H, W)
    ├─ theta = W_theta x                    (N, C_i, T, H, W)  -> query (N, P, C_i)
    ├─ [max-pool] -> phi = W_phi x, g = W_g x  (N, C_i, T, H', W') -> key, value (N, P', C_i)
    y = nonlocal_op(theta, phi, g)           (N, P, C_i)         [nlref.nn.nl.op]
    z = BN(W_z y) + x                        (N, C, T, H, W)

* ``mode``: the four instantiations of Sec. 3.2 -- "gaussian" (f = exp(x_i^T x_j)
  on x itself, so no theta/phi weights), "embedded_gaussian" (softmax of
  theta^T phi: self-attention), "dot_product" and "concatenation" (divided by
  N', the number of key positions).
* ``subsample``: max-pool kernel (= stride) on the phi and g branches, e.g.
  ``(1, 2, 2)`` for clips, ``2`` for images; i still runs over all positions.
  ``pool_order="before_conv"`` (default) pools x once before the phi/g
  convolutions, as the official Caffe2 code (facebookresearch/video-nonlocal-net)
  does; ``"after_conv"`` pools phi(x) and g(x), as the PyTorch ports
  (AlexHex7/Non-local_pytorch, mmcv ``NonLocalNd``) do.  They differ numerically.
  Pooling drops a remainder that does not fill a window (floor mode).
* identity at initialisation: the BatchNorm after W_z starts with gamma = 0
  (official code), or, with ``bn=False``, W_z itself starts at zero.
* memory: the affinity is (N, P, P'); ``memory="chunked"`` never stores it
  (see :mod:`nlref.nn.nl.chunked`); with a window, ``memory="offsets"`` visits it
  offset by offset, as fast non-local means does (:mod:`nlref.nn.nl.offsets`): the
  learned denoiser's block (:mod:`nlref.nn.denoiser`) is this block, without BN.
* ``window``: restrict each query's keys to a local window (:mod:`nlref.nn.nl.window`),
  the control experiment for non-locality; None (default) is the paper's block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import as_tuple
from ...backend import get_namespace
from ..layers.init import as_generator, gaussian, ones, zeros
from ..layers.linear import linear_backward, linear_forward
from ..layers.norm import batch_norm_backward, batch_norm_forward
from ..layers.params import scope, unscope
from ..layers.pool import max_pool_backward, max_pool_forward
from ._checks import DEFAULT_CHUNK_SIZE, NONLOCAL_MODES, check_block_options, check_block_params
from .offsets import windowed_attention_backward, windowed_attention_forward
from .op import nonlocal_op_backward, nonlocal_op_forward
from .window import local_window_mask

__all__ = [
    "init_nonlocal_params",
    "nonlocal_block_forward",
    "nonlocal_block_backward",
    "NONLOCAL_INITS",
]

#: Initialisations of the block's 1x1(x1) convolutions (:func:`init_nonlocal_params`).
NONLOCAL_INITS = ("fan_in", "official")


def _check_mode(mode):
    if mode not in NONLOCAL_MODES:
        raise ValueError(f"mode must be one of {NONLOCAL_MODES}, received {mode!r}")


def _branches(mode):
    """The 1x1(x1) convolutions a mode uses (the plain Gaussian compares x itself)."""
    return ("g",) if mode == "gaussian" else ("theta", "phi", "g")


def init_nonlocal_params(
    channels: int,
    *,
    mode: str = "embedded_gaussian",
    inner_channels: int | None = None,
    ndim: int = 3,
    bn: bool = True,
    rng: Any = 0,
    dtype: Any = np.float32,
    xp: Any = np,
    init: str = "official",
    std: float | None = None,
) -> tuple[dict, dict]:
    """Parameters and BatchNorm state of a non-local block, the identity at start (BN gamma = 0).

    The default follows the official code (weights ~ N(0, 0.01^2)); the video
    models of :mod:`nlref.nn.video.models`, trained from scratch, use ``init="fan_in"``.

    Parameters
    ----------
    channels : int
        C, the channels of the input x.
    mode : {"gaussian", "embedded_gaussian", "dot_product", "concatenation"}
    inner_channels : int, optional
        C_i of theta, phi, g (the bottleneck).  Default ``max(channels // 2, 1)``.
    ndim : {1, 2, 3}
        Spatial axes of the inputs the block will see.  The 1x1(x1) weights are
        the same for every ndim; the argument is checked and kept for symmetry
        with the video models.
    bn : bool
        True: ``z = BN(W_z y) + x`` with BN gamma = 0 (identity at start; W_z
        Gaussian).  False: ``z = W_z y + x`` with W_z = 0 (identity at start).
    rng : int or numpy.random.Generator
        Seed of the Gaussian weights.
    dtype, xp
        float32/float64; ``numpy`` or ``cupy``.
    init : {"fan_in", "official"}
        Standard deviation of the Gaussian 1x1(x1) weights (theta, phi, g, W_z,
        concat).  "fan_in" (for training from scratch): LeCun normal,
        ``std = 1 / sqrt(fan_in)`` (C for theta / phi / g, C_i for W_z, 2 C_i for
        the concatenation's w_f), so theta^T phi starts at order 1.  "official"
        (default): ``std = 0.01``, the setting of video-nonlocal-net, which inserts blocks into
        an ImageNet-pretrained trunk; from scratch, theta and phi that small keep
        theta^T phi and its gradients near zero together (a saddle), see
        notebooks/05_video_networks_on_gpu.ipynb.
    std : float, optional
        A fixed standard deviation instead (overrides ``init``).

    Returns
    -------
    params : dict
        ``"theta.w"`` (C_i, C), ``"theta.b"`` (C_i,), same for ``"phi"`` (both absent
        for mode "gaussian"), ``"g.w"``, ``"g.b"``, ``"w_z.w"`` (C, C_i), ``"w_z.b"`` (C,),
        ``"concat.w"`` (2 C_i,) for concatenation, ``"bn.gamma"``, ``"bn.beta"`` (C,) when ``bn``.
    state : dict
        ``"bn.running_mean"`` (zeros) and ``"bn.running_var"`` (ones) when ``bn``; else empty.
    """
    _check_mode(mode)
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels must be a positive int, received {channels!r}")
    ci = max(int(channels) // 2, 1) if inner_channels is None else inner_channels
    if isinstance(ci, bool) or not isinstance(ci, (int, np.integer)) or ci < 1:
        raise ValueError(f"inner_channels must be a positive int, received {inner_channels!r}")
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, received {ndim!r}")
    if init not in NONLOCAL_INITS:
        raise ValueError(f"init must be one of {NONLOCAL_INITS}, received {init!r}")
    gen = as_generator(rng)
    c, ci = int(channels), int(ci)

    def std_for(fan_in):
        if std is not None:
            return std
        return 0.01 if init == "official" else 1.0 / np.sqrt(fan_in)

    params = {}
    for name in _branches(mode):
        params[f"{name}.w"] = gaussian((ci, c), std_for(c), gen, dtype=dtype, xp=xp)
        params[f"{name}.b"] = zeros(ci, dtype=dtype, xp=xp)
    if mode == "concatenation":
        params["concat.w"] = gaussian(2 * ci, std_for(2 * ci), gen, dtype=dtype, xp=xp)
    w_z = zeros((c, ci), dtype=dtype, xp=xp)
    if bn:
        w_z = gaussian((c, ci), std_for(ci), gen, dtype=dtype, xp=xp)
    params["w_z.w"] = w_z
    params["w_z.b"] = zeros(c, dtype=dtype, xp=xp)
    state = {}
    if bn:
        params["bn.gamma"] = zeros(c, dtype=dtype, xp=xp)  # zero scale: the new block is the identity
        params["bn.beta"] = zeros(c, dtype=dtype, xp=xp)
        state = {
            "bn.running_mean": zeros(c, dtype=dtype, xp=xp),
            "bn.running_var": ones(c, dtype=dtype, xp=xp),
        }
    return params, state


def _positions(a):
    """(N, c, *S) -> (N, P, c): one row per position, the layout of nonlocal_op."""
    # contiguous rows: NumPy's batched matmul is ~2x slower on the transposed view
    return get_namespace(a).ascontiguousarray(a.reshape(a.shape[0], a.shape[1], -1).transpose(0, 2, 1))


def _channels_first(a, spatial):
    """(N, P, c) -> (N, c, *S), the inverse of :func:`_positions`."""
    return a.transpose(0, 2, 1).reshape((a.shape[0], a.shape[2]) + tuple(spatial))


def _lin(layers, params, name, a):
    """A 1x1(x1) convolution of the block; its cache goes to ``layers[name]``."""
    # the block checked x and its parameters once at its boundary: its layers trust them
    out, layers[name] = linear_forward(a, scope(params, name), check=False)
    return out


def _embeddings(x, params, mode, kernel, pool_order, layers):
    """theta (N, d, *S), phi (N, d, *S') and g (N, C_i, *S'): the 1x1(x1) convs, keys/values pooled."""

    def pool(name, a):
        out, layers[name] = max_pool_forward(a, kernel_size=kernel, check=False)
        return out

    theta = x if mode == "gaussian" else _lin(layers, params, "theta", x)  # (N, d, *S)
    x_kv = pool("pool_x", x) if kernel and pool_order == "before_conv" else x
    phi = x_kv if mode == "gaussian" else _lin(layers, params, "phi", x_kv)
    g = _lin(layers, params, "g", x_kv)
    if kernel and pool_order == "after_conv":
        phi, g = pool("pool_phi", phi), pool("pool_g", g)  # (N, d, *S'), (N, C_i, *S')
    return theta, phi, g


def _dense_or_chunked(x, theta, phi, g, params, mode, kernel, window, scale, memory, chunk_size, attention):
    """The operation on flattened positions (N, P, c); a window becomes a (P, P') mask."""
    # key cells compared in input coordinates (nlref.nn.nl.window)
    mask = None
    if window is not None:
        mask = local_window_mask(tuple(x.shape[2:]), window, stride=kernel or 1, xp=get_namespace(x))
    return nonlocal_op_forward(  # validated by the block: no second check
        _positions(theta),
        _positions(phi),
        _positions(g),
        f=mode,
        scale=scale,
        w_f=params.get("concat.w"),
        mask=mask,
        memory=memory,
        chunk_size=chunk_size,
        return_attention=attention,
        check=False,
    )


def nonlocal_block_forward(
    x: Any,
    params: dict,
    state: dict,
    *,
    mode: str,
    subsample: int | tuple[int, ...] | None = None,
    pool_order: str = "before_conv",
    scale: float | None = None,
    train: bool = True,
    memory: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
    return_attention: bool = False,
    window: int | tuple[int | None, ...] | None = None,
    check: bool = True,
) -> tuple[Any, dict, dict] | tuple[Any, dict, dict, Any]:
    """Non-local block forward, ``z = BN(W_z y) + x`` (Wang et al., CVPR 2018, Eq. 6).

    Parameters
    ----------
    x : ndarray, shape (N, C, L), (N, C, H, W) or (N, C, T, H, W)
    params, state : dict
        From :func:`init_nonlocal_params` (same mode).  ``state`` is not modified.
    mode : {"gaussian", "embedded_gaussian", "dot_product", "concatenation"}
    subsample : None, int or tuple of int
        Max-pool kernel (and stride) for the key/value branches, e.g. ``(1, 2, 2)``.
    pool_order : {"before_conv", "after_conv"}
        Official code (default) pools x before phi/g; the PyTorch ports pool after.
    scale : float, optional
        Gaussian modes: logits ``scale * theta_i . phi_j``; the official code uses
        ``inner_channels ** -0.5``.  None (default) means no scaling.
    train : bool
        BatchNorm with batch statistics (True) or running statistics (False).
    memory : {"auto", "dense", "chunked", "offsets"}, chunk_size : int
        How the (N, P, P') affinity is handled, see :mod:`nlref.nn.nl.op`.
        ``"offsets"`` visits the ``window`` offset by offset, as fast non-local
        means does (:mod:`nlref.nn.nl.offsets`): memory O(P (2 k + 1)^d) instead
        of O(P P'), for the Gaussian modes without subsampling.
    bn_momentum, bn_eps : float
        Passed to :func:`nlref.nn.batch_norm_forward`.
    return_attention : bool
        Also return the (N, P, P') normalised affinity ``f / C`` (built densely).
    window : None, int or tuple of (int or None)
        None (default): every query sees every key -- the non-local block.  An
        int k or a per-axis tuple restricts the keys of query i to a local window,
        ``|t_j - t_i| <= k_t``, ``|y_j - y_i| <= k_y``, ``|x_j - x_i| <= k_x``
        (None on an axis: unrestricted there, so ``(1, None, None)`` is "+-1
        frame, whole frame"); with subsampling a key counts as inside when one of
        the input positions pooled into it is (:func:`nlref.nn.local_window_mask`).
        The Gaussians' softmax runs over the window; for the dot product and
        concatenation ``C(x)`` is the number of keys in the window (the paper's
        ``C = N'`` restricted to it).  Costs a boolean (P, P') mask; with
        ``mode="dot_product"`` it needs ``memory="dense"`` or ``"auto"``.
    check : bool
        Validate the arguments (default).  False skips the checks, for callers
        that validated once already (the video models, at build time).

    Returns
    -------
    z : ndarray, like x
    cache : dict
    new_state : dict
        Updated BatchNorm running statistics (empty without BN).
    attention : ndarray, shape (N, P, P')
        Only with ``return_attention=True``; key positions are those of the
        subsampled map, in C order.

    Raises
    ------
    ValueError, TypeError
        Wrong ndim, channels not matching the params, subsample kernel larger
        than the map, unknown mode or pool order, bad window (or one that leaves
        a query without keys), mixed NumPy/CuPy arrays.
    """
    if check:
        kernel = check_block_options(x, mode, subsample, pool_order, scale, memory, chunk_size, window)
        bn = check_block_params(x, params, state, mode)
    else:
        kernel = None if subsample is None else as_tuple(subsample, x.ndim - 2, "subsample")
        bn = "bn.gamma" in params
    spatial = tuple(x.shape[2:])
    layers = {}  # sub-layer caches, in forward order
    theta, phi, g = _embeddings(x, params, mode, kernel, pool_order, layers)
    key_spatial = tuple(g.shape[2:])
    if memory == "offsets":  # the window by offsets: no mask, no (N, P, P') affinity
        y, op_cache = windowed_attention_forward(theta, phi, g, window=window, scale=scale, check=False)
        op = (y, op_cache, None)
    else:
        options = (window, scale, memory, chunk_size, return_attention)
        op = _dense_or_chunked(x, theta, phi, g, params, mode, kernel, *options)
        op = (_channels_first(op[0], spatial), *op[1:])
    y = op[0]  # (N, C_i, *S)
    wy = _lin(layers, params, "w_z", y)
    new_state = {}
    if bn:
        wy, layers["bn"], bn_state = batch_norm_forward(
            wy,
            scope(params, "bn"),
            scope(state, "bn"),
            train=train,
            momentum=bn_momentum,
            eps=bn_eps,
            check=False,
        )
        new_state = unscope(bn_state, "bn")
    z = wy + x
    cache = dict(
        layers=layers,
        op=op[1],
        mode=mode,
        pool_order=pool_order,
        kernel=kernel,
        bn=bn,
        spatial=spatial,
        key_spatial=key_spatial,
        memory=memory,
    )
    if return_attention:
        return z, cache, new_state, op[2]
    return z, cache, new_state


def nonlocal_block_backward(dz: Any, cache: dict) -> tuple[Any, dict]:
    """Backward of :func:`nonlocal_block_forward`: ``(dx, grads)``, grads keyed like params.

    The residual sends ``dz`` straight to ``dx``; the rest flows back through
    BN, W_z, the non-local operation, the (optional) max-pools and theta/phi/g.
    x reaches the output through theta (query), phi and g (key, value) and the
    shortcut, so ``dx`` is the sum of four paths.
    """
    layers, mode = cache["layers"], cache["mode"]
    grads = {}

    def back(name, d, backward=linear_backward):
        dx, g = backward(d, layers[name])
        grads.update(unscope(g, name))
        return dx

    dx = dz.copy()  # shortcut
    dwy = back("bn", dz, batch_norm_backward) if cache["bn"] else dz
    dy = back("w_z", dwy)
    if cache["memory"] == "offsets":
        dtheta, dphi, dg = windowed_attention_backward(dy, cache["op"])
    else:
        (dq, dk, dv), op_grads = nonlocal_op_backward(_positions(dy), cache["op"])
        if "w_f" in op_grads:
            grads["concat.w"] = op_grads["w_f"]
        dtheta = _channels_first(dq, cache["spatial"])
        dphi, dg = (_channels_first(a, cache["key_spatial"]) for a in (dk, dv))
    if cache["kernel"] and cache["pool_order"] == "after_conv":
        dphi = back("pool_phi", dphi, max_pool_backward)
        dg = back("pool_g", dg, max_pool_backward)
    dx_kv = back("g", dg) + (dphi if mode == "gaussian" else back("phi", dphi))
    if cache["kernel"] and cache["pool_order"] == "before_conv":
        dx_kv = back("pool_x", dx_kv, max_pool_backward)
    dx += dx_kv
    dx += dtheta if mode == "gaussian" else back("theta", dtheta)
    return dx, grads
