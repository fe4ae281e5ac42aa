"""``nlref train`` and ``nlref ablate``: the video networks from the command line.

``nlref train --preset tiny-nl-c2d --out runs/nl`` trains a network on the
synthetic long-range task (:func:`nlref.nn.train.train`), writing checkpoints
and metrics; Ctrl-C or SIGTERM saves a checkpoint (exit 130 / 143) and
``--resume`` continues from it.  ``nlref ablate [OPTIONS]`` runs the paper's
Table 2 at teaching scale (:mod:`nlref.nn.train.ablation`) and writes
data/figures/ablation_cpu.md (.json, _<part>.png; ablation_gpu.* with
``--backend cupy``); ``--quick`` writes under data/out/ablation_quick/ only.

A face module: it imports the library, the library never imports it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..io import atomic_path
from ..nn.train import (
    LONG_FRAMES,
    PRESETS,
    TrainingInterrupted,
    ablation_config,
    get_preset,
    load_config,
    markdown,
    run_ablation,
    select_rows,
    train,
    write_results,
)

__all__ = ["register"]


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, received {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string, e.g. --set nl_mode=dot_product
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    overrides = _parse_set(args.set)
    for key in ("steps", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.config:
        cfg, name = load_config(args.config, **overrides), Path(args.config).stem
    else:
        cfg, name = get_preset(args.preset, **overrides), args.preset
    out = args.out or f"runs/{name}"
    print(
        f"training {cfg.arch} ({cfg.layout}, width {cfg.width}, {cfg.nl_blocks} non-local) for "
        f"{cfg.steps} steps on {args.backend}; checkpoints and metrics in {out}/",
        flush=True,
    )
    try:
        train(cfg, out_dir=out, resume=args.resume, backend=args.backend, progress=not args.no_progress)
    except TrainingInterrupted as exc:  # SIGTERM: train() saved the checkpoint and said so
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _ablate_out(args: argparse.Namespace) -> tuple[Path, str]:
    """Folder and file prefix: measured runs beside the README's figures, quick runs under data/out/."""
    prefix = args.prefix or ("ablation_gpu" if args.backend == "cupy" else "ablation_cpu")
    if args.quick:
        out = Path(args.out or "data/out/ablation_quick")
        if out.resolve() == Path("data/figures").resolve():
            raise ValueError("--quick results are smoke tests, not results: --out must not be data/figures")
        return out, args.prefix or "ablation_quick"
    return Path(args.out or "data/figures"), prefix


def _cache(out: Path, prefix: str, resume: bool) -> Path:
    """``OUT/PREFIX.runs.json``: the finished runs while the ablation is on (removed once results are out).

    ``--resume`` continues from it, or from the runs of a finished ``OUT/PREFIX.json``
    (e.g. to add parts or seeds); without ``--resume`` nothing old is reused.
    """
    path = out / f"{prefix}.runs.json"
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        path.unlink(missing_ok=True)
    elif not path.exists() and (out / f"{prefix}.json").exists():
        runs = json.loads((out / f"{prefix}.json").read_text())["runs"]
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(runs))
    return path


def _command_line(args: argparse.Namespace) -> str:
    """The ``nlref ablate`` command that reproduces ``args`` (options left at their defaults omitted)."""
    words = ["nlref ablate"] + (["--quick"] if args.quick else [])
    for name in ("parts", "models", "seeds", "max_seeds", "steps", "width", "size", "batch_size", "n_val"):
        value, default = getattr(args, name), _ABLATE_DEFAULTS.get(name)
        if value is not None and value != default:
            words.append(
                f"--{name.replace('_', '-')} {value!r}"
                if name == "models"
                else f"--{name.replace('_', '-')} {value}"
            )
    for name in ("optimizer", "lr", "backend", "jobs"):
        if getattr(args, name) not in (None, _ABLATE_DEFAULTS.get(name)):
            words.append(f"--{name} {getattr(args, name)}")
    return " ".join(words)


