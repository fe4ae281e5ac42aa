"""Table 2 of *Non-local Neural Networks* (Wang et al., CVPR 2018) at teaching scale.

Trains tiny C2D / I3D / non-local networks (:mod:`nlref.nn.video.models`, layout
"tiny") on the synthetic same-or-different-colour task
(:mod:`nlref.data.synthetic_video`), where the label depends on two marks
further apart in time than C2D's receptive field, and reports the held-out
accuracy, mean +- std over seeds, for four of the paper's ablations and two of ours:

* (a) C2D vs one non-local block of each instantiation;
* (c) 1 / 5 / 10 blocks (at depth (1, 2, 2) the placement rules give 1 / 2 / 4 blocks);
* (d) space-only vs time-only vs spacetime attention;
* (f) C2D vs I3D vs NL C2D vs NL I3D;
* (l) C2D, I3D and NL C2D on longer clips (:data:`LONG_FRAMES` frames), whose marks are further
  apart than I3D's temporal receptive field (17 frames): there NL > I3D = C2D;
* (i) the non-local block's initialisation: fan-in (from scratch) vs the official std 0.01;
* (w) locality: the keys of the one block restricted to +-k frames of the query (whole
  frames; :func:`nlref.nn.local_window_mask`) -- NLM's search window in time.

The pipeline::

    ablation_config(...)            one base TrainConfig (the tiny-c2d preset: same clips, same recipe)
    select_rows(parts, models)      [(part, row label, config overrides)]
    run_ablation(base, rows, seeds) each distinct config trains once per seed (train_summary);
                                    rows whose std exceeds 0.05 get more seeds (up to max_seeds)
    write_results(result, out)      PREFIX.md, PREFIX.json, PREFIX_<part>.png (nlref.nn.train.report)

``nlref ablate`` and ``benchmarks/ablation.py`` are thin faces over these functions.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...io import atomic_path
from .config import TrainConfig, get_preset
from .loop import train_summary

__all__ = [
    "PAPER",
    "PARTS",
    "LONG_FRAMES",
    "WINDOWS",
    "ablation_config",
    "select_rows",
    "run_ablation",
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
#: Frames of the long-clip variant (l): marks at frames 10-11 and 28-29, nearest frames 18 apart
#: (inclusive), more than the tiny I3D's temporal receptive field of 17 frames.
LONG_FRAMES = 40
#: Half-widths k (frames of the block's input map, 8 frames for 16-frame clips) of part (w).
WINDOWS = (0, 1)  # the marks meet at +-1 frame of the block's map (frames 1-3 and 4-6)
_NL = dict(nl_blocks=1)
_LONG = dict(n_frames=LONG_FRAMES)
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
    "l": [
        (f"C2D, {LONG_FRAMES} frames", _LONG),
        (f"I3D, {LONG_FRAMES} frames", dict(_LONG, arch="i3d")),
        (f"NL C2D, {LONG_FRAMES} frames", dict(_LONG, **_NL)),
    ],
    "i": [
        ("NL C2D, fan-in init", _NL),
        ("NL C2D, official init (std 0.01)", dict(_NL, nl_init="official")),
        ("NL dot product, fan-in init", dict(_NL, nl_mode="dot_product")),
        ("NL dot product, official init", dict(_NL, nl_mode="dot_product", nl_init="official")),
    ],
    "w": [(f"+-{k} frames", dict(_NL, nl_window=[k, None, None])) for k in WINDOWS]
    + [("all frames (non-local)", _NL)],
}


def ablation_config(
    *,
    quick: bool = False,
    width: int | None = None,
    size: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    n_val: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
) -> TrainConfig:
    """The base configuration every row starts from: the ``tiny-c2d`` preset, with the given overrides.

    The presets' clip size and recipe, so that the ablation and ``nlref train --preset
    tiny-nl-c2d`` measure the same thing.  ``quick``: seconds per run on a CPU (width 4,
    6 steps): shows the pipeline, not the findings.  ``optimizer="adam"``: lr 1e-3,
    constant; ``"sgd"`` the paper's recipe (momentum 0.9, weight decay 1e-4, lr / 10 after
    3/4 of the steps).  ``None`` keeps the preset's value.

    Returns
    -------
    TrainConfig
    """
    if optimizer not in (None, "sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}")
    preset = get_preset("tiny-c2d")
    base: dict[str, Any] = dict(eval_every=preset.steps)  # the preset's n_val: the same held-out clips
    if quick:
        base = dict(width=4, size=16, batch_size=8, steps=6, eval_every=6, n_val=16)
    given = dict(width=width, size=size, steps=steps, batch_size=batch_size, n_val=n_val)
    base.update({k: v for k, v in given.items() if v is not None})
    n_steps = base.get("steps", preset.steps)
    base["eval_every"] = min(base.get("eval_every", n_steps), n_steps)
    if optimizer == "adam":
        base.update(optimizer="adam", lr=1e-3, weight_decay=0.0, lr_step=0)
    elif optimizer == "sgd" or preset.optimizer == "sgd":
        lr_sgd = preset.lr if preset.optimizer == "sgd" else 0.1
        base.update(optimizer="sgd", lr=lr_sgd, weight_decay=1e-4, lr_step=max(1, 3 * n_steps // 4))
    if lr is not None:
        base["lr"] = lr
    return preset.replace(**base)


def select_rows(parts: str = "acdfliw", models: str | None = None) -> list[tuple[str, str, dict]]:
    """``(part, row label, config overrides)`` of the selected parts, optionally only some row labels.

    Parameters
    ----------
    parts : str
        Letters among ``"acdfliw"`` (repeats are ignored).
    models : str, optional
        Comma-separated row labels to keep, e.g. ``"C2D,NL C2D"``.
    """
    if not parts or set(parts) - set(PARTS):
        raise ValueError(f"parts must be letters among {''.join(PARTS)!r}, received {parts!r}")
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


def _load_cache(path: Path | None) -> dict[str, dict]:
    """Runs saved by an earlier (possibly interrupted) ablation, keyed by their config."""
    if path is None or not path.is_file():
        return {}
    runs = json.loads(path.read_text())
    return {json.dumps(r["config"], sort_keys=True): r for r in runs}


def _save_cache(path: Path | None, results: dict[str, dict]) -> None:
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(list(results.values())))


def _train_all(unique: dict[str, TrainConfig], backend: str, jobs: int, done: Callable) -> dict[str, dict]:
    """``train_summary`` of each distinct config, in ``jobs`` worker processes or in this one.

    ``done(key, run)`` is called as each run finishes (the cache of :func:`run_ablation`).
    """
    results: dict[str, dict] = {}
    if jobs == 1:
        for key, cfg in tqdm(unique.items(), desc="ablation", unit="run"):
            results[key] = train_summary(cfg, backend=backend)
            done(key, results[key])
        return results
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one BLAS thread per worker process
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(train_summary, cfg, backend=backend): key for key, cfg in unique.items()}
        for fut in cf.as_completed(futures):
            results[futures[fut]] = r = fut.result()
            done(futures[fut], r)
            print(
                f"  done {len(results)}/{len(unique)}: val acc {r['val_accuracy']:.3f} "
                f"({r['seconds']:.0f} s)",
                flush=True,
            )
    return results


def _train_seeds(base, rows, seeds_of, results, backend, jobs, cache):
    """Train the configs of ``rows`` x their seeds that ``results`` does not hold yet."""
    todo: dict[str, TrainConfig] = {}
    for _, label, kw in rows:
        for s in seeds_of[label]:
            cfg = base.replace(**kw, seed=s)
            if _key(cfg) not in results:
                todo.setdefault(_key(cfg), cfg)
    if todo:
        print(f"{len(todo)} training runs, {base.steps} steps each, backend {backend}", flush=True)

        def done(key, run):
            results[key] = run
            _save_cache(cache, results)

        _train_all(todo, backend, jobs, done)


def _row(part, label, runs):
    accs = [r["val_accuracy"] for r in runs]
    return {
        "part": part,
        "model": label,
        "mean": statistics.mean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "accuracies": accs,
        "seeds": [r["config"]["seed"] for r in runs],
        "step_s": statistics.mean(r["step_s"] for r in runs),
        "paper_top1": PAPER.get(label),
    }


def run_ablation(
    base: TrainConfig,
    rows: list[tuple[str, str, dict]],
    *,
    seeds: int = 3,
    max_seeds: int | None = None,
    std_above: float = 0.05,
    backend: str = "numpy",
    jobs: int = 1,
    quick: bool = False,
    cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train every row over ``seeds`` seeds and aggregate mean +- sample std of the held-out accuracy.

    Identical configurations (C2D in (a) and (f); NL C2D = embedded Gaussian =
    spacetime = all frames) train once per seed.  A row whose std over the first
    ``seeds`` exceeds ``std_above`` gets seeds ``seeds .. max_seeds - 1`` too
    (``max_seeds`` None: ``seeds``, no second round).  ``cache``: a JSON file of
    finished runs, read first (its runs are not trained again) and rewritten after
    each run, so an interrupted ablation continues where it stopped.

    Returns
    -------
    dict
        ``rows`` (part, model, mean, std, accuracies, seeds, step_s, paper_top1),
        ``runs`` (every :func:`nlref.nn.train.train_summary`), ``base_config``,
        ``seeds``, ``max_seeds``, ``backend``, ``quick``, ``seconds``.
    """
    max_seeds = seeds if max_seeds is None else max_seeds
    for name, v in (("seeds", seeds), ("jobs", jobs), ("max_seeds", max_seeds)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, received {v!r}")
    if max_seeds < seeds:
        raise ValueError(f"max_seeds must be >= seeds = {seeds}, received {max_seeds}")
    t0 = time.perf_counter()
    seeds_of = {label: list(range(seeds)) for _, label, _ in rows}
    cache = None if cache is None else Path(cache)
    results = _load_cache(cache)
    _train_seeds(base, rows, seeds_of, results, backend, jobs, cache)

    def table():
        return [
            _row(part, label, [results[_key(base.replace(**kw, seed=s))] for s in seeds_of[label]])
            for part, label, kw in rows
        ]

    noisy = {r["model"] for r in table() if r["std"] > std_above}
    if noisy and max_seeds > seeds:
        for label in noisy:
            seeds_of[label] = list(range(max_seeds))
        print(f"std > {std_above}: {sorted(noisy)} get seeds {seeds}..{max_seeds - 1}", flush=True)
        _train_seeds(base, rows, seeds_of, results, backend, jobs, cache)
    rows_out = table()
    used = {_key(base.replace(**kw, seed=s)) for _, label, kw in rows for s in seeds_of[label]}
    return {
        "rows": rows_out,
        "runs": [results[k] for k in results if k in used],
        "train_seconds": sum(results[k]["seconds"] for k in results if k in used),
        "base_config": base.__dict__,
        "seeds": list(range(seeds)),
        "max_seeds": max_seeds,
        "backend": backend,
        "quick": quick,
        "seconds": time.perf_counter() - t0,
    }
