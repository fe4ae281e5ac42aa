"""The built site (``make docs``) as a learner's browser sees it: headless Chromium on 127.0.0.1.

The site is served by ``python -m http.server`` on 127.0.0.1 and every page is opened in
Debian's Chromium, driven by Playwright with a fresh profile.  One crawl records, per page,
the images, the maths, the console errors, every request and every link; the tests below
each check one property of that record:

* every image shows (``naturalWidth > 0``), and every notebook page has figures;
* every page with maths has it rendered by MathJax (``mjx-container``), no raw ``\\(`` left;
* the console shows no error, and no request leaves 127.0.0.1 (MathJax is in ``_static``);
* the search page finds "embedded Gaussian";
* every same-origin link answers 200 and its ``#anchor`` exists on the target page.

Marker ``browser``.  It needs the built site (``NLREF_DOCS_HTML``, default
``docs/_build/html``), Chromium (``apt-get install chromium chromium-driver``) and
Playwright (the ``docs`` extra); without them the tests skip and say which is missing,
unless ``NLREF_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
Screenshots of a notebook page and an API page go to ``docs/_build/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("NLREF_DOCS_HTML", ROOT / "docs" / "_build" / "html")).resolve()
CHROMIUM = os.environ.get("NLREF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = {"notebook": "notebooks/01_non_local_means.html", "api": "api/generated/nlref.denoise.html"}

# one crawl for the whole module: on one xdist worker (make test runs pytest --dist loadgroup)
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("docs_site")]

# Per page, after MathJax has typeset: the broken images, the image count, the maths count,
# the raw TeX delimiters left outside code, and every link (resolved by the browser).
_PAGE_PROBE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = Array.from(document.images);
  const text = Array.from(document.querySelectorAll('article, .bd-article, body'))[0];
  const clone = text.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  return {
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src),
    images: imgs.length,
    output_images: document.querySelectorAll('.cell_output img, .output img').length,
    maths: document.querySelectorAll('.math').length,
    rendered: document.querySelectorAll('mjx-container').length,
    raw_tex: (clone.textContent.match(/\\\\\\(|\\\\\\[/g) || []).length,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  };
}"""


