"""The generic non-local operation, on flattened positions, with its backward.

Wang, Girshick, Gupta, He, *Non-local Neural Networks*, CVPR 2018, Eq. (1):

    y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)

This module is the part of the story that both halves of nlref share: the
non-local block (:mod:`nlref.nn.nonlocal_block`) calls it with
``query = theta(x)``, ``key = phi(x)``, ``value = g(x)``, and the bridge to
classical non-local means (:mod:`nlref.nn.bridge`) calls it with patch vectors.
Positions are already flattened: a feature map (N, C, T, H, W) becomes
(N, THW, C).

Shapes (N = batch, Nq = query positions i, Nk = key positions j):

    query : (N, Nq, d)     theta(x_i)   (x_i itself for the plain Gaussian)
    key   : (N, Nk, d)     phi(x_j)
    value : (N, Nk, c)     g(x_j)
    y     : (N, Nq, c)

The four pairwise functions of Section 3.2 (``s_ij = scale * query_i . key_j``):

==================  ===============================  ==================
``f``               f(x_i, x_j)                      C(x)
==================  ===============================  ==================
gaussian            exp(s_ij + key_bias_j)           sum_j f  (softmax)
embedded_gaussian   exp(s_ij + key_bias_j)           sum_j f  (softmax)
dot_product         query_i . key_j                  Nk
concatenation       ReLU(w_f^T [query_i, key_j])     Nk
==================  ===============================  ==================

"gaussian" and "embedded_gaussian" are the same operation here; they differ in
what the caller passes (x itself, or the embeddings theta and phi).

Three ways to compute it (``memory=``):

* ``"dense"`` builds the (N, Nq, Nk) affinity: the plain form of the paper.
* ``"chunked"`` never stores it: it visits tiles of ``chunk_size`` queries x
  ``chunk_size`` keys.  Gaussians: for each block of queries, an online softmax
  over the key chunks (running max and running sums; Rabe & Staats 2021, Dao et
  al. FlashAttention 2022) in the forward; in the backward the attention of each
  tile is recomputed from the stored row log-sum-exp, with ``D_i = dy_i . y_i``.
  Concatenation: ``ReLU(a_i + b_j)`` with ``a = w_theta^T theta``,
  ``b = w_phi^T phi``, tile by tile.  Dot product: the factorisation
  ``y = query (key^T value) / Nk``, which costs O((Nq + Nk) d c) and has no
  Nq x Nk matrix at all.  Peak memory is O(N (Nq + Nk) (d + c)) for the inputs
  and outputs plus a few (N, chunk_size, chunk_size) tiles, instead of a few
  (N, Nq, Nk) affinities.
* ``"auto"``: the dot product always uses its factorisation (cheaper in time and
  memory); the other functions use the dense form while the affinity has at most
  :data:`AUTO_DENSE_MAX_ELEMENTS` entries (N * Nq * Nk) and chunks above that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_array
from ..backend import get_namespace

__all__ = [
    "nonlocal_op_forward",
    "nonlocal_op_backward",
    "attention_weights",
    "PAIRWISE_FUNCTIONS",
    "AUTO_DENSE_MAX_ELEMENTS",
    "DEFAULT_CHUNK_SIZE",
]

PAIRWISE_FUNCTIONS = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
_EXP = ("gaussian", "embedded_gaussian")
#: ``memory="auto"`` switches to the chunked form above this many affinity entries
#: (N * Nq * Nk): 2**24 entries are 64 MiB in float32, 128 MiB in float64.
AUTO_DENSE_MAX_ELEMENTS = 2**24
#: Side of the (queries x keys) tiles of the chunked form: each working buffer
#: holds N * chunk_size**2 entries (4 MiB per batch element in float32).
DEFAULT_CHUNK_SIZE = 1024


# --------------------------------------------------------------------------- validation
def _validate(query, key, value, f, normalize, scale, key_bias, mask, w_f, memory, chunk_size):
    for a, name in ((query, "query"), (key, "key"), (value, "value")):
        check_array(a, name)
        if a.ndim != 3:
            raise ValueError(f"{name} must be 3-D (N, positions, channels), received shape {tuple(a.shape)}")
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating array, received dtype {a.dtype}")
    xp = get_namespace(query, key, value, key_bias, mask, w_f)  # TypeError on mixed backends
    if f not in PAIRWISE_FUNCTIONS:
        raise ValueError(f"f must be one of {PAIRWISE_FUNCTIONS}, received {f!r}")
    if memory not in ("auto", "dense", "chunked"):
        raise ValueError(f"memory must be 'auto', 'dense' or 'chunked', received {memory!r}")
    n, nq, d = query.shape
    if key.shape[0] != n or value.shape[0] != n:
        raise ValueError(
            f"query, key and value must have the same batch size, received {query.shape[0]}, {key.shape[0]}, {value.shape[0]}"
        )
    if key.shape[2] != d:
        raise ValueError(f"key must have {d} channels like query, received shape {tuple(key.shape)}")
    if value.shape[1] != key.shape[1]:
        raise ValueError(
            f"value must have {key.shape[1]} positions like key, received shape {tuple(value.shape)}"
        )
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"query, key, value must share one dtype, received {query.dtype}, {key.dtype}, {value.dtype}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, received {normalize!r}")
    if f in _EXP and not normalize:
        raise ValueError("normalize=False is not allowed for the Gaussian functions: the raw sum of exp overflows")
    if scale is not None:
        if f not in _EXP:
            raise ValueError(f"scale applies to the Gaussian functions only, received scale={scale!r} with f={f!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale):
            raise TypeError(f"scale must be None or a finite real number, received {scale!r}")
    nk = key.shape[1]
    if key_bias is not None:
        if f not in _EXP:
            raise ValueError(f"key_bias applies to the Gaussian functions only, received f={f!r}")
        check_array(key_bias, "key_bias")
        if tuple(key_bias.shape) != (n, nk) or key_bias.dtype != query.dtype:
            raise ValueError(
                f"key_bias must have shape {(n, nk)} and dtype {query.dtype}, "
                f"received shape {tuple(key_bias.shape)} dtype {key_bias.dtype}"
            )
    if mask is not None:
        if f not in _EXP:
            raise ValueError(f"mask applies to the Gaussian functions only, received f={f!r}")
        check_array(mask, "mask")
        if tuple(mask.shape) != (nq, nk) or mask.dtype != bool:
            raise ValueError(
                f"mask must be a boolean array of shape {(nq, nk)}, received shape {tuple(mask.shape)} dtype {mask.dtype}"
            )
        if not bool(mask.any(axis=1).all()):
            raise ValueError("mask must allow at least one key position for every query position")
    if f == "concatenation":
        if w_f is None:
            raise ValueError("f='concatenation' needs w_f, the (2 * d,) weight of ReLU(w_f^T [query_i, key_j])")
        check_array(w_f, "w_f")
        if tuple(w_f.shape) != (2 * d,) or w_f.dtype != query.dtype:
            raise ValueError(
                f"w_f must have shape {(2 * d,)} and dtype {query.dtype}, received shape {tuple(w_f.shape)} dtype {w_f.dtype}"
            )
    elif w_f is not None:
        raise ValueError(f"w_f is used by f='concatenation' only, received it with f={f!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, received {chunk_size!r}")
    return xp


def _resolve_memory(memory, f, n, nq, nk):
    if memory != "auto":
        return memory
    if f == "dot_product" or n * nq * nk > AUTO_DENSE_MAX_ELEMENTS:
        return "chunked"
    return "dense"


# --------------------------------------------------------------------------- pairwise terms
def _logits(xp, query, key, scale, key_bias, mask):
    """s_ij = scale * query_i . key_j + key_bias_j, -inf where the mask forbids j: (N, Nq, nk)."""
    s = xp.matmul(query, key.transpose(0, 2, 1))
    if scale is not None:
        s *= scale
    if key_bias is not None:
        s += key_bias[:, None, :]
    if mask is not None:
        s = xp.where(mask[None], s, -xp.inf)
    return s


def _concat_terms(query, key, w_f):
    """a_i = w_theta^T query_i (N, Nq) and b_j = w_phi^T key_j (N, Nk): w_f = [w_theta, w_phi]."""
    d = query.shape[2]
    return query @ w_f[:d], key @ w_f[d:]


def attention_weights(query, key, *, f, normalize=True, scale=None, key_bias=None, mask=None, w_f=None, rows=None):
    """Normalised affinity ``f(x_i, x_j) / C(x)`` for the query rows ``rows``.

    Parameters
    ----------
    query, key, scale, key_bias, mask, w_f, f, normalize
        As in :func:`nonlocal_op_forward`.
    rows : sequence of int, optional
        Query positions to return (default: all).  One row costs O(Nk) memory,
        so a single position of a large map can be shown (:func:`nlref.viz.attention_map`).

    Returns
    -------
    ndarray, shape (N, len(rows), Nk)
        Weights of the sum ``y_i = sum_j A_ij g(x_j)``; rows of the Gaussians sum to 1.
    """
    xp = _validate(query, key, key, f, normalize, scale, key_bias, mask, w_f, "dense", 1)
    if rows is not None:
        rows = [int(r) for r in rows]
        for r in rows:
            if not 0 <= r < query.shape[1]:
                raise ValueError(f"rows must lie in [0, {query.shape[1]}), received {r}")
        query = query[:, rows]
        mask = None if mask is None else mask[rows]
    return _dense_weights(xp, query, key, f, normalize, scale, key_bias, mask, w_f)


def _dense_weights(xp, query, key, f, normalize, scale, key_bias, mask, w_f):
    nk = key.shape[1]
    if f in _EXP:
        s = _logits(xp, query, key, scale, key_bias, mask)
        s -= s.max(axis=2, keepdims=True)  # max-subtracted: exp never overflows
        p = xp.exp(s, out=s)
        p /= p.sum(axis=2, keepdims=True)
        return p
    if f == "dot_product":
        a = xp.matmul(query, key.transpose(0, 2, 1))
    else:
        ai, bj = _concat_terms(query, key, w_f)
        a = xp.maximum(ai[:, :, None] + bj[:, None, :], 0)
    if normalize:
        a /= nk
    return a


# --------------------------------------------------------------------------- forward
def nonlocal_op_forward(
    query,
    key,
    value,
    *,
    f,
    normalize=True,
    scale=None,
    key_bias=None,
    mask=None,
    w_f=None,
    memory="auto",
    chunk_size=DEFAULT_CHUNK_SIZE,
    return_attention=False,
):
    """Generic non-local operation ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)`` (Wang et al., CVPR 2018, Eq. 1).

    Parameters
    ----------
    query : ndarray, shape (N, Nq, d)
        ``theta(x_i)`` for every query position i (``x_i`` for ``f="gaussian"``).
    key : ndarray, shape (N, Nk, d)
        ``phi(x_j)`` for every key position j (possibly subsampled: Nk = N').
    value : ndarray, shape (N, Nk, c)
        ``g(x_j)``.
    f : {"gaussian", "embedded_gaussian", "dot_product", "concatenation"}
        Pairwise function (see the module docstring for the table).
    normalize : bool
        True: divide by the paper's ``C(x)`` (``sum_j f`` for the Gaussians, Nk
        for the others).  False: ``C(x) = 1``; allowed for the dot product and
        concatenation only.
    scale : float, optional
        Gaussians only: logits ``scale * query_i . key_j`` (the official code uses
        ``d ** -0.5``).  None means 1.
    key_bias : ndarray, shape (N, Nk), optional
        Gaussians only: added to the logits of key j (the non-local-means bridge
        uses ``-||x_j||^2 / h^2``).
    mask : bool ndarray, shape (Nq, Nk), optional
        Gaussians only: ``f(x_i, x_j) = 0`` where False (e.g. outside a search
        window).  Every row must allow at least one key.
    w_f : ndarray, shape (2 d,), optional
        Concatenation only (required there): ``f = ReLU(w_f^T [query_i, key_j])``.
    memory : {"auto", "dense", "chunked"}
        Dense affinity, or the tiled form whose memory grows like Nq + Nk (module docstring).
    chunk_size : int
        Side of the (queries x keys) tiles of the chunked form.
    return_attention : bool
        Also return the (N, Nq, Nk) normalised affinity ``f / C`` (always built
        densely, whatever ``memory`` says: it *is* the quadratic object).

    Returns
    -------
    y : ndarray, shape (N, Nq, c)
    cache : dict
        What :func:`nonlocal_op_backward` needs.
    attention : ndarray, shape (N, Nq, Nk)
        Only when ``return_attention`` is True.

    Raises
    ------
    ValueError, TypeError
        For bad shapes, dtypes, options or mixed NumPy/CuPy arrays, before any work.

    References
    ----------
    X. Wang, R. Girshick, A. Gupta, K. He, "Non-local Neural Networks", CVPR 2018, Sec. 3.
    T. Dao et al., "FlashAttention", NeurIPS 2022 (online softmax, recomputation in backward).
    """
    xp = _validate(query, key, value, f, normalize, scale, key_bias, mask, w_f, memory, chunk_size)
    n, nq, _ = query.shape
    nk = key.shape[1]
    memory = _resolve_memory(memory, f, n, nq, nk)
    scale = None if scale is None else float(scale)  # a NumPy float64 scalar would promote float32 arrays
    cache = dict(
        query=query, key=key, value=value, f=f, normalize=normalize, scale=scale, key_bias=key_bias,
        mask=mask, w_f=w_f, memory=memory, chunk_size=int(chunk_size),
    )
    if memory == "dense":
        a = _dense_weights(xp, query, key, f, normalize, scale, key_bias, mask, w_f)  # (N, Nq, Nk)
        y = xp.matmul(a, value)
        cache["attention"] = a
    elif f in _EXP:
        y, lse = _exp_chunked_forward(xp, query, key, value, scale, key_bias, mask, int(chunk_size))
        cache.update(y=y, lse=lse)
    elif f == "dot_product":
        kv = xp.matmul(key.transpose(0, 2, 1), value)  # (N, d, c): no Nq x Nk matrix
        y = xp.matmul(query, kv)
        if normalize:
            y /= nk
        cache["kv"] = kv
    else:
        y = _concat_chunked_forward(xp, query, key, value, w_f, normalize, int(chunk_size))
    if return_attention:
        att = cache.get("attention")
        if att is None:
            att = _dense_weights(xp, query, key, f, normalize, scale, key_bias, mask, w_f)
        return y, cache, att
    return y, cache


def _blocks(n, size):
    """Consecutive slices of ``size`` positions covering range(n)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _exp_chunked_forward(xp, query, key, value, scale, key_bias, mask, chunk):
    """Online softmax: per query block, running max m_i, sum l_i and output acc_i over key chunks."""
    n, nq, _ = query.shape
    y = xp.empty((n, nq, value.shape[2]), dtype=query.dtype)
    lse = xp.empty((n, nq), dtype=query.dtype)
    for qs in _blocks(nq, chunk):
        m = xp.full((n, qs.stop - qs.start), -xp.inf, dtype=query.dtype)
        l = xp.zeros_like(m)
        acc = xp.zeros((n, qs.stop - qs.start, value.shape[2]), dtype=query.dtype)
        for ks in _blocks(key.shape[1], chunk):
            s = _logits(xp, query[:, qs], key[:, ks], scale, None if key_bias is None else key_bias[:, ks],
                        None if mask is None else mask[qs, ks])
            m_new = xp.maximum(m, s.max(axis=2))
            # a row whose keys so far are all masked has m_new = -inf; shift by 0 there
            shift = xp.where(xp.isfinite(m_new), m_new, 0)
            alpha = xp.exp(m - shift)  # rescales what was summed under the old max
            s -= shift[:, :, None]
            p = xp.exp(s, out=s)
            l = alpha * l + p.sum(axis=2)
            acc = alpha[:, :, None] * acc + xp.matmul(p, value[:, ks])
            m = m_new
        y[:, qs] = acc / l[:, :, None]
        lse[:, qs] = m + xp.log(l)  # row log-sum-exp: softmax_ij = exp(s_ij - lse_i)
    return y, lse


