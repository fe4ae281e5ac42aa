"""The teaching-scale ablation (nlref.nn.ablation) runs end to end and writes its table, data and plot."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from nlref.cli import main as nlref_main
from nlref.nn.ablation import PARTS, ablation_config, markdown, run_ablation, select_rows, write_results

ROOT = Path(__file__).resolve().parent.parent


def test_quick_ablation_writes_markdown_json_and_png_for_every_part(tmp_path):
    assert nlref_main(["ablate", "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "ablation.md").read_text()
    for title in ("(a) instantiations", "(c) number of blocks", "(d) space vs time", "(f) C2D vs I3D"):
        assert title in text
    for row in ("| C2D |", "| NL concatenation |", "| 10 blocks |", "| time-only |", "| NL I3D |"):
        assert row in text
    result = json.loads((tmp_path / "ablation.json").read_text())
    assert result["seeds"] == [0, 1, 2]
    assert all(len(r["accuracies"]) == 3 and 0 <= r["mean"] <= 1 for r in result["rows"])
    # rows shared between parts (C2D in (a) and (f); NL C2D = embedded Gaussian = spacetime)
    # train once per seed: 12 distinct models x 3 seeds
    assert len(result["runs"]) == 36
    png = (tmp_path / "ablation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_rows_report_mean_and_sample_std_of_the_seeds(tmp_path):
    base = ablation_config(quick=True, steps=2, n_val=8)
    result = run_ablation(base, select_rows("f", "C2D,NL C2D"), seeds=2, quick=True)
    by_seed = {(r["config"]["nl_blocks"], r["config"]["seed"]): r["val_accuracy"] for r in result["runs"]}
    for row, nl in zip(result["rows"], (0, 1)):
        accs = [by_seed[(nl, 0)], by_seed[(nl, 1)]]
        assert row["accuracies"] == accs
        assert row["mean"] == pytest.approx(sum(accs) / 2)
        assert row["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)  # sample std of two values
    assert [p.name for p in write_results(result, tmp_path / "new")] == [
        "ablation.md",
        "ablation.json",
        "ablation.png",
    ]


def test_markdown_rows_show_mean_std_seeds_time_and_the_paper():
    row = {
        "part": "f",
        "model": "C2D",
        "mean": 0.5,
        "std": 0.01,
        "accuracies": [0.49, 0.5, 0.51],
        "step_s": 0.1,
        "paper_top1": 71.8,
    }
    result = {
        "rows": [row],
        "base_config": ablation_config().__dict__,
        "seeds": [0, 1, 2],
        "backend": "numpy",
        "quick": False,
        "seconds": 1.0,
    }
    assert statistics.stdev([0.49, 0.5, 0.51]) == pytest.approx(0.01)
    text = markdown(result)
    assert "| C2D | 0.500 +- 0.010 | 0.490, 0.500, 0.510 | 0.100 | 71.8 |" in text


def test_base_configs_follow_the_optimiser_recipes():
    sgd = ablation_config(steps=400)
    assert (sgd.optimizer, sgd.lr, sgd.weight_decay) == ("sgd", 0.1, 1e-4)
    assert (sgd.lr_step, sgd.eval_every) == (300, 250)  # lr / 10 after 3/4 of the steps
    adam = ablation_config(quick=True, optimizer="adam", lr=2e-3)
    assert (adam.optimizer, adam.lr, adam.lr_step, adam.steps, adam.width) == ("adam", 2e-3, 0, 6, 4)


def test_select_rows_keeps_the_order_of_the_parts_and_drops_repeats():
    assert [label for _, label, _ in select_rows("ff")] == [label for label, _ in PARTS["f"]]
    assert select_rows("da", "C2D,space-only") == [("d", "space-only", PARTS["d"][0][1]), ("a", "C2D", {})]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: select_rows("b"), "parts"),
        (lambda: select_rows("f", "R3D"), "models"),
        (lambda: run_ablation(ablation_config(quick=True), select_rows("f"), seeds=0), "seeds"),
        (lambda: ablation_config(optimizer="rmsprop"), "optimizer"),
    ],
)
def test_bad_options_are_rejected_before_any_training(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("argv", [["--parts", "b"], ["--models", "R3D"], ["--seeds", "0"]])
def test_bad_command_line_options_exit_2(argv, tmp_path, capsys):
    assert nlref_main(["ablate", *argv, "--quick", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("nlref: error: ")


def test_the_benchmark_script_is_the_same_command():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "--parts" in out.stdout and "--seeds" in out.stdout
