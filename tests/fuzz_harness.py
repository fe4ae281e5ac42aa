"""Counting harness of the fuzz suite (``tests/test_fuzz_*.py``).

Every call of a public function made by a fuzz test goes through :func:`attempt`,
which classifies it into exactly one outcome and counts it per API:

* ``correct`` -- it returned, and the test's oracle comparison passed (the test
  calls :meth:`Attempt.correct` after its assertions);
* ``clear_error`` -- a one-line ``ValueError``/``TypeError`` (or another type the
  test allows, e.g. ``FileNotFoundError``) raised by nlref's own code;
* ``unclear_error`` -- any other exception, a multi-line or empty message, or one
  raised from inside NumPy, SciPy, zipfile, ... (the test fails);
* ``non_finite`` -- a float result holding NaN/inf (the test fails);
* ``hang`` -- the call ran past :data:`HANG_SECONDS` (the test fails).

The counts live in this module (one copy per pytest worker); ``tests/conftest.py``
prints them at the end of a run and, when ``NLREF_FUZZ_COUNTS`` names a folder,
writes them there as JSON (one file per worker) to be summed.
"""

from __future__ import annotations

import collections
import json
import math
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import nlref

OUTCOMES = ("correct", "clear_error", "unclear_error", "non_finite", "hang")
HANG_SECONDS = 60.0
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
PACKAGE = str(Path(nlref.__file__).resolve().parent)
TRIED = "tried"


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _raised_by_nlref(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE)


def is_clear(exc: BaseException, allowed: tuple[type, ...] = (ValueError, TypeError)) -> bool:
    """One-line message of an allowed type, raised by nlref itself (not deep inside a dependency)."""
    message = str(exc)
    return (
        isinstance(exc, allowed) and bool(message.strip()) and "\n" not in message and _raised_by_nlref(exc)
    )


def finite(value: Any) -> bool:
    """Every float in ``value`` (array, scalar, tuple/list/dict of them) is finite."""
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.isfinite(value).all())
    return True


@dataclass
class Attempt:
    """The outcome of one call: ``value`` when it returned, ``error`` when it raised clearly."""

    api: str
    value: Any = None
    error: BaseException | None = None

    def correct(self) -> None:
        """Count a returned value that the test has checked against its oracle."""
        assert self.error is None
        COUNTS[self.api]["correct"] += 1

    def clear_error(self) -> None:
        """Count a returned refusal the test has checked (an exit status with one error line)."""
        assert self.error is None
        COUNTS[self.api]["clear_error"] += 1


def _fail(api: str, outcome: str, message: str) -> None:
    COUNTS[api][outcome] += 1
    raise AssertionError(f"{api}: {outcome}: {message}")


def attempt(
    api: str,
    fn: Any,
    *args: Any,
    allowed: tuple[type, ...] = (ValueError, TypeError),
    must_fail: bool = False,
    finite_result: bool = True,
    finite_part: Any = None,
    **kwargs: Any,
) -> Attempt:
    """Call ``fn(*args, **kwargs)``, classify and count the outcome (see the module docstring).

    ``must_fail``: the input is invalid (NaN, wrong type, ...), so only a clear
    error is acceptable.  ``finite_result=False`` skips the finiteness check
    (for functions whose documented result may be infinite, e.g. PSNR of
    identical images); ``finite_part`` picks what must be finite from the
    result (e.g. ``out`` of an nn layer's ``(out, cache)``, not the cache).
    """
    COUNTS[api][TRIED] += 1
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        value = fn(*args, **kwargs)
    except _Hang:
        _fail(api, "hang", f"no answer within {HANG_SECONDS} s")
    except Exception as exc:
        if is_clear(exc, allowed):
            COUNTS[api]["clear_error"] += 1
            return Attempt(api, error=exc)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        _fail(
            api, "unclear_error", f"{type(exc).__name__}: {exc!s} (raised at {where.filename}:{where.lineno})"
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if must_fail:
        _fail(api, "unclear_error", f"an invalid input was accepted and returned {type(value).__name__}")
    if finite_result and not finite(value if finite_part is None else finite_part(value)):
        _fail(api, "non_finite", "a NaN/inf result")
    return Attempt(api, value=value)


def table(counts: dict[str, collections.Counter]) -> str:
    """The counts as a Markdown table, one row per API."""
    head = "| API | tried | " + " | ".join(OUTCOMES) + " |"
    rows = [head, "|" + " --- |" * (len(OUTCOMES) + 2)]
    for api in sorted(counts):
        c = counts[api]
        rows.append(f"| {api} | {c[TRIED]} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    return "\n".join(rows)


def merged(folder: str) -> dict[str, collections.Counter]:
    """The counts a run with ``NLREF_FUZZ_COUNTS=folder`` wrote, summed over the pytest workers."""
    total: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for path in sorted(Path(folder).glob("counts-*.json")):
        for api, counts in json.loads(path.read_text()).items():
            total[api].update(counts)
    return total


if __name__ == "__main__":  # python tests/fuzz_harness.py FOLDER: the table of a thorough run
    import sys

    print(table(merged(sys.argv[1])))
