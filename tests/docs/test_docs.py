"""The documentation site: its snippets run, it builds with no warning, and its math renders.

* The ``>>>`` snippets of the Markdown pages under ``docs/`` (the theory guide's identity
  checks, the numerics page's examples) run here, once, as doctests. The docstring examples
  of genmath itself run through pytest's ``--doctest-modules``; Sphinx runs no code.
* The site builds with ``python -m sphinx -W -b html`` (every warning an error).
* Two built pages (the API page of ``genmath.normal`` and the theory guide) are opened in
  headless Chromium, served over a loopback HTTP server; the rendered DOM must hold MathJax
  output for every formula, no MathJax error, and no raw TeX left visible. MathJax must come
  from the site itself, never from a CDN.

The build is skipped (with the reason) where Sphinx or the docs extra is not installed, the
browser checks where Chromium is not: ``pip install -e ".[docs]"`` and
``apt-get install chromium`` run them.
"""

from __future__ import annotations

import doctest
import functools
import html.parser
import http.server
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
from typing import ClassVar

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKDOWN_PAGES = sorted(
    path for path in DOCS.rglob("*.md") if "_build" not in path.parts and ">>>" in path.read_text()
)
DOCS_PACKAGES = ("sphinx", "myst_parser", "furo")
BUILD_TIMEOUT_S = 600
CHROMIUM_TIMEOUT_S = 120


# -- the snippets --------------------------------------------------------------------------


FENCE = re.compile(r"^(```+|:::+)\s*(\{[^}]*\}\s*)?([\w-]*)")


def pycon_blocks(text: str) -> str:
    """The page with everything outside its ```pycon fences blanked (line numbers kept).

    A fence ends an example's expected output, which a plain doctest of the Markdown
    would not see; and a ``>>>`` outside a ``pycon`` block would be rendered without
    being run, so it is refused.
    """
    kept, fence, language = [], None, None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line.strip())
        if fence is None and match:
            fence, language = match.group(1), match.group(3)
            kept.append("")
        elif fence is not None and line.strip() == fence:
            fence = language = None
            kept.append("")
        elif language == "pycon":
            kept.append(line)
        else:
            assert ">>>" not in line, f"line {number}: a >>> example outside a ```pycon block"
            kept.append("")
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("page", MARKDOWN_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_markdown_snippets(page):
    """Every ``>>>`` example of the page gives the output written under it."""
    parser = doctest.DocTestParser()
    test = parser.get_doctest(pycon_blocks(page.read_text()), {}, page.name, str(page), 0)
    assert test.examples, f"{page} has no examples"
    runner = doctest.DocTestRunner(
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False
    )
    output: list[str] = []
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


def test_every_markdown_page_with_snippets_is_checked():
    assert {p.name for p in MARKDOWN_PAGES} >= {"theory.md", "numerics.md"}


# -- the build -----------------------------------------------------------------------------


def _missing_docs_packages() -> list[str]:
    missing = [name for name in DOCS_PACKAGES if importlib.util.find_spec(name) is None]
    try:
        importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        missing.append("sphinx-mathjax-offline")
    return missing


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> pathlib.Path:
    """``python -m sphinx -W -b html docs <tmp>``: the built site (fails on any warning)."""
    missing = _missing_docs_packages()
    if missing:
        pytest.skip(f"docs packages not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("html")
    doctrees = tmp_path_factory.mktemp("doctrees")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    command += ["-d", str(doctrees), str(DOCS), str(out)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    assert result.returncode == 0, (
        f"sphinx -W failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    )
    return out


def test_build_has_no_warnings_and_every_page(built_site):
    import genmath

    for page in ("index", "theory", "numerics", "results", "benchmarks/index", "api/index"):
        assert (built_site / f"{page}.html").is_file(), page
    for name in genmath.__all__:
        assert (built_site / "api" / f"genmath.{name}.html").is_file(), name


def test_api_pages_document_every_public_function(built_site):
    import genmath

    for name in genmath.__all__:
        module = importlib.import_module(f"genmath.{name}")
        page = (built_site / "api" / f"genmath.{name}.html").read_text()
        for member in module.__all__:
            assert f'id="genmath.{name}.{member}"' in page, f"genmath.{name}.{member}"


def test_mathjax_is_served_by_the_site(built_site):
    assert (built_site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = built_site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff"))
    for page in built_site.rglob("*.html"):
        text = page.read_text()
        assert "cdn.jsdelivr" not in text and "mathjax@" not in text, page
        for src in re.findall(r'<script[^>]*src="([^"]+)"', text):
            assert "://" not in src, f"{page.relative_to(built_site)} loads {src}"


def test_results_and_benchmarks_come_from_the_committed_files(built_site):
    results = (built_site / "results.html").read_text()
    runs = json.loads((DOCS / "results" / "runs.json").read_text())
    for run in runs:
        metrics = json.loads((DOCS / "results" / run["name"] / "metrics.json").read_text())
        assert f"{metrics['test_nll_nats']:.4f}" in results, run["name"]
        for picture in metrics["pictures"]:
            assert (built_site / "_images" / picture).exists() or picture in results
    bench = (built_site / "benchmarks" / "index.html").read_text()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert path.name in bench


def test_readme_tables_quote_the_docs_runs():
    """Each docs run's row in the README's tables (found by its test NLL) quotes that run's
    wall time: the runs are redone by ``docs/results/refresh.py`` and the README must follow."""
    readme = (ROOT / "README.md").read_text().splitlines()
    runs = json.loads((DOCS / "results" / "runs.json").read_text())
    for run in runs:
        metrics = json.loads((DOCS / "results" / run["name"] / "metrics.json").read_text())
        nll = f"| {metrics['test_nll_nats']:.2f}"
        rows = [line for line in readme if line.startswith("|") and nll in line]
        assert rows, f"{run['name']}: no README table row with test NLL {nll[2:]}"
        seconds = f"{metrics['wall_time_s']:.0f} s"
        for row in rows:
            assert f"| {seconds}" in row, f"{run['name']}: {row!r} should quote {seconds}"


# -- the rendered math, in a browser ---------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def site_url(built_site):
    """The built site over HTTP on 127.0.0.1 (file:// would block MathJax's web fonts)."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _rendered_dom(url: str, tmp_path: pathlib.Path) -> str:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, env=env
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


class _VisibleText(html.parser.HTMLParser):
    """Text a reader sees: outside script/style, MathJax output and code blocks."""

    HIDDEN: ClassVar[set[str]] = {
        "script",
        "style",
        "mjx-container",
        "pre",
        "code",
        "textarea",
        "noscript",
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac|\\sum|\\log|\\mathcal|\\math")


@pytest.mark.parametrize("page", ["api/genmath.normal.html", "theory.html"])
def test_math_is_typeset_in_chromium(page, built_site, site_url, tmp_path):
    static = (built_site / page).read_text()
    formulas = len(re.findall(r'class="math notranslate nohighlight"', static))
    assert formulas >= 5, f"{page}: expected formulas in the built page, found {formulas}"
    dom = _rendered_dom(f"{site_url}/{page}", tmp_path)
    typeset = len(re.findall(r"<mjx-container\b", dom))
    assert typeset >= formulas, f"{page}: {typeset} typeset formulas for {formulas} in the page"
    assert "<mjx-merror" not in dom, f"{page}: MathJax reported a TeX error"
    parser = _VisibleText()
    parser.feed(dom)
    text = "".join(parser.parts)
    raw = sorted(set(RAW_TEX.findall(text)))
    assert not raw, f"{page}: raw TeX visible after rendering: {raw}"
