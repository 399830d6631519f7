"""Add the authors' spectrum preprocessing to spectrum units stored before it existed.

Every spectrum unit (experiment ``spectrum``, and the ``frozen`` units of experiment ``clip``)
now stores SVE / LSVR under two preprocessings (``nml.spectrum``): the paper's raw features
(metrics ``sve`` / ``lsvr``) and the authors' row-normalised, row-centred ones
(``sve_authors`` / ``lsvr_authors``, arrays ``authors/<test set>``). Units stored earlier have
only the first. This script adds the second to them **without changing their keys**:

1. it finds the unit's frozen features: in the feature caches named by ``--features-from``
   (read only; e.g. the background grid's ``~/.cache/nml``) or in ``$NML_CACHE``; failing
   that, for the scales named by ``--recompute`` (default: ``tiny``, whose models pre-train in
   seconds), it pre-trains / extracts them again under ``$NML_CACHE``;
2. it recomputes the paper's spectrum from those features and checks it against the stored
   one (relative difference at most ``--tolerance`` for every SVE, LSVR and singular value), so
   the authors' rows come from the very features behind the stored rows; a unit that fails the
   check is reported and left alone;
3. it adds the authors' rows and arrays (``ResultStore.amend``: atomic, adds only, notes the
   amendment in the unit's provenance).

Black-box tuning units (``--tuning``, experiments ``linear_probe``, ``nmtune`` and ``clip``) store
the spectrum of the features their classifier sees (LP: the frozen F; MLP / NMTune: Z), which
only a tuning run yields. For the scales named by ``--recompute`` the script runs each such unit
again into a scratch store and adds the authors' rows only when **every** stored row (accuracy,
F1, SVE, LSVR of every test set) and the paper's singular values are reproduced within
``--tolerance``. Tiny-scale runs repeat exactly on a CPU, so the units today's code stored pass;
a unit its re-run does not reproduce (a run that is not bit-reproducible, or one stored by older
code) is reported and left alone.

Idempotent: units that already carry the authors' rows are skipped, so it can be rerun after a
grid adds units. Units whose features cannot be found (e.g. the old reduced ``cpu`` scale,
whose checkpoints are gone) are reported as not migrated; the chapters and the scorecard show
them as "not stored".

    NML_CACHE=/work/cache/me .venv/bin/python scripts/migrate_spectrum_authors.py \\
        --features-from ~/.cache/nml [--results results] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nml.config import config_hash
from nml.experiments import Pipeline
from nml.pretrain import PretrainConfig
from nml.results import ResultStore, default_cache_root
from nml.spectrum import METRIC_NAMES

EXPERIMENTS = ("spectrum", "clip")
#: Tuning units whose Z / F spectrum a scorecard claim reads (C9*, K*): the chapters' LP,
#: MLP and NMTune grids.
TUNING_EXPERIMENTS = ("linear_probe", "nmtune", "clip")
AUTHORS_METRICS = set(METRIC_NAMES["authors"].values())


def spectrum_units(store: ResultStore):
    for experiment in EXPERIMENTS:
        for unit in store.units(experiment):
            if len(unit.rows) and (unit.rows["method"] == "frozen").all():
                yield unit


def tuning_units(store: ResultStore):
    """Stored black-box tuning units that carry a spectrum (metric ``sve``)."""
    from nml.tune import BLACKBOX_METHODS
    for experiment in TUNING_EXPERIMENTS:
        for unit in store.units(experiment):
            if (len(unit.rows) and set(unit.rows["method"]) <= set(BLACKBOX_METHODS)
                    and (unit.rows["method"] != "frozen").all()
                    and "sve" in set(unit.rows["metric"])):
                yield unit


def unit_label(unit) -> str:
    first = unit.rows.iloc[0]
    return (f"{unit.experiment}/{unit.key} ({first['scale']}, {first['backbone']}, "
            f"noise {first['noise']:g}, seed {first['pretrain_seed']:g}, {first['task']}"
            + (f", {first['method']} seed {first['seed']:g})" if first["method"] != "frozen"
               else ")"))


def check_rerun(unit, rerun, tolerance: float) -> float:
    """Largest relative difference between a stored tuning unit and its re-run, over every
    stored row and every stored array (LookupError when the re-run lacks one)."""
    fresh = {(r.test_set, r.metric): r.value for r in rerun.rows.itertuples()}
    worst = 0.0
    for r in unit.rows.itertuples():
        if (r.test_set, r.metric) not in fresh:
            raise LookupError(f"the re-run has no row {(r.test_set, r.metric)}")
        new = fresh[(r.test_set, r.metric)]
        worst = max(worst, abs(new - r.value) / max(abs(r.value), 1e-12))
    for name, old in unit.arrays.items():
        new = rerun.arrays.get(name)
        if new is None or new.shape != old.shape:
            raise LookupError(f"the re-run's array {name} differs in shape")
        worst = max(worst, float(np.max(np.abs(old - new)) / max(np.abs(old).max(), 1e-300)))
    return worst


def migrate_tuning(store: ResultStore, recompute: set[str], tolerance: float, dry_run: bool,
                   report: dict) -> None:
    """The ``--tuning`` pass (see the module docstring)."""
    import tempfile

    from nml.tune import TuneConfig
    todo = [u for u in tuning_units(store) if not AUTHORS_METRICS <= set(u.rows["metric"])]
    report["already"] += [unit_label(u) for u in tuning_units(store)
                          if AUTHORS_METRICS <= set(u.rows["metric"])]
    todo.sort(key=lambda u: (str(u.rows["scale"].iloc[0]), u.config["pretrain"]["backbone"],
                             PretrainConfig.from_dict(u.config["pretrain"]).hash(), u.key))
    with tempfile.TemporaryDirectory() as scratch_root:
        scratch = ResultStore(Path(scratch_root) / "results")
        pipes: dict[str, Pipeline] = {}
        for unit in tqdm(todo, desc="tuning units", disable=not todo):
            label, scale = unit_label(unit), str(unit.rows["scale"].iloc[0])
            if scale not in recompute:
                report["not migrated"].append(f"{label}: scale {scale!r} is not recomputed")
                continue
            if dry_run:
                report["migrated"].append(f"{label}: would run it again")
                continue
            pipe = pipes.setdefault(scale, Pipeline(scale, store=scratch, progress=False))
            pcfg = PretrainConfig.from_dict(unit.config["pretrain"])
            tcfg = TuneConfig.from_dict(unit.config["tune"])
            task = unit.config["task"]
            if pipe.tune_ref(pcfg, task, tcfg, experiment=unit.experiment) != (
                    unit.experiment, unit.config):
                report["not migrated"].append(f"{label}: its key does not match today's config")
                continue
            rerun = pipe.tune(pcfg, task, tcfg, experiment=unit.experiment)
            try:
                worst = check_rerun(unit, rerun, tolerance)
            except LookupError as err:
                report["not migrated"].append(f"{label}: {err}")
                continue
            if worst > tolerance:
                report["not migrated"].append(
                    f"{label}: the re-run is {worst:.2e} (relative) away from the stored unit "
                    f"(> {tolerance:g}); not the same run")
                continue
            rows = rerun.rows[rerun.rows["metric"].isin(AUTHORS_METRICS)].to_dict("records")
            arrays = {k: v for k, v in rerun.arrays.items() if k.startswith("authors/")}
            store.amend(unit, [{k: v for k, v in r.items() if k != "experiment"} for r in rows],
                        arrays, note=(
                f"authors' spectrum preprocessing (sve_authors, lsvr_authors, authors/<set>) "
                f"added by scripts/migrate_spectrum_authors.py --tuning from a re-run of this "
                f"unit's config that reproduces every stored row and array to {worst:.1e}"))
            report["migrated"].append(f"{label}: re-run matches to {worst:.1e}")


def feature_payload(unit) -> dict:
    """The feature-cache payload that ``Pipeline.features`` (unaugmented) used for a spectrum unit
    before the cache key held the weights' fingerprint: the caches this script reads were all
    written then. Recomputed features go through today's key."""
    return {**unit.config, "augment_seed": None}


