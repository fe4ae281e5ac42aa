"""Multi-tensor SGD and Adam: the update of every parameter as one operation on flat buffers.

:mod:`nlref.nn.train.optim` updates a network tensor by tensor: about 6 (SGD)
or 14 (Adam) array operations per parameter, so 230-550 GPU kernel launches
per step for the 39 tensors of the tiny NL C2D, whatever their size
(PAPER_NOTES, "GPU cost model").  Here the same update runs once on flat
buffers that hold all parameters end to end, the way ``torch.optim``'s
``foreach`` / fused implementations do.

:func:`multi_tensor_sgd_step` and :func:`multi_tensor_adam_step` are what
:func:`nlref.nn.train.train_step` uses: the per-tensor call signature and state
layout of :mod:`nlref.nn.train.optim` (``"velocity.<name>"``, ``"m.<name>"``,
``"v.<name>"``, ``"step"``), nothing updated in place.  They gather parameters,
gradients and moments with one concatenate each, update out of place, and
return views of the new flat buffers (views are free)::

    p, g, v = concatenate(params), concatenate(grads), concatenate(velocity)   3 operations
    v' = momentum * v + (g + weight_decay * p);   p' = p - lr * v'           6 operations
    new_params[name] = p'[offset:offset + size].reshape(shape)              views

The equations are those of :mod:`nlref.nn.train.optim`, evaluated in the same
order, so a multi-tensor step gives the same numbers as the per-tensor step
(bit for bit on NumPy; ``tests/test_optim_multi_tensor.py``).  Weight decay
applies to every parameter, BatchNorm ``gamma`` / ``beta`` and biases included.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...backend import get_namespace
from . import optim
from .optim import check_adam_args, check_sgd_args

__all__ = ["multi_tensor_sgd_step", "multi_tensor_adam_step"]


def _views(buffer: Any, like: dict[str, Any]) -> dict[str, Any]:
    """Views of a flat ``buffer`` with the names and shapes of ``like``, end to end in its order."""
    views, offset = {}, 0
    for name, v in like.items():
        size = math.prod(v.shape)
        views[name] = buffer[offset : offset + size].reshape(v.shape)
        offset += size
    return views


def _sgd_update(p: Any, g: Any, v: Any, lr: float, momentum: float, weight_decay: float) -> tuple[Any, Any]:
    """Out-of-place SGD on flat arrays, in the order of :func:`nlref.nn.train.optim.sgd_step`."""
    if weight_decay:
        g = g + weight_decay * p
    v = momentum * v + g
    return p - lr * v, v


def _adam_update(p: Any, g: Any, m: Any, v: Any, t: int, lr: float, betas: tuple, eps: float, wd: float):
    """Out-of-place Adam on flat arrays, in the order of :func:`nlref.nn.train.optim.adam_step`."""
    b1, b2 = betas
    if wd:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m_hat / (get_namespace(v_hat).sqrt(v_hat) + eps), m, v


def _flat_ready(params: dict[str, Any], grads: dict[str, Any]) -> bool:
    """One gradient per parameter and one floating dtype: the case a flat buffer covers."""
    return (
        bool(params)
        and set(grads) == set(params)
        and len({np.dtype(v.dtype) for v in params.values()}) == 1
        and np.dtype(next(iter(params.values())).dtype).kind == "f"
    )


def _gather(arrays: dict[str, Any], names: dict[str, Any], prefix: str = "") -> Any:
    """``arrays[prefix + name]`` for every name of ``names``, end to end (one concatenate)."""
    xp = get_namespace(arrays[prefix + next(iter(names))])  # concatenate refuses a NumPy/CuPy mix
    return xp.concatenate([arrays[prefix + k].reshape(-1) for k in names])


def _named(flat: Any, like: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Views of ``flat`` named ``prefix + name`` (the per-tensor state layout)."""
    return {prefix + k: a for k, a in _views(flat, like).items()}


def multi_tensor_sgd_step(
    params: dict[str, Any],
    grads: dict[str, Any],
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`nlref.nn.train.optim.sgd_step` on one flat buffer: same arguments, same numbers, pure.

    ``g = grad + weight_decay * p``; ``v = momentum * v + g``; ``p = p - lr * v``,
    evaluated once for the whole network (9 array operations instead of about
    6 per tensor).  The new parameters and ``"velocity.<name>"`` entries are
    views of two new flat buffers; the inputs are not modified.  Falls back to
    the per-tensor step when some parameter has no gradient or the dtypes differ.

    Returns
    -------
    new_params, new_state : dict
        As :func:`nlref.nn.train.optim.sgd_step` returns them (bit for bit on NumPy).
    """
    if not _flat_ready(params, grads):
        return optim.sgd_step(params, grads, state, lr=lr, momentum=momentum, weight_decay=weight_decay)
    check_sgd_args(lr, momentum, weight_decay)
    optim._check_grads(params, grads)
    p, v = _sgd_update(
        _gather(params, params),
        _gather(grads, params),
        _gather(state, params, "velocity."),
        lr,
        momentum,
        weight_decay,
    )
    new_state = {**state, **_named(v, params, "velocity.")}
    new_state["step"] = np.asarray(int(state["step"]) + 1, dtype=np.int64)
    return _views(p, params), new_state


def multi_tensor_adam_step(
    params: dict[str, Any],
    grads: dict[str, Any],
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`nlref.nn.train.optim.adam_step` on one flat buffer: same arguments, same numbers, pure.

    The equations of :func:`nlref.nn.train.optim.adam_step`, evaluated once for the
    whole network (about 18 array operations instead of about 14 per tensor);
    the new parameters and ``"m.<name>"`` / ``"v.<name>"`` entries are views of
    new flat buffers.  Falls back as :func:`multi_tensor_sgd_step` does.

    Returns
    -------
    new_params, new_state : dict
        As :func:`nlref.nn.train.optim.adam_step` returns them (bit for bit on NumPy).
    """
    if not _flat_ready(params, grads):
        return optim.adam_step(params, grads, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    check_adam_args(lr, betas, eps, weight_decay)
    optim._check_grads(params, grads)
    t = int(state["step"]) + 1
    p, m, v = _adam_update(
        _gather(params, params),
        _gather(grads, params),
        _gather(state, params, "m."),
        _gather(state, params, "v."),
        t,
        lr,
        betas,
        eps,
        weight_decay,
    )
    new_state = {**state, **_named(m, params, "m."), **_named(v, params, "v.")}
    new_state["step"] = np.asarray(t, dtype=np.int64)
    return _views(p, params), new_state
