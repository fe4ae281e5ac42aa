"""Memory-saving forms of the non-local operation: never hold the (N, Nq, Nk) affinity.

    y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)         (Wang et al., CVPR 2018, Eq. 1)

:mod:`nlref.nn.nl.op` is the paper's dense form, the reference; this file
holds what ``memory="chunked"`` runs instead, each form tested against the dense
one (as CS231n's ``fast_layers.py`` sits beside ``layers.py``):

* **Gaussians**: an online softmax.  For each block of ``chunk_size`` queries,
  visit the keys in chunks and keep a running max m_i, a running sum l_i and a
  running output o_i (Milakov & Gimelshein 2018; Rabe & Staats 2021; Dao et al.,
  FlashAttention, NeurIPS 2022).  The backward recomputes each tile of the
  attention from the stored row log-sum-exp ``lse_i = m_i + log l_i`` and uses
  ``D_i = dy_i . y_i``, so it never needs a whole row of A.
* **dot product**: ``y = query (key^T value) / Nk``, by associativity: O((Nq + Nk) d c)
  time and no Nq x Nk matrix at all.  It cannot apply a mask.
* **concatenation**: ``ReLU(a_i + b_j)`` with ``a = w_theta^T query``,
  ``b = w_phi^T key``, tile by tile (and never the (2d, Nq, Nk) tensor of pairs).

Memory: O(N (Nq + Nk)(d + c)) for inputs, outputs and gradients plus a few
(N, chunk_size, chunk_size) tiles (and the boolean (Nq, Nk) mask if one is given).
Time stays O(N Nq Nk (d + c)) except for the dot product.  Every function takes
the ``o`` dict of validated options that :func:`nlref.nn.nonlocal_op_forward` builds.
"""

from __future__ import annotations

from typing import Any

from .pairwise import chunks, concat_terms, concat_terms_backward, logits, logits_backward, normaliser

__all__ = [
    "softmax_chunked_forward",
    "softmax_chunked_backward",
    "dot_factorised_forward",
    "dot_factorised_backward",
    "concat_chunked_forward",
    "concat_chunked_backward",
    "CHUNKED_FORMS",
]


def _tile_logits(xp, q, k, o, qs, ks):
    """Logits of the (queries qs) x (keys ks) tile."""
    bias, mask = o["key_bias"], o["mask"]
    return logits(
        xp,
        q[:, qs],
        k[:, ks],
        o["scale"],
        None if bias is None else bias[:, ks],
        None if mask is None else mask[qs, ks],
    )


# --------------------------------------------------------------------------- Gaussians: online softmax
def softmax_chunked_forward(xp, q, k, v, o) -> tuple[Any, dict]:
    """Per query block: running max m_i, sum l_i and output acc_i over key chunks; returns y and lse."""
    n, nq, _ = q.shape
    y = xp.empty((n, nq, v.shape[2]), dtype=q.dtype)
    lse = xp.empty((n, nq), dtype=q.dtype)
    for qs in chunks(nq, o["chunk_size"]):
        m = xp.full((n, qs.stop - qs.start), -xp.inf, dtype=q.dtype)
        ell = xp.zeros_like(m)  # running sum l_i
        acc = xp.zeros((n, qs.stop - qs.start, v.shape[2]), dtype=q.dtype)
        for ks in chunks(k.shape[1], o["chunk_size"]):
            s = _tile_logits(xp, q, k, o, qs, ks)
            m_new = xp.maximum(m, s.max(axis=2))
            # a row whose keys so far are all masked has m_new = -inf; shift by 0 there
            shift = xp.where(xp.isfinite(m_new), m_new, 0)
            alpha = xp.exp(m - shift)  # rescales what was summed under the old max
            s -= shift[:, :, None]
            p = xp.exp(s, out=s)
            ell = alpha * ell + p.sum(axis=2)
            acc = alpha[:, :, None] * acc + xp.matmul(p, v[:, ks])
            m = m_new
        y[:, qs] = acc / ell[:, :, None]
        lse[:, qs] = m + xp.log(ell)  # row log-sum-exp: A_ij = exp(s_ij - lse_i)
    return y, {"y": y, "lse": lse}


