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

:func:`multi_tensor_sgd_step` and :func:`multi_tensor_adam_step` are the pure
form that :func:`nlref.nn.step.train_step` uses: the per-tensor call signature
and state layout of :mod:`nlref.nn.optim`, nothing updated in place.  They
gather parameters, gradients and moments with one concatenate each, update out
of place, and return views of the new flat buffers (views are free)::

    p, g, v = concatenate(params), concatenate(grads), concatenate(velocity)   3 operations
    v' = momentum * v + (g + weight_decay * p);   p' = p - lr * v'           6 operations
    new_params[name] = p'[offset:offset + size].reshape(shape)              views
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...backend import get_namespace
from . import optim
from .optim import check_adam_args, check_sgd_args

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
    "multi_tensor_sgd_step",
    "multi_tensor_adam_step",
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
        size = math.prod(v.shape)
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
    check_sgd_args(lr, momentum, weight_decay)
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
    check_adam_args(lr, betas, eps, weight_decay)
    b1, b2 = betas
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


def _sgd_update(p: Any, g: Any, v: Any, lr: float, momentum: float, weight_decay: float) -> tuple[Any, Any]:
    """Out-of-place SGD on flat arrays, in the order of :func:`nlref.nn.optim.sgd_step`."""
    if weight_decay:
        g = g + weight_decay * p
    v = momentum * v + g
    return p - lr * v, v


def _adam_update(p: Any, g: Any, m: Any, v: Any, t: int, lr: float, betas: tuple, eps: float, wd: float):
    """Out-of-place Adam on flat arrays, in the order of :func:`nlref.nn.optim.adam_step`."""
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
    return {prefix + k: a for k, a in unflatten(flat, like).items()}


def multi_tensor_sgd_step(
    params: dict[str, Any],
    grads: dict[str, Any],
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`nlref.nn.optim.sgd_step` on one flat buffer: same arguments, same numbers, pure.

    ``g = grad + weight_decay * p``; ``v = momentum * v + g``; ``p = p - lr * v``,
    evaluated once for the whole network (9 array operations instead of about
    6 per tensor).  The new parameters and ``"velocity.<name>"`` entries are
    views of two new flat buffers; the inputs are not modified.  Falls back to
    the per-tensor step when some parameter has no gradient or the dtypes differ.

    Returns
    -------
    new_params, new_state : dict
        As :func:`nlref.nn.optim.sgd_step` returns them (bit for bit on NumPy).
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
    return unflatten(p, params), new_state


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
    """:func:`nlref.nn.optim.adam_step` on one flat buffer: same arguments, same numbers, pure.

    The equations of :func:`nlref.nn.optim.adam_step`, evaluated once for the
    whole network (about 18 array operations instead of about 14 per tensor);
    the new parameters and ``"m.<name>"`` / ``"v.<name>"`` entries are views of
    new flat buffers.  Falls back as :func:`multi_tensor_sgd_step` does.

    Returns
    -------
    new_params, new_state : dict
        As :func:`nlref.nn.optim.adam_step` returns them (bit for bit on NumPy).
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
    return unflatten(p, params), new_state
