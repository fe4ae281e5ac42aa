"""The benchmark runner times, synchronises and formats honestly."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from common import format_table, measure, ratio, write_json  # noqa: E402


def test_measure_reports_median_of_repeats_after_warmup():
    calls = []

    def work():
        calls.append(1)
        time.sleep(0.01)

    res = measure(work, warmup=2, repeats=3, memory=False)
    assert len(calls) == 5
    assert len(res.times) == 3 and res.median >= 0.009 and res.best <= res.median


def test_measure_records_peak_memory_of_numpy_work():
    res = measure(lambda: np.ones(1_000_000), warmup=0, repeats=1)
    assert res.peak_bytes is not None and res.peak_bytes >= 8_000_000


def test_ratio_handles_missing_values():
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(None, 1.0) is None and ratio(1.0, 0) is None


def test_format_table_is_markdown_with_all_columns():
    text = format_table([{"impl": "nlref", "median_s": 0.5}, {"impl": "skimage", "ratio": 2.0}])
    lines = text.splitlines()
    assert lines[0].startswith("| impl") and "ratio" in lines[0]
    assert set(lines[1].replace("|", "").replace(" ", "")) == {"-"}
    assert len(lines) == 4


def test_write_json_round_trips(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"rows": [{"a": 1}]})
    assert json.loads(path.read_text()) == {"rows": [{"a": 1}]}
