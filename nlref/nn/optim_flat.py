"""Multi-tensor SGD and Adam: every parameter in one flat buffer, one update for all of them.

:mod:`nlref.nn.optim` updates a network tensor by tensor: about 6 (SGD) or
14 (Adam) array operations per parameter, so 230-550 GPU kernel launches per
step for the 39 tensors of the tiny NL C2D, whatever their size (PAPER_NOTES,
"GPU cost model").  Here the same update runs once on a flat buffer that holds
all parameters end to end, the way ``torch.optim``'s ``foreach`` / fused
implementations do::

    flat: (P,)  = [conv1.w | bn1.gamma | bn1.beta | ... | fc.b]     P = total parameter count
    params[name] = flat[offset:offset + size].reshape(shape)         views: writes go to flat
    g:    (P,)  = concatenate(grads[name].reshape(-1) for name in params)   one operation

The equations are those of :mod:`nlref.nn.optim`, evaluated in the same order,
so a flat step gives the same numbers as the per-tensor step (bit for bit on
NumPy; ``tests/test_optim_flat.py``).  Weight decay applies to every
parameter, BatchNorm ``gamma`` / ``beta`` and biases included, exactly as
:func:`nlref.nn.optim.sgd_step` and :func:`nlref.nn.optim.adam_step` do.

Unlike :mod:`nlref.nn.optim`, the step updates ``flat`` and the moment
buffers *in place* (that is what keeps the views live): keep a copy of the
parameters if the old values are still needed.  :func:`state_to_dict` and
:func:`state_from_dict` convert the state to and from the per-tensor layout
(``"velocity.<name>"``, ``"m.<name>"``, ``"v.<name>"``, ``"step"``), so
checkpoints are the same either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_positive
from ..backend import get_namespace
from .optim import _check_fraction

__all__ = [
    "flatten_params",
    "unflatten",
    "flatten_grads",
    "flat_sgd_init",
    "flat_sgd_step",
    "flat_adam_init",
    "flat_adam_step",
    "state_to_dict",
    "state_from_dict",
]

_MOMENTS = {"sgd": ("velocity",), "adam": ("m", "v")}


def flatten_params(params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Copy every parameter into one flat buffer; return it and a dict of views into it.

    Parameters
    ----------
    params : dict of ndarrays
        One floating dtype and one backend for all.

    Returns
    -------
    flat : ndarray, shape (P,)
        The parameters end to end, in the order of ``params``.
    views : dict
        Same names, shapes and dtype as ``params``; ``views[name]`` is a view of
        ``flat`` (``views[name][...] = 0`` writes into ``flat`` and vice versa).
    """
    if not isinstance(params, dict) or not params:
        raise ValueError(f"params must be a non-empty dict of arrays, received {type(params).__name__}")
    dtypes = {np.dtype(v.dtype) for v in params.values()}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise TypeError(f"params must share one floating dtype, received {sorted(str(d) for d in dtypes)}")
    xp = get_namespace(*params.values())
    flat = xp.concatenate([v.reshape(-1) for v in params.values()])
    return flat, unflatten(flat, params)


def unflatten(buffer: Any, like: dict[str, Any]) -> dict[str, Any]:
    """Views of a flat ``buffer`` with the names and shapes of ``like`` (as laid out by flatten_params)."""
    views, offset = {}, 0
    for name, v in like.items():
        size = int(np.prod(v.shape, dtype=np.int64))
        views[name] = buffer[offset : offset + size].reshape(v.shape)
        offset += size
    if offset != buffer.shape[0]:
        raise ValueError(
            f"buffer must hold {offset} values for the layout of like, received {buffer.shape[0]}"
        )
    return views


def flatten_grads(grads: dict[str, Any], views: dict[str, Any]) -> Any:
    """Gather ``grads`` into one flat array laid out like :func:`flatten_params` (one concatenate).

    Every parameter needs a gradient (a parameter the per-tensor step leaves
    alone has no counterpart in a flat step).
    """
    missing, extra = sorted(set(views) - set(grads)), sorted(set(grads) - set(views))
    if missing or extra:
        raise ValueError(f"grads must have exactly the names of params; missing {missing}, unknown {extra}")
    for k, v in views.items():
        if tuple(grads[k].shape) != tuple(v.shape):
            raise ValueError(
                f"grads[{k!r}] must have shape {tuple(v.shape)}, received {tuple(grads[k].shape)}"
            )
    xp = get_namespace(*grads.values())
    return xp.concatenate([grads[k].reshape(-1) for k in views])


