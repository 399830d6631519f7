"""Check a built book for error outputs: a page that shows a cell error is a failed build.

myst-nb renders a cell that raised as an output ``<div class="output traceback ...">`` (an
``ipythontb``-highlighted block). Sphinx's own exit code does not always see it: a page that
failed once is not re-read by the next incremental build, which then "succeeds" with the
traceback still on the page. ``make book`` runs this check after every build and reports
success only when no page holds such an output::

    python -m nml.bookcheck _build/html

Exit code 0 when every page is clean, 1 (with one line per bad page) otherwise.
Used by the Makefile's ``book`` target, which builds every chapter.
"""

from __future__ import annotations

import re
import sys
from html import unescape
from pathlib import Path

from .errors import NMLError

__all__ = ["error_outputs", "scan_book", "main"]

#: The classes myst-nb gives an error output (see the module docstring).
_ERROR_OUTPUT = re.compile(r'class="[^"]*\b(?:output traceback|highlight-ipythontb)\b[^"]*"')
#: The text of the error's last line (shown in the report, e.g. "DataError: no data folder").
_ERROR_LINE = re.compile(r'<span class="ne">(\w+(?:Error|Exception))</span>: ?([^<\n]*)')


def error_outputs(html: str) -> list[str]:
    """The error outputs on one built page: one short description each (empty when clean)."""
    hits = _ERROR_OUTPUT.findall(html)
    if not hits:
        return []
    names = [unescape(f"{m.group(1)}: {m.group(2).strip()}")[:160]
             for m in _ERROR_LINE.finditer(html)]
    count = len(re.findall(r'class="[^"]*\boutput traceback\b', html)) or len(hits)
    return names[-count:] if names else ["a cell error output"] * count


def scan_book(html_dir: str | Path) -> list[str]:
    """One line per built page that holds an error output, under ``html_dir``."""
    root = Path(html_dir)
    if not root.is_dir():
        raise NMLError(f"no built book at {root}; run `make book` first")
    problems = []
    for page in sorted(root.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        for what in error_outputs(page.read_text(errors="replace")):
            problems.append(f"{page.relative_to(root)}: {what}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    html_dir = args[0] if args else "_build/html"
    try:
        problems = scan_book(html_dir)
    except NMLError as err:
        print(f"nml.bookcheck: error: {err}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"book page with an error output: {line}", file=sys.stderr)
    if problems:
        print(f"nml.bookcheck: {len(problems)} error output(s) in {html_dir}: the build failed",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
