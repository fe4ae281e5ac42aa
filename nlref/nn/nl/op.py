"""The generic non-local operation, on flattened positions, in the paper's dense form.

Wang, Girshick, Gupta, He, *Non-local Neural Networks*, CVPR 2018, Eq. (1):

    y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)

This module is the part of the story that both halves of nlref share: the
non-local block (:mod:`nlref.nn.nl.block`) calls it with
``query = theta(x)``, ``key = phi(x)``, ``value = g(x)``, and the bridge to
classical non-local means (:mod:`nlref.nn.nl.bridge`) calls it with patch vectors.
Positions are already flattened: a feature map (N, C, T, H, W) becomes (N, THW, C).

Shapes (N = batch, Nq = query positions i, Nk = key positions j): query = theta(x_i)
(N, Nq, d) (x_i itself for the plain Gaussian), key = phi(x_j) (N, Nk, d), value = g(x_j)
(N, Nk, c), y = A value (N, Nq, c), with A = f / C the (N, Nq, Nk) affinity: the
dense form's quadratic object.

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
what the caller passes (x itself, or the embeddings theta and phi).  A boolean
``mask`` (Nq, Nk) restricts j, e.g. to a local window (:func:`nlref.nn.local_window_mask`):
``f = 0`` outside it, and the dot product's and concatenation's ``C(x) = Nk``
becomes the number of keys that query i may see.

Below, each ``f`` is a pair ``affinity forward -> A`` / ``affinity backward dA -> dquery, dkey``,
and the generic op ``y = A value`` walks the ``{f: (forward, backward)}`` table.
``memory="chunked"`` uses the forms of :mod:`nlref.nn.nl.chunked`
instead, which never hold A; ``"auto"`` picks per call (see :func:`nonlocal_op_forward`).
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from ._checks import (
    AUTO_DENSE_MAX_ELEMENTS,
    DEFAULT_CHUNK_SIZE,
    NONLOCAL_MODES,
    validate_op_args,
)
from .chunked import CHUNKED_FORMS
from .pairwise import concat_terms, concat_terms_backward, logits, logits_backward, normaliser

__all__ = [
    "nonlocal_op_forward",
    "nonlocal_op_backward",
    "attention_weights",
    "softmax_affinity",
    "softmax_affinity_backward",
    "dot_affinity",
    "dot_affinity_backward",
    "concat_affinity",
    "concat_affinity_backward",
    "dense_forward",
    "dense_backward",
]


def resolve_memory(memory, f, n, nq, nk, mask):
    """``"auto"``: the dot product factorises (unless masked); the others chunk above the size limit."""
    if f == "dot_product" and mask is not None:
        return "dense"  # the factorisation cannot mask ("chunked" was refused by the validation)
    if memory != "auto":
        return memory
    if f == "dot_product":
        return "chunked"
    return "chunked" if n * nq * nk > AUTO_DENSE_MAX_ELEMENTS else "dense"


# --------------------------------------------------------------------------- the four affinities A = f / C
# Each pair: forward (xp, query, key, o) -> A (N, Nq, Nk),
#            backward (xp, dA, A, query, key, o) -> dquery, dkey, grads.
# ``o`` holds the options of nonlocal_op_forward (scale, key_bias, mask, w_f, normalize).
def softmax_affinity(xp, q, k, o) -> Any:
    """Gaussians: ``A = softmax_j(s_ij)``, max-subtracted so that exp never overflows."""
    s = logits(xp, q, k, o["scale"], o["key_bias"], o["mask"])
    s -= s.max(axis=2, keepdims=True)
    p = xp.exp(s, out=s)
    p /= p.sum(axis=2, keepdims=True)
    return p


def softmax_affinity_backward(xp, da, p, q, k, o) -> tuple:
    """``dS = A * (dA - D)`` with ``D_i = sum_j A_ij dA_ij``; then through ``s = scale q.k + bias``."""
    ds = p * (da - (p * da).sum(axis=2, keepdims=True))
    dq, dk, dbias = logits_backward(xp, ds, q, k, o["scale"])
    return dq, dk, ({} if o["key_bias"] is None else {"key_bias": dbias})


def dot_affinity(xp, q, k, o) -> Any:
    """Dot product: ``A = (query_i^T key_j) / C``, C = Nk (or the window size)."""
    a = xp.matmul(q, k.transpose(0, 2, 1))
    if o["mask"] is not None:
        a = xp.where(o["mask"][None], a, 0)
    a /= normaliser(xp, o["mask"], k.shape[1], o["normalize"], q.dtype)
    return a


def dot_affinity_backward(xp, da, a, q, k, o) -> tuple:
    da = da / normaliser(xp, o["mask"], k.shape[1], o["normalize"], q.dtype)
    if o["mask"] is not None:
        da = xp.where(o["mask"][None], da, 0)
    return xp.matmul(da, k), xp.matmul(da.transpose(0, 2, 1), q), {}


def concat_affinity(xp, q, k, o) -> Any:
    """Concatenation: ``A = ReLU(a_i + b_j) / C`` with ``a = w_theta^T query``, ``b = w_phi^T key``."""
    ai, bj = concat_terms(q, k, o["w_f"])
    a = xp.maximum(ai[:, :, None] + bj[:, None, :], 0)
    if o["mask"] is not None:
        a = xp.where(o["mask"][None], a, 0)
    a /= normaliser(xp, o["mask"], k.shape[1], o["normalize"], q.dtype)
    return a


def concat_affinity_backward(xp, da, a, q, k, o) -> tuple:
    """Through the ReLU (``A > 0``; masked entries are 0): ``da_i = sum_j dS_ij``, ``db_j = sum_i dS_ij``."""
    ds = da / normaliser(xp, o["mask"], k.shape[1], o["normalize"], q.dtype) * (a > 0)
    dq, dk, dw_f = concat_terms_backward(xp, ds.sum(axis=2), ds.sum(axis=1), q, k, o["w_f"])
    return dq, dk, {"w_f": dw_f}


_AFFINITY = {
    "gaussian": (softmax_affinity, softmax_affinity_backward),
    "embedded_gaussian": (softmax_affinity, softmax_affinity_backward),
    "dot_product": (dot_affinity, dot_affinity_backward),
    "concatenation": (concat_affinity, concat_affinity_backward),
}


# --------------------------------------------------------------------------- the generic op y = A value
def dense_forward(xp, q, k, v, o) -> tuple[Any, dict]:
    """``y = A value``; stores A (N, Nq, Nk) for the backward."""
    a = _AFFINITY[o["f"]][0](xp, q, k, o)
    return xp.matmul(a, v), {"attention": a}


def dense_backward(xp, dy, cache) -> tuple[tuple, dict]:
    """``dvalue = A^T dy``, ``dA = dy value^T``, then the backward of the affinity."""
    a, q, k, v = cache["attention"], cache["query"], cache["key"], cache["value"]
    dv = xp.matmul(a.transpose(0, 2, 1), dy)
    da = xp.matmul(dy, v.transpose(0, 2, 1))  # (N, Nq, Nk)
    dq, dk, grads = _AFFINITY[cache["f"]][1](xp, da, a, q, k, cache)
    return (dq, dk, dv), grads


_FORMS = {"dense": {f: (dense_forward, dense_backward) for f in NONLOCAL_MODES}, "chunked": CHUNKED_FORMS}


def _options(f, normalize, scale, key_bias, mask, w_f):
    # a NumPy float64 scale would promote float32 arrays: keep a Python float
    return dict(
        f=f,
        normalize=normalize,
        scale=None if scale is None else float(scale),
        key_bias=key_bias,
        mask=mask,
        w_f=w_f,
    )


# --------------------------------------------------------------------------- public API
def attention_weights(
    query: Any,
    key: Any,
    *,
    f: str,
    normalize: bool = True,
    scale: float | None = None,
    key_bias: Any = None,
    mask: Any = None,
    w_f: Any = None,
    rows: Any = None,
) -> Any:
    """Normalised affinity ``A_ij = f(x_i, x_j) / C(x)`` for the query rows ``rows``.

    Parameters
    ----------
    query, key, scale, key_bias, mask, w_f, f, normalize
        As in :func:`nonlocal_op_forward`.
    rows : sequence of int, optional
        Query positions to return (default: all, an (N, Nq, Nk) array).  One row
        costs O(N Nk) memory, so a single position of a large map can be shown
        (:func:`nlref.viz.attention_map`).

    Returns
    -------
    ndarray, shape (N, len(rows), Nk)
        Weights of the sum ``y_i = sum_j A_ij g(x_j)``; rows of the Gaussians sum to 1.
    """
    xp = validate_op_args(query, key, key, f, normalize, scale, key_bias, mask, w_f, "dense", 1)
    if rows is not None:
        rows = [int(r) for r in rows]
        for r in rows:
            if not 0 <= r < query.shape[1]:
                raise ValueError(f"rows must lie in [0, {query.shape[1]}), received {r}")
        query = query[:, rows]
        mask = None if mask is None else mask[rows]
    return _AFFINITY[f][0](xp, query, key, _options(f, normalize, scale, key_bias, mask, w_f))


def nonlocal_op_forward(
    query: Any,
    key: Any,
    value: Any,
    *,
    f: str,
    normalize: bool = True,
    scale: float | None = None,
    key_bias: Any = None,
    mask: Any = None,
    w_f: Any = None,
    memory: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_attention: bool = False,
    check: bool = True,
) -> tuple[Any, dict] | tuple[Any, dict, Any]:
    """Generic non-local operation ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)`` (Wang et al., CVPR 2018, Eq. 1).

    Parameters
    ----------
    query : ndarray, shape (N, Nq, d)
        ``theta(x_i)`` for every query position i (``x_i`` for ``f="gaussian"``).
    key : ndarray, shape (N, Nk, d)
        ``phi(x_j)`` for every key position j (possibly subsampled: Nk = N' >= 1).
    value : ndarray, shape (N, Nk, c)
        ``g(x_j)``.
    f : {"gaussian", "embedded_gaussian", "dot_product", "concatenation"}
        Pairwise function (:data:`NONLOCAL_MODES`; see the module docstring for the table).
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
        ``f(x_i, x_j) = 0`` where False (a search or local window); every row must
        allow at least one key.  For the dot product and concatenation ``C(x)``
        becomes the number of allowed keys of row i (the paper's ``C = N``
        restricted to the window).  The mask itself costs Nq * Nk bytes.
    w_f : ndarray, shape (2 d,), optional
        Concatenation only (required there): ``f = ReLU(w_f^T [query_i, key_j])``.
    memory : {"auto", "dense", "chunked"}
        ``"dense"``: the affinity (N, Nq, Nk) is built (three such arrays at the
        peak of the backward).  ``"chunked"``: :mod:`nlref.nn.nl.chunked`,
        memory O(N (Nq + Nk)(d + c)) plus (N, chunk_size, chunk_size) tiles; not
        with a mask for the dot product.  ``"auto"``: the dot product uses its
        factorisation (dense when masked); the others are dense up to
        :data:`AUTO_DENSE_MAX_ELEMENTS` affinity entries, chunked above.
    chunk_size : int
        Side of the (queries x keys) tiles of the chunked form.
    return_attention : bool
        Also return the (N, Nq, Nk) affinity ``f / C`` (always built densely,
        whatever ``memory`` says: it *is* the quadratic object).
    check : bool
        Validate the arguments (default).  False skips every check, for callers
        that validated once already (the video models, at build time).

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
        Bad shapes (also Nk = 0), dtypes, options or mixed NumPy/CuPy arrays, before any work.

    References
    ----------
    X. Wang, R. Girshick, A. Gupta, K. He, "Non-local Neural Networks", CVPR 2018, Sec. 3.
    T. Dao et al., "FlashAttention", NeurIPS 2022 (online softmax, recomputation in backward).
    """
    if check:
        validate_op_args(query, key, value, f, normalize, scale, key_bias, mask, w_f, memory, chunk_size)
    xp = get_namespace(query)
    memory = resolve_memory(memory, f, query.shape[0], query.shape[1], key.shape[1], mask)
    cache = dict(
        query=query,
        key=key,
        value=value,
        memory=memory,
        chunk_size=int(chunk_size),
        **_options(f, normalize, scale, key_bias, mask, w_f),
    )
    y, saved = _FORMS[memory][f][0](xp, query, key, value, cache)
    cache.update(saved)
    if not return_attention:
        return y, cache
    att = cache.get("attention")
    return y, cache, _AFFINITY[f][0](xp, query, key, cache) if att is None else att


def nonlocal_op_backward(dy: Any, cache: dict) -> tuple[tuple[Any, Any, Any], dict]:
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
    Dense form: ``dvalue = A^T dy``, ``dA = dy value^T``, then each ``f``'s own
    affinity backward (softmax: ``dS = A * (dA - D)`` with ``D_i = dy_i . y_i``).
    The chunked forms recompute A tile by tile (:mod:`nlref.nn.nl.chunked`).
    """
    q, v = cache["query"], cache["value"]
    if tuple(dy.shape) != (q.shape[0], q.shape[1], v.shape[2]):
        raise ValueError(
            f"dy must have shape {(q.shape[0], q.shape[1], v.shape[2])}, received {tuple(dy.shape)}"
        )
    xp = get_namespace(dy, q)
    return _FORMS[cache["memory"]][cache["f"]][1](xp, dy, cache)
