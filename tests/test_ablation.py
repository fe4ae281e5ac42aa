"""The teaching-scale ablation runs end to end in quick mode and writes its table, data and plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from nlref.cli import main as nlref_main

ROOT = Path(__file__).resolve().parent.parent


def _ablation():
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_rows_report_mean_and_sample_std_of_the_seeds():
    ab = _ablation()
    result = {"rows": [{"part": "f", "model": "C2D", "mean": 0.5, "std": 0.01, "accuracies": [0.49, 0.5, 0.51],
                        "step_s": 0.1, "paper_top1": 71.8}],
              "base_config": ab.get_preset("tiny-c2d").__dict__, "seeds": [0, 1, 2], "backend": "numpy",
              "quick": False, "seconds": 1.0}
    text = ab.markdown(result)
    assert "| C2D | 0.500 +- 0.010 | 0.490, 0.500, 0.510 | 0.100 | 71.8 |" in text


@pytest.mark.parametrize("argv, match", [(["--parts", "b"], "parts"), (["--models", "R3D"], "models"),
                                         (["--seeds", "0"], "seeds")])
def test_bad_options_are_rejected(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        _ablation().main([*argv, "--quick", "--out", str(tmp_path)])
