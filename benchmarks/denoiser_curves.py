"""Validation PSNR of denoiser training runs against the CPU time they spent (issue 25's curve).

    python benchmarks/denoiser_curves.py runs/nl25-s0 runs/nonl25-s0 --out data/figures/denoiser_curves.png

Each argument is the ``--out`` folder of an ``nlref train-denoiser`` run (its ``weights.npz``, else its
``checkpoint.npz``, a run still going).  The metrics rows record ``val_psnr`` (on the run's validation
patches) and ``cpu_s`` (:func:`nlref.nn.train.run_loop`).  Prints each run's last row and the row of its
best validation PSNR, and draws validation PSNR (dB) against CPU minutes, one line per run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import print_table

from nlref.nn.train import load_denoiser


def read_run(folder: Path) -> dict:
    """The run's config and metrics rows (from weights.npz when it is finished)."""
    path = folder / "weights.npz" if (folder / "weights.npz").is_file() else folder / "checkpoint.npz"
    net = load_denoiser(path)
    return {
        "name": folder.name,
        "config": net["config"],
        "rows": net["metrics"],
        "finished": path.stem == "weights",
    }


def summary(run: dict) -> dict:
    rows, cfg = run["rows"], run["config"]
    best = max(rows, key=lambda r: r["val_psnr"])
    last = rows[-1]
    return {
        "run": run["name"],
        "blocks": cfg.nl_blocks,
        "sigma": f"{cfg.sigma:g}/255",
        "seed": cfg.seed,
        "steps": f"{last['step']}/{cfg.steps}",
        "CPU_min": f"{last.get('cpu_s', float('nan')) / 60:.1f}",
        "val_dB_last": f"{last['val_psnr']:.2f}",
        "val_dB_best": f"{best['val_psnr']:.2f} (step {best['step']})",
        "BLAS": last.get("blas_threads", "?"),
    }


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = sorted({run["config"].sigma for run in runs})
    fig, axes = plt.subplots(1, len(sigmas), figsize=(5.5 * len(sigmas), 4.2), squeeze=False)
    for ax, sigma in zip(axes[0], sigmas):
        for run in (r for r in runs if r["config"].sigma == sigma):
            rows = [r for r in run["rows"] if "cpu_s" in r]
            label = f"{run['name']} ({run['config'].nl_blocks} NL blocks)" + (
                "" if run["finished"] else ", running"
            )
            ax.plot([r["cpu_s"] / 60 for r in rows], [r["val_psnr"] for r in rows], marker=".", label=label)
        ax.set_xlabel("CPU time (minutes, one BLAS thread)")
        ax.set_ylabel("validation PSNR (dB)")
        ax.set_title(f"sigma {sigma:g}/255")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Denoiser training on Train400: validation PSNR against CPU time")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="out folders of nlref train-denoiser runs")
    p.add_argument("--out", type=Path, default=None, help="write the figure to this PNG")
    args = p.parse_args()
    runs = [read_run(folder) for folder in args.runs]
    print_table([summary(r) for r in runs], list(summary(runs[0])))
    if args.out is not None:
        plot(runs, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
