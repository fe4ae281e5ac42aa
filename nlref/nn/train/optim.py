"""Optimisers on flat parameter dicts: SGD with momentum (the paper's recipe) and Adam.

Wang et al. (CVPR 2018, Sec. 4) train with SGD, momentum 0.9, weight decay
1e-4 and a learning rate divided by 10 at fixed steps
(:func:`nlref.nn.train.learning_rate`).  The
update follows PyTorch's ``torch.optim.SGD`` so results can be compared:

    g = grad + weight_decay * p;   v = momentum * v + g;   p = p - lr * v

Adam (Kingma & Ba, ICLR 2015) is offered for small experiments.  Optimiser
state is a flat dict of arrays (``"velocity.<name>"``, ``"step"`` as a 0-d
array) that saves to ``.npz`` as it is, after :func:`nlref.nn.layers.params_to_numpy`.
Nothing is updated in place: every step returns new dicts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_positive
from ...backend import get_namespace

__all__ = ["sgd_init", "sgd_step", "adam_init", "adam_step"]


def _zeros_like(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}.{k}": get_namespace(v).zeros_like(v) for k, v in params.items()}


def _check_grads(params: dict[str, Any], grads: dict[str, Any]) -> None:
    extra = sorted(set(grads) - set(params))
    if extra:
        raise ValueError(f"grads has names that are not in params: {extra}")
    for k, g in grads.items():
        if tuple(g.shape) != tuple(params[k].shape):
            raise ValueError(
                f"grads[{k!r}] must have shape {tuple(params[k].shape)}, received {tuple(g.shape)}"
            )


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), received {value!r}")


def check_sgd_args(lr: float, momentum: float, weight_decay: float) -> None:
    """The hyper-parameters of every SGD step (per-tensor and multi-tensor), checked once per call."""
    check_positive(lr, "lr")
    _check_fraction(momentum, "momentum")
    check_positive(weight_decay, "weight_decay", strict=False)


def check_adam_args(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """The hyper-parameters of every Adam step (per-tensor and multi-tensor), checked once per call."""
    check_positive(lr, "lr")
    _check_fraction(betas[0], "betas[0]")
    _check_fraction(betas[1], "betas[1]")
    check_positive(eps, "eps")
    check_positive(weight_decay, "weight_decay", strict=False)


def sgd_init(params: dict[str, Any]) -> dict[str, Any]:
    """Zero velocity for every parameter and ``step = 0``."""
    return {**_zeros_like(params, "velocity"), "step": np.asarray(0, dtype=np.int64)}


def sgd_step(
    params: dict[str, Any],
    grads: dict[str, Any],
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One SGD step with momentum and L2 weight decay (PyTorch semantics, no dampening).

    ``g = grad + weight_decay * p``; ``v = momentum * v + g``; ``p = p - lr * v``.
    Parameters without an entry in ``grads`` are left as they are.

    Returns
    -------
    new_params, new_state : dict
    """
    check_sgd_args(lr, momentum, weight_decay)
    _check_grads(params, grads)
    new_params, new_state = dict(params), dict(state)
    for k, grad in grads.items():
        p = params[k]
        g = grad + weight_decay * p if weight_decay else grad
        v = momentum * state[f"velocity.{k}"] + g
        new_params[k], new_state[f"velocity.{k}"] = p - lr * v, v
    new_state["step"] = np.asarray(int(state["step"]) + 1, dtype=np.int64)
    return new_params, new_state


def adam_init(params: dict[str, Any]) -> dict[str, Any]:
    """Zero first and second moments (``"m.<name>"``, ``"v.<name>"``) and ``step = 0``."""
    return {**_zeros_like(params, "m"), **_zeros_like(params, "v"), "step": np.asarray(0, dtype=np.int64)}


def adam_step(
    params: dict[str, Any],
    grads: dict[str, Any],
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One Adam step (Kingma & Ba 2015; PyTorch ``torch.optim.Adam`` semantics).

    With ``t`` the new step count and ``g = grad + weight_decay * p`` (L2, not AdamW):
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

    Returns
    -------
    new_params, new_state : dict
    """
    check_adam_args(lr, betas, eps, weight_decay)
    b1, b2 = betas
    _check_grads(params, grads)
    t = int(state["step"]) + 1
    new_params, new_state = dict(params), dict(state)
    for k, grad in grads.items():
        p = params[k]
        g = grad + weight_decay * p if weight_decay else grad
        m = b1 * state[f"m.{k}"] + (1 - b1) * g
        v = b2 * state[f"v.{k}"] + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        new_params[k] = p - lr * m_hat / (get_namespace(v_hat).sqrt(v_hat) + eps)
        new_state[f"m.{k}"], new_state[f"v.{k}"] = m, v
    new_state["step"] = np.asarray(t, dtype=np.int64)
    return new_params, new_state
