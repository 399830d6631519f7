"""The result store: every finished unit of work on disk, keyed by its config, replayed on demand.

Layout under the store root (``results/`` in the repository unless ``$NML_RESULTS`` or an
argument says otherwise)::

    results/<experiment>/<key>.json   config, tidy result rows, provenance (encode_record)
    results/<experiment>/<key>.npz    arrays of the unit (singular values), when it has any
    results/index.csv                 one row per stored metric over all units

``key`` is a hash of the unit's config, so asking again for the same config replays the stored
result in milliseconds instead of recomputing it. Every write goes to a temporary file in the
same folder and is moved into place with ``os.replace``: a write killed midway leaves the
previous state, never half a file. Large intermediate tensors (cached features) live in a
separate cache folder (``$NML_CACHE``, default ``~/.cache/nml``) that is never committed.

Used by every chapter (``ResultStore.run`` computes or replays a unit; ``ResultStore.index``
feeds the figures and the scorecard).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import io
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .config import Config, config_hash
from .errors import NMLError
from .storage import atomic_write_bytes, default_cache_root, default_results_root
from .vocab import DERIVED_COLUMNS

__all__ = [
    "INDEX_COLUMNS", "DERIVED_COLUMNS", "ResultStore", "Unit", "UnitOutput", "atomic_write_bytes",
    "decode_record", "default_results_root", "default_cache_root", "encode_record",
    "provenance", "index_rows",
]

#: Columns every result row carries (other issues and the book read these).
INDEX_COLUMNS = ("experiment", "scale", "backbone", "noise", "pretrain_seed", "seed",
                 "method", "task", "metric", "value")


def index_rows(experiment: str, key: str, config: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """One unit's rows as ``index.csv`` holds them: its result rows, its ``key`` and the columns
    derived from its config (:data:`~nml.vocab.DERIVED_COLUMNS`: ``noise_type``, ``variant``;
    empty where a unit has none)."""
    from .index_columns import derived_columns
    rows = rows.copy()
    rows["key"] = key
    for column, value in derived_columns(experiment, config).items():
        rows[column] = value
    return rows


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def provenance(*, seconds: float | None = None, device: str | None = None,
               data_checksum: str | None = None, **extra: Any) -> dict:
    """What made a result: package and library versions, git commit, machine, time taken."""
    from . import __version__
    try:
        import torch
        torch_version = torch.__version__
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        threads = torch.get_num_threads()
    except Exception:  # torch-free readers of the store still get provenance
        torch_version, gpu, threads = None, None, None
    return {
        "nml_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": torch_version,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor_count": os.cpu_count(),
        # What makes CPU runs differ bit for bit between machines (oneDNN picks kernels by
        # CPU and thread count): recorded so that such variation can be told from noise.
        "cpu_model": _cpu_model(),
        "torch_threads": threads,
        "gpu": gpu,
        "device": device,
        "data_checksum": data_checksum,
        "seconds": seconds,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


@dataclass
class UnitOutput:
    """What a compute function returns: tidy rows, optional arrays, optional extra provenance."""

    rows: list[dict]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    device: str | None = None
    data_checksum: str | None = None


@dataclass
class Unit:
    """One stored unit: its config, rows (a DataFrame), arrays and provenance."""

    experiment: str
    key: str
    config: dict
    rows: pd.DataFrame
    arrays: dict[str, np.ndarray]
    provenance: dict
    info: dict
    replayed: bool = False


def _secondary_rank() -> bool:
    """True in a data-parallel process other than rank 0 (torch.distributed initialised)."""
    try:
        import torch.distributed as dist
    except Exception:
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


def _config_payload(config: Config | dict) -> dict:
    if isinstance(config, Config):
        return {"config_class": type(config).__name__, **config.to_dict()}
    if isinstance(config, dict):
        return dict(config)
    raise NMLError(f"a result's config must be a Config or a dict, got {type(config).__name__}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def _check_finite(experiment: str, output: UnitOutput) -> None:
    """Refuse a unit with a NaN / inf number in its rows or arrays: it is never stored."""
    for row in output.rows:
        for name, value in row.items():
            if isinstance(value, (float, np.floating)) and not np.isfinite(value):
                raise NMLError(
                    f"{experiment} result row {row.get('metric', '')!r} has {name} = {value}: "
                    f"the run did not finish with finite numbers, so it is not stored (a stored "
                    f"unit with the same config is kept); fix the run (e.g. a lower lr) and rerun")
    for name, arr in output.arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise NMLError(f"{experiment} result array {name!r} holds NaN or inf: the unit is not "
                           f"stored (a stored unit with the same config is kept)")


#: The index's key column: every stored unit's key is 16 hexadecimal digits (see config_hash).
_KEY_PATTERN = r"^[0-9a-f]{16}$"


def encode_record(record: dict) -> bytes:
    """A unit's JSON as stored: compact, one top-level field per line, rows as a table.

    ``rows`` (a list of dicts with the same columns, the common case) is written as
    ``{"columns": [...], "constant": {...}, "data": [[...], ...]}``: the columns whose value is
    the same in every row once in ``constant``, the rest one row per line in ``data``. That
    keeps every key and value (:func:`decode_record` restores the list of dicts exactly, in
    column order) at less than half the size of an indented list of dicts, and a changed
    value still shows as a one-line diff. Rows whose columns differ stay a list of dicts.
    Readers accept both this and the older indented form (``scripts/compact_results.py``
    converts a store)."""
    parts = []
    for name, value in record.items():
        if name == "rows":
            value = _table(value)
        if name == "rows" and isinstance(value, dict):
            lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in value["data"])
            text = (f'{{"columns":{json.dumps(value["columns"], separators=(",", ":"))},\n'
                    f'"constant":{json.dumps(value["constant"], separators=(",", ":"))},\n'
                    f'"data":[\n{lines}\n]}}')
        else:
            text = json.dumps(value, separators=(",", ":"))
        parts.append(f"{json.dumps(name)}:{text}")
    return ("{" + ",\n".join(parts) + "}\n").encode()


def _table(rows: list[dict]) -> list[dict] | dict:
    if not rows or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return rows
    columns = list(rows[0])
    if any(list(r) != columns for r in rows):
        return rows
    first = {c: json.dumps(rows[0][c]) for c in columns}   # exact: 1 vs 1.0, 0.0 vs -0.0
    constant = {c: rows[0][c] for c in columns
                if all(json.dumps(r[c]) == first[c] for r in rows)}
    varying = [c for c in columns if c not in constant]
    return {"columns": columns, "constant": constant,
            "data": [[r[c] for c in varying] for r in rows]}


def decode_record(data: bytes | str) -> dict:
    """A stored unit's record from its JSON (either format; see :func:`encode_record`)."""
    record = json.loads(data)
    rows = record.get("rows")
    if isinstance(rows, dict):
        columns, constant = rows["columns"], rows["constant"]
        varying = [c for c in columns if c not in constant]
        out = []
        for values in rows["data"]:
            if len(values) != len(varying):
                raise ValueError(f"a row has {len(values)} values for {len(varying)} columns")
            row = dict(zip(varying, values))
            out.append({c: constant[c] if c in constant else row[c] for c in columns})
        record["rows"] = out
    return record


