"""``nlref train`` and ``nlref ablate``: the video networks from the command line.

``nlref train --preset tiny-nl-c2d --out runs/nl`` trains a network on the
synthetic long-range task (:mod:`nlref.nn.train`), writing checkpoints and
metrics; Ctrl-C saves a checkpoint and ``--resume`` continues from it.
``nlref ablate [OPTIONS]`` runs ``benchmarks/ablation.py`` (the paper's Table 2
at teaching scale; ``nlref ablate --help`` lists its options).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from typing import Any

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
    from .train import get_preset, load_config, train

    overrides = _parse_set(args.set)
    for key in ("steps", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.config:
        cfg, name = load_config(args.config, **overrides), args.config.rsplit("/", 1)[-1].removesuffix(".json")
    else:
        cfg, name = get_preset(args.preset, **overrides), args.preset
    out = args.out or f"runs/{name}"
    print(f"training {cfg.arch} ({cfg.layout}, width {cfg.width}, {cfg.nl_blocks} non-local) for {cfg.steps} steps "
          f"on {args.backend}; checkpoints and metrics in {out}/")
    result = train(cfg, out_dir=out, resume=args.resume, backend=args.backend, progress=not args.no_progress)
    if result["metrics"]:
        last = result["metrics"][-1]
        print(f"step {last['step']}: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, "
              f"val accuracy {last['val_accuracy']:.3f}")
    return 0


def _load_ablation() -> Any:
    """``benchmarks/ablation.py`` as a module, or None outside a repository checkout."""
    from ..cli import benchmarks_dir

    path = benchmarks_dir() / "ablation.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("nlref_ablation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cmd_ablate(args: argparse.Namespace) -> int:
    module = _load_ablation()
    if module is None:
        raise FileNotFoundError("nlref ablate needs the repository's benchmarks/ablation.py, which is not here")
    return module.execute(args)


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``ablate`` subcommands to ``nlref``'s parser."""
    from .train import PRESETS

    p = subparsers.add_parser(
        "train", help="train a C2D/I3D/non-local network on the synthetic video task",
        description="Train a video network on the synthetic long-range task. Presets: " + ", ".join(PRESETS) + ".",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="tiny-nl-c2d", choices=sorted(PRESETS), help="named configuration")
    src.add_argument("--config", help="JSON file of TrainConfig fields (may name a \"preset\" to start from)")
    p.add_argument("--out", help="folder for checkpoint.npz, metrics.csv, metrics.json (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--steps", type=int, help="override the number of training steps")
    p.add_argument("--seed", type=int, help="override the seed (initialisation and data)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set width=16 --set nl_mode=dot_product")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    module = _load_ablation()
    a = subparsers.add_parser(
        "ablate", parents=[module.build_parser(add_help=False)] if module is not None else [],
        help="the paper's Table 2 ablations at teaching scale (benchmarks/ablation.py)",
        description="Teaching-scale reproduction of Table 2 of Non-local Neural Networks "
                    "(benchmarks/ablation.py): writes ablation.md, ablation.json and ablation.png into --out.",
    )
    a.set_defaults(func=_cmd_ablate)