def _concat_chunked_forward(xp, query, key, value, w_f, normalize, chunk):
    a, b = _concat_terms(query, key, w_f)
    nk = key.shape[1]
    y = xp.zeros((query.shape[0], query.shape[1], value.shape[2]), dtype=query.dtype)
    for qs in _blocks(query.shape[1], chunk):
        for ks in _blocks(nk, chunk):
            r = xp.maximum(a[:, qs, None] + b[:, None, ks], 0)  # (N, chunk, chunk)
            y[:, qs] += xp.matmul(r, value[:, ks])
    if normalize:
        y /= nk
    return y


# --------------------------------------------------------------------------- backward
def nonlocal_op_backward(dy, cache):
    """Backward of :func:`nonlocal_op_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, Nq, c)
        Upstream gradient dL/dy.
    cache : dict
        From the forward.

    Returns
    -------
    (dquery, dkey, dvalue) : tuple of ndarray
        Same shapes as query, key, value.
    grads : dict
        ``"key_bias"`` (N, Nk) when a key bias was given, ``"w_f"`` (2 d,) for
        concatenation; empty otherwise.

    Notes
    -----
    Softmax backward: with ``P = softmax(S)``, ``dS = P * (dP - D)`` where
    ``dP = dy value^T`` and ``D_i = sum_j P_ij dP_ij = dy_i . y_i``; the chunked
    form recomputes ``P`` tile by tile from the stored row log-sum-exp.
    """
    xp = get_namespace(dy, cache["query"])
    q, k, v = cache["query"], cache["key"], cache["value"]
    f, scale, nk = cache["f"], cache["scale"], k.shape[1]
    if tuple(dy.shape) != (q.shape[0], q.shape[1], v.shape[2]):
        raise ValueError(f"dy must have shape {(q.shape[0], q.shape[1], v.shape[2])}, received {tuple(dy.shape)}")
    grads = {}
    if f in _EXP:
        if cache["memory"] == "dense":
            p = cache["attention"]
            dv = xp.matmul(p.transpose(0, 2, 1), dy)
            dp = xp.matmul(dy, v.transpose(0, 2, 1))
            ds = p * (dp - (p * dp).sum(axis=2, keepdims=True))  # softmax backward, (N, Nq, Nk)
            dq, dk, dbias = _logit_backward(xp, ds, q, k, scale)
        else:
            dq, dk, dv, dbias = _exp_chunked_backward(xp, dy, cache)
        if cache["key_bias"] is not None:
            grads["key_bias"] = dbias
        return (dq, dk, dv), grads
    c_norm = nk if cache["normalize"] else 1
    if f == "dot_product":
        if cache["memory"] == "dense":
            a = cache["attention"]
            dv = xp.matmul(a.transpose(0, 2, 1), dy)
            da = xp.matmul(dy, v.transpose(0, 2, 1)) / c_norm
            dq = xp.matmul(da, k)
            dk = xp.matmul(da.transpose(0, 2, 1), q)
        else:
            dkv = xp.matmul(q.transpose(0, 2, 1), dy) / c_norm  # (N, d, c)
            dq = xp.matmul(dy, cache["kv"].transpose(0, 2, 1)) / c_norm
            dk = xp.matmul(v, dkv.transpose(0, 2, 1))
            dv = xp.matmul(k, dkv)
        return (dq, dk, dv), grads
    # concatenation: r_ij = ReLU(a_i + b_j), y_i = sum_j r_ij v_j / C
    a, b = _concat_terms(q, k, cache["w_f"])
    if cache["memory"] == "dense":
        att = cache["attention"]  # r / C
        dv = xp.matmul(att.transpose(0, 2, 1), dy)
        ds = xp.matmul(dy, v.transpose(0, 2, 1)) / c_norm * (att > 0)
        da, db = ds.sum(axis=2), ds.sum(axis=1)
    else:
        chunk = cache["chunk_size"]
        dv, da, db = xp.zeros_like(v), xp.zeros_like(a), xp.zeros_like(b)
        for qs in _blocks(q.shape[1], chunk):
            for ks in _blocks(nk, chunk):
                r = xp.maximum(a[:, qs, None] + b[:, None, ks], 0)
                dv[:, ks] += xp.matmul(r.transpose(0, 2, 1), dy[:, qs]) / c_norm
                ds = xp.matmul(dy[:, qs], v[:, ks].transpose(0, 2, 1)) / c_norm * (r > 0)
                da[:, qs] += ds.sum(axis=2)
                db[:, ks] += ds.sum(axis=1)
    d = q.shape[2]
    w_f = cache["w_f"]
    dq = da[:, :, None] * w_f[:d]
    dk = db[:, :, None] * w_f[d:]
    grads["w_f"] = xp.concatenate([
        (da[:, :, None] * q).sum(axis=(0, 1)),
        (db[:, :, None] * k).sum(axis=(0, 1)),
    ])
    return (dq, dk, dv), grads


