"""Command-line interface: ``nlref info | bench | denoise | train | ablate``.

The face of nlref: it imports the library, the library never imports it.
``info`` and ``bench`` live here; every other subcommand lives in its own
module of this package and registers itself through ``register(subparsers)``,
which returns nothing and sets ``func`` on its parser:

* :mod:`nlref.cli.denoise` -- ``nlref denoise`` (with :mod:`nlref.cli.stream`,
  the larger-than-memory path, and :mod:`nlref.cli.options`, shared by both);
* ``nlref.cli.train`` -- ``nlref train`` and ``nlref ablate`` (skipped when absent).

Exit status: 0 on success; 2 when the command line asks for something that
cannot be done, found before any work (bad option values, a missing input, an
existing output without ``--overwrite``, an output folder that does not exist,
an output format that cannot hold the image); 1 when the system refuses during
the work (permission denied, disk full, an I/O error); 130 on Ctrl-C.  Errors
are printed as one line, ``nlref: error: ...``, naming the path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..backend import backend_report
from ..notebooks import source_folder, where_to_find

__all__ = ["build_parser", "main", "benchmarks_dir", "list_benchmarks"]

# Modules that contribute subcommands through ``register(subparsers)``.
_SUBCOMMAND_MODULES = ("nlref.cli.denoise", "nlref.cli.train", "nlref.cli.train_denoiser")
# The subcommands each module adds: ``nlref denoise`` builds only its own parser, so denoising (the learned
# denoiser included) never imports the training chapter.
_COMMANDS = {
    "nlref.cli.denoise": ("denoise",),
    "nlref.cli.train": ("train", "ablate"),
    "nlref.cli.train_denoiser": ("train-denoiser",),
}
# Errors that mean "this request cannot be done" (exit status 2); other OSErrors are failures (1).
_USAGE_ERRORS = (
    ValueError,
    TypeError,
    RuntimeError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)


def benchmarks_dir() -> Path | None:
    """The source tree's ``benchmarks/`` folder (beside the package, else in the current folder), or None.

    None for a wheel-installed nlref run outside a source tree: the wheel holds only the package.
    """
    return source_folder("benchmarks", "bench_*.py")


def list_benchmarks() -> dict[str, Path]:
    """Map benchmark name (``bench_nlm.py`` -> ``nlm``) to its script path."""
    d = benchmarks_dir()
    if d is None:
        return {}
    return {p.stem[len("bench_") :]: p for p in sorted(d.glob("bench_*.py"))}


def _cmd_info(args: argparse.Namespace) -> int:
    report = backend_report()
    report["nlref"] = __version__
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            print(f"{key:>14}: {value}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    benches = list_benchmarks()
    if args.name is None or args.name not in benches:
        if not benches:
            print(f"nlref: error: {where_to_find('benchmarks')}", file=sys.stderr)
            return 2
        if args.name is not None:
            print(f"unknown benchmark {args.name!r}", file=sys.stderr)
        print("available benchmarks (run: nlref bench NAME [ARGS...]):")
        for name, path in benches.items():
            print(f"  {name:<12} {path}")
        return 0 if args.name is None else 2
    path = benches[args.name]
    sys.argv = [str(path), *args.bench_args]
    sys.path.insert(0, str(path.parent))
    runpy.run_path(str(path), run_name="__main__")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``nlref`` argument parser with every available subcommand (only ``command``'s, when given)."""
    parser = argparse.ArgumentParser(
        prog="nlref",
        description="Non-local means and non-local neural networks on NumPy/CuPy.",
        epilog="exit status: 0 done; 2 a request that cannot be done, found before any work; "
        "1 a failure during the work (permission denied, disk full); 130 interrupted (Ctrl-C)",
    )
    parser.add_argument("--version", action="version", version=f"nlref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_info = sub.add_parser("info", help="print versions, backends and GPU details")
    p_info.add_argument("--json", action="store_true", help="print the report as JSON")
    p_info.set_defaults(func=_cmd_info)

    names = ", ".join(list_benchmarks()) or "none here: " + where_to_find("benchmarks")
    p_bench = sub.add_parser(
        "bench",
        help="run a benchmark from benchmarks/",
        description=f"Run a benchmark script from benchmarks/. Available: {names}.",
    )
    p_bench.add_argument("name", nargs="?", help=f"benchmark name ({names})")
    p_bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p_bench.set_defaults(func=_cmd_bench)

    for modname in _SUBCOMMAND_MODULES:
        if command is not None and command not in _COMMANDS.get(modname, (command,)):
            continue
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # that part of nlref is not built yet
                continue
            raise
        module.register(sub)
    return parser


def _error_line(exc: BaseException) -> str:
    """``nlref: error: ...``, with the file named when the library put it only in ``exc.filename``."""
    message = str(exc)
    filename = getattr(exc, "filename", None)
    if filename is not None and str(filename) not in message:
        message = f"{message}: {filename}"
    return f"nlref: error: {message}"


def _interrupt_line(exc: KeyboardInterrupt) -> str:
    """The one line of an interrupt: the early handler's (nlref._entry), a signal before the training
    loop started, Ctrl-C elsewhere, or none when the training loop already printed its own
    "stopped by ... after step N" / "interrupted after step N" line."""
    if hasattr(exc, "line"):
        return exc.line
    if getattr(exc, "reported", False):
        return ""
    if hasattr(exc, "signum"):
        return "stopped before the first step; nothing to save"
    return "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlref`` console script; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    known = {c for commands in _COMMANDS.values() for c in commands}
    parser = build_parser(first if first in known else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        line = _interrupt_line(exc)
        if line:
            print(line, file=sys.stderr, flush=True)
        return getattr(exc, "exit_code", 130)  # TrainingInterrupted: 128 + the signal (143 for SIGTERM)
    except _USAGE_ERRORS as exc:
        print(_error_line(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(_error_line(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
