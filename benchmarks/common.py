"""Small common runner for nlref benchmarks.

Every benchmark times nlref and a peer (scikit-image, OpenCV, PyTorch) *in the
same run*, on the same machine and data, and prints their ratio.  Timings are
the median of ``repeats`` runs after ``warmup`` runs; GPU work is synchronised
before the clock is read.  Peak memory is measured where it can be: NumPy via
tracemalloc, CuPy via its memory pool, PyTorch CUDA via
``torch.cuda.max_memory_allocated``, other peers via the process's peak RSS
(``ru_maxrss``) when the benchmark runs them in a subprocess (not done here).

Use::

    parser = bench_parser("what this measures")
    args = parser.parse_args()
    res = measure(lambda: f(x), xp=np, repeats=args.repeats)
    rows.append({"case": "...", "impl": "nlref", **res.as_row()})
    print_table(rows); write_json(args.json, {"rows": rows, "env": environment()})
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlref.backend import PeakMemory, backend_report, synchronize  # noqa: E402


@dataclass
class Result:
    """Timing (seconds) and peak memory (bytes, or None when not measured)."""

    median: float
    best: float
    times: list[float] = field(default_factory=list)
    peak_bytes: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "best_s": self.best,
            "peak_MiB": None if self.peak_bytes is None else self.peak_bytes / 2**20,
        }


def measure(
    fn: Callable[[], Any],
    *,
    xp: Any = np,
    warmup: int = 1,
    repeats: int = 5,
    memory: bool = True,
    sync: Callable[[], None] | None = None,
    peak: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> Result:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats``.

    Parameters
    ----------
    fn : callable
        The work to time; its result is discarded.
    xp : module
        ``numpy`` or ``cupy``: picks the synchronisation and memory tracker.
    sync : callable, optional
        Overrides the synchronisation (e.g. ``torch.cuda.synchronize``).
    peak : callable returning a context manager with a ``peak`` attribute, optional
        Overrides the memory tracker (e.g. for PyTorch).  Memory is measured in
        one extra, untimed call so that tracing does not slow the timed ones.
    """
    do_sync = sync if sync is not None else (lambda: synchronize(xp))
    for _ in range(warmup):
        fn()
    do_sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        do_sync()
        times.append(time.perf_counter() - t0)
    peak_bytes = None
    if memory:
        tracker = peak() if peak is not None else PeakMemory(xp)
        with tracker:
            fn()
            do_sync()
        peak_bytes = int(tracker.peak)
    return Result(median=statistics.median(times), best=min(times), times=times, peak_bytes=peak_bytes)


class TorchCudaPeak:
    """Peak CUDA memory of a PyTorch block (``torch.cuda.max_memory_allocated``)."""

    def __init__(self, torch: Any):
        self.torch = torch
        self.peak = 0

    def __enter__(self) -> TorchCudaPeak:
        self.torch.cuda.synchronize()
        self._base = self.torch.cuda.memory_allocated()
        self.torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.torch.cuda.synchronize()
        self.peak = max(0, self.torch.cuda.max_memory_allocated() - self._base)


def try_import(name: str) -> Any | None:
    """Import an optional peer (cv2, torch, cupy via nlref.backend); None if absent."""
    try:
        return __import__(name)
    except Exception:
        return None


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` or None when either is missing."""
    if value is None or reference in (None, 0):
        return None
    return value / reference


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.1f}"
        if abs(v) >= 1:
            return f"{v:.3g}"
        return f"{v:.3g}"
    return str(v)


def format_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Rows of dicts as a GitHub-flavoured markdown table."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    columns = list(columns)
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(columns), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(row) for row in cells]
    return "\n".join(out)


def print_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> None:
    print(format_table(rows, columns), flush=True)


def environment() -> dict[str, Any]:
    """Machine and library versions recorded with every result file."""
    env = backend_report()
    env["cpu_count"] = os.cpu_count()
    env["machine"] = platform.machine()
    for peer in ("cv2", "torch"):
        mod = try_import(peer)
        env[peer] = getattr(mod, "__version__", None) if mod else None
    return env


def write_json(path: str | os.PathLike | None, payload: dict[str, Any]) -> None:
    """Write results as JSON (atomically) when a path is given."""
    if not path:
        return
    from nlref.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}")


def bench_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument(
        "--backend",
        choices=["auto", "numpy", "cupy"],
        default="auto",
        help="nlref backend(s) to time: auto = numpy, plus cupy when a GPU is present",
    )
    return p


def backends_from(arg: str) -> list[Any]:
    """The array namespaces selected by ``--backend``."""
    from nlref.backend import available_backends, namespace_by_name

    names = available_backends() if arg == "auto" else [arg]
    return [namespace_by_name(n) for n in names]


__all__ = [
    "Result",
    "measure",
    "TorchCudaPeak",
    "try_import",
    "ratio",
    "format_table",
    "print_table",
    "environment",
    "write_json",
    "bench_parser",
    "backends_from",
    "asdict",
]