_ABLATE_DEFAULTS = dict(parts="acdfliw", seeds=3, max_seeds=5, backend="numpy", jobs=1)


def _cmd_ablate(args: argparse.Namespace) -> int:
    rows = select_rows(args.parts, args.models)
    out, prefix = _ablate_out(args)
    base = ablation_config(
        quick=args.quick,
        width=args.width,
        size=args.size,
        steps=args.steps,
        batch_size=args.batch_size,
        n_val=args.n_val,
        optimizer=args.optimizer,
        lr=args.lr,
    )
    cache = _cache(out, prefix, args.resume)
    result = run_ablation(
        base,
        rows,
        seeds=args.seeds,
        max_seeds=max(args.max_seeds, args.seeds),
        backend=args.backend,
        jobs=args.jobs,
        quick=args.quick,
        cache=cache,
    )
    result["command"] = _command_line(args)
    result["long_frames"] = LONG_FRAMES
    paths = write_results(result, out, prefix)
    cache.unlink(missing_ok=True)  # its runs are in PREFIX.json now
    print(markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"wall time {result['seconds']:.0f} s", flush=True)
    return 0


def _add_train_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a C2D/I3D/non-local network on the synthetic video task",
        description="Train a video network on the synthetic long-range task. Presets: "
        + ", ".join(PRESETS)
        + ". Ctrl-C / SIGTERM save a checkpoint (exit 130 / 143); --resume continues from it.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="tiny-nl-c2d", choices=sorted(PRESETS), help="named configuration")
    src.add_argument("--config", help='JSON file of TrainConfig fields (may name a "preset" to start from)')
    p.add_argument("--out", help="folder for checkpoint.npz, metrics.csv, metrics.json (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz (must exist)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--steps", type=int, help="override the number of training steps")
    p.add_argument("--seed", type=int, help="override the seed (initialisation and data)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set width=16 --set nl_mode=dot_product",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (one line per evaluation is still printed)",
    )
    p.set_defaults(func=_cmd_train)


def _add_ablate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="the paper's Table 2 ablations at teaching scale",
        description="Teaching-scale reproduction of Table 2 of Non-local Neural Networks "
        "(nlref.nn.train.ablation): writes PREFIX.md, PREFIX.json and PREFIX_<part>.png into --out "
        "(default data/figures/ablation_cpu.*; --quick: data/out/ablation_quick/).",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny nets, few steps (CI smoke test, ~1 min on a CPU)"
    )
    p.add_argument("--parts", default="acdfliw", help="ablations to run, any of 'acdfliw' (default all)")
    p.add_argument("--models", default=None, help="comma-separated row labels to keep, e.g. 'C2D,NL C2D'")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3)")
    p.add_argument(
        "--max-seeds",
        dest="max_seeds",
        type=int,
        default=5,
        help="seeds where the std exceeds 0.05 (default 5)",
    )
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--width", type=int, default=None, help="network width w")
    p.add_argument("--size", type=int, default=None, help="frame size (pixels)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--n-val", dest="n_val", type=int, default=None, help="held-out clips")
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adam"],
        default=None,
        help="default: the tiny presets' recipe; sgd: momentum 0.9, wd 1e-4, step at 3/4; adam: lr 1e-3",
    )
    p.add_argument("--lr", type=float, default=None, help="override the learning rate")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (CPU: one per core)")
    p.add_argument("--out", default=None, help="results folder (default data/figures; --quick: data/out/...)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished runs of OUT/PREFIX.runs.json (interrupted run)",
    )
    p.add_argument("--prefix", default=None, help="file prefix (default ablation_cpu / ablation_gpu)")
    p.set_defaults(func=_cmd_ablate)


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``ablate`` subcommands to ``nlref``'s parser."""
    _add_train_parser(subparsers)
    _add_ablate_parser(subparsers)
