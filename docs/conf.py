"""Sphinx configuration of the docs site: Markdown pages (MyST-Parser), the Furo theme.

Why Sphinx: actively maintained, a strict build (`-W`: every warning is an error, so broken links
between pages and pages missing from the table of contents fail `make docs`), and MyST keeps the
pages plain Markdown that read well on GitHub too. Build: `make docs` → docs/_build/html.
"""

project = "elmo-pipeline"
author = "elmo-pipeline contributors"
copyright = "2026, elmo-pipeline contributors (MIT licence)"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # links to sections: page.md#section-title
suppress_warnings = ["myst.header"]  # a page may start below level 1 inside an included block

html_theme = "furo"
html_title = "elmo-pipeline"
html_static_path: list[str] = []
