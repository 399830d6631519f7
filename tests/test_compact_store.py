"""The compact unit JSON (nml.results.encode_record) and scripts/compact_results.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from nml.results import ResultStore, UnitOutput, decode_record, encode_record

ROOT = Path(__file__).resolve().parents[1]


def _rows():
    base = {"scale": "tiny", "backbone": "b", "noise": 0.0, "pretrain_seed": 0, "seed": 0,
            "method": "lp", "task": "t"}
    return [{**base, "test_set": "test", "metric": "accuracy", "value": 50.123456789012345},
            {**base, "test_set": "test", "metric": "f1", "value": -0.0},
            {**base, "test_set": "other", "metric": "sve", "value": 1}]


def test_encode_decode_keeps_every_key_value_and_order():
    record = {"experiment": "x", "key": "k", "config": {"b": 1, "a": [1.0, None]},
              "rows": _rows(), "info": {"history": [{"epoch": 1, "loss": 0.5}]},
              "provenance": {"seconds": 1.5}}
    text = encode_record(record)
    back = decode_record(text)
    assert json.dumps(back) == json.dumps(record)          # key order and 1 vs 1.0 vs -0.0 kept
    assert text.count(b"\n") >= len(record["rows"]) + 5     # one row per line: diffable
    ragged = dict(record, rows=[{"a": 1}, {"b": 2}])        # rows with other columns: kept as is
    assert json.dumps(decode_record(encode_record(ragged))) == json.dumps(ragged)


def test_migration_converts_an_old_store_and_replays_equal(tmp_path):
    store = ResultStore(tmp_path)
    unit = store.put("linear_probe", {"a": 1}, UnitOutput(
        rows=_rows(), arrays={"test": np.array([3.0, 2.0, 1.0])}, info={"h": [1, 2]}))
    path = store.paths("linear_probe", unit.key)[0]
    # the pre-compact form: indented list of dicts
    record = decode_record(path.read_bytes())
    path.write_text(json.dumps(record, indent=1))
    old = store.load("linear_probe", unit.key)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compact_results.py"),
                          str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("1 converted, 0 already compact, 0 refused")
    new = store.load("linear_probe", unit.key)
    assert old.rows.equals(new.rows) and old.config == new.config and old.info == new.info
    np.testing.assert_array_equal(old.arrays["test"], new.arrays["test"])
    assert b'"rows":{"columns"' in path.read_bytes()
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "compact_results.py"),
                            str(tmp_path)], capture_output=True, text=True, check=True)
    assert again.stdout.startswith("0 converted, 1 already compact")
