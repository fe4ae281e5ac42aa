"""The console script answers --version, --help, info and bench --help."""

from __future__ import annotations

import json
import subprocess
import sys

import nlref
from nlref.cli import list_benchmarks, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlref", *args], capture_output=True, text=True)


def test_version_flag_prints_package_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert nlref.__version__ in out.stdout


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "info" in out.stdout and "bench" in out.stdout


def test_info_json_reports_numpy(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nlref"] == nlref.__version__ and "numpy" in report


def test_bench_help_lists_every_benchmark_script():
    out = run_cli("bench", "--help")
    assert out.returncode == 0
    benches = list_benchmarks()
    assert {"nlm", "layers", "nonlocal"} <= set(benches), sorted(benches)
    for name in benches:
        assert name in out.stdout