def find_features(unit, roots: list[Path], *, load: bool = True
                  ) -> tuple[dict | None, Path | None]:
    name = f"{config_hash(feature_payload(unit))}.pt"
    for root in roots:
        path = root / "features" / name
        if path.exists():
            return (torch.load(path, map_location="cpu", weights_only=True) if load else None,
                    path)
    return None, None


def as_feats(tensors: dict) -> dict:
    tests = {k.split("/")[1]: (tensors[k], tensors[k[:-1] + "y"])
             for k in tensors if k.startswith("test/") and k.endswith("/x")}
    return {"train": (tensors["train/x"], tensors["train/y"]), "tests": tests}


def check_paper(unit, rows: list[dict], arrays: dict, tolerance: float) -> float:
    """Largest relative difference between the stored and the recomputed paper spectrum."""
    stored = {(r.test_set, r.metric): r.value for r in unit.rows.itertuples()}
    worst = 0.0
    for row in rows:
        key = (row["test_set"], row["metric"])
        if key not in stored:
            raise LookupError(f"recomputed row {key} is not in the stored unit")
        worst = max(worst, abs(row["value"] - stored[key]) / max(abs(stored[key]), 1e-12))
    if set(stored) != {(r["test_set"], r["metric"]) for r in rows}:
        raise LookupError("the recomputed test sets differ from the stored ones")
    for name, s in arrays.items():
        old = unit.arrays.get(name)
        if old is None or old.shape != s.shape:
            raise LookupError(f"array {name} differs in shape from the stored one")
        worst = max(worst, float(np.max(np.abs(old - s)) / max(np.abs(old).max(), 1e-300)))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=None, help="result store (default: results/)")
    parser.add_argument("--features-from", action="append", default=[], type=Path,
                        help="another cache root to read features from (read only); repeatable")
    parser.add_argument("--recompute", default="tiny",
                        help="comma-separated scales whose features may be recomputed under "
                             "$NML_CACHE when not found (default: tiny; '' for none)")
    parser.add_argument("--tolerance", type=float, default=1e-6,
                        help="largest relative difference allowed between the stored and the "
                             "recomputed paper spectrum (--tuning: every stored row and array)")
    parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    parser.add_argument("--tuning", action="store_true",
                        help="also migrate black-box tuning units by running them again "
                             "(scales in --recompute only; see the module docstring)")
    args = parser.parse_args(argv)

    store = ResultStore(args.results)
    own = default_cache_root()
    roots = [own] + [p.expanduser() for p in args.features_from]
    recompute = {s for s in args.recompute.split(",") if s}
    pipes: dict[str, Pipeline] = {}
    report = {"migrated": [], "already": [], "not migrated": []}
    def cost(unit) -> tuple:
        """Cheap units first (features cached, then a checkpoint to resume or reuse), and the
        units of one pre-trained model together, so that each model is trained at most once
        and a run stopped early has migrated what was cheap."""
        pcfg_hash = PretrainConfig.from_dict(unit.config["pretrain"]).hash()
        if find_features(unit, roots, load=False)[1] is not None:
            rank = 0
        elif (own / "checkpoints" / pcfg_hash).exists():
            rank = 1
        else:
            rank = 2
        return rank, pcfg_hash, unit.experiment, unit.key

    for unit in sorted(spectrum_units(store), key=cost):
        label = unit_label(unit)
        if AUTHORS_METRICS <= set(unit.rows["metric"]):
            report["already"].append(label)
            continue
        scale = str(unit.rows["scale"].iloc[0])
        pcfg = PretrainConfig.from_dict(unit.config["pretrain"])
        if pcfg.to_dict() != unit.config["pretrain"]:
            report["not migrated"].append(f"{label}: its pre-training config does not round-trip")
            continue
        task = unit.config["task"]
        if scale not in pipes:
            pipes[scale] = Pipeline(scale, store=store, progress=False,
                                    checkpoint_dir=own / "checkpoints")
        pipe = pipes[scale]
        if pipe.spectrum_key(pcfg, task) != unit.config:
            report["not migrated"].append(f"{label}: its key does not match today's config")
            continue
        tensors, source = find_features(unit, roots)
        if tensors is not None:
            feats, origin = as_feats(tensors), f"cached features {source}"
        elif scale in recompute:
            if args.dry_run:
                report["migrated"].append(f"{label}: would recompute its features")
                continue
            feats, origin = pipe.features(pcfg, task), "features recomputed under $NML_CACHE"
        else:
            report["not migrated"].append(f"{label}: no cached features (looked in "
                                          f"{', '.join(map(str, roots))}) and scale {scale!r} "
                                          f"is not recomputed")
            continue
        paper_rows, paper_arrays = pipe.spectrum_output(pcfg, task, feats, ("paper",))
        try:
            worst = check_paper(unit, paper_rows, paper_arrays, args.tolerance)
        except LookupError as err:
            report["not migrated"].append(f"{label}: {err}")
            continue
        if worst > args.tolerance:
            report["not migrated"].append(
                f"{label}: the features give a paper spectrum {worst:.2e} (relative) away from "
                f"the stored one (> {args.tolerance:g}); not the same features")
            continue
        rows, arrays = pipe.spectrum_output(pcfg, task, feats, ("authors",))
        if not args.dry_run:
            store.amend(unit, rows, arrays, note=(
                f"authors' spectrum preprocessing (sve_authors, lsvr_authors, authors/<set>) "
                f"added by scripts/migrate_spectrum_authors.py from {origin}; the paper "
                f"spectrum recomputed from them matches the stored one to {worst:.1e}"))
        report["migrated"].append(f"{label}: from {origin} (paper spectrum matches to "
                                  f"{worst:.1e})")
    if args.tuning:
        migrate_tuning(store, recompute, args.tolerance, args.dry_run, report)
    for what, items in report.items():
        print(f"{what}: {len(items)}")
        if what != "already":
            for item in items:
                print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
