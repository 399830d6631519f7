"""What each chapter runs: its parameters, checked, and its grid of units, computed or replayed.

A chapter notebook does three things: check its ``parameters`` cell with
:class:`ChapterParams` (a bad value stops the notebook at once with a clear message), collect
its results with :func:`run_grid` (stored units replay in seconds; missing ones are computed
when the scale allows it), and plot them with :mod:`nml.plots`. The same grids are what
``python -m nml grid`` runs on a GPU machine to fill the store for the book.

``scale="auto"`` picks the best scale whose units are all stored (cifar, then cpu), and
otherwise the tiny scale, computed on the spot on any CPU.

Used by every chapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import Config, check_range
from .errors import ConfigError
from .experiments import SCALES, MissingResult, Pipeline
from .results import ResultStore

__all__ = ["ChapterParams", "Grid", "GridResult", "run_grid", "AUTO_ORDER",
           "CHAPTERS", "chapter_grids", "levels_with", "run_chapter"]

WHITEBOX = ("lora", "lora_nmtune", "ft")
NMTUNE_KNOBS = ("lam", "w_mse", "w_cov", "w_svd", "svd_top_k", "svd_method")

#: ``scale="auto"`` tries these, best first; the last one is computed when nothing is stored.
AUTO_ORDER = ("cifar", "cpu", "tiny")


@dataclass(frozen=True)
class ChapterParams(Config):
    """The papermill parameters shared by the chapters (each uses the ones it needs)."""

    scale: str = "auto"            # auto | tiny | cpu | cifar (auto: best fully stored scale)
    noise: float = 0.1             # the noisy model a chapter's detail figures compare with clean
    backbone: str | None = None    # None: every backbone of the scale
    task: str | None = None        # None: every task of the scale
    lam: float = 0.01              # NMTune weight lambda (paper: 0.01)
    lora_ratio: int = 8            # LoRA rank = in_features // lora_ratio (paper: 8)
    compute: bool = True           # compute units missing from the store (False: replay only)
    data_root: str | None = None   # data folder; None: $NML_DATA
    device: str | None = None      # cpu | cuda; None: cuda when available

    def validate(self) -> None:
        if self.scale != "auto" and self.scale not in SCALES:
            raise ConfigError(f"parameter 'scale' = {self.scale!r} is unknown; use 'auto' or one "
                              f"of {tuple(SCALES)} (e.g. -p scale tiny)")
        check_range("noise", self.noise, 0.0, 1.0, hi_inclusive=False)
        check_range("lam", self.lam, 0.0, None)
        check_range("lora_ratio", self.lora_ratio, 1, None)
        if self.task is not None:
            from .data import TASKS
            if self.task not in TASKS:
                raise ConfigError(f"parameter 'task' = {self.task!r} is unknown; use one of "
                                  f"{tuple(TASKS)}")
        if self.backbone is not None:
            from .models import BACKBONES
            if self.backbone not in BACKBONES and not self.backbone.startswith("openclip:"):
                raise ConfigError(f"parameter 'backbone' = {self.backbone!r} is unknown; use "
                                  f"one of {tuple(BACKBONES)}")


@dataclass(frozen=True)
class Grid:
    """The units one figure needs. ``None`` fields mean "the scale's own choice"."""

    methods: tuple[str, ...]                    # pretrain | frozen | lp | mlp | nmtune | lora ...
    backbones: tuple[str, ...] | None = None
    noise_levels: tuple[float, ...] | None = None
    pretrain_seeds: tuple[int, ...] | None = None
    tasks: tuple[str, ...] | None = None
    tune_seeds: tuple[int, ...] | None = None
    fractions: tuple[float, ...] = (1.0,)
    lambdas: tuple[float, ...] | None = None    # NMTune methods: one run per lambda
    tune_overrides: dict = field(default_factory=dict)
    experiment: str | None = None               # store experiment name (default per method)


@dataclass
class GridResult:
    rows: pd.DataFrame                          # every metric row of every unit
    spectra: dict                               # (method, backbone, noise, seeds, task, test_set, lam) -> s
    scale: str
    description: str                            # the scale's caption text

    def metric(self, name: str, **where) -> pd.DataFrame:
        """Rows of one metric, filtered by column values."""
        df = self.rows[self.rows["metric"] == name]
        for col, val in where.items():
            df = df[df[col] == val]
        return df


def levels_with(levels, extra: float | None) -> tuple[float, ...]:
    """``levels`` plus ``extra`` (a user's ``-p noise``) when it is not already among them."""
    out = tuple(levels)
    if extra is not None and not any(np.isclose(extra, v) for v in out):
        out = tuple(sorted(out + (float(extra),)))
    return out


CHAPTERS = ("01_noisy_pretraining", "02_linear_probe", "03_feature_spectrum", "04_lora",
            "05_full_finetune", "06_nmtune")


def chapter_grids(chapter: str, params: ChapterParams, scale_name: str) -> list[Grid]:
    """The grids of units chapter ``chapter`` shows at scale ``scale_name``.

    The user's ``noise`` joins the scale's noise levels; ``backbone`` and ``task`` narrow the
    grid; ``lam`` is the NMTune weight of the main comparison.
    """
    scale = SCALES[scale_name]
    noise = levels_with(scale.noise_levels, params.noise)
    backbones = (params.backbone,) if params.backbone else scale.backbones
    tasks = (params.task,) if params.task else scale.tasks
    vit = tuple(b for b in backbones if "vit" in b)
    if chapter == "04_lora" and not vit:
        raise MissingResult(f"scale {scale_name!r} has no ViT backbone, which LoRA needs "
                            f"(its backbones: {backbones}); use -p scale tiny or cifar")
    lam = {"lam": params.lam}
    common = dict(noise_levels=noise, tasks=tasks)
    grids = {
        "01_noisy_pretraining": [Grid(("pretrain",), backbones=backbones, noise_levels=noise)],
        "02_linear_probe": [Grid(("lp",), backbones=backbones, fractions=scale.fractions,
                                 **common)],
        "03_feature_spectrum": [Grid(("frozen", "lp"), backbones=backbones, **common)],
        "04_lora": [Grid(("lp", "lora", "lora_nmtune"), backbones=vit,
                         tune_overrides={"lora_ratio": params.lora_ratio, **lam}, **common)],
        "05_full_finetune": [Grid(("lp", "ft"), backbones=backbones, **common)] + (
            [Grid(("lora",), backbones=vit, tune_overrides={"lora_ratio": params.lora_ratio},
                  **common)] if vit else []),
        "06_nmtune": [Grid(("lp", "mlp", "nmtune"), backbones=backbones,
                           tune_overrides=lam, **common),
                      Grid(("nmtune",), backbones=backbones[:1],
                           noise_levels=levels_with((0.0,), params.noise), tasks=tasks,
                           tune_seeds=scale.tune_seeds[:1], lambdas=scale.lambdas)],
    }
    if chapter not in grids:
        raise ConfigError(f"unknown chapter {chapter!r}; choose one of {CHAPTERS}")
    return grids[chapter]


def run_grid(pipe: Pipeline, grid: Grid, *, progress: bool = True) -> GridResult:
    """Compute or replay every unit of ``grid`` on ``pipe``'s scale; one tidy table back."""
    scale = pipe.scale
    backbones = grid.backbones or scale.backbones
    noise_levels = grid.noise_levels or scale.noise_levels
    pretrain_seeds = grid.pretrain_seeds or scale.pretrain_seeds
    tasks = grid.tasks or scale.tasks
    tune_seeds = grid.tune_seeds or scale.tune_seeds
    whitebox_seeds = grid.tune_seeds or scale.whitebox_seeds or tune_seeds
    jobs = []
    for backbone in backbones:
        for noise in noise_levels:
            for pseed in pretrain_seeds:
                for method in grid.methods:
                    if method == "pretrain":
                        jobs.append((method, backbone, noise, pseed, None, None, None, None))
                        continue
                    for task in tasks:
                        if method == "frozen":
                            jobs.append((method, backbone, noise, pseed, task, None, None, None))
                            continue
                        lams = grid.lambdas if (grid.lambdas and "nmtune" in method) else (None,)
                        for frac in grid.fractions:
                            for lam in lams:
                                seeds = whitebox_seeds if method in WHITEBOX else tune_seeds
                                for tseed in seeds:
                                    jobs.append((method, backbone, noise, pseed, task, tseed,
                                                 frac, lam))
    frames, spectra = [], {}
    for method, backbone, noise, pseed, task, tseed, frac, lam in tqdm(
            jobs, desc=f"{scale.name} units", disable=not progress, leave=False):
        pcfg = pipe.pretrain_config(backbone, noise, pseed)
        if method == "pretrain":
            unit = pipe.pretrain(pcfg)
        elif method == "frozen":
            unit = pipe.spectrum(pcfg, task)
        else:
            # A knob joins a unit's config only where it acts, so LP units stay shared.
            overrides = {k: v for k, v in grid.tune_overrides.items()
                         if not (k == "lora_ratio" and "lora" not in method)
                         and not (k in NMTUNE_KNOBS and "nmtune" not in method)}
            if lam is not None:
                overrides["lam"] = lam
            if frac != 1.0:
                overrides["fraction"] = frac
            tcfg = pipe.tune_config(method, seed=tseed, **overrides)
            unit = pipe.tune(pcfg, task, tcfg, experiment=grid.experiment)
        frames.append(unit.rows)
        for test_set, s in unit.arrays.items():
            spectra[(method, backbone, noise, pseed, tseed, task, test_set, lam)] = s
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return GridResult(rows, spectra, scale.name, scale.description)


def run_chapter(chapter: str, params: ChapterParams, *, store: ResultStore | None = None,
                progress: bool = True) -> tuple[Pipeline, list[GridResult]]:
    """Run a chapter's grids at ``params.scale``; ``auto`` takes the best fully stored scale."""
    store = store or ResultStore()
    candidates = AUTO_ORDER if params.scale == "auto" else (params.scale,)
    for name in candidates:
        last = name == candidates[-1]
        replay_only = not (last and params.compute)
        pipe = Pipeline(name, store=store, data_root=params.data_root, device=params.device,
                        progress=progress, replay_only=replay_only)
        try:
            results = [run_grid(pipe, g, progress=progress)
                       for g in chapter_grids(chapter, params, name)]
        except MissingResult as missing:
            if last:
                raise ConfigError(
                    f"{missing}; rerun with -p compute True to compute it, or pick a scale whose "
                    f"results are stored (-p scale tiny computes on any CPU)") from None
            continue
        return pipe, results
    raise AssertionError("unreachable")
