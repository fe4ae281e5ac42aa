"""The console script answers --version, --help, info and bench --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_a_missing_subcommand_module_is_skipped_but_a_broken_one_is_not(monkeypatch, tmp_path):
    import nlref.cli as cli

    monkeypatch.setattr(cli, "_SUBCOMMAND_MODULES", ("nlref.cli.denoise", "nlref.cli.not_built_yet"))
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert {"info", "bench", "denoise"} <= set(commands) and "not_built_yet" not in commands
    (tmp_path / "nlref_broken_subcommand.py").write_text("import a_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_SUBCOMMAND_MODULES", ("nlref_broken_subcommand",))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_missing"):
        cli.build_parser()


def test_the_library_does_not_import_the_face():
    code = (
        "import sys, nlref.denoise, nlref.nn, nlref.metrics, nlref.data, nlref.io; "
        "print(sorted(m for m in sys.modules if m.startswith('nlref.cli') or m == 'nlref.demo'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
