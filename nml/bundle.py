"""Lease bundles: pack a lease's units with checksums, verify and merge them into a store.

A bundle is one folder of four files, within what a GPU lease can return (8 files of at most
16 MiB): ``manifest.json`` (bundle format, ``nml`` version, a fingerprint of the package's
sources, provenance, the unit list with timings, the worker probe), ``units.tar.gz`` (each unit's
JSON and arrays as ``<experiment>/<key>.json|.npz``), ``log.jsonl`` (what the lease did, when)
and ``SHA256SUMS`` (of the other three).

Used by :mod:`nml.lease` (``python -m nml lease run`` packs, ``lease import`` merges) and
book/rerun.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np

from .errors import DataError, NMLError
from .results import ResultStore, decode_record

__all__ = ["BUNDLE_FORMAT", "code_fingerprint", "pack_bundle", "import_bundle"]

BUNDLE_FORMAT = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_fingerprint() -> str:
    """SHA256 over the package's Python sources (recorded; import reports a difference)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


_MAX_FILE = 16 * 2 ** 20


def pack_bundle(bundle: Path, private: Path, manifest: dict, labels: dict,
                log: list[dict]) -> Path:
    """Pack the private store ``private`` into ``bundle`` (then delete it); return ``bundle``.

    ``manifest`` gets the unit list (``labels[key]``: priority, label, seconds, worker) and is
    written with ``units.tar.gz`` (every unit's JSON and arrays, sorted, zeroed owners and
    times), ``log.jsonl`` (``log``) and ``SHA256SUMS``. Used by :func:`nml.lease.run_lease`.
    """
    members = []
    for path in sorted(private.glob("*/*.json")):
        members.append(path)
        npz = path.with_suffix(".npz")
        if npz.exists():
            members.append(npz)
    units = []
    for path in members:
        if path.suffix == ".json":
            record = decode_record(path.read_bytes())
            units.append({"experiment": record["experiment"], "key": record["key"],
                          **labels.get(record["key"], {"label": record["experiment"]})})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in members:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(private)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    (bundle / "units.tar.gz").write_bytes(buf.getvalue())
    (bundle / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    manifest = {**manifest, "units": units}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    shutil.rmtree(private)
    files = ["manifest.json", "units.tar.gz", "log.jsonl"]
    for name in files:
        if (bundle / name).stat().st_size > _MAX_FILE:
            raise NMLError(f"{bundle / name} is over 16 MiB, more than a lease can return; "
                           f"run fewer priorities per lease (--priorities)")
    (bundle / "SHA256SUMS").write_text("".join(f"{_sha256(bundle / n)}  {n}\n" for n in files))
    return bundle


# -- import ---------------------------------------------------------------------------------

def _content(record: dict, arrays: dict) -> str:
    """What must agree between two copies of a unit (provenance may differ)."""
    body = {k: record.get(k) for k in ("experiment", "key", "config", "rows", "info")}
    arr = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() + str(v.dtype)
           + str(v.shape) for k, v in sorted(arrays.items())}
    return json.dumps([body, arr], sort_keys=True)


