"""Table 2 of *Non-local Neural Networks* (Wang et al., CVPR 2018) at teaching scale.

Trains tiny C2D / I3D / non-local networks (:mod:`nlref.nn.models`, layout
"tiny") on the synthetic same-or-different-colour task
(:mod:`nlref.data.synthetic_video`), where the label depends on two marks
further apart in time than C2D's receptive field, and reports the held-out
accuracy, mean +- std over seeds, for four of the paper's ablations:

* (a) C2D vs one non-local block of each instantiation;
* (c) 1 / 5 / 10 blocks (at depth (1, 2, 2) the placement rules give 1 / 2 / 4 blocks);
* (d) space-only vs time-only vs spacetime attention;
* (f) C2D vs I3D vs NL C2D vs NL I3D.

Writes ``ablation.md`` (tables), ``ablation.json`` (every run, every metric)
and ``ablation.png`` (accuracy with error bars) into ``--out``.

Usage::

    python benchmarks/ablation.py --quick                 # CI smoke test, about a minute on a CPU
    python benchmarks/ablation.py --backend cupy          # full: one GPU
    python benchmarks/ablation.py --parts f --models "C2D,NL C2D" --seeds 3 --steps 600 --size 16
    nlref ablate --quick                                  # the same through the CLI
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlref.io import atomic_path  # noqa: E402
from nlref.nn.train import get_preset, train_summary  # noqa: E402

# Kinetics-400 top-1 of the paper's Table 2 (ResNet-50), for reference beside ours.
PAPER = {
    "C2D": 71.8, "NL Gaussian": 72.5, "NL embedded Gaussian": 72.7, "NL dot product": 72.9,
    "NL concatenation": 72.8, "1 block": 72.7, "5 blocks": 73.8, "10 blocks": 74.3,
    "space-only": 72.9, "time-only": 73.1, "spacetime": 73.8, "I3D": 73.3, "NL C2D": 73.8, "NL I3D": 74.9,
}
NL = dict(nl_blocks=1)
# part -> [(row label, config overrides)]
PARTS: dict[str, list[tuple[str, dict]]] = {
    "a": [("C2D", {}), ("NL Gaussian", dict(NL, nl_mode="gaussian")),
          ("NL embedded Gaussian", dict(NL, nl_mode="embedded_gaussian")),
          ("NL dot product", dict(NL, nl_mode="dot_product")), ("NL concatenation", dict(NL, nl_mode="concatenation"))],
    "c": [("1 block", dict(nl_blocks=1, depth=[1, 2, 2])), ("5 blocks", dict(nl_blocks=5, depth=[1, 2, 2])),
          ("10 blocks", dict(nl_blocks=10, depth=[1, 2, 2]))],
    "d": [("space-only", dict(NL, nl_space_time="space")), ("time-only", dict(NL, nl_space_time="time")),
          ("spacetime", dict(NL, nl_space_time="spacetime"))],
    "f": [("C2D", {}), ("I3D", dict(arch="i3d")), ("NL C2D", NL), ("NL I3D", dict(NL, arch="i3d"))],
}
TITLES = {"a": "(a) instantiations, 1 block", "c": "(c) number of blocks", "d": "(d) space vs time vs spacetime",
          "f": "(f) C2D vs I3D"}


def _base_config(args: argparse.Namespace):
    if args.quick:  # seconds per run on a CPU: shows the pipeline, not the findings
        base = dict(width=4, size=16, batch_size=8, steps=6, eval_every=6, n_val=16)
    else:  # 1000 steps of batch 32 on 3 x 16 x 32 x 32 clips, w = 8 (PAPER_NOTES setting)
        base = dict(width=8, size=32, batch_size=32, steps=1000, eval_every=250, n_val=512)
    for key in ("width", "size", "steps", "batch_size", "n_val"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    base["eval_every"] = min(base["eval_every"], base["steps"])
    if args.optimizer == "adam":  # PAPER_NOTES: Adam lr 1e-3, constant
        base.update(optimizer="adam", lr=1e-3, weight_decay=0.0, lr_step=0)
    else:  # the paper's recipe: SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 after 3/4 of the steps
        base.update(optimizer="sgd", lr=0.1, weight_decay=1e-4, lr_step=max(1, 3 * base["steps"] // 4))
    if args.lr is not None:
        base["lr"] = args.lr
    return get_preset("tiny-c2d", **base)


def _runs(args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """(part, label, overrides) for the selected parts and models."""
    keep = None if not args.models else {m.strip() for m in args.models.split(",")}
    return [(part, label, kw) for part in args.parts for label, kw in PARTS[part] if keep is None or label in keep]


def _key(cfg) -> str:
    return json.dumps(cfg, sort_keys=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = _base_config(args)
    seeds = list(range(args.seeds))
    runs = _runs(args)
    unique: dict[str, Any] = {}  # identical configs (C2D in (a) and (f)) train once per seed
    for _, _, kw in runs:
        for s in seeds:
            cfg = base.replace(**kw, seed=s)
            unique.setdefault(_key(cfg.__dict__), cfg)
    print(f"{len(unique)} training runs ({len(seeds)} seeds), {base.steps} steps each, backend {args.backend}",
          flush=True)
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    if args.jobs > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"  # one BLAS thread per worker process
        with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(train_summary, cfg, backend=args.backend): key for key, cfg in unique.items()}
            for fut in cf.as_completed(futures):
                results[futures[fut]] = r = fut.result()
                print(f"  done {len(results)}/{len(unique)}: val acc {r['val_accuracy']:.3f} "
                      f"({r['seconds']:.0f} s)", flush=True)
    else:
        from tqdm.auto import tqdm

        for key, cfg in tqdm(unique.items(), desc="ablation", unit="run"):
            results[key] = train_summary(cfg, backend=args.backend)
    rows = []
    for part, label, kw in runs:
        accs = [results[_key(base.replace(**kw, seed=s).__dict__)]["val_accuracy"] for s in seeds]
        times = [results[_key(base.replace(**kw, seed=s).__dict__)]["step_s"] for s in seeds]
        rows.append({"part": part, "model": label, "mean": statistics.mean(accs),
                     "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accuracies": accs,
                     "step_s": statistics.mean(times), "paper_top1": PAPER.get(label)})
    return {"rows": rows, "runs": list(results.values()), "base_config": base.__dict__, "seeds": seeds,
            "backend": args.backend, "quick": args.quick, "seconds": time.perf_counter() - t0}


def markdown(result: dict[str, Any]) -> str:
    b = result["base_config"]
    lines = [
        "# Non-local ablations at teaching scale (paper Table 2)",
        "",
        f"Synthetic same-or-different-colour task, clips {b['channels']} x {b['n_frames']} x {b['size']} x "
        f"{b['size']}; tiny networks (width {b['width']}), {b['optimizer']} lr {b['lr']}, batch {b['batch_size']}, "
        f"{b['steps']} steps; held-out accuracy on {b['n_val']} clips, mean +- std over seeds "
        f"{result['seeds']}; backend {result['backend']}{' (QUICK MODE: too few steps to learn)' if result['quick'] else ''}; "
        f"{result['seconds']:.0f} s in all. Chance is 0.500.",
        "",
    ]
    for part in dict.fromkeys(r["part"] for r in result["rows"]):
        lines += [f"## {TITLES[part]}", "", "| model | accuracy (mean +- std) | per seed | s / step | paper Kinetics top-1 |",
                  "| --- | --- | --- | --- | --- |"]
        for r in (r for r in result["rows"] if r["part"] == part):
            per = ", ".join(f"{a:.3f}" for a in r["accuracies"])
            lines.append(f"| {r['model']} | {r['mean']:.3f} +- {r['std']:.3f} | {per} | {r['step_s']:.3f} | "
                         f"{r['paper_top1'] if r['paper_top1'] is not None else '-'} |")
        lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(dict.fromkeys(r["part"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(parts), figsize=(max(4.2 * len(parts), 6.5), 4.3), squeeze=False)
    for ax, part in zip(axes[0], parts):
        rows = [r for r in result["rows"] if r["part"] == part]
        ax.bar(range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=4,
               color=["tab:gray" if "NL" not in r["model"] and r["part"] in "af" else "tab:blue" for r in rows])
        for i, r in enumerate(rows):
            ax.plot([i] * len(r["accuracies"]), r["accuracies"], "k.", ms=4)
        ax.axhline(0.5, color="tab:red", ls="--", lw=1, label="chance")
        ax.set_xticks(range(len(rows)), [textwrap.fill(r["model"], 10, break_long_words=False) for r in rows], fontsize=8)
        ax.set_ylim(0.4, 1.02)
        ax.set_title(TITLES[part], fontsize=10)
        ax.set_xlabel("model")
        ax.set_ylabel("held-out accuracy")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(textwrap.fill("Non-local ablations on the synthetic long-range video task "
                               "(mean +- std over seeds, dots: single seeds)", 60 * len(parts)), fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Teaching-scale reproduction of Table 2 of Non-local Neural Networks",
                                add_help=add_help)
    p.add_argument("--quick", action="store_true", help="tiny nets, few steps (CI smoke test, ~1 min on a CPU)")
    p.add_argument("--parts", default="acdf", help="ablations to run, any of 'acdf' (default all)")
    p.add_argument("--models", default=None, help="comma-separated row labels to keep, e.g. 'C2D,NL C2D'")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--width", type=int, default=None, help="network width w")
    p.add_argument("--size", type=int, default=None, help="frame size (pixels)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--n-val", dest="n_val", type=int, default=None, help="held-out clips")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="sgd: lr 0.1, momentum 0.9, wd 1e-4, step at 3/4 (default); adam: lr 1e-3")
    p.add_argument("--lr", type=float, default=None, help="override the learning rate")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (CPU: one per core)")
    p.add_argument("--out", default="benchmarks/results/ablation", help="results folder (created)")
    return p


def main(argv: list[str] | None = None) -> int:
    return execute(build_parser().parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run the ablation for parsed arguments and write the results folder."""
    if not args.parts or set(args.parts) - set(PARTS):
        raise ValueError(f"--parts must be letters among 'acdf', received {args.parts!r}")
    if args.seeds < 1 or args.jobs < 1:
        raise ValueError(f"--seeds and --jobs must be >= 1, received {args.seeds}, {args.jobs}")
    args.parts = list(dict.fromkeys(args.parts))
    if not _runs(args):
        raise ValueError(f"--models {args.models!r} matches no row of the selected parts")
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(text + "\n")
    with atomic_path(out / "ablation.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    plot(result, out / "ablation.png")
    print(text)
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.json'}, {out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