def _check_flat(flat: Any, g: Any) -> None:
    if getattr(flat, "ndim", None) != 1 or tuple(getattr(g, "shape", ())) != tuple(flat.shape):
        raise ValueError(
            "flat and g must be 1-D arrays of one shape, "
            f"received {getattr(flat, 'shape', flat)} and {getattr(g, 'shape', g)}"
        )


def flat_sgd_init(flat: Any) -> dict[str, Any]:
    """Zero velocity ``(P,)`` and ``step = 0``."""
    return {"velocity": get_namespace(flat).zeros_like(flat), "step": np.asarray(0, dtype=np.int64)}


def flat_sgd_step(
    flat: Any, g: Any, state: dict[str, Any], *, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4
) -> dict[str, Any]:
    """One SGD step on all parameters at once (as :func:`nlref.nn.optim.sgd_step`), in place.

    ``g = grad + weight_decay * p``; ``v = momentum * v + g``; ``p = p - lr * v``:
    6 array operations for the whole network.

    Parameters
    ----------
    flat : ndarray, shape (P,)
        From :func:`flatten_params`; updated in place.
    g : ndarray, shape (P,)
        From :func:`flatten_grads`; not modified.
    state : dict
        From :func:`flat_sgd_init`; ``state["velocity"]`` is updated in place.

    Returns
    -------
    dict
        ``state`` with ``step`` increased by one.
    """
    check_positive(lr, "lr")
    _check_fraction(momentum, "momentum")
    check_positive(weight_decay, "weight_decay", strict=False)
    _check_flat(flat, g)
    if weight_decay:
        g = g + weight_decay * flat
    v = state["velocity"]
    v *= momentum
    v += g
    flat -= lr * v
    return {**state, "step": np.asarray(int(state["step"]) + 1, dtype=np.int64)}


def flat_adam_init(flat: Any) -> dict[str, Any]:
    """Zero moments ``m``, ``v`` of shape ``(P,)`` and ``step = 0``."""
    xp = get_namespace(flat)
    return {"m": xp.zeros_like(flat), "v": xp.zeros_like(flat), "step": np.asarray(0, dtype=np.int64)}


def flat_adam_step(
    flat: Any,
    g: Any,
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> dict[str, Any]:
    """One Adam step on all parameters at once (as :func:`nlref.nn.optim.adam_step`), in place.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``: 14 array
    operations for the whole network (16 with weight decay).  Arguments and
    return as :func:`flat_sgd_step`; ``state["m"]``, ``state["v"]`` are updated in place.
    """
    check_positive(lr, "lr")
    b1, b2 = betas
    _check_fraction(b1, "betas[0]")
    _check_fraction(b2, "betas[1]")
    check_positive(eps, "eps")
    check_positive(weight_decay, "weight_decay", strict=False)
    _check_flat(flat, g)
    t = int(state["step"]) + 1
    if weight_decay:
        g = g + weight_decay * flat
    m, v = state["m"], state["v"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    flat -= lr * m_hat / (get_namespace(v_hat).sqrt(v_hat) + eps)
    return {**state, "step": np.asarray(t, dtype=np.int64)}


def state_to_dict(state: dict[str, Any], views: dict[str, Any]) -> dict[str, Any]:
    """The flat state in :mod:`nlref.nn.optim`'s layout (``"velocity.<name>"`` ..., ``"step"``), as views."""
    out = {"step": state["step"]}
    for moment in (k for k in state if k != "step"):
        out.update({f"{moment}.{k}": a for k, a in unflatten(state[moment], views).items()})
    return out


def state_from_dict(state: dict[str, Any], views: dict[str, Any], optimizer: str) -> dict[str, Any]:
    """The per-tensor state of ``optimizer`` ("sgd" | "adam") gathered into flat buffers (copies)."""
    if optimizer not in _MOMENTS:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}")
    out = {"step": np.asarray(int(state["step"]), dtype=np.int64)}
    for moment in _MOMENTS[optimizer]:
        out[moment] = flatten_grads({k: state[f"{moment}.{k}"] for k in views}, views)
    return out
