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

The pipeline::

    ablation_config(...)            one base TrainConfig
    select_rows(parts, models)      [(part, row label, config overrides)]
    run_ablation(base, rows, seeds) each distinct config trains once per seed (train_summary)
    write_results(result, out)      ablation.md (markdown), ablation.json (every run), ablation.png (plot)

``nlref ablate`` and ``benchmarks/ablation.py`` are thin faces over these functions.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import textwrap
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..io import atomic_path
from .config import TrainConfig, get_preset
from .train import train_summary

__all__ = [
    "PAPER",
    "PARTS",
    "TITLES",
    "ablation_config",
    "select_rows",
    "run_ablation",
    "markdown",
    "plot",
    "write_results",
]

#: Kinetics-400 top-1 of the paper's Table 2 (ResNet-50), for reference beside ours.
PAPER = {
    "C2D": 71.8,
    "NL Gaussian": 72.5,
    "NL embedded Gaussian": 72.7,
    "NL dot product": 72.9,
    "NL concatenation": 72.8,
    "1 block": 72.7,
    "5 blocks": 73.8,
    "10 blocks": 74.3,
    "space-only": 72.9,
    "time-only": 73.1,
    "spacetime": 73.8,
    "I3D": 73.3,
    "NL C2D": 73.8,
    "NL I3D": 74.9,
}
_NL = dict(nl_blocks=1)
#: part -> [(row label, config overrides)]
PARTS: dict[str, list[tuple[str, dict]]] = {
    "a": [
        ("C2D", {}),
        ("NL Gaussian", dict(_NL, nl_mode="gaussian")),
        ("NL embedded Gaussian", dict(_NL, nl_mode="embedded_gaussian")),
        ("NL dot product", dict(_NL, nl_mode="dot_product")),
        ("NL concatenation", dict(_NL, nl_mode="concatenation")),
    ],
    "c": [
        ("1 block", dict(nl_blocks=1, depth=[1, 2, 2])),
        ("5 blocks", dict(nl_blocks=5, depth=[1, 2, 2])),
        ("10 blocks", dict(nl_blocks=10, depth=[1, 2, 2])),
    ],
    "d": [
        ("space-only", dict(_NL, nl_space_time="space")),
        ("time-only", dict(_NL, nl_space_time="time")),
        ("spacetime", dict(_NL, nl_space_time="spacetime")),
    ],
    "f": [("C2D", {}), ("I3D", dict(arch="i3d")), ("NL C2D", _NL), ("NL I3D", dict(_NL, arch="i3d"))],
}
TITLES = {
    "a": "(a) instantiations, 1 block",
    "c": "(c) number of blocks",
    "d": "(d) space vs time vs spacetime",
    "f": "(f) C2D vs I3D",
}


