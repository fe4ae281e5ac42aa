"""Argument checks of :func:`nlref.gradcheck.gradcheck`, before any work.

Every malformed argument -- a non-callable, a forward or backward returning
something other than ``(out, cache)`` / ``(dx, grads)``, tolerances that are not
finite and positive, inputs that are not finite floating arrays, a bad seed --
gives one ``TypeError``/``ValueError`` that names it and says what it received.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_finite

__all__ = ["check_arguments", "checked_arrays", "checked_forward", "checked_backward"]


def check_arguments(
    forward: Any,
    backward: Any,
    mode: Any,
    eps: Any,
    rtol: Any,
    atol: Any,
    n_directions: Any,
    seed: Any,
    raise_on_failure: Any,
) -> None:
    for name, fn, want in (
        ("forward", forward, "forward(*inputs, params) -> (out, cache)"),
        ("backward", backward, "backward(dout, cache) -> (dx, grads)"),
    ):
        if not callable(fn):
            raise TypeError(f"gradcheck: {name} must be a callable {want}, received {type(fn).__name__}")
    if not isinstance(mode, str) or mode not in ("full", "random"):
        raise ValueError(f"mode must be 'full' or 'random', received {_value(mode)}")
    for name, v in (("eps", eps), ("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a positive number, received {_value(v)}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite positive number, received {v!r}")
    for name, v, low in (("n_directions", n_directions, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, received {_value(v)}")
    if not isinstance(raise_on_failure, (bool, np.bool_)):
        raise TypeError(f"raise_on_failure must be True or False, received {_value(raise_on_failure)}")


def checked_arrays(inputs: Any, params: Any) -> tuple[list, dict]:
    """``inputs`` as a non-empty list and ``params`` as a dict, all finite floating arrays."""
    if not hasattr(inputs, "shape") and not (isinstance(inputs, (tuple, list)) and inputs):
        want = "an array or a non-empty sequence of arrays"
        raise TypeError(f"gradcheck: inputs must be {want}, received {_describe(inputs)}")
    inputs = [inputs] if hasattr(inputs, "shape") else list(inputs)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"gradcheck: params must be a dict of arrays or None, received {_describe(params)}")
    params = {} if params is None else dict(params)
    for a in [*inputs, *params.values()]:
        if not hasattr(a, "dtype") or np.dtype(a.dtype).kind != "f":
            raise TypeError(
                "gradcheck: inputs and params must be floating arrays, "
                f"received {type(a).__name__} {getattr(a, 'dtype', '')}".rstrip()
            )
    for i, a in enumerate(inputs):
        check_finite(a, "x" if len(inputs) == 1 else f"x{i}")
    for key, a in params.items():
        check_finite(a, f"params[{key!r}]")
    return inputs, params


def _value(value: Any) -> str:
    """A scalar argument as its repr, anything else as :func:`_describe` (one line either way)."""
    scalar = value is None or isinstance(value, (bool, int, float, complex, str, np.generic))
    return repr(value)[:60] if scalar else _describe(value)


def _describe(value: Any) -> str:
    """``tuple of 3``, ``ndarray of shape (2, 3)``, ``NoneType``: what a caller returned, in a few words."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}"
    if hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


def checked_forward(result: Any) -> tuple[Any, Any]:
    """``(out, cache)`` from what ``forward`` returned, or a TypeError saying what it returned."""
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise TypeError(
            f"gradcheck: forward must return (out, cache) or (out, cache, state), "
            f"received {_describe(result)}"
        )
    out = result[0]
    if not (hasattr(out, "shape") or isinstance(out, (int, float, np.number))) or isinstance(out, bool):
        raise TypeError(f"gradcheck: forward's out must be an array or a float, received {_describe(out)}")
    return result[0], result[1]


def checked_backward(result: Any, single: bool, n_inputs: int) -> tuple[Any, Any]:
    """``(dx, grads)`` from what ``backward`` returned, or a TypeError saying what it returned."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"gradcheck: backward must return (dx, grads), received {_describe(result)}")
    dxs, grads = result
    if not single and not isinstance(dxs, (tuple, list)):
        raise TypeError(
            f"gradcheck: backward's dx must be a tuple of {n_inputs} input gradients for "
            f"{n_inputs} inputs, received {_describe(dxs)}"
        )
    if grads is not None and not isinstance(grads, dict):
        raise TypeError(
            f"gradcheck: backward's grads must be a dict of parameter gradients (or None), "
            f"received {_describe(grads)}"
        )
    return dxs, grads
