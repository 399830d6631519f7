"""Chapters 10_runtime and 11_ablations: stored benchmarks, the ablation grid, their figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nml.benchmarks.store import (EXPERIMENT, RuntimeParams, run_and_store, run_benchmark,
                                  stored_benchmarks)
from nml.chapters import CHAPTERS, ChapterParams, chapter_grids
from nml.errors import ConfigError, NMLError
from nml.results import ResultStore

torch.set_num_threads(1)

SMALL = dict(device="cpu", steps=4, batch=32, dim=16, num_classes=3)


def test_run_and_store_keeps_the_measurements_and_the_conditions(tmp_path):
    store = ResultStore(tmp_path)
    unit = run_and_store("nmtune-speed", store=store, **SMALL)
    rows = unit.rows.set_index("metric")["value"]
    for metric in ("mlp_s", "nmtune_exact_s", "nmtune_fast_s", "ratio_fast", "ratio_exact",
                   "max_rel_err"):
        assert metric in rows and np.isfinite(rows[metric])
    assert rows["ratio_fast"] == pytest.approx(rows["nmtune_fast_s"] / rows["mlp_s"])
    # the profile of where NMTune's extra time goes: every term, and the CPU route's eigh
    for metric in ("term_mse_ms", "term_cov_ms", "term_svd_ms", "eigh_ms"):
        assert rows[metric] > 0
    assert rows["mlp_step_ms"] == pytest.approx(1000 * rows["mlp_s"] / 4)
    assert "steps" not in rows and "dim" not in rows       # settings are not measurements
    assert set(unit.rows["method"]) == {"nmtune-speed"}
    assert set(unit.rows["scale"]) == {"cpu-bench"}
    assert unit.experiment == EXPERIMENT
    assert len(unit.info["loadavg_before"]) == 3 and unit.info["cpu_count"] >= 1
    assert unit.info["result"]["steps"] == 4
    assert unit.provenance["seconds"] > 0


def test_rerunning_a_benchmark_replaces_its_stored_timing(tmp_path):
    store = ResultStore(tmp_path)
    first = run_and_store("nmtune-speed", store=store, **SMALL)
    second = run_and_store("nmtune-speed", store=store, **SMALL)
    assert first.key == second.key
    assert len(list((tmp_path / EXPERIMENT).glob("*.json"))) == 1
    rows = stored_benchmarks(store)
    assert set(rows["key"]) == {second.key}
    assert rows["loadavg_1m"].notna().all() and set(rows["steps"]) == {4}
    # a different argument is a different measurement, kept beside the first
    run_and_store("nmtune-speed", store=store, **{**SMALL, "steps": 5})
    assert stored_benchmarks(store)["key"].nunique() == 2


def test_stored_benchmarks_of_an_empty_store_is_an_empty_table(tmp_path):
    rows = stored_benchmarks(ResultStore(tmp_path))
    assert rows.empty and {"metric", "value", "loadavg_1m"} <= set(rows.columns)


def test_unknown_benchmark_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark"):
        run_benchmark("nmtune-sped")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        run_and_store("gpu-magic", store=ResultStore(tmp_path))


def test_cli_bench_store_writes_the_unit(tmp_path, capsys):
    from nml.cli import main
    assert main(["bench", "nmtune-speed", "--steps", "4", "--device", "cpu", "--store",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["steps"] == 4 and "ratio_fast" in result
    assert "stored in runtime/" in out.err
    assert len(stored_benchmarks(ResultStore(tmp_path))) >= 6


def test_runtime_params_fail_fast():
    assert RuntimeParams().device_kind == "all" and RuntimeParams().refresh is False
    with pytest.raises(ConfigError, match="device_kind"):
        RuntimeParams.from_dict(device_kind="tpu")
    with pytest.raises(ConfigError, match="steps"):
        RuntimeParams.from_dict(steps=2)
    with pytest.raises(ConfigError):
        RuntimeParams.from_dict(load_warning=0.0)
    with pytest.raises(ConfigError):
        RuntimeParams.from_dict(device="gpu0")


# -- chapter 11: the ablation grid ------------------------------------------------------------

def _grids(**params):
    return chapter_grids("11_ablations", ChapterParams.from_dict(scale="tiny", **params), "tiny")


def test_ablation_grid_covers_every_factor_on_one_backbone():
    from nml.tune import TuneConfig
    assert "11_ablations" in CHAPTERS
    grids = _grids()
    assert grids[0].methods == ("lp", "mlp")
    variants = grids[1:]
    assert all(g.methods == ("nmtune",) and g.experiment == "ablation" for g in variants)
    assert all(g.backbones == ("resnet_micro",) for g in grids)
    assert all(g.noise_levels == (0.0, 0.1) for g in grids)
    assert all(set(g.tasks) == {"synthetic_id", "synthetic_ood_photo"} for g in grids)
    overrides = [g.tune_overrides for g in variants if not g.lambdas]
    seen = {k: set() for k in ("mlp_layers", "mlp_hidden_mult", "mlp_activation", "svd_top_k",
                               "svd_method", "residual_mlp")}
    for o in overrides:
        cfg = TuneConfig.from_dict(method="nmtune", **o)     # every variant is a valid config
        for k in seen:
            seen[k].add(getattr(cfg, k))
    assert seen["mlp_layers"] == {1, 2, 3} and seen["mlp_hidden_mult"] == {1, 2, 4, 8}
    assert seen["mlp_activation"] == {"relu", "gelu", "tanh", "identity"}
    assert seen["svd_top_k"] == set(range(1, 11)) and seen["svd_method"] == {"fast", "exact"}
    assert seen["residual_mlp"] == {False, True}
    weights = {(o.get("w_mse", 1.0), o.get("w_cov", 1.0), o.get("w_svd", 1.0))
               for o in overrides}
    assert {(0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.04, 0.001)} <= weights
    # each variant is a distinct unit: no two grids would share (and overwrite) a store key
    hashes = [TuneConfig.from_dict(method="nmtune", **o).hash() for o in overrides]
    assert len(set(hashes)) == len(hashes)
    assert [g.lambdas for g in variants if g.lambdas] == [(0.0, 0.001, 0.003, 0.01, 0.03, 0.1,
                                                           0.3)]


def test_ablation_grid_follows_the_parameters():
    grids = _grids(noise=0.3, lam=0.03, backbone="vit_micro", task="synthetic_id")
    assert all(g.backbones == ("vit_micro",) and g.tasks == ("synthetic_id",) for g in grids)
    assert all(g.noise_levels == (0.0, 0.3) for g in grids)
    assert all(g.tune_overrides.get("lam") == 0.03 for g in grids[1:] if not g.lambdas)
    with pytest.raises(ConfigError):
        ChapterParams.from_dict(scale="huge")


# -- figures ----------------------------------------------------------------------------------

def _summary():
    rows = []
    for factor, levels in (("depth", ["1", "2", "3"]), ("K", ["1", "5"])):
        for level in levels:
            for kind in ("ID", "OOD"):
                for noise in (0.0, 0.1):
                    rows.append({"factor": factor, "level": level, "kind": kind,
                                 "noise": noise, "mean": 50.0 + int(level), "err": 1.0,
                                 "n": 3})
    return pd.DataFrame(rows)


def test_factor_panels_orders_levels_and_draws_references():
    from nml import plots
    refs = pd.DataFrame({"kind": ["ID", "ID"], "noise": [0.0, 0.0], "method": ["mlp", "lp"],
                         "mean": [49.0, 51.0]})
    fig = plots.factor_panels(_summary(), levels={"depth": ["3", "2", "1"], "K": ["1", "5"]},
                              references=refs, title="t", caption="cap")
    first = fig.data[0]
    assert list(first.x) == ["3", "2", "1"] and list(first.y) == [53.0, 52.0, 51.0]
    assert len(fig.data) == 2 * 2 * 2                      # factors x kinds x noise levels
    assert len(fig.layout.shapes) == 2 * 2                 # 2 reference lines in 2 ID panels
    assert "cap" in plots.figure_caption(fig)
    with pytest.raises(NMLError, match="none of the factors"):
        plots.factor_panels(_summary(), levels={"width": ["1"]})
    with pytest.raises(NMLError, match="lacks column"):
        plots.factor_panels(_summary().drop(columns="err"), levels={"depth": ["1"]})


def test_factor_panels_draw_chance_in_the_named_row_only():
    from nml import plots
    chance = {"OOD": {"chance, 7 classes": 100 / 7}}
    fig = plots.factor_panels(_summary(), levels={"depth": ["1", "2", "3"], "K": ["1", "5"]},
                              chance=chance)
    # one dotted line per panel of the OOD row (the second row: axes y3, y4), none in the ID row
    assert sorted(shape.yref for shape in fig.layout.shapes) == ["y3", "y4"]
    assert all(shape.y0 == pytest.approx(100 / 7) for shape in fig.layout.shapes)
    assert [t.name for t in fig.data].count("chance, 7 classes") == 1
    labels = plots.chance_by_task_label(["cifar10", "cifar10c", "pacs_heldout_sketch"])
    assert labels == {plots.task_label("cifar10c"): {"chance, 10 classes": pytest.approx(10.0)},
                      plots.task_label("pacs_heldout_sketch"):
                          {"chance, 7 classes": pytest.approx(100 / 7)}}


def test_headline_by_task_keeps_tasks_apart_and_names_them():
    from nml import plots
    rows = pd.DataFrame([
        {"task": "cifar10", "test_set": "test", "value": 60.0, "seed": 0},
        {"task": "cifar10c", "test_set": "mean", "value": 40.0, "seed": 0},
        {"task": "cifar10c", "test_set": "fog@5", "value": 30.0, "seed": 0},
        {"task": "pacs_photo", "test_set": "mean", "value": 20.0, "seed": 0}])
    out = plots.headline_by_task(rows)
    assert "test_set" not in out.columns and len(out) == 3
    assert dict(zip(out["task"], out["value"])) == {
        plots.task_label("cifar10"): 60.0, plots.task_label("cifar10c"): 40.0,
        plots.task_label("pacs_photo"): 20.0}


def test_grouped_bar_figure_prints_values_and_reference_lines():
    from nml import plots
    table = pd.DataFrame({"setting": ["cpu", "cpu", "paper"], "tuner": ["exact", "fast", "exact"],
                          "ratio": [1.7, 1.2, 1.03]})
    fig = plots.grouped_bar_figure(table, x="setting", group="tuner", value="ratio",
                                   hlines={"target": 1.3}, log_y=True, caption="c")
    assert [t.name for t in fig.data] == ["exact", "fast"]
    assert list(fig.data[0].text) == ["1.70", "1.03"] and fig.data[1].y[1] is None
    assert fig.layout.yaxis.type == "log" and len(fig.layout.shapes) == 1
    with pytest.raises(NMLError):
        plots.grouped_bar_figure(table.iloc[:0], x="setting", group="tuner", value="ratio")