def ablation_config(
    *,
    quick: bool = False,
    width: int | None = None,
    size: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    n_val: int | None = None,
    optimizer: str = "sgd",
    lr: float | None = None,
) -> TrainConfig:
    """The base configuration every row starts from (tiny C2D), with the given overrides.

    ``quick``: seconds per run on a CPU (width 4, 16 x 16 frames, 6 steps): shows the
    pipeline, not the findings.  Otherwise 1000 steps of batch 32 on 3 x 16 x 32 x 32
    clips, width 8 (PAPER_NOTES' setting).  ``optimizer="sgd"`` is the paper's recipe
    (lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 after 3/4 of the steps);
    ``"adam"``: lr 1e-3, constant.  ``None`` keeps the default.

    Returns
    -------
    TrainConfig
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}")
    if quick:
        base = dict(width=4, size=16, batch_size=8, steps=6, eval_every=6, n_val=16)
    else:
        base = dict(width=8, size=32, batch_size=32, steps=1000, eval_every=250, n_val=512)
    given = dict(width=width, size=size, steps=steps, batch_size=batch_size, n_val=n_val)
    base.update({k: v for k, v in given.items() if v is not None})
    base["eval_every"] = min(base["eval_every"], base["steps"])
    if optimizer == "adam":
        base.update(optimizer="adam", lr=1e-3, weight_decay=0.0, lr_step=0)
    else:
        base.update(optimizer="sgd", lr=0.1, weight_decay=1e-4, lr_step=max(1, 3 * base["steps"] // 4))
    if lr is not None:
        base["lr"] = lr
    return get_preset("tiny-c2d", **base)


def select_rows(parts: str = "acdf", models: str | None = None) -> list[tuple[str, str, dict]]:
    """``(part, row label, config overrides)`` of the selected parts, optionally only some row labels.

    Parameters
    ----------
    parts : str
        Letters among ``"acdf"`` (repeats are ignored).
    models : str, optional
        Comma-separated row labels to keep, e.g. ``"C2D,NL C2D"``.
    """
    if not parts or set(parts) - set(PARTS):
        raise ValueError(f"parts must be letters among 'acdf', received {parts!r}")
    keep = None if not models else {m.strip() for m in models.split(",")}
    rows = [
        (part, label, kw)
        for part in dict.fromkeys(parts)
        for label, kw in PARTS[part]
        if keep is None or label in keep
    ]
    if not rows:
        raise ValueError(f"models {models!r} matches no row of parts {parts!r}")
    return rows


def _key(cfg: TrainConfig) -> str:
    return json.dumps(cfg.__dict__, sort_keys=True)


def _train_all(unique: dict[str, TrainConfig], backend: str, jobs: int) -> dict[str, dict]:
    """``train_summary`` of each distinct config, in ``jobs`` worker processes or in this one."""
    results: dict[str, dict] = {}
    if jobs == 1:
        for key, cfg in tqdm(unique.items(), desc="ablation", unit="run"):
            results[key] = train_summary(cfg, backend=backend)
        return results
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one BLAS thread per worker process
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(train_summary, cfg, backend=backend): key for key, cfg in unique.items()}
        for fut in cf.as_completed(futures):
            results[futures[fut]] = r = fut.result()
            print(
                f"  done {len(results)}/{len(unique)}: val acc {r['val_accuracy']:.3f} "
                f"({r['seconds']:.0f} s)",
                flush=True,
            )
    return results


def run_ablation(
    base: TrainConfig,
    rows: list[tuple[str, str, dict]],
    *,
    seeds: int = 3,
    backend: str = "numpy",
    jobs: int = 1,
    quick: bool = False,
) -> dict[str, Any]:
    """Train every row over ``seeds`` seeds and aggregate mean +- sample std of the held-out accuracy.

    Identical configurations (C2D in (a) and (f); NL C2D = embedded Gaussian =
    spacetime) train once per seed.

    Returns
    -------
    dict
        ``rows`` (part, model, mean, std, accuracies, step_s, paper_top1),
        ``runs`` (every :func:`nlref.nn.train.train_summary`), ``base_config``,
        ``seeds``, ``backend``, ``quick``, ``seconds``.
    """
    for name, v in (("seeds", seeds), ("jobs", jobs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, received {v!r}")
    seed_list = list(range(seeds))
    unique: dict[str, TrainConfig] = {}
    for _, _, kw in rows:
        for s in seed_list:
            cfg = base.replace(**kw, seed=s)
            unique.setdefault(_key(cfg), cfg)
    print(
        f"{len(unique)} training runs ({seeds} seeds), {base.steps} steps each, backend {backend}", flush=True
    )
    t0 = time.perf_counter()
    results = _train_all(unique, backend, jobs)
    table = []
    for part, label, kw in rows:
        runs = [results[_key(base.replace(**kw, seed=s))] for s in seed_list]
        accs = [r["val_accuracy"] for r in runs]
        table.append(
            {
                "part": part,
                "model": label,
                "mean": statistics.mean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "accuracies": accs,
                "step_s": statistics.mean(r["step_s"] for r in runs),
                "paper_top1": PAPER.get(label),
            }
        )
    return {
        "rows": table,
        "runs": list(results.values()),
        "base_config": base.__dict__,
        "seeds": seed_list,
        "backend": backend,
        "quick": quick,
        "seconds": time.perf_counter() - t0,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown: a header naming the setting, then one table per part."""
    b = result["base_config"]
    quick = " (QUICK MODE: too few steps to learn)" if result["quick"] else ""
    lines = [
        "# Non-local ablations at teaching scale (paper Table 2)",
        "",
        f"Synthetic same-or-different-colour task, clips {b['channels']} x {b['n_frames']} x {b['size']} x "
        f"{b['size']}; tiny networks (width {b['width']}), {b['optimizer']} lr {b['lr']}, "
        f"batch {b['batch_size']}, {b['steps']} steps; held-out accuracy on {b['n_val']} clips, "
        f"mean +- std over seeds {result['seeds']}; backend {result['backend']}{quick}; "
        f"{result['seconds']:.0f} s in all. Chance is 0.500.",
        "",
    ]
    for part in dict.fromkeys(r["part"] for r in result["rows"]):
        lines += [
            f"## {TITLES[part]}",
            "",
            "| model | accuracy (mean +- std) | per seed | s / step | paper Kinetics top-1 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in (r for r in result["rows"] if r["part"] == part):
            per = ", ".join(f"{a:.3f}" for a in r["accuracies"])
            paper = r["paper_top1"] if r["paper_top1"] is not None else "-"
            lines.append(
                f"| {r['model']} | {r['mean']:.3f} +- {r['std']:.3f} | {per} | {r['step_s']:.3f} | {paper} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Bar chart of mean +- std per part, single seeds as dots, chance as a line; saved atomically as PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend and figures alone

    parts = list(dict.fromkeys(r["part"] for r in result["rows"]))
    fig = Figure(figsize=(max(4.2 * len(parts), 6.5), 4.3))
    axes = fig.subplots(1, len(parts), squeeze=False)
    for ax, part in zip(axes[0], parts):
        rows = [r for r in result["rows"] if r["part"] == part]
        colours = ["tab:gray" if "NL" not in r["model"] and r["part"] in "af" else "tab:blue" for r in rows]
        ax.bar(
            range(len(rows)),
            [r["mean"] for r in rows],
            yerr=[r["std"] for r in rows],
            capsize=4,
            color=colours,
        )
        for i, r in enumerate(rows):
            ax.plot([i] * len(r["accuracies"]), r["accuracies"], "k.", ms=4)
        ax.axhline(0.5, color="tab:red", ls="--", lw=1, label="chance")
        ax.set_xticks(
            range(len(rows)),
            [textwrap.fill(r["model"], 10, break_long_words=False) for r in rows],
            fontsize=8,
        )
        ax.set_ylim(0.4, 1.02)
        ax.set_title(TITLES[part], fontsize=10)
        ax.set_xlabel("model")
        ax.set_ylabel("held-out accuracy")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(
        textwrap.fill(
            "Non-local ablations on the synthetic long-range video task "
            "(mean +- std over seeds, dots: single seeds)",
            60 * len(parts),
        ),
        fontsize=11,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)


def write_results(result: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write ``ablation.md``, ``ablation.json`` and ``ablation.png`` atomically into ``out`` (created).

    Returns
    -------
    list of Path
        The three files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ablation.md", out / "ablation.json", out / "ablation.png"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(markdown(result) + "\n")
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    plot(result, paths[2])
    return paths
