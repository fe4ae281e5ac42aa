"""Sphinx extension: a star in a shape (``(N, C, *S)``, ``x : ndarray, shape (N, *S)``) is not emphasis.

nlref's docstrings write shapes as the house style asks, ``x: (N, C, *S)``; reST would read
``*S)`` as the start of an emphasis that never ends (a warning, and so a failed build). Before
numpydoc sees a docstring, this escapes every star that starts a shape entry -- a star followed
by a name and then ``)`` or ``,`` -- outside inline literals, literal blocks and doctests.
Emphasis (``*word*``, ``*a few words*``) is left alone.
"""

from __future__ import annotations

import re

_SHAPE_STAR = re.compile(r"(?<!\\)\*(?=[A-Za-z_][\w']*\s*[),\]])")


def _escape(text: str) -> str:
    parts = text.split("``")  # odd parts are inline literals
    return "``".join(p if i % 2 else _SHAPE_STAR.sub(r"\\*", p) for i, p in enumerate(parts))


def escape_shape_stars(lines: list[str]) -> None:
    """In place: escape shape stars in prose lines (not in literal blocks or doctests)."""
    block_indent = None  # indentation of the paragraph that opened a literal block ("::")
    doctest = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            doctest = False
            continue
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        if stripped.startswith(">>>") or doctest:
            doctest = True
            continue
        lines[i] = _escape(line)
        if stripped.endswith("::"):
            block_indent = indent


def _process(app, what, name, obj, options, lines: list[str]) -> None:
    escape_shape_stars(lines)


def setup(app) -> dict:
    app.connect("autodoc-process-docstring", _process, priority=100)  # before numpydoc (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
