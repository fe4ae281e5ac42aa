"""The teaching-scale ablation's report: markdown tables and one PNG per part.

The result of :func:`nlref.nn.train.run_ablation` becomes ``PREFIX.md`` (a
header naming the setting, then one table per part, mean +- std over seeds
beside the paper's Kinetics top-1), ``PREFIX.json`` (every run) and
``PREFIX_<part>.png`` (bars of mean +- std with each seed as a dot; part (w) as
accuracy against the window half-width k).  A quick-mode result says
"quick mode: smoke test, not a result" in every title.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from ...io import atomic_path

__all__ = ["TITLES", "QUICK_NOTE", "markdown", "plot", "write_results"]

TITLES = {
    "a": "(a) instantiations, 1 block",
    "c": "(c) number of blocks",
    "d": "(d) space vs time vs spacetime",
    "f": "(f) C2D vs I3D",
    "l": "(l) long clips: marks beyond I3D's reach",
    "i": "(i) init of theta, phi, g, W_z",
    "w": "(w) locality: keys within +-k frames",
}
QUICK_NOTE = "quick mode: smoke test, not a result"


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown: a header naming the setting, then one table per part."""
    b = result["base_config"]
    quick = f" **{QUICK_NOTE}**;" if result["quick"] else ""
    command = f" Made by `{result['command']}`." if result.get("command") else ""
    lines = [
        "# Non-local ablations at teaching scale (paper Table 2)",
        "",
        f"Synthetic same-or-different-colour task, clips {b['channels']} x {b['n_frames']} x {b['size']} x "
        f"{b['size']} (part (l): {b['channels']} x {result.get('long_frames', '-')} x {b['size']} x "
        f"{b['size']}); tiny networks (width {b['width']}), non-local init {b.get('nl_init', '-')}, "
        f"{b['optimizer']} lr {b['lr']} (lr / 10 at step {b['lr_step']}), batch {b['batch_size']}, "
        f"{b['steps']} steps; held-out accuracy on {b['n_val']} clips, mean +- sample std over seeds "
        f"{result['seeds']} (up to {result.get('max_seeds', len(result['seeds']))} seeds where the std "
        f"exceeds 0.05); backend {result['backend']};{quick} the runs took {_train_s(result):.0f} s "
        f"(sum of their wall times; {result['seconds']:.0f} s wall time for the last invocation)."
        f"{command} Chance is 0.500.",
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


def _train_s(result):
    return result.get("train_seconds", result["seconds"])


def _bars(ax, rows):
    colours = [
        "tab:gray"
        if ("NL" not in r["model"] and r["part"] in "afl") or "official" in r["model"]
        else "tab:blue"
        for r in rows
    ]
    ax.bar(
        range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=4, color=colours
    )
    for i, r in enumerate(rows):
        ax.plot([i] * len(r["accuracies"]), r["accuracies"], "k.", ms=4)
    labels = [textwrap.fill(r["model"], 11, break_long_words=False) for r in rows]
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("model")


def _window_curve(ax, rows):
    ks = list(range(len(rows)))
    ax.errorbar(ks, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=4)
    for k, r in zip(ks, rows):
        ax.plot([k] * len(r["accuracies"]), r["accuracies"], "k.", ms=4)
    labels = [r["model"].replace(" frames", "").replace(" (non-local)", "\n(non-local)") for r in rows]
    ax.set_xticks(ks, labels, fontsize=8)
    ax.set_xlabel("keys within +-k frames of the query (block input: 8 frames)")


def plot(result: dict[str, Any], path: str | os.PathLike, part: str) -> None:
    """One part as a PNG (saved atomically): bars of mean +- std, or accuracy against k for part (w)."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend and figures alone

    rows = [r for r in result["rows"] if r["part"] == part]
    fig = Figure(figsize=(max(1.25 * len(rows) + 1.5, 5.0), 4.2))
    ax = fig.subplots()
    (_window_curve if part == "w" else _bars)(ax, rows)
    ax.axhline(0.5, color="tab:red", ls="--", lw=1, label="chance")
    lowest = min(min(r["accuracies"] + [r["mean"] - r["std"]]) for r in rows)
    ax.set_ylim(min(0.4, max(0.0, lowest - 0.03)), 1.02)  # from 0.4, lower when a seed or error bar is below
    ax.set_ylabel("held-out accuracy")
    ax.legend(loc="upper left", fontsize=8)
    b = result["base_config"]
    title = f"{TITLES[part]}\n{b['size']}x{b['size']} px, {b['steps']} steps, mean +- std, dots: seeds"
    if result["quick"]:
        title = f"{QUICK_NOTE.upper()}\n{title}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def write_results(result: dict[str, Any], out: str | os.PathLike, prefix: str = "ablation") -> list[Path]:
    """Write ``PREFIX.md``, ``PREFIX.json`` and ``PREFIX_<part>.png`` atomically into ``out`` (created).

    Returns
    -------
    list of Path
        The files written, in that order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}.md", out / f"{prefix}.json"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(markdown(result) + "\n")
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    for part in dict.fromkeys(r["part"] for r in result["rows"]):
        paths.append(out / f"{prefix}_{part}.png")
        plot(result, paths[-1], part)
    return paths
