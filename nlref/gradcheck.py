"""Finite-difference gradient checks for hand-written backward passes.

nlref writes every backward by hand, so every backward needs a proof.  This
module compares a layer's analytic gradients with centred differences of a
scalar objective, in float64, the way CS231n's ``gradient_check.py`` and
PyTorch's ``torch.autograd.gradcheck`` do, and says *which* input or parameter
is wrong, *where*, and by how much.

The scalar objective is ``L = sum(out * R)`` with a fixed random ``R`` (seeded),
so ``dL/dout = R`` is what the backward receives, and every output element
takes part with its own weight (a plain ``sum(out)`` would hide errors that
cancel, e.g. a gradient that is right up to a permutation).

Example
-------
>>> import numpy as np
>>> from nlref.nn import linear_forward, linear_backward
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((2, 3, 4))
>>> params = {"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(5)}
>>> report = gradcheck(linear_forward, linear_backward, x, params)
>>> report.passed
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._gradcheck_args import check_arguments, checked_arrays, checked_backward, checked_forward
from .backend import asarray, get_namespace

__all__ = ["gradcheck", "GradcheckReport", "GradcheckEntry", "GradcheckError"]


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckEntry:
    """Result for one input (``"x"``, ``"x1"``, ...) or one parameter (``"w"``, ...).

    ``where`` is the index of the worst element (``mode="full"``) or the number
    of the worst random direction (``mode="random"``); ``analytic`` and
    ``numeric`` are the two values compared there.
    """

    name: str
    kind: str  # "input" or "param"
    worst_error: float
    where: Any
    analytic: float
    numeric: float
    n_checked: int
    passed: bool
    note: str = ""


@dataclass
class GradcheckReport:
    """All entries of one :func:`gradcheck` run, worst first in :attr:`worst`."""

    mode: str
    eps: float
    rtol: float
    atol: float
    entries: list[GradcheckEntry] = field(default_factory=list)

    @property
    def worst_error(self) -> float:
        """Largest relative error over every input and parameter."""
        return max((e.worst_error for e in self.entries), default=0.0)

    @property
    def worst(self) -> GradcheckEntry | None:
        """The entry holding :attr:`worst_error`."""
        return max(self.entries, key=lambda e: e.worst_error, default=None)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.entries)

    @property
    def failed(self) -> list[str]:
        """Names of the inputs/parameters whose gradient is wrong."""
        return [e.name for e in self.entries if not e.passed]

    def __getitem__(self, name: str) -> GradcheckEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def __str__(self) -> str:
        where = "element" if self.mode == "full" else "direction"
        head = (
            f"gradcheck ({self.mode}, eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g}): "
            + ("PASSED" if self.passed else f"FAILED for {', '.join(self.failed)}")
            + f"; worst relative error {self.worst_error:.3e}"
        )
        rows = [("name", "kind", "rel. error", f"worst {where}", "analytic", "numeric", "checked", "ok")]
        for e in self.entries:
            ok = ("yes" if e.passed else "NO") + (f" ({e.note})" if e.note else "")
            rows.append(
                (
                    e.name,
                    e.kind,
                    f"{e.worst_error:.3e}",
                    str(e.where),
                    f"{e.analytic:.6g}",
                    f"{e.numeric:.6g}",
                    str(e.n_checked),
                    ok,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([head, *lines])


def _relative_error(a: float, n: float, rtol: float, atol: float) -> float:
    # |a - n| / max(|a|, |n|, atol / rtol): <= rtol  <=>  |a - n| <= max(rtol * max(|a|, |n|), atol)
    if not (math.isfinite(a) and math.isfinite(n)):
        return math.inf  # a NaN/inf gradient is never right
    return abs(a - n) / max(abs(a), abs(n), atol / rtol)


def gradcheck(
    forward: Callable[..., tuple],
    backward: Callable[[Any, Any], tuple],
    inputs: Any,
    params: dict[str, Any] | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    mode: str = "full",
    n_directions: int = 10,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckReport:
    """Compare ``backward``'s gradients with centred finite differences.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs, params) -> (out, cache)``; a third returned item
        (new BatchNorm state) is ignored.  ``out`` may be a Python float (a
        loss), then ``R = 1``.  Bind keyword options with a lambda,
        e.g. ``lambda x, p: conv_forward(x, p, stride=2)``.
    backward : callable
        ``backward(dout, cache) -> (dxs, grads)``: ``dxs`` is one array when
        there is one input, else a tuple with one array per input; ``grads`` a
        dict with the keys of ``params``.
    inputs : ndarray or sequence of ndarrays
        Named ``"x"`` (one input) or ``"x0"``, ``"x1"``, ... in the report.
    params : dict of ndarrays, optional
    eps : float
        Step of the centred difference ``(L(a + eps e) - L(a - eps e)) / (2 eps)``.
    rtol, atol : float
        An element passes when ``|analytic - numeric| <= max(rtol * max(|analytic|, |numeric|), atol)``,
        i.e. when its *relative error* ``|a - n| / max(|a|, |n|, atol / rtol)`` is at most ``rtol``.
        The ``atol / rtol`` floor keeps gradients that are zero up to round-off from failing.
    mode : {"full", "random"}
        ``"full"`` perturbs every element of every input and parameter
        (``2 * size`` forwards each, for small arrays); ``"random"`` checks the
        directional derivative ``<grad, v>`` along ``n_directions`` random unit
        vectors ``v`` per input/parameter (for large arrays).
    n_directions : int
        Directions per input/parameter in ``"random"`` mode (at most the
        array's size: more would test nothing new).
    seed : int
        Seeds ``R`` and the random directions.
    raise_on_failure : bool
        Raise :class:`GradcheckError` (an ``AssertionError``) with the report as
        message when a check fails; otherwise just return the report.

    Returns
    -------
    GradcheckReport
        Worst relative error overall and, per input/parameter, its worst
        element (or direction) with the analytic and numeric values there.

    Raises
    ------
    TypeError
        When ``forward`` / ``backward`` is not callable or returns something
        other than ``(out, cache)`` / ``(dx, grads)`` (the message names which
        and what it received), ``inputs`` is not an array or a non-empty
        sequence of them, ``params`` not a dict, an input or parameter not a
        floating array.
    ValueError
        An unknown ``mode``; ``eps``, ``rtol`` or ``atol`` not finite and > 0;
        ``n_directions < 1``; ``seed`` not an int >= 0; NaN/inf in an input or
        parameter.
    GradcheckError
        When a gradient is wrong and ``raise_on_failure`` is set.

    Notes
    -----
    Inputs and parameters are copied to float64 on their own device and
    perturbed there in place; only scalar objectives travel to the host.  The
    objective is ``L = sum(out * R)``, ``R ~ N(0, 1)`` fixed, so the backward is
    called with ``dout = R``.  Kinks (ReLU at 0, ties in a max-pool) make
    finite differences meaningless there: choose inputs away from them.
    """
    check_arguments(forward, backward, mode, eps, rtol, atol, n_directions, seed, raise_on_failure)
    single = hasattr(inputs, "shape")
    inputs, params = checked_arrays(inputs, params)
    xp = get_namespace(*inputs, *params.values())
    inputs = [a.astype(xp.float64, copy=True) for a in inputs]  # contiguous float64 copies
    params = {k: v.astype(xp.float64, copy=True) for k, v in params.items()}
    rng = np.random.default_rng(seed)

    out, cache = checked_forward(forward(*inputs, params))
    R = asarray(rng.standard_normal(np.shape(out)), xp=xp) if hasattr(out, "shape") else 1.0

    def output() -> Any:
        return forward(*inputs, params)[0]

    def difference(plus: Any, minus: Any) -> float:
        # L(+) - L(-) = sum((out(+) - out(-)) R): subtracting before summing keeps the
        # round-off of the many outputs a perturbation does not touch out of the result
        change = (plus - minus) * R
        return float(change.sum()) if hasattr(change, "sum") else float(change)

    dxs, grads = checked_backward(backward(R, cache), single, len(inputs))
    dxs = [dxs] if single else list(dxs)
    dxs += [None] * (len(inputs) - len(dxs))  # a missing input gradient is reported, not skipped
    grads = grads or {}

    # float64 copies of the gradients, taken before any input is perturbed
    # (a gradient of a non-real dtype is kept as it is, and reported below)
    def copy(g: Any) -> Any:
        if g is None or not hasattr(g, "shape"):
            return None
        return g.astype(xp.float64, copy=True) if np.dtype(g.dtype).kind in "biuf" else g

    names = ["x"] if single else [f"x{i}" for i in range(len(inputs))]
    targets = [(n, "input", a, copy(g)) for n, a, g in zip(names, inputs, dxs)]
    targets += [(k, "param", v, copy(grads.get(k))) for k, v in params.items()]

    report = GradcheckReport(mode=mode, eps=eps, rtol=rtol, atol=atol)
    check = _check_full if mode == "full" else _check_random
    for name, kind, a, g in targets:
        if g is None or tuple(g.shape) != tuple(a.shape) or g.dtype != np.float64:
            got = "no gradient" if g is None else f"gradient of shape {tuple(g.shape)}, dtype {g.dtype}"
            want = f"expected shape {tuple(a.shape)} of real numbers"
            report.entries.append(_failed_entry(name, kind, f"{got}, {want}"))
        else:
            report.entries.append(
                check(name, kind, a, g, output, difference, eps, rtol, atol, n_directions, rng, xp)
            )
    extra = sorted(set(grads) - set(params))
    if extra:
        note = "gradients for names that are not params"
        report.entries.append(_failed_entry(",".join(extra), "param", note))
    if raise_on_failure and not report.passed:
        raise GradcheckError(str(report))
    return report


def _failed_entry(name: str, kind: str, note: str) -> GradcheckEntry:
    """An entry that could not be checked (no gradient, wrong shape, unknown name)."""
    return GradcheckEntry(name, kind, float("inf"), None, float("nan"), float("nan"), 0, False, note)


def _check_full(
    name, kind, a, g, output, difference, eps, rtol, atol, n_directions, rng, xp
) -> GradcheckEntry:
    """Perturb every element of ``a`` in place, one at a time."""
    flat, g_flat = a.reshape(-1), g.reshape(-1)  # views: a is a contiguous copy
    worst = (-1.0, None, float("nan"), float("nan"))
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + eps
        plus = output()
        flat[i] = old - eps
        minus = output()
        flat[i] = old
        numeric, analytic = difference(plus, minus) / (2 * eps), float(g_flat[i])
        err = _relative_error(analytic, numeric, rtol, atol)
        if err > worst[0]:
            worst = (err, tuple(int(j) for j in np.unravel_index(i, a.shape)), analytic, numeric)
    err, where, analytic, numeric = worst
    return GradcheckEntry(name, kind, max(err, 0.0), where, analytic, numeric, int(flat.size), err <= rtol)


def _check_random(
    name, kind, a, g, output, difference, eps, rtol, atol, n_directions, rng, xp
) -> GradcheckEntry:
    """Directional derivatives ``<g, v>`` along at most ``a.size`` random unit vectors ``v``.

    More directions than elements test nothing new: the work is bounded by the array.
    """
    worst = (-1.0, None, float("nan"), float("nan"))
    original = a.copy()
    n_directions = min(n_directions, int(a.size))
    for d in range(n_directions):
        v = rng.standard_normal(a.shape)
        v = asarray(v / np.linalg.norm(v), xp=xp)
        a[...] = original + eps * v
        plus = output()
        a[...] = original - eps * v
        minus = output()
        a[...] = original
        numeric, analytic = difference(plus, minus) / (2 * eps), float((g * v).sum())
        err = _relative_error(analytic, numeric, rtol, atol)
        if err > worst[0]:
            worst = (err, d, analytic, numeric)
    err, where, analytic, numeric = worst
    return GradcheckEntry(name, kind, max(err, 0.0), where, analytic, numeric, n_directions, err <= rtol)
