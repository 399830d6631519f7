"""Chapters 08_asymmetric_noise and 09_noisy_downstream: their grids, the related-class subsets,
and the Grid.pretrain_overrides path of run_grid (checked on a recording pipeline, no training).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nml.chapters import (ASYMMETRIC_NOISE_LEVELS, ASYMMETRIC_TASK_ROLES, CHAPTERS,
                          CIFAR100_CLASSES, CIFAR100_RELATED_TO_CIFAR10, DOWNSTREAM_NOISE_LEVELS,
                          ChapterParams, Grid, chapter_grids, related_upstream_classes, run_grid)
from nml.errors import ConfigError
from nml.experiments import SCALES, Pipeline
from nml.pretrain import PretrainConfig
from nml.tune import TuneConfig


def _parts(proto) -> set:
    return set(zip(proto["shape"].tolist(), proto["colour"].tolist()))


class RecordingPipeline(Pipeline):
    """A tiny-scale Pipeline whose units record their configs instead of training anything."""

    def __init__(self):
        super().__init__("tiny", store=SimpleNamespace(), progress=False, device="cpu")
        self.pretrained: list[PretrainConfig] = []
        self.tuned: list[tuple[PretrainConfig, str, TuneConfig, str | None]] = []

    def _unit(self, **row):
        return SimpleNamespace(rows=pd.DataFrame([{**row, "metric": "accuracy", "value": 50.0}]),
                               arrays={}, info={})

    def pretrain(self, pcfg):
        self.pretrained.append(pcfg)
        return self._unit(method="pretrain", noise=pcfg.noise)

    def tune(self, pcfg, task_name, tcfg, *, experiment=None):
        self.tuned.append((pcfg, task_name, tcfg, experiment))
        return self._unit(method=tcfg.method, noise=pcfg.noise, task=task_name,
                          label_noise=tcfg.label_noise)


def test_both_chapters_are_registered():
    assert "08_asymmetric_noise" in CHAPTERS and "09_noisy_downstream" in CHAPTERS


def test_synthetic_related_classes_share_two_parts_with_an_id_class():
    from nml import data
    world = data.synthetic_world()
    targets = [_parts(p) for p in world["synthetic_id"]]
    related = related_upstream_classes("synthetic_upstream")
    assert related == related_upstream_classes("synthetic_upstream"), "must be deterministic"
    assert 2 <= len(related) < len(world["synthetic_upstream"]), (
        "a useful subset is neither empty-ish nor every class")
    for k, proto in enumerate(world["synthetic_upstream"]):
        best = max(len(_parts(proto) & t) for t in targets)
        assert (k in related) == (best >= 2), f"class {k} shares {best} parts with an ID class"


def test_cifar100_related_subset_is_30_named_classes():
    assert len(CIFAR100_CLASSES) == 100 and list(CIFAR100_CLASSES) == sorted(CIFAR100_CLASSES)
    names = [n for group in CIFAR100_RELATED_TO_CIFAR10.values() for n in group]
    assert len(names) == len(set(names)) == 30
    related = related_upstream_classes("cifar100")
    assert [CIFAR100_CLASSES[i] for i in related] == sorted(names)
    with pytest.raises(ConfigError, match="no related-class subset"):
        related_upstream_classes("imagenet")


def test_cifar100_class_list_matches_the_tarball():
    root = os.environ.get("NML_DATA")
    tarball = Path(root) / "cifar100.tar.xz" if root else None
    if tarball is None or not tarball.is_file():
        pytest.skip("needs $NML_DATA with cifar100.tar.xz")
    folders = set()
    with tarfile.open(tarball, "r:xz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) >= 3 and parts[1] == "train":
                folders.add(parts[2])
    assert sorted(folders) == list(CIFAR100_CLASSES)


@pytest.mark.parametrize("scale", ["tiny", "cpu", "cifar"])
def test_asymmetric_grid(scale):
    params = ChapterParams.from_dict(scale=scale, noise=0.07)
    (grid,) = chapter_grids("08_asymmetric_noise", params, scale)
    assert grid.experiment == "asymmetric"
    assert set(grid.methods) == {"pretrain", "lp", "nmtune"}
    assert grid.noise_levels == tuple(sorted(ASYMMETRIC_NOISE_LEVELS + (0.07,)))
    assert grid.backbones == SCALES[scale].backbones[:1]
    assert grid.pretrain_overrides["noise_type"] == "asymmetric"
    assert all(t in ASYMMETRIC_TASK_ROLES for t in grid.tasks)
    assert SCALES[scale].id_tasks[0] in grid.tasks
    # the overrides make a valid config on this scale's pipeline
    pipe = Pipeline(scale, store=SimpleNamespace(), device="cpu", progress=False)
    pcfg = pipe.pretrain_config(grid.backbones[0], 0.05, 0, **grid.pretrain_overrides)
    assert pcfg.noise_type == "asymmetric" and len(pcfg.noise_classes) >= 2
    narrowed = chapter_grids("08_asymmetric_noise",
                             params.replace(task="synthetic_id", backbone="vit_micro"), scale)[0]
    assert narrowed.tasks == ("synthetic_id",) and narrowed.backbones == ("vit_micro",)


def test_noisy_downstream_grids():
    params = ChapterParams.from_dict(scale="tiny", noise=0.2, lam=0.03)
    grids = chapter_grids("09_noisy_downstream", params, "tiny")
    assert [g.tune_overrides["label_noise"] for g in grids] == list(DOWNSTREAM_NOISE_LEVELS)
    assert DOWNSTREAM_NOISE_LEVELS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    for g in grids:
        assert g.experiment == "noisy_downstream" and set(g.methods) == {"lp", "nmtune"}
        assert g.tasks == SCALES["tiny"].id_tasks and g.tune_overrides["lam"] == 0.03
        assert g.noise_levels == (0.0, 0.1, 0.2, 0.3) and not g.pretrain_overrides


def test_run_grid_applies_pretrain_overrides_only_to_noisy_models():
    pipe = RecordingPipeline()
    grid = Grid(("pretrain", "lp"), backbones=("resnet_micro",), noise_levels=(0.0, 0.05),
                tasks=("synthetic_id",), tune_seeds=(0,), experiment="asymmetric",
                pretrain_overrides={"noise_type": "asymmetric", "noise_classes": (1, 2, 3)})
    result = run_grid(pipe, grid, progress=False)
    by_noise = {p.noise: p for p in pipe.pretrained}
    assert by_noise[0.05].noise_type == "asymmetric" and by_noise[0.05].noise_classes == (1, 2, 3)
    # noise 0: the clean model every chapter shares (same config as a plain clean model)
    assert by_noise[0.0] == pipe.pretrain_config("resnet_micro", 0.0, 0)
    assert {t[3] for t in pipe.tuned} == {"asymmetric"}
    assert {t[0].noise_type for t in pipe.tuned if t[0].noise > 0} == {"asymmetric"}
    assert len(result.rows) == 4


def test_run_grid_passes_label_noise_to_lp_and_nmtune():
    pipe = RecordingPipeline()
    grid = chapter_grids("09_noisy_downstream",
                         ChapterParams.from_dict(scale="tiny", lam=0.03), "tiny")[3]
    result = run_grid(pipe, grid, progress=False)
    assert {t[2].label_noise for t in pipe.tuned} == {0.3}
    lams = {t[2].method: t[2].lam for t in pipe.tuned}
    assert lams["nmtune"] == 0.03 and lams["lp"] == TuneConfig().lam, (
        "lambda joins NMTune units only, so LP units stay shared")
    assert set(result.rows["label_noise"]) == {0.3}
    n = len(SCALES["tiny"].noise_levels) * len(SCALES["tiny"].tune_seeds) * 2
    assert len(pipe.tuned) == n and np.all(result.rows["value"] == 50.0)


def test_bad_noise_parameter_is_a_clear_error():
    with pytest.raises(ConfigError, match="noise"):
        ChapterParams.from_dict(scale="tiny", noise=1.5)


def test_label_noise_panels_one_trace_per_pretraining_noise():
    from nml import plots
    from nml.errors import NMLError
    rng = np.random.default_rng(0)
    df = pd.DataFrame([{"noise": g, "label_noise": eta, "pretrain_seed": 0, "seed": s,
                        "value": 80 - 50 * eta - 10 * g + rng.normal()}
                       for g in (0.0, 0.1) for eta in (0.0, 0.2, 0.4) for s in range(3)])
    fig = plots.label_noise_panels({"LP": df, "NMTune": df}, caption="test caption")
    assert len(fig.data) == 4 and {t.name for t in fig.data} == {
        "pre-training noise 0 %", "pre-training noise 10 %"}
    assert sum(t.showlegend for t in fig.data) == 2, "one legend entry per noise level"
    assert list(fig.data[0].x) == [0.0, 20.0, 40.0]
    assert fig.data[0].y[0] > fig.data[0].y[-1] and all(fig.data[0].error_y.array > 0)
    with pytest.raises(NMLError, match="label_noise"):
        plots.label_noise_panels({"LP": df.drop(columns="label_noise")})


def test_ablation_factor_names_each_variant_grid_of_chapter_11():
    from nml.chapters import ABLATION_DEFAULT_LEVELS, ablation_factor
    assert ablation_factor({"lam": 0.01}) is None                      # the paper's setting
    assert ablation_factor({"mlp_layers": 3}) == ("depth (layers)", "3")
    assert ablation_factor({"residual_mlp": True}) == ("form of Z", "Z = F + h(F)")
    assert ablation_factor({"w_mse": 1.0, "w_cov": 0.04, "w_svd": 0.001})[1].startswith("authors'")
    assert ablation_factor({"w_svd": 0.0, "w_cov": 1.0}) == ("loss terms", "no SVD")
    params = ChapterParams.from_dict(scale="tiny")
    grids = [g for g in chapter_grids("11_ablations", params, "tiny") if g.methods == ("nmtune",)
             and not g.lambdas]
    factors = {ablation_factor(g.tune_overrides) for g in grids} - {None}
    assert factors and {f for f, _ in factors} <= set(ABLATION_DEFAULT_LEVELS)