class ResultStore:
    """Finished units on disk, keyed by config hash; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_results_root()

    # -- keys and paths -------------------------------------------------------------------
    @staticmethod
    def key(experiment: str, config: Config | dict) -> str:
        """The store key of a unit: a hash of the experiment name and the full config."""
        return config_hash({"experiment": experiment, **_config_payload(config)})

    def _paths(self, experiment: str, key: str) -> tuple[Path, Path]:
        folder = self.root / experiment
        return folder / f"{key}.json", folder / f"{key}.npz"

    # -- reading --------------------------------------------------------------------------
    def get(self, experiment: str, config: Config | dict) -> Unit | None:
        """The stored unit for this config, or None when it has not been computed."""
        return self.load(experiment, self.key(experiment, config))

    def load(self, experiment: str, key: str) -> Unit | None:
        json_path, npz_path = self._paths(experiment, key)
        if not json_path.exists():
            return None
        try:
            record = decode_record(json_path.read_bytes())
        except PermissionError:
            raise NMLError(f"cannot read stored result {json_path}: permission denied; make it "
                           f"readable (chmod u+r)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise NMLError(f"stored result {json_path} is not valid JSON ({err}); delete it and "
                           f"rerun to recompute that unit") from None
        except (KeyError, TypeError, ValueError) as err:
            raise NMLError(f"stored result {json_path} is not a valid unit ({err}); delete it "
                           f"and rerun to recompute that unit") from None
        arrays: dict[str, np.ndarray] = {}
        if npz_path.exists():
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return Unit(experiment=experiment, key=key, config=record["config"],
                    rows=pd.DataFrame(record["rows"]), arrays=arrays,
                    provenance=record["provenance"], info=record.get("info", {}), replayed=True)

    def paths(self, experiment: str, key: str) -> tuple[Path, Path]:
        """``(json_path, npz_path)`` of a unit (the npz exists only for units with arrays)."""
        return self._paths(experiment, key)

    def units(self, experiment: str | None = None) -> Iterable[Unit]:
        """Every stored unit (of one experiment, or all)."""
        folders = [self.root / experiment] if experiment else sorted(
            p for p in self.root.glob("*") if p.is_dir())
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                unit = self.load(folder.name, path.stem)
                if unit is not None:
                    yield unit

    # -- writing --------------------------------------------------------------------------
    def put(self, experiment: str, config: Config | dict, output: UnitOutput, *,
            seconds: float | None = None) -> Unit:
        """Store a finished unit atomically and refresh ``index.csv``."""
        if not experiment.replace("_", "").isalnum():
            raise NMLError(f"experiment name {experiment!r} must be letters, digits and '_'")
        key = self.key(experiment, config)
        _check_finite(experiment, output)
        payload = _config_payload(config)
        rows = []
        for row in output.rows:
            missing = [c for c in INDEX_COLUMNS if c not in row and c != "experiment"]
            if missing:
                raise NMLError(f"result row {row} lacks index column(s) {missing}")
            rows.append({"experiment": experiment, **_jsonable(row)})
        prov = provenance(seconds=seconds, device=output.device,
                          data_checksum=output.data_checksum)
        record = {"experiment": experiment, "key": key, "config": _jsonable(payload),
                  "rows": rows, "info": _jsonable(output.info), "provenance": prov}
        self.write_record(record, output.arrays)
        return Unit(experiment, key, record["config"], pd.DataFrame(rows),
                    dict(output.arrays), prov, record["info"], replayed=False)

    def amend(self, unit: Unit, rows: list[dict], arrays: dict[str, np.ndarray], *,
              note: str) -> Unit:
        """Add rows and arrays to a stored unit without changing its key or its other contents.

        For metrics that joined a unit's kind after it was stored (e.g. the authors' spectrum
        preprocessing, ``scripts/migrate_spectrum_authors.py``). Existing rows (same test set and
        metric) and arrays (same name) are refused, so an amendment never overwrites a result;
        ``note`` is appended to the provenance's ``amendments`` with a time stamp. The arrays
        and then the JSON are rewritten atomically and the index updated.
        """
        json_path, npz_path = self._paths(unit.experiment, unit.key)
        if not json_path.exists():
            raise NMLError(f"unit {unit.experiment}/{unit.key} is not stored in {self.root}; "
                           f"only stored units can be amended")
        record = decode_record(json_path.read_bytes())
        have = {(r.get("test_set"), r["metric"]) for r in record["rows"]}
        clash = [(r.get("test_set"), r["metric"]) for r in rows
                 if (r.get("test_set"), r["metric"]) in have]
        clash += [name for name in arrays if name in unit.arrays]
        if clash:
            raise NMLError(f"amending {unit.experiment}/{unit.key} would overwrite {clash[:4]}; "
                           f"an amendment only adds")
        new_rows = []
        for row in rows:
            missing = [c for c in INDEX_COLUMNS if c not in row and c != "experiment"]
            if missing:
                raise NMLError(f"result row {row} lacks index column(s) {missing}")
            new_rows.append({"experiment": unit.experiment, **_jsonable(row)})
        record["rows"] = record["rows"] + new_rows
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        record["provenance"].setdefault("amendments", []).append(
            {"note": note, "created": stamp, "git_commit": _git_commit(),
             "rows_added": len(new_rows), "arrays_added": sorted(arrays)})
        if arrays:
            merged = {**unit.arrays, **arrays}
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in merged.items()})
            atomic_write_bytes(npz_path, buf.getvalue())
        atomic_write_bytes(json_path, encode_record(record))
        self._update_index(index_rows(unit.experiment, unit.key, record["config"],
                                      pd.DataFrame(record["rows"])))
        return self.load(unit.experiment, unit.key)

    def write_record(self, record: dict, arrays: dict[str, np.ndarray] | None = None, *,
                     update_index: bool = True) -> None:
        """Write one unit's record (``experiment``, ``key``, ``config``, ``rows``, ``info``,
        ``provenance``) and arrays atomically, then (by default) its rows into ``index.csv``.

        :meth:`put` builds the record from a computation; ``python -m nml lease import``
        writes records that a lease computed elsewhere, provenance included."""
        experiment, key = record["experiment"], record["key"]
        json_path, npz_path = self._paths(experiment, key)
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
            atomic_write_bytes(npz_path, buf.getvalue())
        # The JSON goes last: a unit counts as stored only once its JSON exists.
        atomic_write_bytes(json_path, encode_record(record))
        if update_index:
            self._update_index(index_rows(experiment, key, record["config"],
                                          pd.DataFrame(record["rows"])))

    def run(self, experiment: str, config: Config | dict, compute: Callable[[], UnitOutput], *,
            recompute: bool = False) -> Unit:
        """Replay the stored unit for ``config``; compute and store it only when absent."""
        if not recompute:
            unit = self.get(experiment, config)
            if unit is not None:
                return unit
        start = time.perf_counter()
        output = compute()
        if not isinstance(output, UnitOutput):
            raise NMLError(f"compute for {experiment!r} must return a UnitOutput")
        if _secondary_rank():
            # Under torchrun every rank computes the same unit; rank 0 alone writes it.
            return Unit(experiment, self.key(experiment, config), _config_payload(config),
                        pd.DataFrame(output.rows), dict(output.arrays), {}, dict(output.info))
        return self.put(experiment, config, output, seconds=time.perf_counter() - start)

    # -- the index ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / ".lock", "w")
        except PermissionError:
            raise NMLError(f"cannot write to the result store {self.root}: permission denied; "
                           f"make it writable or pass another store (--results / "
                           f"$NML_RESULTS)") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _ordered(index: pd.DataFrame) -> pd.DataFrame:
        extra = [c for c in index.columns if c not in INDEX_COLUMNS]
        return index[[*INDEX_COLUMNS, *extra]].sort_values(
            ["experiment", "scale", "backbone", "noise", "pretrain_seed", "method", "task",
             "metric", "seed", "key"], kind="stable", na_position="first").reset_index(drop=True)

    def _write_index(self, index: pd.DataFrame) -> pd.DataFrame:
        index = self._ordered(index)
        atomic_write_bytes(self.root / "index.csv", index.to_csv(index=False).encode())
        return index

    def _rebuild_locked(self) -> pd.DataFrame:
        frames = [index_rows(unit.experiment, unit.key, unit.config, unit.rows)
                  for unit in self.units()]
        index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*INDEX_COLUMNS, "key", *DERIVED_COLUMNS])
        return self._write_index(index)

    def refresh_index(self) -> pd.DataFrame:
        """Rebuild ``index.csv`` from every stored unit (under a lock, written atomically)."""
        with self._lock():
            return self._rebuild_locked()

    def _read_index(self) -> tuple[pd.DataFrame | None, str | None]:
        """``index.csv`` and None when it is whole; None and what is wrong when it is damaged.

        Damage: missing or unreadable file, a last line cut short (a crash or a full disk
        mid-write), a header without the index columns, or rows without a valid unit key.
        """
        path = self.root / "index.csv"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, "index.csv is missing"
        except OSError as err:
            raise NMLError(f"cannot read {path} ({err.strerror}); fix its permissions "
                           f"(e.g. chmod u+rw {path})") from None
        if raw and not raw.endswith(b"\n"):
            return None, "the last line of index.csv is cut short"
        try:
            index = pd.read_csv(io.BytesIO(raw), dtype={"key": str, "experiment": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            return None, f"index.csv cannot be parsed ({str(err).strip()[:80]})"
        if list(index.columns[:len(INDEX_COLUMNS)]) != list(INDEX_COLUMNS) or \
                "key" not in index.columns:
            return None, (f"index.csv has a bad header (expected it to start with "
                          f"{','.join(INDEX_COLUMNS)} and to hold 'key')")
        bad = index[["experiment", "metric", "key"]].isna().any(axis=1) | \
            ~index["key"].fillna("").str.match(_KEY_PATTERN)
        if bad.any():
            return None, f"index.csv has {int(bad.sum())} malformed row(s) (no valid unit key)"
        return index, None

    def _stored_keys(self) -> set[tuple[str, str]]:
        """(experiment, key) of every unit JSON on disk (a directory listing, no JSON read)."""
        return {(p.parent.name, p.stem) for p in self.root.glob("*/*.json")
                if not p.name.startswith(".")}

    def _keys_agree(self, index: pd.DataFrame, skip: tuple[str, str] | None = None) -> bool:
        """Whether ``index`` holds rows of exactly the units on disk (``skip`` aside)."""
        in_index = set(zip(index["experiment"], index["key"]))
        return self._stored_keys() - {skip} == in_index - {skip}

    def _current(self, index: pd.DataFrame, skip: tuple[str, str] | None = None) -> bool:
        """Whether ``index`` has the derived columns and exactly the units on disk."""
        return all(c in index.columns for c in DERIVED_COLUMNS) and self._keys_agree(index, skip)

    def _update_index(self, rows: pd.DataFrame) -> None:
        """Replace one unit's rows (:func:`index_rows`) in ``index.csv``; heal the index on the way.

        Rebuilding from every unit on each write costs seconds once the store holds thousands
        of units; replacing one unit's rows under the lock keeps the index exact and cheap. A
        damaged index (see :meth:`_read_index`), or one that misses a unit or holds rows of a
        unit that is gone, is rebuilt from the units instead. (A row missing inside a unit that
        still has others is found only by :meth:`check`, which reads every unit.) An index
        written before the derived columns existed is rebuilt too.
        """
        experiment = str(rows["experiment"].iloc[0]) if len(rows) else None
        key = str(rows["key"].iloc[0]) if len(rows) else None
        with self._lock():
            index, _ = self._read_index()
            if index is None or not self._current(index, skip=(experiment, key)):
                self._rebuild_locked()
                return
            self._write_index(pd.concat([index[index["key"] != key], rows], ignore_index=True))

    def reindex_unit(self, experiment: str, key: str) -> None:
        """Replace one unit's rows in ``index.csv`` with those of its JSON file (after the unit
        was edited in place, e.g. by a migration script in ``scripts/``)."""
        unit = self.load(experiment, key)
        if unit is None:
            raise NMLError(f"no stored unit {experiment}/{key} under {self.root}")
        self._update_index(index_rows(experiment, key, unit.config, unit.rows))

    def index(self) -> pd.DataFrame:
        """The tidy table of every stored metric (read from ``index.csv``; rebuilt from the
        units when it is absent or damaged, or misses units or holds rows of deleted ones)."""
        index, _ = self._read_index()
        if index is not None and self._current(index):
            return index
        with self._lock():
            index, _ = self._read_index()
            if index is not None and self._current(index):
                return index
            return self._rebuild_locked()

    def check(self) -> list[str]:
        """Every disagreement between the unit JSON files (the truth) and ``index.csv``.

        An empty list means the index is exactly what :meth:`refresh_index` would write.
        Used by ``python -m nml store check``.
        """
        index, problem = self._read_index()
        if index is None:
            return [problem]
        expected = self._expected_index()
        problems = []
        missing_cols = [c for c in expected.columns if c not in index.columns]
        if missing_cols:
            problems.append(f"index.csv lacks column(s) {missing_cols}")
        actual = index.reindex(columns=expected.columns)
        groups = {k: g for k, g in actual.groupby(["experiment", "key"], sort=False)}
        for (experiment, key), want in expected.groupby(["experiment", "key"], sort=False):
            have = groups.pop((experiment, key), None)
            if have is None:
                problems.append(f"unit {experiment}/{key} is not in index.csv")
            elif len(have) != len(want):
                problems.append(f"unit {experiment}/{key} has {len(want)} row(s), index.csv "
                                f"{len(have)}")
            elif not _same_rows(have, want):
                problems.append(f"unit {experiment}/{key}: index.csv rows differ from the unit")
        for experiment, key in groups:
            problems.append(f"index.csv holds rows of {experiment}/{key}, whose unit JSON is "
                            f"missing")
        return problems

    def _expected_index(self) -> pd.DataFrame:
        """What index.csv should hold, as read back from CSV (so the types compare equal)."""
        frames = [index_rows(unit.experiment, unit.key, unit.config, unit.rows)
                  for unit in self.units()]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*INDEX_COLUMNS, "key", *DERIVED_COLUMNS])
        text = self._ordered(table).to_csv(index=False)
        return pd.read_csv(io.StringIO(text), dtype={"key": str, "experiment": str})


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two sets of index rows hold the same values (row order and float noise aside)."""
    cols = list(b.columns)
    a = a[cols].sort_values(cols, kind="stable", na_position="first").reset_index(drop=True)
    b = b[cols].sort_values(cols, kind="stable", na_position="first").reset_index(drop=True)
    try:
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-12, atol=0)
    except AssertionError:
        return False
    return True