def _read_npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def import_bundle(bundle: str | os.PathLike, store: ResultStore | None = None) -> dict:
    """Verify a lease bundle and merge its units into ``store``; nothing is written unless
    every check passes. Returns ``{"imported", "already_stored", "units", "code_matches"}``.

    Refused (DataError / NMLError, one line): a missing or altered file (SHA256SUMS), a unit
    whose key is not the hash of its config, a unit the manifest does not list, non-finite
    values, another bundle format or ``nml`` version, and a unit whose key is stored with
    other content (a conflict: delete one of them knowingly, then import again).

    Used by ``python -m nml lease import``.
    """
    # long: verify every unit first, then write: one pass that merges all units or none
    from . import __version__
    bundle = Path(bundle)
    store = store or ResultStore()
    sums = bundle / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{bundle} is not a lease bundle (no SHA256SUMS); pass the folder that "
                        f"`lease run` wrote (lease-<time>-<scale>)")
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name.strip()] = digest.strip()
    for name in ("manifest.json", "units.tar.gz"):
        if name not in listed:
            raise DataError(f"bundle {bundle}: SHA256SUMS does not list {name}; the bundle is "
                            f"incomplete, copy it again from the lease")
    for name, digest in listed.items():
        path = bundle / name
        if "/" in name or not path.is_file() or _sha256(path) != digest:
            raise DataError(f"bundle {bundle}: {name} is missing or damaged (checksum "
                            f"mismatch); copy the bundle again from the lease")
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise NMLError(f"bundle format {manifest.get('format')} is not {BUNDLE_FORMAT}; import "
                       f"it with the nml version that wrote it")
    if manifest.get("nml_version") != __version__:
        raise NMLError(f"bundle was made by nml {manifest.get('nml_version')} (commit "
                       f"{manifest.get('provenance', {}).get('git_commit')}), this is nml "
                       f"{__version__}; import it from that version's checkout")
    records: dict[str, tuple[dict, dict]] = {}
    npz: dict[str, bytes] = {}
    with tarfile.open(bundle / "units.tar.gz", mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 2 or parts[1].startswith(".") \
                    or not parts[0].replace("_", "").isalnum() \
                    or not parts[1].endswith((".json", ".npz")):
                raise DataError(f"bundle {bundle}: unexpected entry {member.name!r} in "
                                f"units.tar.gz")
            data = tar.extractfile(member).read()
            if parts[1].endswith(".npz"):
                npz[member.name[:-4]] = data
                continue
            record = decode_record(data)
            experiment, key = parts[0], parts[1][:-5]
            if record.get("experiment") != experiment or record.get("key") != key:
                raise DataError(f"bundle {bundle}: {member.name} holds unit "
                                f"{record.get('experiment')}/{record.get('key')}")
            if ResultStore.key(experiment, record["config"]) != key:
                raise DataError(f"bundle {bundle}: unit {experiment}/{key} does not match its "
                                f"config (key {ResultStore.key(experiment, record['config'])})")
            values = [r.get("value") for r in record["rows"]]
            if not values or any(not isinstance(v, (int, float)) or not math.isfinite(v)
                                 for v in values):
                raise DataError(f"bundle {bundle}: unit {experiment}/{key} has no or "
                                f"non-finite values")
            records[f"{experiment}/{key}"] = (record, {})
    for name, data in npz.items():
        if name not in records:
            raise DataError(f"bundle {bundle}: arrays {name}.npz belong to no unit")
        records[name] = (records[name][0], _read_npz(data))
    listed_units = {f"{u['experiment']}/{u['key']}" for u in manifest.get("units", [])}
    if listed_units != set(records):
        raise DataError(f"bundle {bundle}: manifest lists {len(listed_units)} units, "
                        f"units.tar.gz holds {len(records)}; the bundle is inconsistent")
    new, same = [], []
    for name, (record, arrays) in sorted(records.items()):
        existing = store.load(record["experiment"], record["key"])
        if existing is None:
            new.append((record, arrays))
            continue
        json_path = store.paths(record["experiment"], record["key"])[0]
        stored = decode_record(json_path.read_bytes())
        if _content(stored, existing.arrays) != _content(record, arrays):
            raise NMLError(f"bundle unit {name} conflicts with the stored unit of the same key "
                           f"(other content); nothing was imported. Keep one: delete "
                           f"{json_path} to take the bundle's, or leave the bundle out")
        same.append(name)
    for record, arrays in new:
        store.write_record(record, arrays, update_index=False)
    if new:
        store.refresh_index()
    return {"imported": len(new), "already_stored": len(same), "units": len(records),
            "code_matches": manifest.get("code") == code_fingerprint(),
            "bundle": str(bundle)}