def _logit_backward(xp, ds, q, k, scale):
    """Gradients of s_ij = scale * q_i . k_j + bias_j given dL/ds."""
    sc = 1.0 if scale is None else scale
    dq = xp.matmul(ds, k) * sc
    dk = xp.matmul(ds.transpose(0, 2, 1), q) * sc
    return dq, dk, ds.sum(axis=1)


def _exp_chunked_backward(xp, dy, cache):
    q, k, v = cache["query"], cache["key"], cache["value"]
    scale, key_bias, mask, chunk = cache["scale"], cache["key_bias"], cache["mask"], cache["chunk_size"]
    lse, y = cache["lse"], cache["y"]
    big_d = (dy * y).sum(axis=2)  # D_i = dy_i . y_i = sum_j P_ij dP_ij, (N, Nq)
    dq, dk, dv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    dbias = xp.zeros((k.shape[0], k.shape[1]), dtype=q.dtype)
    for qs in _blocks(q.shape[1], chunk):
        for ks in _blocks(k.shape[1], chunk):
            s = _logits(xp, q[:, qs], k[:, ks], scale, None if key_bias is None else key_bias[:, ks],
                        None if mask is None else mask[qs, ks])
            s -= lse[:, qs, None]
            p = xp.exp(s, out=s)  # recomputed attention of this tile
            dv[:, ks] += xp.matmul(p.transpose(0, 2, 1), dy[:, qs])
            dp = xp.matmul(dy[:, qs], v[:, ks].transpose(0, 2, 1))
            dp -= big_d[:, qs, None]
            ds = xp.multiply(dp, p, out=dp)  # dS = P * (dP - D), in place to keep one buffer less
            dq_t, dk_t, dbias_t = _logit_backward(xp, ds, q[:, qs], k[:, ks], scale)
            dq[:, qs] += dq_t
            dk[:, ks] += dk_t
            dbias[:, ks] += dbias_t
    return dq, dk, dv, dbias
