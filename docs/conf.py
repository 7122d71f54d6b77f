"""Sphinx configuration of the genmath documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W -b html docs docs/_build/html

Math is rendered by MathJax 3 served from the built site itself (``_static/mathjax``,
copied from the ``sphinx-mathjax-offline`` package), never from a CDN, so the pages work
on machines without internet access. Pages that depend on the code or on committed results
(the API reference, the benchmark tables, the example results) are generated at build time
by the local extension ``_ext/genmath_docs.py``.
"""

from __future__ import annotations

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # genmath, and benchmarks/ for the benchmark report
sys.path.insert(0, str(DOCS / "_ext"))

import genmath  # noqa: E402

project = "genmath"
author = "the genmath authors"
copyright = "the genmath authors"
release = genmath.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "genmath_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "results/README.md"]
templates_path: list[str] = []
html_static_path = ["_static"]  # genmath_docs adds MathJax's folder

# -- autodoc + Napoleon (Google-style docstrings) ------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The shared aliases of genmath._src.typing, shown by name instead of expanded unions.
autodoc_type_aliases = {
    name: name for name in ("Array", "ArrayLike", "Axis", "Key", "SampleShape", "Shape")
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- MyST (Markdown pages) ----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"genmath {release}"
html_theme_options = {"navigation_with_keys": True}
# MathJax 3, served from _static/mathjax (set up by genmath_docs from sphinx-mathjax-offline).
mathjax_path = "mathjax/tex-chtml.js"
