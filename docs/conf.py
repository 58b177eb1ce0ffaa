"""Sphinx configuration of the sciops documentation (``make docs`` builds it with -W)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from sciops.version import __version__  # noqa: E402

project = "sciops"
author = "the sciops authors"
copyright = "2026, the sciops authors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "benchmark_tables",  # docs/_ext: benchmark pages rendered from docs/benchmarks/*.json
    "plain_docstrings",  # docs/_ext: plain-text docstrings shown as written
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.rst", "examples/*.py", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json"]
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference: the docstrings as written, plain text where they are not reStructuredText
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options: dict = {}  # members are listed per directive in api/index.rst
napoleon_google_docstring = True
napoleon_numpy_docstring = True
# Modules whose docstrings are written in numpydoc / Google style: rendered through napoleon as
# reStructuredText. Every other sciops docstring is plain text (ASCII mathematics, aligned
# diagrams) and shown verbatim (docs/_ext/plain_docstrings.py). Add a module here when its
# docstrings are converted.
plain_docstrings_rst_modules: list[str] = []
default_role = "literal"  # `x` in a docstring is code, not a cross-reference

html_theme = "pydata_sphinx_theme"
html_title = f"sciops {version}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"benchmarks/*": [], "auto_examples/*": []}

# The gallery: every example is run during the build at tiny settings (seconds each)
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib", "gallery_reset.reset_registries"),
    "reset_modules_order": "both",
    "show_memory": False,
    "plot_gallery": os.environ.get("SCIOPS_DOCS_GALLERY", "True"),
}

# Examples run single-threaded and quietly: the build machine is small and shared
os.environ.setdefault("OMP_NUM_THREADS", "1")
