"""Rewrite every stored unit's JSON in the compact format of ``nml.results.encode_record``.

    .venv/bin/python scripts/compact_results.py [RESULTS_DIR] [--check]

Each ``<experiment>/<key>.json`` is decoded, re-encoded, decoded again and compared with the
original (every key and value, row order and column order included) before the new text
replaces the old one atomically; a unit that would not round-trip is left untouched and
reported (exit 1). Units already compact are skipped, so the script can be run again at any
time, e.g. after merging results written by an older checkout. ``--check`` only counts what
would change. ``index.csv`` and the ``.npz`` arrays are not touched (their content is the same).

Used when the store's size matters (a GPU lease carries the whole tracked tree: book/rerun.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nml.results import atomic_write_bytes, decode_record, encode_record  # noqa: E402


def _same(a, b) -> bool:
    """Equal as JSON, including key order of every dict (json.dumps without sort_keys)."""
    return json.dumps(a) == json.dumps(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]
                                                       / "results"))
    parser.add_argument("--check", action="store_true", help="report only, change nothing")
    args = parser.parse_args(argv)
    root = Path(args.root)
    changed = same = failed = 0
    before = after = 0
    for path in sorted(root.glob("*/*.json")):
        raw = path.read_bytes()
        original = json.loads(raw)
        new = encode_record(decode_record(raw))
        before += len(raw)
        if new == raw:
            same += 1
            after += len(raw)
            continue
        if not _same(decode_record(new), decode_record(raw)) or \
                (not isinstance(original.get("rows"), dict)
                 and not _same(decode_record(new), original)):
            print(f"not converted (would not round-trip): {path}", file=sys.stderr)
            failed += 1
            after += len(raw)
            continue
        if not args.check:
            atomic_write_bytes(path, new)
        changed += 1
        after += len(new)
    print(f"{changed} converted, {same} already compact, {failed} refused; "
          f"{before / 1e6:.2f} MB -> {after / 1e6:.2f} MB" + (" (check only)" if args.check
                                                               else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
