"""Reading the result index for the scorecard, writing ``book/scorecard.md`` and the
``python -m nml scorecard`` command.

Used by book/scorecard.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import NMLError
from .render import render_markdown
from .source import default_scorecard_path, load_index


def write_scorecard(results: str | Path | None = None, out: str | Path | None = None,
                    scales=None) -> Path:
    """Regenerate the scorecard page from the store; returns the path written.

    Used by book/scorecard.md (via ``python -m nml scorecard``).
    """
    from ..results import atomic_write_bytes
    path = Path(out) if out is not None else default_scorecard_path()
    text = render_markdown(load_index(results), scales=scales)
    atomic_write_bytes(path, text.encode())
    return path


def main_cli(args: argparse.Namespace) -> None:
    """``python -m nml scorecard``: write (or, with --check, verify) book/scorecard.md.

    Used by book/scorecard.md; bad input raises NMLError (exit code 2 in ``nml.cli``).
    """
    scales = args.scales.split(",") if getattr(args, "scales", None) else None
    out = Path(args.out) if args.out else default_scorecard_path()
    if getattr(args, "check", False):
        text = render_markdown(load_index(args.results), scales=scales)
        if not out.exists() or out.read_text() != text:
            raise NMLError(f"{out} is out of date with the result index; regenerate it with "
                           f"`python -m nml scorecard`")
        print(f"{out} is up to date")
        return
    path = write_scorecard(args.results, out, scales=scales)
    print(f"wrote {path}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``scorecard`` subcommand to ``python -m nml``'s subparsers.

    Used by ``nml.cli.build_parser`` for book/scorecard.md.
    """
    p = subparsers.add_parser("scorecard", help="regenerate the reproduction scorecard page")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.add_argument("--out", default=None, help="page to write (default: book/scorecard.md)")
    p.add_argument("--scales", default=None,
                   help="comma list of scales to show (default: every scale in the index)")
    p.add_argument("--check", action="store_true",
                   help="do not write: exit 2 when the page differs from a fresh render")
    p.set_defaults(func=main_cli)
    return p
