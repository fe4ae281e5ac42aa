"""Elementwise layers: ReLU, dropout, softmax, softmax cross-entropy.

The embedded-Gaussian non-local block of Wang et al. (CVPR 2018) normalises
with a softmax (Eq. 3), and the video classifier ends with a softmax
cross-entropy loss after dropout (Sec. 4).

Every layer is a forward/backward pair (CS231n style):
``out, cache = f_forward(x, params)`` and ``dx, grads = f_backward(dout, cache)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import asarray, get_namespace
from ._common import check_float, same_backend
from .init import as_generator

__all__ = [
    "relu_forward",
    "relu_backward",
    "dropout_forward",
    "dropout_backward",
    "softmax",
    "softmax_cross_entropy",
]


def relu_forward(x: Any, *, check: bool = True) -> tuple[Any, tuple]:
    """``out = max(x, 0)``; any shape, float32 or float64 (``check=False`` skips validating ``x``)."""
    if check:
        check_float(x, "x")
    xp = get_namespace(x)
    return xp.maximum(x, 0), (x > 0,)


def relu_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """``dx = dout * [x > 0]`` (zero gradient at exactly 0); returns ``(dx, {})``."""
    (positive,) = cache
    return dout * positive, {}


def dropout_forward(
    x: Any, *, p: float, train: bool, rng: Any = None, check: bool = True
) -> tuple[Any, tuple]:
    """Inverted dropout: ``out = x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``.

    Scaling at training time keeps ``E[out] = x``, so evaluation is the identity.

    Parameters
    ----------
    x : ndarray, any shape
    p : float in [0, 1)
        Probability of dropping a value (the paper's video nets use 0.5).
    train : bool
        False: identity.
    rng : numpy.random.Generator or int
        Seed or generator for the mask (required when training with p > 0).
        The mask is drawn on the host and moved with :func:`nlref.backend.asarray`,
        so NumPy and CuPy give the same mask for the same seed.
    check : bool
        Validate ``x``, ``p`` and ``train`` (the default); False when the caller already did.

    Returns
    -------
    out : ndarray, like ``x``
    cache : tuple
    """
    if check:
        check_float(x, "x")
        number = isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool)
        if not number or not 0.0 <= p < 1.0:
            raise ValueError(f"dropout_forward: p must be a number in [0, 1), received {p!r}")
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"dropout_forward: train must be a bool, received {train!r}")
    if not train or p == 0:
        return x, (None,)
    if rng is None:
        raise ValueError(
            "dropout_forward: rng (a seed or numpy.random.Generator) is required when train=True"
        )
    keep = as_generator(rng).random(x.shape) >= p
    scale = asarray((keep / (1.0 - p)).astype(x.dtype), xp=get_namespace(x))
    return x * scale, (scale,)


def dropout_backward(dout: Any, cache: tuple) -> tuple[Any, dict]:
    """``dx = dout * mask / (1 - p)`` (identity in evaluation); returns ``(dx, {})``."""
    (scale,) = cache
    return (dout if scale is None else dout * scale), {}


def softmax(x: Any, axis: int = -1) -> Any:
    """Numerically stable softmax ``exp(x - max x) / sum exp(x - max x)`` along ``axis``."""
    check_float(x, "x")
    xp = get_namespace(x)
    # finite logits of opposite sign near the dtype's maximum: x - max is -inf, exp gives the right 0
    with np.errstate(over="ignore"):
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits: Any, labels: Any) -> tuple[float, Any]:
    """Mean cross-entropy of a softmax classifier and its gradient.

    ``loss = -1/N sum_n log softmax(logits_n)[labels_n]``, computed with the
    log-sum-exp of max-subtracted logits so it never overflows;
    ``dlogits = (softmax(logits) - onehot(labels)) / N``.

    Parameters
    ----------
    logits : ndarray, shape (N, K), float32 or float64
    labels : ndarray, shape (N,), integer class indices in [0, K)

    Returns
    -------
    loss : float
    dlogits : ndarray, shape (N, K)
    """
    check_float(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), received shape {tuple(logits.shape)}")
    if not hasattr(labels, "dtype") or np.dtype(labels.dtype).kind not in "iu":
        received = getattr(labels, "dtype", type(labels).__name__)
        raise TypeError(f"labels must be an integer array, received {received}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits, received {tuple(labels.shape)}"
        )
    xp = same_backend(logits, labels)
    N, K = logits.shape
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= K:
        raise ValueError(f"labels must lie in [0, {K}), received values in [{lo}, {hi}]")
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    rows = xp.arange(N)
    loss = -float(log_p[rows, labels].sum()) / N
    dlogits = xp.exp(log_p)
    dlogits[rows, labels] -= 1  # one label per row: no repeated index
    return loss, dlogits / logits.dtype.type(N)
