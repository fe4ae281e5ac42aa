"""The teaching-scale ablation (nlref.nn.train.ablation) runs end to end and writes its table and plot."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from nlref.cli import main as nlref_main
from nlref.data.synthetic_video import make_clips, temporal_gap
from nlref.nn.train import (
    PARTS,
    QUICK_NOTE,
    ablation,
    ablation_config,
    build_from_config,
    get_preset,
    markdown,
    run_ablation,
    select_rows,
    write_results,
)
from nlref.nn.video import temporal_receptive_field

ROOT = Path(__file__).resolve().parent.parent


def test_quick_ablation_writes_markdown_json_and_png_for_every_part(tmp_path):
    assert (
        nlref_main(["ablate", "--quick", "--parts", "acdf", "--max-seeds", "3", "--out", str(tmp_path)]) == 0
    )
    text = (tmp_path / "ablation_quick.md").read_text()
    assert QUICK_NOTE in text
    for title in ("(a) instantiations", "(c) number of blocks", "(d) space vs time", "(f) C2D vs I3D"):
        assert title in text
    for row in ("| C2D |", "| NL concatenation |", "| 10 blocks |", "| time-only |", "| NL I3D |"):
        assert row in text
    result = json.loads((tmp_path / "ablation_quick.json").read_text())
    assert result["seeds"] == [0, 1, 2]
    assert all(len(r["accuracies"]) == 3 and 0 <= r["mean"] <= 1 for r in result["rows"])
    # rows shared between parts (C2D in (a) and (f); NL C2D = embedded Gaussian = spacetime)
    # train once per seed: 12 distinct models x 3 seeds
    assert len(result["runs"]) == 36
    for part in "acdf":
        png = (tmp_path / f"ablation_quick_{part}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_quick_results_are_never_written_beside_the_measured_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert nlref_main(["ablate", "--quick", "--out", "data/figures"]) == 2
    assert not (tmp_path / "data" / "figures").exists()


def test_rows_whose_std_exceeds_the_threshold_get_more_seeds(monkeypatch):
    def fake_summary(cfg, backend):  # NL dot product: 0.5 / 1.0 alternating (std 0.29); C2D: 0.5 always
        acc = 0.5 + 0.5 * (cfg.seed % 2) * (cfg.nl_mode == "dot_product" and cfg.nl_blocks == 1)
        return {"config": cfg.__dict__, "val_accuracy": acc, "step_s": 0.1, "seconds": 1.0}

    monkeypatch.setattr(ablation, "train_summary", fake_summary)
    rows = select_rows("a", "C2D,NL dot product")
    result = run_ablation(ablation_config(quick=True), rows, seeds=3, max_seeds=5)
    by_model = {r["model"]: r for r in result["rows"]}
    assert by_model["C2D"]["seeds"] == [0, 1, 2] and by_model["C2D"]["std"] == 0.0
    assert by_model["NL dot product"]["seeds"] == [0, 1, 2, 3, 4]
    assert by_model["NL dot product"]["accuracies"] == [0.5, 1.0, 0.5, 1.0, 0.5]
    assert by_model["NL dot product"]["mean"] == pytest.approx(0.7)
    assert len(result["runs"]) == 3 + 5


def test_an_interrupted_ablation_continues_from_its_cache(monkeypatch, tmp_path):
    trained = []

    def fake_summary(cfg, backend):
        trained.append(cfg.seed)
        return {"config": cfg.__dict__, "val_accuracy": 0.5, "step_s": 0.1, "seconds": 1.0}

    monkeypatch.setattr(ablation, "train_summary", fake_summary)
    rows, cache = select_rows("f", "C2D"), tmp_path / "runs.json"
    run_ablation(ablation_config(quick=True), rows, seeds=2, cache=cache)
    result = run_ablation(ablation_config(quick=True), rows, seeds=3, cache=cache)
    assert trained == [0, 1, 2] and result["rows"][0]["seeds"] == [0, 1, 2]
    assert len(json.loads(cache.read_text())) == 3 and result["train_seconds"] == 3.0


def test_long_clips_put_the_marks_beyond_the_receptive_field_of_i3d():
    cfg = ablation_config().replace(**dict(PARTS["l"][1][1]))
    model, params, _ = build_from_config(cfg)
    _, _, info = make_clips(1, n_frames=cfg.n_frames, size=cfg.size, return_info=True)
    gap = temporal_gap(int(info["t_a"][0]), int(info["t_b"][0]), 2)
    assert cfg.arch == "i3d" and temporal_receptive_field(model, params) == 17 < gap == 18


def test_ablation_runs_at_the_clip_size_and_recipe_of_the_presets():
    base, preset = ablation_config(), get_preset("tiny-nl-c2d")
    for name in ("size", "n_frames", "width", "optimizer", "lr", "lr_step", "batch_size", "steps", "n_val"):
        assert getattr(base, name) == getattr(preset, name), name
    assert base.replace(**PARTS["a"][2][1]).to_json() == preset.replace(eval_every=base.eval_every).to_json()


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
        "ablation_f.png",
    ]


def test_the_plot_shows_every_seed_and_error_bar_below_its_default_axis(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    import nlref.nn.train.report as report

    def row(model, accuracies, std):
        mean = sum(accuracies) / len(accuracies)
        return dict(
            part="f", model=model, mean=mean, std=std, accuracies=accuracies, step_s=0.1, paper_top1=1.0
        )

    result = {"rows": [row("C2D", [0.375, 0.5], 0.09), row("NL C2D", [0.9, 1.0], 0.07)]}
    result.update(base_config=ablation_config().__dict__, quick=False)
    limits = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: limits.append(fig.axes[0].get_ylim()))
    report.plot(result, tmp_path / "f.png", "f")
    assert limits[0][0] <= 0.4375 - 0.09 < 0.375  # the lowest seed and the lower end of its error bar
    result["rows"] = [row("C2D", [0.45, 0.5], 0.01), row("NL C2D", [0.9, 1.0], 0.07)]
    report.plot(result, tmp_path / "f.png", "f")
    assert limits[1] == (0.4, 1.02)  # nothing below 0.4: the usual axis


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
    assert (sgd.lr_step, sgd.eval_every) == (300, 400)  # lr / 10 after 3/4 of the steps
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
