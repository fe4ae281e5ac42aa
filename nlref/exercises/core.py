"""What every checker shares: the result, the comparison, and the blank that is not written yet.

A checker calls the learner's function on small seeded inputs, compares what it returns with
the library's answer (an oracle or :func:`nlref.gradcheck.gradcheck`) and prints one line.  A
function that still raises ``NotImplementedError`` (the blank of a notebook) is not an error:
the checker prints where the library's answer lives and returns a result that did not pass, so
that a notebook with its blanks still runs from top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy

__all__ = [
    "ExerciseResult",
    "check_callable",
    "compare",
    "compare_all",
    "from_gradcheck",
    "finish",
    "not_implemented",
    "run_checker",
]


@dataclass(frozen=True)
class ExerciseResult:
    """The outcome of one checker.

    Attributes
    ----------
    exercise : str
        The checker's name (``"check_nlm_weight"``).
    passed : bool
    output : str
        Which output (or gradient) the worst entry belongs to; ``""`` when nothing was compared.
    worst_index : tuple of int or None
        Index of the worst entry in that output (None when nothing was compared).
    got, expected : float or None
        The learner's value and the library's there.
    message : str
        The line the checker printed.
    """

    exercise: str
    passed: bool
    output: str
    worst_index: tuple[int, ...] | None
    got: float | None
    expected: float | None
    message: str

    def __str__(self) -> str:
        return self.message


def check_callable(fn: Any, exercise: str) -> None:
    """One-line ``TypeError`` when the learner passed something that is not a function."""
    if not callable(fn):
        raise TypeError(
            f"{exercise} needs your function (a callable), received {type(fn).__name__}: "
            "pass the function itself, without calling it"
        )


def compare(output: str, got: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-9) -> dict:
    """Compare one output with the library's, entry by entry.

    An entry passes when ``|got - expected| <= atol + rtol |expected|`` (NaN or inf where the
    library is finite never passes).  Returns the worst entry as a dict with keys ``passed``,
    ``output``, ``index``, ``got``, ``expected`` and ``note`` (why it failed, when it failed
    before any entry could be compared: a shape that does not match).
    """
    expected = np.asarray(to_numpy(expected), dtype=np.float64)
    if got is None:
        return dict(
            passed=False, output=output, index=None, got=None, expected=None, note="is missing (None)"
        )
    try:
        got = np.asarray(to_numpy(got), dtype=np.float64)
    except (TypeError, ValueError):
        note = f"returned {type(got).__name__}, expected an array of shape {expected.shape}"
        return dict(passed=False, output=output, index=None, got=None, expected=None, note=note)
    if got.shape != expected.shape:
        note = f"returned shape {got.shape}, expected {expected.shape}"
        return dict(passed=False, output=output, index=None, got=None, expected=None, note=note)
    with np.errstate(invalid="ignore"):
        excess = np.abs(got - expected) / (atol + rtol * np.abs(expected))
    excess = np.where(np.isfinite(got), excess, np.inf)
    flat = int(np.argmax(excess)) if excess.size else 0
    index = tuple(int(i) for i in np.unravel_index(flat, got.shape)) if excess.size else ()
    worst = float(excess.flat[flat]) if excess.size else 0.0
    return dict(
        passed=worst <= 1.0,
        output=output,
        index=index,
        got=float(got[index]) if excess.size else None,
        expected=float(expected[index]) if excess.size else None,
        note="",
    )


def compare_all(pairs: list[tuple[str, Any, Any]], **tolerances: float) -> dict:
    """:func:`compare` on each ``(output, got, expected)``: the first that fails, else the last (with
    a ``detail`` saying how many agreed)."""
    found = None
    for output, got, expected in pairs:
        found = compare(output, got, expected, **tolerances)
        if not found["passed"]:
            return found
    return {**found, "detail": f"{len(pairs)} outputs compared, all agree with the library's answer"}


def from_gradcheck(report: Any, names: dict[str, str]) -> dict:
    """The worst entry of a :class:`nlref.gradcheck.GradcheckReport` as a :func:`compare` dict.

    ``names`` renames gradcheck's ``"x0"``, ``"x1"``... to the learner's names (``"dtheta"``).
    ``got`` is the learner's (analytic) gradient there, ``expected`` the finite difference.
    """
    e = report.worst
    where = e.where if isinstance(e.where, tuple) else (e.where,)
    return dict(
        passed=bool(report.passed),
        output=names.get(e.name, e.name),
        index=tuple(int(i) for i in where) if not e.note else None,
        got=None if e.note else float(e.analytic),
        expected=None if e.note else float(e.numeric),
        note=e.note,
        detail=f"every element agrees with finite differences, worst relative error {report.worst_error:.1e}",
    )


def finish(exercise: str, found: dict, hint: str = "") -> ExerciseResult:
    """Print the one line of a comparison (:func:`compare`) and return it as an :class:`ExerciseResult`."""
    index = found["index"]
    where = found["output"] + (f"[{', '.join(map(str, index))}]" if index else "")
    if found["passed"]:
        line = f"{exercise}: passed ({found.get('detail', 'agrees with the library')})"
    elif found["note"]:
        line = f"{exercise}: FAILED: {found['output']} {found['note']}"
    else:
        got, expected = found["got"], found["expected"]
        line = f"{exercise}: FAILED at {where}: got {got:.6g}, expected {expected:.6g}"
        line += f" (off by {got - expected:.2g})" if np.isfinite(got) else " (not finite)"
    if hint and not found["passed"]:
        line += f" ({hint})"
    print(line)
    return ExerciseResult(
        exercise=exercise,
        passed=bool(found["passed"]),
        output=found["output"],
        worst_index=found["index"],
        got=found["got"],
        expected=found["expected"],
        message=line,
    )


def not_implemented(exercise: str, answer: str) -> ExerciseResult:
    """The blank still raises ``NotImplementedError``: say where the library's answer is."""
    line = f"not implemented yet: the library's answer is {answer}"
    print(line)
    return ExerciseResult(
        exercise=exercise, passed=False, output="", worst_index=None, got=None, expected=None, message=line
    )


def run_checker(exercise: str, answer: str, fn: Any, check: Callable[[], ExerciseResult]) -> ExerciseResult:
    """Validate ``fn``, run ``check()``; a ``NotImplementedError`` from the blank becomes a result."""
    check_callable(fn, exercise)
    try:
        return check()
    except NotImplementedError:
        return not_implemented(exercise, answer)
