"""What each chapter runs: its parameters, checked, and its grid of units, computed or replayed.

A chapter notebook does three things: check its ``parameters`` cell with
:class:`ChapterParams` (a bad value stops the notebook at once with a clear message), collect
its results with :func:`run_grid` (stored units replay in seconds; missing ones are computed
when the scale allows it), and plot them with :mod:`nml.plots`. The same grids are what
``python -m nml grid`` runs on a GPU machine to fill the store for the book.

``scale="auto"`` picks the best scale whose units are all stored (cifar, cpu_seeds, then cpu),
and otherwise the tiny scale, computed on the spot on any CPU; a page that falls back past a
scale stored in part says how many of its pre-trained models are stored.

Used by every chapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import Config, check_range
from .data.classes import CIFAR100_CLASSES, CIFAR100_RELATED_TO_CIFAR10
from .errors import ConfigError
from .experiments import SCALES, MissingResult, Pipeline
from .results import ResultStore
from .tune import AUTHORS_BATCH_SIZE
from .vocab import BLACKBOX_METHODS, PAPER_LAMBDA, WHITEBOX_METHODS

__all__ = ["ChapterParams", "Grid", "GridResult", "run_grid", "AUTO_ORDER",
           "CHAPTERS", "chapter_grids", "levels_with", "run_chapter", "model_major",
           "ASYMMETRIC_NOISE_LEVELS", "DOWNSTREAM_NOISE_LEVELS", "CIFAR100_CLASSES",
           "CIFAR100_RELATED_TO_CIFAR10", "ASYMMETRIC_TASK_ROLES", "related_upstream_classes",
           "ablation_factor", "ABLATION_DEFAULT_LEVELS", "AUTHORS_WEIGHTS_LEVEL", "stored_models"]

WHITEBOX = WHITEBOX_METHODS
NMTUNE_KNOBS = ("lam", "w_mse", "w_cov", "w_svd", "svd_top_k", "svd_method")

#: ``scale="auto"`` tries these, best first; the last one is computed when nothing is stored.
AUTO_ORDER = ("cifar", "cpu_seeds", "cpu", "tiny")


@dataclass(frozen=True)
class ChapterParams(Config):
    """The papermill parameters shared by the chapters (each uses the ones it needs)."""

    scale: str = "auto"            # auto | tiny | cpu | cifar (auto: best fully stored scale)
    noise: float = 0.1             # the noisy model a chapter's detail figures compare with clean
    backbone: str | None = None    # None: every backbone of the scale
    task: str | None = None        # None: every task of the scale
    lam: float = PAPER_LAMBDA      # NMTune weight lambda (paper: 0.01)
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
    pretrain_overrides: dict = field(default_factory=dict)  # PretrainConfig fields (noise > 0 only)


@dataclass
class GridResult:
    rows: pd.DataFrame                          # every metric row of every unit
    spectra: dict                               # (method, backbone, noise, seeds, task, test_set, lam) -> s
    scale: str
    description: str                            # the scale's caption text
    # (backbone, noise, pretrain_seed) -> the "backbone_retrained" note of its units: models
    # trained again after their checkpoint was lost (Pipeline.retrained_note)
    retrained: dict = field(default_factory=dict)

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
            "05_full_finetune", "06_nmtune", "08_asymmetric_noise",
            "09_noisy_downstream", "11_ablations", "11_authors", "clip")
"""Every named set of grids: the chapters' own, plus ``clip``, the CLIP pre-training study
(paper 4.2) whose sections sit in chapters 01, 03 and 06, and ``11_authors``, chapter 11's
comparison of the paper's NMTune with the authors' code (``TuneConfig(variant="authors")``).
Both resolve ``scale="auto"`` on their own (a chapter's other figures keep their scale when
these runs exist at another)."""


#: Pre-training noise ratios of the asymmetric-noise chapter (paper 7.3: {0, 2.5, 5, 10}%),
#: each the rate *within* the related classes (nml.noise.asymmetric_noise).
ASYMMETRIC_NOISE_LEVELS = (0.0, 0.025, 0.05, 0.1)

#: Downstream label-noise ratios eta of the noisy-downstream chapter (paper 7.4 / App. B.5).
DOWNSTREAM_NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

#: Each task's role in the asymmetric-noise chapter, as the paper's Fig. 10 groups them: the
#: ID task the noise subset was built from ("related"), an ID task it was not built from
#: ("unrelated"), and the OOD task (the paper's DomainNet, "related" there). The synthetic OOD
#: task draws the synthetic ID task's ten classes in other domains, so it is related too.
ASYMMETRIC_TASK_ROLES = {
    "synthetic_id": "ID, related", "synthetic_ood_photo": "OOD, related (same classes)",
    "cifar10": "ID, related", "caltech101": "ID, unrelated",
    "pacs_photo": "OOD, partly related (dog, elephant, horse)",
}

_ASYMMETRIC_TASKS = {"synthetic_upstream": ("synthetic_id", "synthetic_ood_photo"),
                     "cifar100": ("cifar10", "caltech101", "pacs_photo")}


#: Chapter 11's name for the term weights of the authors' code (mse 1, cov 0.04, svd 0.001).
AUTHORS_WEIGHTS_LEVEL = "authors' 1/0.04/0.001"
#: The paper's setting as a level of each factor chapter 11 varies (the reference bar of each).
ABLATION_DEFAULT_LEVELS = {"depth (layers)": "2", "width (hidden = k D)": "4",
                           "non-linearity": "relu", "form of Z": "Z = h(F)",
                           "loss terms": "all 1/1/1", "λ": "0.01", "top-K of L_SVD": "1",
                           "SVD term": "fast"}


def ablation_factor(overrides: dict) -> tuple[str, str] | None:
    """``(factor, level)`` that one of chapter 11's variant grids changes (its
    ``Grid.tune_overrides``, lambda aside); None for the paper's own setting. The factor names a
    group of chapter 11's figure, the level one bar (:data:`ABLATION_DEFAULT_LEVELS` holds the
    paper's level of each). The scorecard names the same variants by their knobs
    (:func:`nml.index_columns.variant_label`). Used by chapter 11_ablations.
    """
    v = {k: x for k, x in overrides.items() if k != "lam"}
    if not v:
        return None
    if "mlp_layers" in v:
        return "depth (layers)", str(v["mlp_layers"])
    if "mlp_hidden_mult" in v:
        return "width (hidden = k D)", str(v["mlp_hidden_mult"])
    if "mlp_activation" in v:
        return "non-linearity", v["mlp_activation"]
    if "residual_mlp" in v:
        return "form of Z", "Z = F + h(F)"
    if "svd_top_k" in v:
        return "top-K of L_SVD", str(v["svd_top_k"])
    if "svd_method" in v:
        return "SVD term", v["svd_method"]
    if v == {"w_mse": 1.0, "w_cov": 0.04, "w_svd": 0.001}:
        return "loss terms", AUTHORS_WEIGHTS_LEVEL
    off = [k[2:].upper() for k, x in v.items() if k.startswith("w_") and x == 0]
    return "loss terms", "no " + "/".join(off)


def related_upstream_classes(upstream: str) -> tuple[int, ...]:
    """Indices of the upstream classes that asymmetric pre-training noise flips among.

    ``cifar100``: :data:`CIFAR100_RELATED_TO_CIFAR10` (30 classes). ``synthetic_upstream``:
    the classes that share at least two of their three parts (shape and colour) with one
    ``synthetic_id`` class, computed from the synthetic world of :mod:`nml.data`; sharing one
    part is no relation there (38 of the 40 classes share one), two of three makes a near
    relative, as a pickup truck is of a truck.

    Used by chapter 08_asymmetric_noise.
    """
    if upstream == "cifar100":
        names = [n for group in CIFAR100_RELATED_TO_CIFAR10.values() for n in group]
        return tuple(sorted(CIFAR100_CLASSES.index(n) for n in names))
    if upstream == "synthetic_upstream":
        from . import data
        world = data.synthetic_world()  # the class prototypes (fixed world seed): deterministic

        def parts(proto) -> set:
            return set(zip(proto["shape"].tolist(), proto["colour"].tolist()))
        targets = [parts(p) for p in world["synthetic_id"]]
        return tuple(k for k, p in enumerate(world["synthetic_upstream"])
                     if max(len(parts(p) & t) for t in targets) >= 2)
    raise ConfigError(f"no related-class subset is defined for upstream {upstream!r}; "
                      f"chapter 08_asymmetric_noise knows {tuple(_ASYMMETRIC_TASKS)}")


def chapter_grids(chapter: str, params: ChapterParams, scale_name: str) -> list[Grid]:
    """The grids of units chapter ``chapter`` shows at scale ``scale_name``.

    The user's ``noise`` joins the scale's noise levels; ``backbone`` and ``task`` narrow the
    grid; ``lam`` is the NMTune weight of the main comparison.
    """
    # long: one table of every chapter's grids, read top to bottom
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
    # The paper's 7.3 / 7.4 studies use one convolutional model (ResNet-50): the scale's first.
    first_backbone = backbones if params.backbone else backbones[:1]
    ablation_tasks = (params.task,) if params.task else (scale.ablation_tasks or scale.tasks)
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
        "06_nmtune": [Grid(BLACKBOX_METHODS, backbones=backbones,
                           tune_overrides=lam, **common),
                      # The lambda explorer: the ID task and the first OOD task (each more
                      # OOD task multiplies the sweep's cost by its number of target sets).
                      # One pre-trained model per noise level: a slider to explore, not a
                      # claim (the seeds' spread is the main comparison's job).
                      Grid(("nmtune",), backbones=backbones[:1],
                           noise_levels=levels_with((0.0,), params.noise),
                           pretrain_seeds=scale.pretrain_seeds[:1],
                           tasks=tasks if params.task else scale.id_tasks + scale.ood_tasks[:1],
                           tune_seeds=scale.tune_seeds[:1], lambdas=scale.lambdas)],
        # Paper 7.3: noise only among the upstream classes related to the ID task's (built
        # only when asked: the subset is computed from the scale's upstream data).
        "08_asymmetric_noise": (_asymmetric_grids(params, scale_name, first_backbone, lam)
                                if chapter == "08_asymmetric_noise" else []),
        # Paper 7.4 / App. B.5: symmetric label noise eta in the downstream training set, one
        # grid per eta, across the scale's pre-training noise levels.
        "09_noisy_downstream": [
            Grid(("lp", "nmtune"), backbones=first_backbone,
                 noise_levels=noise, tasks=(params.task,) if params.task else scale.id_tasks,
                 tune_overrides={**lam, "label_noise": eta}, experiment="noisy_downstream")
            for eta in DOWNSTREAM_NOISE_LEVELS],
        # App. B.7 / C.2 ablations of black-box NMTune, one factor at a time from the paper's
        # setting (2-layer ReLU MLP, hidden 4D, weights 1/1/1, top-1 fast SVD term); LP and MLP
        # tuning are the references (shared with 06). Chapter 11 reads each grid's overrides.
        "11_ablations": [Grid(("lp", "mlp"), backbones=backbones[:1], tasks=ablation_tasks,
                              noise_levels=levels_with((0.0,), params.noise))] + [
            Grid(("nmtune",), backbones=backbones[:1], tasks=ablation_tasks,
                 noise_levels=levels_with((0.0,), params.noise), experiment="ablation",
                 tune_overrides={**lam, **variant})
            for variant in (
                {}, {"mlp_layers": 1}, {"mlp_layers": 3},
                {"mlp_hidden_mult": 1}, {"mlp_hidden_mult": 2}, {"mlp_hidden_mult": 8},
                {"mlp_activation": "gelu"}, {"mlp_activation": "tanh"},
                {"mlp_activation": "identity"},
                {"w_mse": 0.0}, {"w_cov": 0.0}, {"w_svd": 0.0},
                {"w_mse": 1.0, "w_cov": 0.04, "w_svd": 0.001},
                *({"svd_top_k": k} for k in range(2, 11)),
                {"residual_mlp": True}, {"svd_method": "exact"})] + [
            Grid(("nmtune",), backbones=backbones[:1], tasks=ablation_tasks,
                 noise_levels=levels_with((0.0,), params.noise), experiment="ablation",
                 lambdas=scale.lambdas)],
        # The paper's NMTune against the authors' public code, whole set-up against whole set-up
        # (nml.tune.TuneConfig.authors_code: their head, views, weights, batch of 64; their
        # regulariser has no lambda, so that grid takes none).
        "11_authors": [
            Grid(("nmtune",), backbones=backbones[:1], tasks=ablation_tasks,
                 noise_levels=levels_with((0.0,), params.noise), experiment="ablation",
                 tune_overrides=overrides)
            for overrides in (lam, {"variant": "authors", "batch_size": AUTHORS_BATCH_SIZE})],
        # Paper 4.2: CLIP pre-training with swapped captions; zero-shot accuracy, then the same
        # spectrum / LP / MLP / NMTune analysis on the image features (experiment "clip").
        "clip": [Grid(("pretrain",), backbones=(scale.clip_backbone,),
                      noise_levels=scale.clip_noise_levels),
                 Grid(("frozen", "lp", "mlp", "nmtune"), backbones=(scale.clip_backbone,),
                      noise_levels=scale.clip_noise_levels, tasks=tasks, tune_overrides=lam)],
    }
    if chapter not in grids:
        raise ConfigError(f"unknown chapter {chapter!r}; choose one of {CHAPTERS}")
    return grids[chapter]


def _asymmetric_grids(params: ChapterParams, scale_name: str, backbones: tuple[str, ...],
                      lam: dict) -> list[Grid]:
    """Chapter 08_asymmetric_noise's grid: pre-training, LP and NMTune under asymmetric noise.

    The tiny scale trains a model in about 25 s, so it affords 3 pre-training seeds: its
    2.5-10 % flips touch 15-60 labels, an effect one seed's luck would hide. There the spread
    between pre-trained models is what matters, so one tuning seed per model keeps the grid at
    48 tuning units.
    """
    scale = SCALES[scale_name]
    tiny = scale_name == "tiny"
    return [Grid(("pretrain", "lp", "nmtune"), backbones=backbones,
                 noise_levels=levels_with(ASYMMETRIC_NOISE_LEVELS, params.noise),
                 tasks=(params.task,) if params.task else _ASYMMETRIC_TASKS.get(scale.upstream),
                 pretrain_seeds=(0, 1, 2) if tiny else None,
                 tune_seeds=scale.tune_seeds[:1] if tiny else None,
                 tune_overrides=lam, experiment="asymmetric",
                 pretrain_overrides={"noise_type": "asymmetric",
                                     "noise_classes": related_upstream_classes(scale.upstream)})]


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
    frames, spectra, retrained = [], {}, {}
    for method, backbone, noise, pseed, task, tseed, frac, lam in tqdm(
            jobs, desc=f"{scale.name} units", disable=not progress, leave=False):
        # Noise 0 leaves every label clean whatever the noise type, so the clean model is the
        # one the other chapters share rather than a copy trained again under another key.
        pcfg = pipe.pretrain_config(backbone, noise, pseed,
                                    **(grid.pretrain_overrides if noise > 0 else {}))
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
        if unit.info.get("backbone_retrained"):
            retrained[(backbone, noise, pseed)] = unit.info["backbone_retrained"]
        for test_set, s in unit.arrays.items():
            spectra[(method, backbone, noise, pseed, tseed, task, test_set, lam)] = s
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return GridResult(rows, spectra, scale.name, scale.description, retrained)


def model_major(pipe: Pipeline, chapters: tuple[str, ...], params: ChapterParams, *,
                shard: tuple[int, int] = (0, 1)):
    """The grids of ``chapters`` at ``pipe``'s scale, regrouped one pre-trained model at a time.

    Yields ``(model, grids)`` with ``model = (backbone, noise, pretrain_seed)`` in seed-major
    order (every noise level of seed 0, then of seed 1, ...), and ``grids`` every unit of the
    chapters that this model's features feed; the lambda sweeps follow in a second pass. Running them in this order finishes each model's
    downstream units while its checkpoint and cached features are at hand, and completes whole
    replicates early, so a long CPU grid stopped half-way has full noise trends to show.
    ``shard=(k, n)`` keeps every n-th model from the k-th on, so n processes (one CPU core or
    one GPU each) split the grid without overlap; together the n shards yield every model once.
    Used by ``python -m nml grid --by-model [--shard k/n]`` (the CPU grids behind chapters
    01-03 and 06).
    """

    scale = pipe.scale
    grids = [g for chapter in chapters for g in chapter_grids(chapter, params, scale.name)]
    models = []
    for g in grids:
        for backbone in g.backbones or scale.backbones:
            for noise in g.noise_levels or scale.noise_levels:
                for seed in g.pretrain_seeds or scale.pretrain_seeds:
                    if (backbone, noise, seed) not in models:
                        models.append((backbone, noise, seed))
    models.sort(key=lambda m: (m[2], m[0], m[1]))
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard {index}/{count} does not exist; use k/n with 0 <= k < n, "
                          f"e.g. --shard 0/2 and --shard 1/2 for two processes")
    models = models[index::count]
    # Sweeps (one unit per lambda) come after every model's main units: they explore, while
    # the main units decide the claims.
    for sweeps in (False, True):
        for backbone, noise, seed in models:
            own = [dataclasses.replace(g, backbones=(backbone,), noise_levels=(noise,),
                                       pretrain_seeds=(seed,))
                   for g in grids
                   if bool(g.lambdas) == sweeps
                   and backbone in (g.backbones or scale.backbones)
                   and noise in (g.noise_levels or scale.noise_levels)
                   and seed in (g.pretrain_seeds or scale.pretrain_seeds)]
            if own:
                yield (backbone, noise, seed), own


def run_chapter(chapter: str, params: ChapterParams, *, store: ResultStore | None = None,
                progress: bool = True) -> tuple[Pipeline, list[GridResult]]:
    """Run a chapter's grids at ``params.scale``; ``auto`` takes the best fully stored scale."""
    store = store or ResultStore()
    candidates = AUTO_ORDER if params.scale == "auto" else (params.scale,)
    in_progress: list[str] = []
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
            stored, expected = stored_models(pipe)
            if stored == expected:
                # Every model exists but this chapter's runs on them do not (e.g. the
                # cpu_seeds grid runs chapters 01, 02, 03 and 06 only): not "incomplete".
                in_progress.append(f"the `{name}` scale has all {expected} pre-trained models "
                                   f"stored but not this chapter's runs on them, so this page "
                                   f"shows the best scale whose runs are stored in full")
            elif stored:
                in_progress.append(f"the `{name}` scale is not complete yet ({stored} of "
                                   f"{expected} pre-trained models stored), so this page shows "
                                   f"the best scale stored in full")
            continue
        if in_progress:
            # The reader learns that a better scale exists in part (the scorecard shows it).
            # no final period: the chapters end the scale line themselves
            note = "Note: " + "; ".join(in_progress)
            results = [dataclasses.replace(r, description=r.description.rstrip(". ") + ". " + note)
                       for r in results]
        return pipe, results
    raise AssertionError("unreachable")


def stored_models(pipe: Pipeline) -> tuple[int, int]:
    """``(stored, expected)``: the scale's pre-trained models (backbone x noise x pre-training
    seed) whose pre-training unit is in ``pipe``'s store, and how many the scale has.

    Used by every chapter (through :func:`run_chapter`) and by the scorecard page, to say how far
    a long grid has got.
    """
    scale = pipe.scale
    models = [(b, n, s) for b in scale.backbones for n in scale.noise_levels
              for s in scale.pretrain_seeds]
    stored = sum(pipe.store.get("pretrain", pipe.pretrain_config(*m)) is not None
                 for m in models)
    return stored, len(models)
