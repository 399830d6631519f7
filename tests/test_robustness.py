"""Issue 10: no bad run replaces a good result, the index heals itself, errors are one line.

Non-finite values are refused at the source (configs, features, losses of every training loop,
the store's write), a damaged ``index.csv`` is detected and rebuilt from the unit files, and
what a user can reach from the command line ends in one line with exit code 2.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import nml.results as results_mod
from nml.cli import main
from nml.config import MAX_LR
from nml.errors import ConfigError, DataError, DivergedError, NMLError
from nml.pretrain import PretrainConfig, pretrain
from nml.results import ResultStore, UnitOutput
from nml.tune import TuneConfig, tune_backbone, tune_on_features

torch.set_num_threads(1)

# The largest lr a config accepts: a few optimiser steps take the activations past float32.
HUGE_LR = MAX_LR


def _blobs(n, dim=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 3.0
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, dim, generator=g), y


def _row(value, metric="accuracy", seed=0):
    return {"scale": "tiny", "backbone": "resnet_micro", "noise": 0.1, "pretrain_seed": 0,
            "seed": seed, "method": "lp", "task": "synthetic_id", "metric": metric,
            "value": value}


# ------------------------------------------------------------------------ configs: NaN / inf

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("make", [
    lambda v: TuneConfig(lam=v), lambda v: TuneConfig(lr=v), lambda v: TuneConfig(weight_decay=v),
    lambda v: TuneConfig(fraction=v), lambda v: TuneConfig(label_noise=v),
    lambda v: PretrainConfig(lr=v), lambda v: PretrainConfig(noise=v),
    lambda v: PretrainConfig(weight_decay=v)])
def test_every_range_check_refuses_nan_and_inf(make, bad):
    with pytest.raises(ConfigError, match="not a finite number"):
        make(bad)


def test_lr_nan_from_the_command_line_is_refused_before_training(tmp_path, capsys):
    assert main(["pretrain", "--results", str(tmp_path), "--quiet", "--set", "lr=NaN"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'lr' = nan is not a finite number" in err
    assert not any(tmp_path.rglob("*.json"))


# ------------------------------------------------------------------ features with NaN / inf

@pytest.mark.parametrize("method", ["lp", "mlp", "nmtune"])
@pytest.mark.parametrize("where", ["train", "test"])
def test_tuning_refuses_non_finite_features(method, where):
    xtr, ytr = _blobs(200)
    xte, yte = _blobs(100, seed=1)
    bad = (xtr if where == "train" else xte).clone()
    bad[3, 2] = float("nan") if method != "mlp" else float("inf")
    xtr, xte = (bad, xte) if where == "train" else (xtr, bad)
    with pytest.raises(DataError, match="NaN / inf value"):
        tune_on_features(xtr, ytr, {"test": (xte, yte)}, 4, TuneConfig(method=method, epochs=1),
                         progress=False)


# ------------------------------------------------------------------- diverging training runs

def test_values_torch_would_reject_are_refused_up_front():
    with pytest.raises(ConfigError, match=r"'lr' = 1e\+39 is out of range"):
        TuneConfig(lr=1e39)
    with pytest.raises(ConfigError, match="'weight_decay' = 1000000.0 is out of range"):
        PretrainConfig(weight_decay=1e6)


@pytest.mark.parametrize("method", ["lp", "mlp", "nmtune"])
def test_blackbox_tuning_stops_when_the_loss_diverges(method):
    xtr, ytr = _blobs(256)
    if method == "lp":   # a linear head's logits overflow only on large (finite) features
        xtr = xtr * 1e9
    cfg = TuneConfig(method=method, epochs=3, batch_size=64, lr=HUGE_LR)
    with pytest.raises(NMLError, match="diverged|not finite"):
        tune_on_features(xtr, ytr, {"test": _blobs(64, seed=1)}, 4, cfg, progress=False)


@pytest.mark.parametrize("method", ["lora", "ft"])
def test_whitebox_tuning_stops_when_the_loss_diverges(method):
    from nml.data import CHANNEL_STATS, load_images
    from nml.models import build_backbone
    data = load_images("synthetic_id", "train", image_size=16).subset(slice(0, 128))
    mean, std = CHANNEL_STATS["synthetic_upstream"]
    backbone = build_backbone("vit_micro", num_classes=40, image_size=16)
    cfg = TuneConfig(method=method, epochs=2, batch_size=64, lr=HUGE_LR)
    with pytest.raises(DivergedError, match=f"{method} tuning diverged.*lower the learning rate"
                                            .replace("lower", "Lower")):
        tune_backbone(backbone, data.images, data.labels, {"t": (data.images, data.labels)},
                      10, cfg, mean=mean, std=std, progress=False)


def test_pretraining_stops_when_the_loss_diverges(tmp_path):
    cfg = PretrainConfig(backbone="resnet_micro", train_fraction=0.1, batch_size=64,
                         warmup_epochs=0, epochs=2, lr=HUGE_LR)
    with pytest.raises(DivergedError, match=r"pre-training diverged.*epoch 1, step \d"):
        pretrain(cfg, checkpoint_dir=tmp_path, progress=False)
    assert not any(tmp_path.rglob("*.pt"))   # no checkpoint of diverged weights either


def test_clip_pretraining_stops_when_the_loss_diverges():
    cfg = PretrainConfig(scale="tiny", dataset="synthetic_upstream", backbone="clip_vit_micro",
                         epochs=1, batch_size=64, image_size=16, train_fraction=0.25,
                         warmup_epochs=0, lr=HUGE_LR)
    with pytest.raises(DivergedError, match="CLIP pre-training diverged"):
        pretrain(cfg, checkpoint_dir=None, progress=False)


# ---------------------------------------------------------- the store never keeps a bad run

def test_a_failed_or_non_finite_recompute_keeps_the_stored_unit(tmp_path):
    store = ResultStore(tmp_path)
    store.run("linear_probe", {"a": 1}, lambda: UnitOutput([_row(52.2)]))

    def diverges():
        raise DivergedError("lp tuning diverged")
    with pytest.raises(DivergedError):
        store.run("linear_probe", {"a": 1}, diverges, recompute=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NMLError, match="not stored"):
            store.run("linear_probe", {"a": 1}, lambda: UnitOutput([_row(bad)]), recompute=True)
    with pytest.raises(NMLError, match="array 's' holds NaN"):
        store.run("linear_probe", {"a": 1}, lambda: UnitOutput(
            [_row(10.0)], arrays={"s": np.array([1.0, np.nan])}), recompute=True)
    assert store.get("linear_probe", {"a": 1}).rows["value"].tolist() == [52.2]
    assert store.index()["value"].tolist() == [52.2]
    with pytest.raises(NMLError, match="not stored"):
        store.run("linear_probe", {"a": 2}, lambda: UnitOutput([_row(math.nan)]))
    assert store.get("linear_probe", {"a": 2}) is None


def test_a_diverged_pretraining_unit_is_not_stored(tmp_path, capsys):
    args = ["pretrain", "--results", str(tmp_path / "r"), "--quiet", "--set", "lr=1e30",
            "--set", "epochs=1", "--set", "train_fraction=0.1", "--set", "warmup_epochs=0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nml: error: pre-training diverged") and "\n" not in err
    assert not any((tmp_path / "r").rglob("*.json"))


# ------------------------------------------------------------------ the index heals itself

def _store_with_units(root, n=4):
    store = ResultStore(root)
    for i in range(n):
        store.put("linear_probe", {"a": i}, UnitOutput([_row(float(i)), _row(i + 0.5, "f1")]))
    return store


def _damage_cut_last_line(path):
    text = path.read_text()
    path.write_text(text[:-25])   # a crash or a full disk in the middle of the last row


def _damage_drop_rows(path):
    index = pd.read_csv(path)
    index[index["key"] != index["key"].iloc[0]].to_csv(path, index=False)   # a unit's rows gone


def _damage_cut_at_a_line_end(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]))   # the file ends cleanly, but its tail is gone


def _damage_bad_header(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(["garbage,header\n"] + lines[1:]))


@pytest.mark.parametrize("damage", [_damage_cut_last_line, _damage_drop_rows,
                                    _damage_cut_at_a_line_end, _damage_bad_header])
def test_a_damaged_index_is_detected_and_rebuilt_on_the_next_write(tmp_path, damage):
    store = _store_with_units(tmp_path)
    damage(tmp_path / "index.csv")
    assert store.check()                                  # the damage is reported ...
    store.put("linear_probe", {"a": 9}, UnitOutput([_row(9.0)]))   # ... and the next write heals
    index = pd.read_csv(tmp_path / "index.csv")
    assert sorted(index["value"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 9.0]
    assert store.check() == []


@pytest.mark.parametrize("damage", [_damage_cut_last_line, _damage_drop_rows,
                                    _damage_cut_at_a_line_end, _damage_bad_header])
def test_reading_a_damaged_index_rebuilds_it(tmp_path, damage):
    store = _store_with_units(tmp_path)
    damage(tmp_path / "index.csv")
    assert len(store.index()) == 8 and store.check() == []


def test_a_row_missing_inside_a_unit_is_reported_by_check(tmp_path):
    store = _store_with_units(tmp_path)
    path = tmp_path / "index.csv"
    index = pd.read_csv(path, dtype={"key": str})
    key = index["key"].iloc[0]
    index.drop(index.index[0]).to_csv(path, index=False)
    assert store.check() == [f"unit linear_probe/{key} has 2 row(s), index.csv 1"]
    store.refresh_index()
    assert store.check() == []


def test_index_rows_of_a_deleted_unit_are_reported_and_dropped(tmp_path):
    store = _store_with_units(tmp_path)
    unit = store.get("linear_probe", {"a": 1})
    (tmp_path / "linear_probe" / f"{unit.key}.json").unlink()
    assert store.check() == [f"index.csv holds rows of linear_probe/{unit.key}, whose unit JSON "
                             f"is missing"]
    assert sorted(store.index()["value"]) == [0.0, 0.5, 2.0, 2.5, 3.0, 3.5]


def test_store_check_and_rebuild_from_the_command_line(tmp_path, capsys):
    store = _store_with_units(tmp_path)
    assert main(["store", "check", "--results", str(tmp_path)]) == 0
    path = tmp_path / "index.csv"
    index = pd.read_csv(path)
    index.loc[0, "value"] = 77.0                          # an index that disagrees with a unit
    index.to_csv(path, index=False)
    capsys.readouterr()
    assert main(["store", "check", "--results", str(tmp_path)]) == 1
    assert "index.csv rows differ from the unit" in capsys.readouterr().out
    assert main(["store", "rebuild", "--results", str(tmp_path)]) == 0
    assert main(["store", "check", "--results", str(tmp_path)]) == 0
    assert 77.0 not in set(pd.read_csv(path)["value"]) and store.check() == []
    assert main(["store", "check", "--results", str(tmp_path / "nowhere")]) == 2


# ---------------------------------------------------------------------- one-line errors

def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nml: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, flag", [
    (["pretrain", "--set", "seed=3"], "--seed"),
    (["pretrain", "--set", "noise=0.2"], "--noise"),
    (["tune", "--set", "seed=1"], "--seed"),
    (["tune", "--set", "method=mlp"], "--method"),
    (["grid", "--set", "scale=cpu"], "--scale")])
def test_set_key_colliding_with_a_flag(capsys, tmp_path, argv, flag):
    err = _one_line_error(capsys, argv + ["--results", str(tmp_path)])
    assert f"collides with the flag {flag}" in err


def test_unknown_set_key(capsys, tmp_path):
    err = _one_line_error(capsys, ["pretrain", "--results", str(tmp_path), "--set", "lrr=0.1"])
    assert "unknown config key(s) ['lrr']" in err


def test_a_device_torch_rejects(capsys, tmp_path):
    err = _one_line_error(capsys, ["tune", "--results", str(tmp_path), "--device", "gpu0"])
    assert "device 'gpu0' is not a device torch knows" in err


def test_unwritable_store_is_one_line(capsys, tmp_path, monkeypatch):
    # As root (CI) chmod does not stop a write, so the refusal is simulated where it happens.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))
    import nml.storage as storage_mod   # where results write their files
    monkeypatch.setattr(storage_mod.tempfile, "mkstemp", refuse)
    store = ResultStore(tmp_path / "ro")
    with pytest.raises(NMLError, match="cannot write .*permission denied.*NML_RESULTS"):
        store.put("x", {"a": 1}, UnitOutput([_row(1.0)]))
    monkeypatch.setattr(results_mod.Path, "mkdir", refuse)
    err = _one_line_error(capsys, ["store", "rebuild", "--results", str(tmp_path)])
    assert "permission denied" in err


def test_an_unexpected_permission_error_in_the_cli_is_one_line(capsys, monkeypatch):
    import nml.cli as cli

    def refuse(args):
        raise PermissionError(13, "Permission denied", "/data/cifar10.tar.xz")
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), refuse))
    err = _one_line_error(capsys, ["tiny"])
    assert "cannot use /data/cifar10.tar.xz: Permission denied" in err


def _with_func(parser, func):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


def test_unreadable_data_and_cache_folders(tmp_path, monkeypatch):
    import nml.data.core as data
    (tmp_path / "data").mkdir()
    real_access = data.os.access
    monkeypatch.setattr(data.os, "access", lambda p, mode: False if "data" in str(p) or
                        "cache" in str(p) else real_access(p, mode))
    with pytest.raises(DataError, match="cannot be read by this user"):
        data.data_root(tmp_path / "data")
    monkeypatch.setenv("NML_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not writable by this user; set NML_CACHE"):
        data.cache_dir()


# ------------------------------------------------------- the book builds from the store alone

def test_chapter_09_builds_from_the_store_without_data(tmp_path, monkeypatch):
    """What a newcomer's `make book` runs: no NML_DATA, an empty cache, the committed store."""
    papermill = pytest.importorskip("papermill")
    from pathlib import Path
    chapter = Path(__file__).resolve().parents[1] / "notebooks" / "09_noisy_downstream.ipynb"
    monkeypatch.delenv("NML_DATA", raising=False)
    monkeypatch.delenv("NML_RESULTS", raising=False)
    monkeypatch.setenv("NML_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PYTHONPATH", str(chapter.parents[1]))
    out = papermill.execute_notebook(str(chapter), str(tmp_path / "out.ipynb"),
                                     kernel_name="python3", progress_bar=False,
                                     cwd=str(chapter.parent))
    errors = [o for c in out.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    table = next(o for c in out.cells for o in c.get("outputs", [])
                 if "Table 9.1" in str(o.get("data", {}).get("text/html", "")))
    html = table["data"]["text/html"]
    assert "not stored" not in html and "0.1000 (0.1000 to 0.1000" in html
    assert not (tmp_path / "empty-cache").exists() or not any(
        (tmp_path / "empty-cache").rglob("cifar*"))   # no dataset was decoded


def test_noisy_downstream_units_store_their_realised_noise_rate(tmp_path):
    """New units carry train_noise_rate; the migration script adds the very same value to an
    old unit without it, leaving its key, config and other rows unchanged."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from nml.experiments import Pipeline
    from nml.tune import downstream_train_labels

    pipe = Pipeline("tiny", store=ResultStore(tmp_path / "r"), device="cpu", progress=False)
    task = pipe.task("synthetic_id")
    cfg = pipe.tune_config("lp", seed=1, label_noise=0.3, epochs=1)
    _, noisy, rate = downstream_train_labels(task.train.labels, len(task.train.classes), cfg)
    assert rate == pytest.approx(0.3, abs=1e-3)
    assert float((noisy != task.train.labels).double().mean()) == pytest.approx(rate)

    # A stored unit computed the new way: train features stand in for a pre-trained model's.
    feats = torch.randn(len(task.train), 8)
    tests = {"test": (torch.randn(len(task.tests["test"]), 8), task.tests["test"].labels)}
    result = tune_on_features(feats, task.train.labels, tests, 10, cfg, progress=False)
    assert result.train_noise_rate == rate

    store = ResultStore(tmp_path / "old")
    pcfg = pipe.pretrain_config("resnet_micro", 0.1, 0)
    unit_config = {"pretrain": pcfg.to_dict(), "task": "synthetic_id", "test_limit": None,
                   "image_size": 16, "tune": cfg.to_dict()}
    base = {"scale": "tiny", "backbone": "resnet_micro", "noise": 0.1, "pretrain_seed": 0,
            "seed": 1, "method": "lp", "task": "synthetic_id", "fraction": 1.0, "lam": 0.01,
            "label_noise": 0.3}
    old = store.put("noisy_downstream", unit_config, UnitOutput(
        [{**base, "test_set": "test", "metric": "accuracy", "value": 50.0}]))
    script = Path(__file__).resolve().parents[1] / "scripts" / "add_downstream_noise_rates.py"
    for _ in range(2):   # the second run finds nothing to do
        subprocess.run([sys.executable, str(script), "--results", str(store.root)], check=True,
                       capture_output=True, env={**__import__("os").environ,
                                                 "PYTHONPATH": str(script.parents[1])})
    new = store.get("noisy_downstream", unit_config)
    assert new.key == old.key and new.config == old.config
    assert new.rows["metric"].tolist() == ["accuracy", "train_noise_rate"]
    assert new.rows["value"].tolist() == [50.0, rate]
    assert json.loads((store.root / "noisy_downstream" / f"{old.key}.json").read_text())[
        "info"]["migrations"][0]["added"] == "row train_noise_rate"
    assert store.check() == []


def test_device_parameters_share_one_check():
    """Chapter 07's parameters and the benchmark config reject an unknown device in one line."""
    from nml.benchmarks.store import RuntimeParams
    from nml.guards import check_device_param
    from nml.practical_text import PracticalParams

    for make in (lambda: PracticalParams.from_dict(device="tpu"),
                 lambda: RuntimeParams.from_dict(device="tpu")):
        with pytest.raises(ConfigError, match="parameter 'device' = 'tpu' is unknown; use 'cpu'"):
            make()
    for ok in (None, "cpu", "cuda", "cuda:1"):
        check_device_param(ok)


def test_a_unit_computed_on_a_retrained_backbone_says_so(tmp_path, monkeypatch):
    """A model whose checkpoint is gone is trained again; when the re-run's accuracy differs
    from the stored pre-training unit (CPU training is not bit-reproducible), every unit
    computed from it records both accuracies, and one computed from the same weights does not.
    The re-run's features are its own: those cached from the first run's weights (same config)
    are not replayed for it."""
    import dataclasses

    import torch

    import nml.pretrain as pretrain_mod
    from nml.experiments import Pipeline

    monkeypatch.setenv("NML_CACHE", str(tmp_path / "cache"))
    store = ResultStore(tmp_path / "results")
    first = Pipeline("tiny", store=store, progress=False, checkpoint_dir=tmp_path / "ck1")
    pcfg = first.pretrain_config(first.scale.backbones[0], 0.1, 0)
    stored = float(first.pretrain(pcfg).rows.query("metric == 'accuracy'")["value"].iloc[0])
    task = first.scale.id_tasks[0]
    same = first.tune(pcfg, task, first.tune_config("lp", seed=0))
    assert "backbone_retrained" not in same.info

    real = pretrain_mod.pretrain

    def rerun(*args, **kwargs):   # another run of the same config: other weights and accuracy
        result = real(*args, **kwargs)
        with torch.no_grad():
            next(result.backbone.parameters()).add_(0.01)
        return dataclasses.replace(result, test_accuracy=stored - 0.5)

    monkeypatch.setattr(pretrain_mod, "pretrain", rerun)
    again = Pipeline("tiny", store=store, progress=False, checkpoint_dir=tmp_path / "ck2")
    cached = first.features(pcfg, task)["train"][0]
    assert not torch.equal(again.features(pcfg, task)["train"][0], cached)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 2
    unit = again.tune(pcfg, task, again.tune_config("lp", seed=1))
    note = unit.info["backbone_retrained"]
    assert note["stored_test_accuracy"] == pytest.approx(stored)
    assert note["this_run_test_accuracy"] == pytest.approx(stored - 0.5)
    # the note survives the store's round trip
    assert store.get(*again.tune_ref(pcfg, task, again.tune_config("lp", seed=1))
                     ).info["backbone_retrained"] == note
    # and a chapter's grid result carries it, replayed from the store
    from nml.chapters import Grid, run_grid
    grid = dict(backbones=(pcfg.backbone,), noise_levels=(0.1,), pretrain_seeds=(0,))
    replay = Pipeline("tiny", store=store, progress=False, replay_only=True)
    assert run_grid(replay, Grid(("lp",), tasks=(task,), tune_seeds=(1,), **grid),
                    progress=False).retrained == {(pcfg.backbone, 0.1, 0): note}
    assert run_grid(replay, Grid(("lp",), tasks=(task,), tune_seeds=(0,),
                                 **grid), progress=False).retrained == {}
