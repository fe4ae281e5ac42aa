"""Command-line interface: ``nlref info | bench | denoise | train | ablate``.

Each subcommand lives beside the code it drives and registers itself here
through a ``register(subparsers)`` function that returns nothing and sets
``func`` on its parser; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__

# Modules that contribute subcommands through ``register(subparsers)``.
_SUBCOMMAND_MODULES = ("nlref.denoise.cli", "nlref.cli_train")


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder (beside the ``nlref`` package)."""
    return Path(__file__).resolve().parent.parent / "benchmarks"


def list_benchmarks() -> dict[str, Path]:
    """Map benchmark name (``bench_nlm.py`` -> ``nlm``) to its script path."""
    d = benchmarks_dir()
    if not d.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(d.glob("bench_*.py"))}


def _cmd_info(args: argparse.Namespace) -> int:
    from .backend import backend_report

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
    import runpy

    benches = list_benchmarks()
    if args.name is None or args.name not in benches:
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


def build_parser() -> argparse.ArgumentParser:
    """The ``nlref`` argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="nlref",
        description="Non-local means and non-local neural networks on NumPy/CuPy.",
    )
    parser.add_argument("--version", action="version", version=f"nlref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_info = sub.add_parser("info", help="print versions, backends and GPU details")
    p_info.add_argument("--json", action="store_true", help="print the report as JSON")
    p_info.set_defaults(func=_cmd_info)

    names = ", ".join(list_benchmarks()) or "none found"
    p_bench = sub.add_parser(
        "bench",
        help="run a benchmark from benchmarks/",
        description=f"Run a benchmark script from benchmarks/. Available: {names}.",
    )
    p_bench.add_argument("name", nargs="?", help=f"benchmark name ({names})")
    p_bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p_bench.set_defaults(func=_cmd_bench)

    for modname in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # that part of nlref is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlref`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"nlref: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
