"""The pairwise terms shared by the dense and the chunked non-local operation.

Both :mod:`nlref.nn.nl.op` (the paper's dense form) and
:mod:`nlref.nn.nl.chunked` (the memory-saving forms) build the same
two kinds of pairwise term, on the whole (Nq, Nk) grid or on one tile of it:

* Gaussians: the logits ``s_ij = scale * query_i . key_j + key_bias_j`` (``-inf``
  where the mask forbids j), whose softmax over j is ``f(x_i, x_j) / C(x)``;
* concatenation: ``w_f^T [query_i, key_j] = a_i + b_j`` with ``a = w_theta^T query``
  and ``b = w_phi^T key`` (``w_f = [w_theta, w_phi]``), so the (2d, Nq, Nk)
  tensor of concatenated pairs is never needed.

Each term sits next to its backward (notebook 04 shows them).  They trust their inputs:
the public operation has validated them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["logits", "logits_backward", "concat_terms", "concat_terms_backward", "normaliser", "chunks"]


def logits(xp, query, key, scale, key_bias, mask) -> Any:
    """``s_ij = scale * query_i^T key_j + key_bias_j``, ``-inf`` where ``mask`` is False: (N, nq, nk)."""
    s = xp.matmul(query, key.transpose(0, 2, 1))
    if scale is not None:
        s *= scale
    if key_bias is not None:
        s += key_bias[:, None, :]
    if mask is not None:
        s = xp.where(mask[None], s, -xp.inf)
    return s


def logits_backward(xp, ds, query, key, scale) -> tuple:
    """Gradients of :func:`logits` given ``dL/ds``: ``(dquery, dkey, dkey_bias)``."""
    sc = 1.0 if scale is None else scale
    dq = xp.matmul(ds, key) * sc
    dk = xp.matmul(ds.transpose(0, 2, 1), query) * sc
    return dq, dk, ds.sum(axis=1)


def concat_terms(query, key, w_f) -> tuple:
    """``a_i = w_theta^T query_i`` (N, Nq) and ``b_j = w_phi^T key_j`` (N, Nk)."""
    d = query.shape[2]
    return query @ w_f[:d], key @ w_f[d:]


def concat_terms_backward(xp, da, db, query, key, w_f) -> tuple:
    """Gradients of :func:`concat_terms` given ``dL/da`` (N, Nq), ``dL/db`` (N, Nk): ``(dq, dk, dw_f)``."""
    d = query.shape[2]
    dq = da[:, :, None] * w_f[:d]
    dk = db[:, :, None] * w_f[d:]
    dw_theta = (da[:, :, None] * query).sum(axis=(0, 1))
    dw_phi = (db[:, :, None] * key).sum(axis=(0, 1))
    dw_f = xp.concatenate([dw_theta, dw_phi])
    return dq, dk, dw_f


def normaliser(xp, mask, nk, normalize, dtype) -> Any:
    """``C(x)`` of the dot product and concatenation: Nk, the window size per query, or 1.

    The paper's ``C(x) = N`` (the number of key positions) becomes, with a mask,
    the number of keys each query may see: an (Nq, 1) array.
    """
    if not normalize:
        return 1
    if mask is None:
        return nk
    return mask.sum(axis=1, keepdims=True).astype(dtype)


def chunks(n, size) -> list[slice]:
    """Consecutive slices of ``size`` positions covering range(n)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
