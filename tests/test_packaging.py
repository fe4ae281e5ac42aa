"""What a user installs: the sdist and the wheel, and the README they read first.

* every relative link of README.md resolves (a file, or a heading of README itself);
* ``python -m build`` makes an sdist with the whole course (notebooks, benchmarks,
  data/figures, docs, LICENSE) and a wheel with LICENSE, the shipped models and the
  ``nlref`` entry point (marker ``packaging``: about 10 s, an isolated build);
* the wheel's nlref, run outside a source tree, says where the notebooks and the
  benchmarks are instead of listing nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _github_slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def readme_links() -> list[str]:
    text = re.sub(r"```.*?```", "", README.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    targets += re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


def test_the_slug_of_a_heading_is_githubs():
    assert _github_slug("Images larger than memory (Dask)") == "images-larger-than-memory-dask"
    assert _github_slug("`nlref denoise`: the CLI") == "nlref-denoise-the-cli"


def test_every_relative_link_in_readme_resolves():
    links = readme_links()
    assert len(links) >= 5, links
    text = README.read_text(encoding="utf-8")
    anchors = {_github_slug(h) for h in re.findall(r"^#+\s+(.+)$", text, re.M)}
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        if path and not (ROOT / path).exists():
            broken.append(link)
        elif not path and anchor not in anchors:
            broken.append(link)
    assert broken == [], f"README.md links to missing files or headings: {broken}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    # build from a snapshot: other tests may write into the working tree meanwhile
    src = tmp_path_factory.mktemp("src") / "nlref"
    skip = {".venv", ".git", "build", "dist", "_build", "__pycache__", ".pytest_cache", ".hypothesis", "out"}
    generated = {"docs": {"notebooks", "gallery.md"}, "api": {"generated"}}  # being written by make docs

    def ignore(folder: str, names: list[str]) -> list[str]:
        extra = generated.get(Path(folder).name, set())
        return [n for n in names if n in skip or n in extra or n.endswith(".egg-info")]

    shutil.copytree(ROOT, src, ignore=ignore)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.packaging
@pytest.mark.xdist_group("packaging")
def test_the_wheel_has_the_licence_the_shipped_models_and_the_entry_point(dist):
    (wheel,) = dist.glob("nlref-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert f"{info}/licenses/LICENSE" in names
        assert zf.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        assert "License-Expression: BSD-3-Clause" in zf.read(f"{info}/METADATA").decode()
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nlref" / "data" / "models").glob("*.npz")}
        assert shipped and shipped <= names, sorted(shipped - names)
        entry = zf.read(f"{info}/entry_points.txt").decode()
    assert re.search(r"^\[console_scripts\]\s*\nnlref = nlref\._entry:main$", entry, re.M), entry


@pytest.mark.packaging
@pytest.mark.xdist_group("packaging")
def test_the_sdist_has_the_course(dist):
    (sdist,) = dist.glob("nlref-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    expected = {"LICENSE", "README.md", "Makefile", "docs/conf.py", "docs/index.md"}
    for folder, pattern in [("notebooks", "*.ipynb"), ("benchmarks", "*.py"), ("data/figures", "*")]:
        expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob(pattern)}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith("docs/_build")]


@pytest.mark.packaging
@pytest.mark.xdist_group("packaging")
@pytest.mark.parametrize(
    "command, folder",
    [(["-m", "nlref.notebooks", "list"], "notebooks"), (["-m", "nlref", "bench", "nlm"], "benchmarks")],
)
def test_a_wheel_installed_nlref_says_where_the_notebooks_and_benchmarks_are(dist, tmp_path, command, folder):
    (wheel,) = dist.glob("nlref-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # a pure-Python wheel installs by unpacking
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run(
        [sys.executable, "-c", "import nlref; print(nlref.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    assert where.stdout.decode().startswith(str(site)), where
    proc = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc
    assert f"{folder}/ is not installed with the nlref wheel" in proc.stderr, proc.stderr
    assert "source distribution" in proc.stderr and "source repository" in proc.stderr