def softmax_chunked_backward(xp, dy, cache) -> tuple[tuple, dict]:
    """``dS = A * (dA - D)`` per tile, with A recomputed from lse and ``D_i = dy_i^T y_i``."""
    q, k, v, chunk = cache["query"], cache["key"], cache["value"], cache["chunk_size"]
    big_d = (dy * cache["y"]).sum(axis=2)  # D_i = sum_j A_ij dA_ij, (N, Nq)
    dq, dk, dv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    dbias = xp.zeros((k.shape[0], k.shape[1]), dtype=q.dtype)
    for qs in chunks(q.shape[1], chunk):
        for ks in chunks(k.shape[1], chunk):
            s = _tile_logits(xp, q, k, cache, qs, ks)
            s -= cache["lse"][:, qs, None]
            p = xp.exp(s, out=s)  # recomputed attention of this tile
            dv[:, ks] += xp.matmul(p.transpose(0, 2, 1), dy[:, qs])
            dp = xp.matmul(dy[:, qs], v[:, ks].transpose(0, 2, 1))
            dp -= big_d[:, qs, None]
            ds = xp.multiply(dp, p, out=dp)  # in place: one tile buffer less
            dq_t, dk_t, dbias_t = logits_backward(xp, ds, q[:, qs], k[:, ks], cache["scale"])
            dq[:, qs] += dq_t
            dk[:, ks] += dk_t
            dbias[:, ks] += dbias_t
    return (dq, dk, dv), ({} if cache["key_bias"] is None else {"key_bias": dbias})


# --------------------------------------------------------------------------- dot product: factorised
def dot_factorised_forward(xp, q, k, v, o) -> tuple[Any, dict]:
    """``y = query (key^T value) / C``: a (N, d, c) matrix instead of (N, Nq, Nk)."""
    kv = xp.matmul(k.transpose(0, 2, 1), v)
    y = xp.matmul(q, kv)
    if o["normalize"]:
        y /= k.shape[1]
    return y, {"kv": kv}


def dot_factorised_backward(xp, dy, cache) -> tuple[tuple, dict]:
    q, k, v = cache["query"], cache["key"], cache["value"]
    c_norm = k.shape[1] if cache["normalize"] else 1
    dkv = xp.matmul(q.transpose(0, 2, 1), dy) / c_norm  # (N, d, c)
    dq = xp.matmul(dy, cache["kv"].transpose(0, 2, 1)) / c_norm
    return (dq, xp.matmul(v, dkv.transpose(0, 2, 1)), xp.matmul(k, dkv)), {}


# ------------------------------------------------------------ concatenation: ReLU(a_i + b_j) tiles
def _concat_tile(xp, a, b, o, qs, ks):
    """``r_ij = ReLU(a_i + b_j)`` on one tile, 0 outside the mask: (N, |qs|, |ks|)."""
    r = xp.maximum(a[:, qs, None] + b[:, None, ks], 0)
    return r if o["mask"] is None else xp.where(o["mask"][None, qs, ks], r, 0)


def concat_chunked_forward(xp, q, k, v, o) -> tuple[Any, dict]:
    a, b = concat_terms(q, k, o["w_f"])
    y = xp.zeros((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
    for qs in chunks(q.shape[1], o["chunk_size"]):
        for ks in chunks(k.shape[1], o["chunk_size"]):
            y[:, qs] += xp.matmul(_concat_tile(xp, a, b, o, qs, ks), v[:, ks])
    y /= normaliser(xp, o["mask"], k.shape[1], o["normalize"], q.dtype)
    return y, {}


def concat_chunked_backward(xp, dy, cache) -> tuple[tuple, dict]:
    """``dv = R^T dy / C``; ``dS = dy v^T / C * [R > 0]``; ``da_i = sum_j dS_ij``, ``db_j = sum_i dS_ij``."""
    q, k, v, chunk = cache["query"], cache["key"], cache["value"], cache["chunk_size"]
    a, b = concat_terms(q, k, cache["w_f"])
    dyc = dy / normaliser(xp, cache["mask"], k.shape[1], cache["normalize"], q.dtype)  # dL/d(R V) row by row
    dv, da, db = xp.zeros_like(v), xp.zeros_like(a), xp.zeros_like(b)
    for qs in chunks(q.shape[1], chunk):
        for ks in chunks(k.shape[1], chunk):
            r = _concat_tile(xp, a, b, cache, qs, ks)
            dv[:, ks] += xp.matmul(r.transpose(0, 2, 1), dyc[:, qs])
            ds = xp.matmul(dyc[:, qs], v[:, ks].transpose(0, 2, 1)) * (r > 0)
            da[:, qs] += ds.sum(axis=2)
            db[:, ks] += ds.sum(axis=1)
    dq, dk, dw_f = concat_terms_backward(xp, da, db, q, k, cache["w_f"])
    return (dq, dk, dv), {"w_f": dw_f}


#: ``{f: (forward, backward)}`` of the chunked forms; forward(xp, q, k, v, o) -> (y, saved).
CHUNKED_FORMS = {
    "gaussian": (softmax_chunked_forward, softmax_chunked_backward),
    "embedded_gaussian": (softmax_chunked_forward, softmax_chunked_backward),
    "dot_product": (dot_factorised_forward, dot_factorised_backward),
    "concatenation": (concat_chunked_forward, concat_chunked_backward),
}