def _skip_or_fail(reason: str):
    if os.environ.get("NLREF_REQUIRE_BROWSER", "0") not in ("", "0"):
        pytest.fail(f"NLREF_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Ids(HTMLParser):
    """Every ``id`` (and ``<a name>``) of one HTML page: the anchors a link may point at."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value or "")


def _serve(site: Path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(base, timeout=1).close()
            return server, base
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError(f"python -m http.server did not answer on {base}")


def _crawl(browser, base: str, pages: list[str], shots: Path) -> dict:
    """Open every page once; record what the tests check."""
    record = {"pages": {}, "console": [], "foreign": [], "failed": []}
    host = urlsplit(base).netloc
    for rel in pages:
        page = browser.new_page()
        page.on("console", lambda m, rel=rel: m.type == "error" and record["console"].append((rel, m.text)))
        page.on("pageerror", lambda e, rel=rel: record["console"].append((rel, str(e))))
        page.on(
            "request",
            lambda r, rel=rel: urlsplit(r.url).netloc != host and record["foreign"].append((rel, r.url)),
        )
        page.on(
            "response", lambda r, rel=rel: r.status >= 400 and record["failed"].append((rel, r.url, r.status))
        )
        page.on("requestfailed", lambda r, rel=rel: record["failed"].append((rel, r.url, r.failure)))
        page.goto(base + rel, wait_until="load")
        record["pages"][rel] = page.evaluate(_PAGE_PROBE)
        for name, target in SCREENSHOTS.items():
            if rel == target:
                page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
                figure = page.locator(".cell_output img").first
                if name == "notebook" and figure.count():
                    figure.scroll_into_view_if_needed()
                    page.screenshot(path=str(shots / f"{name}-figure.png"), full_page=False)
        page.close()
    return record


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").is_file():
        _skip_or_fail(f"no built site at {SITE} (run `make docs`)")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        _skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("Playwright is not installed (pip install -e '.[docs]')")
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)
    shots = SITE.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    server, base = _serve(SITE)
    try:
        with sync_playwright() as pw, _profile() as profile:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                record = _crawl(browser, base, pages, shots)
                record["search"] = _search(browser, base, "embedded Gaussian")
            finally:
                browser.close()
        record["links"] = _check_links(base, record["pages"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    record["base"] = base
    return record


class _profile:
    """A fresh ``--user-data-dir`` for Chromium, removed afterwards."""

    def __enter__(self) -> str:
        import tempfile

        self.path = tempfile.mkdtemp(prefix="nlref-chromium-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def _search(browser, base: str, words: str) -> list[str]:
    page = browser.new_page()
    page.goto(base + "search.html?q=" + words.replace(" ", "+"), wait_until="load")
    page.wait_for_selector("#search-results ul.search li, #search-results p", timeout=20_000)
    page.wait_for_function(
        "() => !document.querySelector('#search-progress')?.textContent.includes('Preparing')"
    )
    hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    page.close()
    return hits


def _check_links(base: str, pages: dict) -> dict:
    """Status of every same-origin URL, and the anchors that are missing on their target."""
    status: dict[str, int] = {}
    ids: dict[str, set[str]] = {}
    missing = []
    for rel, info in pages.items():
        for href in info["links"]:
            if not href.startswith(base):
                continue
            url, fragment = urldefrag(href)
            if url not in status:
                try:
                    with urllib.request.urlopen(url, timeout=10) as resp:
                        status[url] = resp.status
                        if fragment or url.endswith(".html") or url.endswith("/"):
                            body = resp.read().decode("utf-8", "replace")
                            parser = _Ids()
                            parser.feed(body)
                            ids[url] = parser.ids
                except urllib.error.HTTPError as exc:
                    status[url] = exc.code
            if fragment and status[url] == 200 and unquote(fragment) not in ids.get(url, set()):
                missing.append((rel, href))
    return {"status": status, "missing_anchors": missing}


def _lines(items: list) -> str:
    return "\n".join(" ".join(map(str, item)) for item in items)


def _pages(site, prefix: str = "") -> dict:
    return {rel: info for rel, info in site["pages"].items() if rel.startswith(prefix)}


def test_the_site_has_the_course_the_api_the_cli_and_the_measurements(site):
    pages = set(site["pages"])
    assert {"index.html", "cli.html", "gallery.html", "search.html", "api/index.html"} <= pages
    assert {"api/generated/nlref.denoise.html", "api/generated/nlref.nn.html"} <= pages
    assert len(_pages(site, "notebooks/")) >= 7, sorted(pages)  # the index and six notebooks
    assert len(_pages(site, "benchmarks/")) >= 3, sorted(pages)


def test_every_image_shows_and_every_notebook_page_has_figures(site):
    broken = {rel: info["broken"] for rel, info in site["pages"].items() if info["broken"]}
    assert broken == {}
    notebooks = {
        rel: info for rel, info in _pages(site, "notebooks/").items() if rel != "notebooks/index.html"
    }
    bare = [rel for rel, info in notebooks.items() if info["output_images"] == 0]
    assert notebooks and bare == [], f"notebook pages without an output figure: {bare}"


def test_every_page_with_maths_has_it_rendered(site):
    with_maths = {rel: info for rel, info in site["pages"].items() if info["maths"]}
    assert "notebooks/03_the_non_local_operation.html" in with_maths
    unrendered = {
        rel: (info["maths"], info["rendered"], info["raw_tex"])
        for rel, info in with_maths.items()
        if info["rendered"] == 0 or info["raw_tex"]
    }
    assert unrendered == {}, "page: (maths elements, mjx-containers, raw \\( or \\[ left)"


def test_the_console_shows_no_error(site):
    assert site["console"] == [], _lines(site["console"])
    assert site["failed"] == [], _lines(site["failed"])


def test_no_request_leaves_the_machine(site):
    assert site["foreign"] == [], _lines(site["foreign"])


def test_the_search_finds_embedded_gaussian(site):
    hits = site["search"]
    assert any("03_the_non_local_operation" in h for h in hits), hits


def test_every_same_origin_link_answers_200_and_its_anchor_exists(site):
    status = site["links"]["status"]
    assert len(status) > 20
    bad = {url: code for url, code in status.items() if code != 200}
    assert bad == {}
    assert site["links"]["missing_anchors"] == [], _lines(site["links"]["missing_anchors"])
