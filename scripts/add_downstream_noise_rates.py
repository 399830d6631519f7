"""Add the realised downstream label-noise rate to stored tuning units that lack it.

Since issue 10, every tuning unit with downstream label noise (``tune.label_noise > 0``; the
units of chapter 09_noisy_downstream) stores the share of training labels its noise draw really
flipped, as the row ``metric="train_noise_rate"``, ``test_set="train"``. Chapter 09 shows that
rate from the store, so the book builds without the datasets. Units stored before that change
lack the row: this script recomputes it once from the data, with the very draw the run used
(:func:`nml.tune.downstream_train_labels`), and adds the row to the unit's JSON. The unit's key,
config, other rows, arrays and provenance stay as they are; ``info["migrations"]`` records the
addition, and the unit's rows in ``index.csv`` are replaced. Units that already have the row
are left alone, so the script can run again after new units arrive.

    NML_DATA=/path/to/data python scripts/add_downstream_noise_rates.py [--results results]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys

import torch

from nml.experiments import Pipeline
from nml.results import ResultStore, atomic_write_bytes, decode_record, encode_record
from nml.tune import BLACKBOX_METHODS, TuneConfig, downstream_train_labels

METRIC = "train_noise_rate"
#: Row fields that the pipeline's tuning rows carry before test_set / metric / value.
BASE_FIELDS = ("scale", "backbone", "noise", "pretrain_seed", "seed", "method", "task",
               "fraction", "lam", "label_noise")


def noise_rate(pipes: dict, unit_config: dict, data_root) -> float:
    """The realised flip rate of the run stored under ``unit_config`` (recomputed exactly)."""
    tcfg = TuneConfig.from_dict(unit_config["tune"])
    if tcfg.method not in BLACKBOX_METHODS:
        raise SystemExit(f"{tcfg.method} units train on a limited image subset; this script "
                         f"handles the black-box methods {BLACKBOX_METHODS} only")
    scale = unit_config["pretrain"]["scale"]
    if scale not in pipes:
        pipes[scale] = Pipeline(scale, data_root=data_root, device="cpu", progress=False)
    train = pipes[scale].task(unit_config["task"]).train
    _, _, rate = downstream_train_labels(torch.as_tensor(train.labels), len(train.classes), tcfg)
    return rate


def migrate(store: ResultStore, data_root=None) -> int:
    """Add the row to every unit that needs it; return how many units were changed."""
    pipes: dict = {}
    changed = 0
    for path in sorted(store.root.glob("*/*.json")):
        record = decode_record(path.read_bytes())
        config = record.get("config")
        tune = config.get("tune") if isinstance(config, dict) else None
        if not isinstance(tune, dict) or not tune.get("label_noise"):
            continue
        rows = record["rows"]
        if any(r.get("metric") == METRIC for r in rows):
            continue
        first = rows[0]
        row = {"experiment": first["experiment"], **{k: first[k] for k in BASE_FIELDS},
               "test_set": "train", "metric": METRIC,
               "value": noise_rate(pipes, config, data_root)}
        record["rows"] = rows + [row]
        record.setdefault("info", {}).setdefault("migrations", []).append(
            {"added": f"row {METRIC}", "by": "scripts/add_downstream_noise_rates.py",
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        atomic_write_bytes(path, encode_record(record))
        store.reindex_unit(path.parent.name, path.stem)
        changed += 1
        print(f"{path.parent.name}/{path.stem}: {METRIC} = {row['value']:.6f}", flush=True)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=None, help="result store (default: results/)")
    parser.add_argument("--data-root", default=None, help="data folder (default: $NML_DATA)")
    args = parser.parse_args(argv)
    n = migrate(ResultStore(args.results), args.data_root)
    print(f"# {n} unit(s) got the row {METRIC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
