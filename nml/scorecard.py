"""The reproduction scorecard: the paper's claims as data, measured from the result index.

Each :class:`Claim` quotes the paper (journal version), says how the claim is measured from
``results/index.csv`` and which sign of the effect the paper claims. :func:`measure` computes
the effect at one scale with a 95 % t-interval over seeds; :func:`verdict` applies the fixed
rule in :data:`VERDICT_RULE`; :func:`render_markdown` writes the book page ``book/scorecard.md``
and ``python -m nml scorecard`` regenerates it.

How an effect is computed (the same for every claim):

1. Select the claim's rows of one scale (store experiment, method, metric, task kind, test
   set; tuning rows at full data, clean downstream labels and, for NMTune, the paper's lambda
   0.01). The main claims (T, C) read each method's main experiment (:data:`EXPERIMENT_OF`);
   each other family reads one experiment for all its methods (``Claim.experiment``): CLIP
   (K, ``clip``), asymmetric noise (A, ``asymmetric``, its own noise ratios), noisy downstream
   labels (N, ``noisy_downstream``, only the eta levels the claim names), practical models
   (P, ``practical``, all rows of a model pooled as one noise level) and NMTune ablations
   (B, ``ablation``, each compared arm one variant, from the ``variant`` column that
   :func:`load_index` adds from the unit configs). Pre-training rows of experiment
   ``pretrain`` are kept at the claim's pre-training noise type (``Claim.noise_type``,
   symmetric unless said; the ``noise_type`` column that :func:`load_index` adds from the
   unit configs), since chapter 08's asymmetric-noise models are stored there too.
2. Replicates: when the rows hold more than one pre-training seed, a replicate is a
   pre-training seed (values averaged over downstream seeds first); otherwise it is a
   downstream seed of the single pre-trained model, so the interval covers downstream
   variation only. Compared values are paired by replicate (same seed on both sides).
3. A *cell* is one backbone and one downstream task (and, for the N claims, one downstream
   label-noise ratio eta). The effect is computed per cell and replicate; the headline effect
   of a replicate is the mean over the claim's cells (the paper also averages over tasks),
   using the replicates that every cell has.
4. Interval: mean +- t(0.975, n-1) * sd / sqrt(n) over the n replicate-level effects; none
   for n = 1.

Used by the book page book/scorecard.md (reproduction scorecard) and ``python -m nml scorecard``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .chapters import ASYMMETRIC_NOISE_LEVELS, AUTO_ORDER, DOWNSTREAM_NOISE_LEVELS
from .errors import NMLError

__all__ = ["Claim", "CLAIMS", "NOT_RUN_CLAIMS", "NOT_SCORED_CLAIMS", "FAMILIES", "CLIP_CLAIMS",
           "ASYMMETRIC_CLAIMS", "NOISY_DOWNSTREAM_CLAIMS", "PRACTICAL_CLAIMS", "ABLATION_CLAIMS",
           "arm", "variant_label", "unit_variants", "unit_noise_types", "unit_columns",
           "UNIT_COLUMNS", "NOISE_TYPE_EXPERIMENTS", "ASYMMETRIC_NOISE", "SLIGHT_ASYMMETRIC",
           "NOISY_ETA", "LIGHT_ETA", "HEAVY_ETA", "VARIANT_EXPERIMENTS", "VARIANT_KNOBS",
           "POOLED_NOISE", "Interval", "Measurement", "ScoreRow",
           "VERDICTS", "VERDICT_RULE", "EXPERIMENT_OF", "PAPER_LAMBDA", "PAPER_NOISE", "SLIGHT_NOISE", "SCALE_ORDER",
           "t_interval", "verdict", "measure", "score", "render_markdown", "load_index",
           "claim_sentences", "verdict_block", "minimum_detectable_effect", "VERDICT_MEANING", "MIN_PRETRAIN_SEEDS", "OOD_SIGNAL_MARGIN",
           "write_scorecard", "add_parser", "main_cli", "default_scorecard_path"]

#: NMTune weight of the paper (Sec. 6.1); NMTune rows at other lambdas are slider runs.
PAPER_LAMBDA = 0.01
#: The paper's "slight" pre-training noise ratios (Sec. 4.3.1: "e.g., 5% or 10%").
SLIGHT_NOISE = (0.05, 0.1)
#: The store experiment that holds each method's main runs (nml.experiments.Pipeline.tune's
#: default). Other experiments reuse the method names for ablations, noisy downstream labels
#: or benchmarks; their rows must not mix into the main comparison.
EXPERIMENT_OF = {"pretrain": "pretrain", "frozen": "spectrum", "lp": "linear_probe",
                 "mlp": "nmtune", "nmtune": "nmtune", "lora": "lora", "lora_nmtune": "lora",
                 "ft": "finetune"}
#: The paper's pre-training noise ratios (Sec. 4.1); rows at other ratios (a user's extra
#: ``-p noise`` level) are left out of the scorecard.
PAPER_NOISE = (0.0, 0.05, 0.1, 0.2, 0.3)
#: Asymmetric pre-training noise ratios (paper 7.3, {0, 2.5, 5, 10} %; their home is
#: nml.chapters) and the ones the scorecard counts as "slight" there: 2.5 and 5 %. The paper's
#: slight levels under random noise are 5 and 10 % (SLIGHT_NOISE), but 10 % is the highest
#: asymmetric ratio, where it finds that "performance degrades earlier" on related tasks.
ASYMMETRIC_NOISE = tuple(ASYMMETRIC_NOISE_LEVELS)
SLIGHT_ASYMMETRIC = (0.025, 0.05)
#: Downstream label-noise ratios eta > 0 (paper 7.4; home: nml.chapters), split where the
#: paper splits its NMTune claim: "light, e.g., smaller than 40%" and heavier.
NOISY_ETA = tuple(e for e in DOWNSTREAM_NOISE_LEVELS if e > 0)
LIGHT_ETA = tuple(e for e in NOISY_ETA if e < 0.4)
HEAVY_ETA = tuple(e for e in NOISY_ETA if e >= 0.4)
#: The practical-model claims (chapter 07_practical_models, nml.practical; paper 7.2 pairs
#: GLUE's SST-2 with GLUE-X's IMDB): text units are tuned on task ``sst2`` and tested on the
#: test sets ``test`` (SST-2 test, ID), ``dev`` (SST-2 dev, ID; not used here) and ``imdb``
#: (IMDB test, OOD); vision units (nml.practical_vision) on ``cifar10`` / ``caltech101``
#: (test set ``test``, ID) and ``pacs_photo`` (test sets: the other PACS domains, OOD).
PRACTICAL_TASKS = ("sst2", "cifar10", "caltech101", "pacs_photo")
PRACTICAL_ID_SETS = ("test",)
PRACTICAL_OOD_SETS = ("imdb", "art_painting", "cartoon", "sketch")
#: Store experiments whose units differ only by tuning knobs (chapter 11's one-factor
#: ablations), and the knobs that make a variant (nml.tune.TuneConfig fields; lambda is not
#: one: NMTune rows are kept at PAPER_LAMBDA anyway).
VARIANT_EXPERIMENTS = ("ablation",)
VARIANT_KNOBS = ("w_mse", "w_cov", "w_svd", "svd_top_k", "svd_method", "mlp_hidden_mult",
                 "mlp_layers", "mlp_activation", "residual_mlp", "variant", "batch_size",
                 "res_scale_init")
#: Store experiments whose units are pre-trained models of either noise type
#: (nml.pretrain.PretrainConfig.noise_type): chapter 08 stores its asymmetric-noise models
#: beside chapter 01's symmetric ones, and the index has no column to tell them apart.
NOISE_TYPE_EXPERIMENTS = ("pretrain",)
#: Scales in the order the page shows them (best first): the chapters' own order.
SCALE_ORDER = AUTO_ORDER
#: Fewest pre-training seeds per noise level at which a claim about pre-training noise can be
#: scored better than "untestable" (issue: one seed hides the between-run spread).
MIN_PRETRAIN_SEEDS = 3
#: An OOD task enters a verdict only when its clean model's linear probe beats chance by at
#: least this many points: below it, a task at chance mixes noise into the average.
OOD_SIGNAL_MARGIN = 10.0
def _scale_labels() -> dict[str, str]:
    """Each scale's description, from its one home (:data:`nml.experiments.SCALES`)."""
    from .experiments import SCALES
    return {name: scale.description for name, scale in SCALES.items()}


SCALE_LABELS = _scale_labels()

VERDICTS = ("reproduced", "partly", "inconclusive", "untestable",
            "not reproduced at this scale", "not run")

#: One line per verdict: what it means (the chapters print it beside each verdict).
VERDICT_MEANING = {
    "reproduced": "the claimed sign, with a 95 % interval that excludes 0",
    "partly": "holds on some tasks and significantly fails or points the other way on others",
    "inconclusive": "the claimed sign, but the interval includes 0: no effect this scale can "
                    "detect",
    "untestable": "this scale cannot test it (one replicate and no interval; or a claim about "
                  "pre-training noise measured over fewer than "
                  f"{MIN_PRETRAIN_SEEDS} pre-training seeds; or nothing to rectify)",
    "not reproduced at this scale": "the opposite sign (or exactly 0)",
    "not run": "no complete set of rows at this scale",
}

VERDICT_RULE = (
    "The verdict is decided by this rule alone, fixed before the results it scores were "
    "looked at and never tuned: "
    "**not run**: the index holds no complete set of rows for the claim at this scale. "
    "Each cell (backbone and task) gets its effect with a 95 % interval over replicates. "
    "When the cells' mean effects have opposite signs, no average is taken: "
    "**partly** if some cell holds with an interval that excludes 0, **not reproduced at this "
    "scale** if none holds and some cell fails significantly, else **inconclusive**. "
    "Otherwise the headline effect is the mean over cells: "
    "**untestable** with one replicate (no interval); "
    "**reproduced** when it has the claimed sign and its interval excludes 0; "
    "**inconclusive** when it has the claimed sign and its interval includes 0; "
    "**not reproduced at this scale** when it has the wrong sign (or is exactly 0). "
    "Two caps follow. A claim about pre-training noise (it compares models pre-trained at "
    f"different noise ratios) is at best **untestable** unless its replicates are at least "
    f"{MIN_PRETRAIN_SEEDS} pre-training seeds, since downstream seeds of one pre-trained model "
    "say nothing about another pre-training run. A rectification claim (the clean model "
    "becomes best) counts only the cells where the clean model was not already best under "
    "linear probing, and is **untestable** when there is none. "
    "OOD tasks whose clean model does not beat chance by "
    f"{OOD_SIGNAL_MARGIN:g} points under linear probing do not enter (they are listed).")


# -- statistics ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """Mean of n replicate-level effects with its 95 % t-interval (None bounds when n < 2)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int

    def excludes_zero(self) -> bool:
        return self.lo is not None and (self.lo > 0 or self.hi < 0)

    def format(self, digits: int) -> str:
        if not np.isfinite(self.mean):
            return "n/a"
        mean = f"{self.mean:+.{digits}f}"
        if self.n == 0:
            return f"{mean} (cells share no replicate, no interval)"
        if self.lo is None:
            return f"{mean} (n={self.n}, no interval)"
        return f"{mean} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] (n={self.n})"


def t_interval(values) -> Interval:
    """95 % Student-t interval of the mean of ``values`` (replicate-level effects).

    Used by the scorecard page: mean +- t(0.975, n-1) * sd(ddof=1) / sqrt(n).
    """
    from scipy import stats
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), None, None, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, None, None, 1)
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def verdict(headline: Interval | None, cells: dict[str, Interval], direction: int) -> str:
    """The verdict of :data:`VERDICT_RULE` for a headline interval and per-cell intervals,
    before the caps that :func:`score` applies. ``direction`` is +1 when the paper claims a
    positive effect, -1 for a negative one. Used by the scorecard page and every chapter.
    """
    if headline is None or not np.isfinite(headline.mean):
        return "not run"

    def significant(iv: Interval, sign: int) -> bool:
        return iv.excludes_zero() and np.sign(iv.mean) == sign

    cell_right = any(significant(iv, direction) for iv in cells.values())
    cell_wrong = any(significant(iv, -direction) for iv in cells.values())
    signs = {int(np.sign(iv.mean)) for iv in cells.values() if np.isfinite(iv.mean)} - {0}
    if len(signs) > 1:   # opposite signs across tasks: judged per cell, never averaged
        if cell_right:
            return "partly"
        return "not reproduced at this scale" if cell_wrong else "inconclusive"
    if headline.lo is None:
        return "untestable"
    if np.sign(headline.mean) == direction:
        return "reproduced" if significant(headline, direction) else "inconclusive"
    return "not reproduced at this scale"


# -- selecting rows -------------------------------------------------------------------------------

def _task_kinds(df: pd.DataFrame) -> dict[str, str]:
    """ID or OOD per task, read from its test sets (the nml.experiments row contract).

    ID tasks have only the test sets ``test`` (and ``train`` for spectra); OOD tasks have
    target domains or corruptions (and ``mean``).
    """
    kinds = {}
    for task, sets in df.groupby("task")["test_set"]:
        names = set(sets.dropna().astype(str)) - {"train"}
        kinds[task] = "id" if names <= {"test"} else "ood"
    return kinds


def _near(values: pd.Series, levels) -> pd.Series:
    """True where a value is one of ``levels`` (float tolerance); False for NaN."""
    x = values.astype(float).to_numpy()
    return pd.Series(np.isclose(x[:, None], np.asarray(levels, dtype=float)).any(axis=1),
                     index=values.index)


def arm(method: str, **knobs) -> str:
    """A claim's name for one compared arm: a method, or a method at one ablation variant.

    ``arm("nmtune", w_svd=0.0)`` is ``"nmtune@w_svd=0"``: NMTune rows whose unit config sets
    these knobs away from the paper's setting (:func:`variant_label`); ``arm("nmtune")`` is
    the paper's setting itself. Used by the ablation claims (B).
    """
    return f"{method}@{variant_label(knobs)}"


def _arm_text(spec: str) -> str:
    """An arm as the page names it: ``nmtune``, ``nmtune (paper setting)``, ``nmtune (w_svd=0)``."""
    method, at, variant = spec.partition("@")
    return method if not at else f"{method} ({variant or 'paper setting'})"


def variant_label(knobs: dict) -> str:
    """Canonical text of the tuning knobs that differ from the paper's setting ('' if none)."""
    def text(v) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return f"{v:g}" if isinstance(v, (int, float)) else str(v)
    return ",".join(f"{k}={text(knobs[k])}" for k in sorted(knobs))


def _select(index: pd.DataFrame, scale: str, spec: str, claim: "Claim",
            kind: str | None) -> pd.DataFrame:
    """Rows of one arm (``spec``: a method, or ``method@variant``) of ``claim`` at one scale.

    The store experiment is the claim's (``claim.experiment``) or else the method's main one
    (:data:`EXPERIMENT_OF`); tasks are the claim's (``claim.tasks``) or else those of ``kind``
    (ID / OOD; None: no filter, for pre-training rows), test sets the claim's
    (``claim.test_sets``) or else as below; tuning rows at full data, NMTune at the
    paper's lambda; pre-training noise at ``claim.noise_levels`` (None: any); downstream label
    noise 0 (or absent) unless ``claim.label_noise`` names the eta levels that enter; an
    ablation claim (``claim.variants``) keeps the rows of the arm's variant only (the
    ``variant`` column that :func:`load_index` adds from the unit configs); rows of
    :data:`NOISE_TYPE_EXPERIMENTS` are kept at ``claim.noise_type`` only (the ``noise_type``
    column, likewise). Without the column such rows cannot be told apart and none are kept.

    OOD accuracy uses ``test_set == "mean"`` (mean over target domains); OOD spectra (and an
    OOD task without a ``mean`` row) are averaged over the target test sets here; ID and
    pre-training rows use ``test_set == "test"``.
    """
    method, _, variant = spec.partition("@")
    experiment = claim.experiment or EXPERIMENT_OF[method]
    df = index[(index["scale"] == scale) & (index["method"] == method)
               & (index["experiment"] == experiment)]
    if df.empty:
        return df
    if claim.variants:
        if "variant" not in df:
            return df.iloc[:0]
        df = df[df["variant"].fillna("").astype(str) == variant]
    if experiment in NOISE_TYPE_EXPERIMENTS:   # a row of unknown noise type never enters
        if "noise_type" not in df:
            return df.iloc[:0]
        df = df[df["noise_type"].astype(str) == claim.noise_type]
    if claim.tasks is not None:
        df = df[df["task"].isin(claim.tasks)]
    elif kind is not None:
        kinds = _task_kinds(index[index["scale"] == scale])
        df = df[df["task"].map(kinds) == kind]
    df = df[df["metric"] == claim.metric]
    if "fraction" in df:
        df = df[df["fraction"].isna() | np.isclose(df["fraction"].astype(float), 1.0)]
    if claim.label_noise is not None:
        df = df[_near(df["label_noise"], claim.label_noise)] if "label_noise" in df \
            else df.iloc[:0]
    elif "label_noise" in df:
        df = df[df["label_noise"].isna() | (df["label_noise"].astype(float) == 0.0)]
    if "nmtune" in method and "lam" in df:
        df = df[df["lam"].isna() | np.isclose(df["lam"].astype(float), PAPER_LAMBDA)]
    if claim.noise_levels is not None:
        df = df[_near(df["noise"], claim.noise_levels)]
    test_set = df["test_set"].astype(str)
    if claim.test_sets is not None:
        df = df[test_set.isin(claim.test_sets)]
        # average per unit only where a unit has several of the sets (PACS's target domains)
        average = bool(len(df)) and bool((df.groupby("key")["test_set"].nunique() > 1).any())
    elif kind != "ood":
        df, average = df[test_set == "test"], False
    elif (test_set == "mean").any():
        df, average = df[test_set == "mean"], False
    else:  # spectra of OOD tasks: every target domain, averaged below per unit
        df, average = df[test_set != "train"], True
    if average:
        keys = ["experiment", "key", "method", "backbone", "task", "noise", "pretrain_seed",
                "seed"] + [c for c in ("label_noise", *UNIT_COLUMNS) if c in df]
        df = df.groupby(keys, as_index=False, dropna=False)["value"].mean()
    return df


@dataclass
class _Rows:
    """Selected rows of each arm of a claim, collapsed to one value per replicate."""

    frames: dict[str, pd.DataFrame]        # arm -> backbone, task, noise, rep, value
    used: pd.DataFrame                     # the index rows these values come from
    replicate: str                         # "pre-training seed" | "downstream seed"
    duplicates: int                        # replicate values averaging more than one unit


#: The noise label of every row of a claim that pools its rows (``Claim.pool_noise``): one
#: level, not 0 %, so that no comparison with a clean model can be made from it.
POOLED_NOISE = -1.0


def _gather(index: pd.DataFrame, scale: str, claim: "Claim", kind: str | tuple[str, ...] | None,
            methods: tuple[str, ...]) -> _Rows:
    kinds = (kind,) if isinstance(kind, str) or kind is None else kind
    raw = {m: pd.concat([_select(index, scale, m, claim, k) for k in kinds],
                        ignore_index=True) for m in methods}
    used = pd.concat([r for r in raw.values() if not r.empty] or [pd.DataFrame()],
                     ignore_index=True)
    by_pretrain = (not used.empty) and used["pretrain_seed"].nunique() > 1
    # Spectra and pre-training rows carry seed = pretrain_seed: their replicate is the
    # pre-trained model whatever the number of seeds.
    model_level = (not used.empty) and bool((used["seed"] == used["pretrain_seed"]).all())
    frames, duplicates = {}, 0
    group = ["backbone", "task", "noise", "pretrain_seed", "seed"]
    for m, df in raw.items():
        if df.empty:
            frames[m] = pd.DataFrame(columns=["backbone", "task", "noise", "rep", "value"])
            continue
        df = df.assign(noise=POOLED_NOISE if claim.pool_noise else
                       df["noise"].astype(float).round(6))
        if claim.label_noise is not None:   # eta joins the cell: backbone / task / eta
            df = df.assign(task=df["task"].astype(str) + " / eta " + (
                df["label_noise"].astype(float) * 100).round(6).map("{:g} %".format))
        counts = df.groupby(group, dropna=False).size()
        duplicates += int((counts > 1).sum())
        per_seed = df.groupby(group, as_index=False, dropna=False)["value"].mean()
        rep_col = "pretrain_seed" if by_pretrain else "seed"
        frames[m] = (per_seed.groupby(["backbone", "task", "noise", rep_col], as_index=False,
                                      dropna=False)
                     ["value"].mean().rename(columns={rep_col: "rep"}))
    return _Rows(frames, used, "pre-training seed" if by_pretrain or model_level else
                 "downstream seed (one pre-trained model per noise level)", duplicates)


def _pivot(df: pd.DataFrame) -> pd.DataFrame:
    """noise x replicate table of one cell."""
    return df.pivot_table(index="noise", columns="rep", values="value", aggfunc="mean")


# -- per-cell effects (each returns a Series: replicate -> effect) ------------------------------

def _endpoint(df: pd.DataFrame, sign: int) -> pd.Series:
    """sign * (value at the highest noise level - value at 0 %), per replicate."""
    t = _pivot(df)
    if 0.0 not in t.index or t.index.max() <= 0:
        return pd.Series(dtype=float)
    return (sign * (t.loc[t.index.max()] - t.loc[0.0])).dropna()


def _slope(df: pd.DataFrame) -> pd.Series:
    """Least-squares slope of value on noise ratio, per 10 points of noise, per replicate."""
    t = _pivot(df)
    out = {}
    for rep in t.columns:
        col = t[rep].dropna()
        if len(col) >= 2:
            out[rep] = float(np.polyfit(col.index.to_numpy(float), col.to_numpy(), 1)[0]) * 0.1
    return pd.Series(out, dtype=float)


def _slight_benefit(df: pd.DataFrame, levels: tuple[float, ...] = SLIGHT_NOISE) -> pd.Series:
    """Best slight level (of ``levels``, default 5 % or 10 %, best by mean over replicates)
    minus 0 %, per replicate."""
    t = _pivot(df)
    slight = [n for n in t.index if any(np.isclose(n, s) for s in levels)]
    if 0.0 not in t.index or not slight:
        return pd.Series(dtype=float)
    best = max(slight, key=lambda n: t.loc[n].mean())
    return (t.loc[best] - t.loc[0.0]).dropna()


def _clean_best(df: pd.DataFrame) -> pd.Series:
    """0 % minus the best noisy level (best by mean over replicates), per replicate."""
    t = _pivot(df)
    noisy = [n for n in t.index if n > 0]
    if 0.0 not in t.index or not noisy:
        return pd.Series(dtype=float)
    best = max(noisy, key=lambda n: t.loc[n].mean())
    return (t.loc[0.0] - t.loc[best]).dropna()


def _gap(df: pd.DataFrame) -> pd.Series:
    """Mean over the noisy levels of abs(value(noise) - value(0 %)), per replicate."""
    t = _pivot(df)
    noisy = [n for n in t.index if n > 0]
    if 0.0 not in t.index or not noisy:
        return pd.Series(dtype=float)
    return (t.loc[noisy] - t.loc[0.0]).abs().mean(axis=0, skipna=False).dropna()


def _mean_diff(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Mean over the noise levels both have of (a - b), paired by replicate."""
    ta, tb = _pivot(a), _pivot(b)
    levels = ta.index.intersection(tb.index)
    reps = ta.columns.intersection(tb.columns)
    if levels.empty or reps.empty:
        return pd.Series(dtype=float)
    return (ta.loc[levels, reps] - tb.loc[levels, reps]).mean(axis=0, skipna=False).dropna()


def _per_cell(frames: dict[str, pd.DataFrame], methods: tuple[str, ...],
              fn: Callable[..., pd.Series]) -> dict[str, pd.Series]:
    """Apply ``fn`` to each (backbone, task) cell that every one of ``methods`` has."""
    keys = None
    for m in methods:
        cells = set(map(tuple, frames[m][["backbone", "task"]].drop_duplicates().to_numpy()))
        keys = cells if keys is None else keys & cells
    out = {}
    for backbone, task in sorted(keys or ()):
        parts = [frames[m][(frames[m]["backbone"] == backbone) & (frames[m]["task"] == task)]
                 for m in methods]
        effect = fn(*parts)
        if len(effect):
            out[f"{backbone} / {task}"] = effect
    return out


# -- claims ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how the scorecard measures it."""

    id: str
    title: str                 # a few words
    quote: str                 # the paper's statement, short
    source: str                # section / figure / table of the journal version
    measure_text: str          # how the effect is measured (shown on the page)
    effect: str                # what the number is, with its unit
    direction: int             # +1: the paper claims effect > 0; -1: effect < 0
    metric: str
    kind: str | tuple[str, ...]  # "id", "ood" or both
    methods: tuple[str, ...]   # methods whose rows are compared (first: the main one)
    cell_effect: Callable[..., pd.Series]
    digits: int = 2
    secondary: tuple[tuple[str, tuple[str, ...], Callable[..., pd.Series]], ...] = ()
    note: str = ""
    # Where the rows come from (defaults: the main experiments at the paper's settings).
    experiment: str | None = None          # store experiment of every arm (None: EXPERIMENT_OF)
    noise_levels: tuple[float, ...] | None = PAPER_NOISE  # pre-training ratios (None: any)
    label_noise: tuple[float, ...] | None = None  # eta levels that enter, each its own cell
    #                                        (None: clean downstream labels only)
    pool_noise: bool = False               # all rows are one noise level (unknown noise)
    tasks: tuple[str, ...] | None = None   # these tasks (None: the tasks of ``kind``)
    test_sets: tuple[str, ...] | None = None  # these test sets, averaged per unit (None: by
    #                                        kind: ID test, OOD mean or every target set)
    variants: bool = False                 # arms are method@variant (ablation units)
    noise_type: str = "symmetric"          # pre-training noise type of the rows of
    #                                        NOISE_TYPE_EXPERIMENTS (pre-trained models)
    # How the verdict is qualified (VERDICT_RULE):
    control: tuple[str, tuple[str, ...], Callable[..., pd.Series]] | None = None
    #   a comparison that must be read beside this one (NMTune vs LP: is the MLP alone enough?)
    precondition: tuple[str, tuple[str, ...], Callable[..., pd.Series]] | None = None
    #   rectification claims: a cell counts only where this effect (clean minus best noisy
    #   under the reference method) is below 0, i.e. where there was something to rectify

    @property
    def about_pretraining(self) -> bool:
        """Whether the effect compares models pre-trained at different noise ratios (every
        cell effect but a method difference averaged over noise levels)."""
        return self.cell_effect is not _mean_diff


def _trend_claim(cid, title, quote, source, metric, kind, method, effect, unit_word,
                 direction, note="", digits=2, top="30 %, or the highest present",
                 **rows) -> Claim:
    """A claim that ``metric`` rises (direction +1) or falls (-1) with pre-training noise.

    ``rows``: the optional :class:`Claim` fields that say where its rows come from.
    """
    sign = -1 if direction < 0 else 1
    return Claim(cid, title, quote, source,
                 measure_text=(f"{unit_word} at the highest noise ratio ({top}) compared "
                               f"with 0 %, per replicate; the least-squares slope over all noise "
                               f"levels (per 10 points of noise) is given as well."),
                 effect=effect, direction=1, metric=metric, kind=kind, methods=(method,),
                 cell_effect=lambda df: _endpoint(df, sign), digits=digits,
                 secondary=(("slope per 10 points of noise", (method,), _slope),), note=note,
                 **rows)


#: The control beside every "NMTune beats LP" claim: the same MLP head without the three
#: terms. When it gains as much, the gain belongs to the head, not to NMTune's regularisers.
_MLP_CONTROL = ("MLP tuning minus LP (the control: the same head without the terms)",
                ("mlp", "lp"), _mean_diff)
#: The precondition of a rectification claim: the clean model was not already best under LP.
_LP_RECTIFY = ("clean minus best noisy under LP", ("lp",), _clean_best)

_MAIN_CLAIMS: tuple[Claim, ...] = (
    _trend_claim(
        "T1", "Pre-training accuracy falls with noise",
        "as the noise ratio in the pre-training dataset increases, the pre-training "
        "performance ... degrades", "Sec. 4.2, Table 1",
        "accuracy", None, "pretrain",
        "clean test accuracy of the pre-training task, 0 % minus 30 % noise (points)",
        "Upstream test accuracy (clean test labels)", -1,
        note="The replicate is the pre-training seed; with one seed there is no interval. Only "
             "symmetric-noise models enter: chapter 08's asymmetric-noise models, stored in "
             "the same experiment, are told apart by the noise type of their unit configs."),
    Claim(
        "C1", "Slight noise helps ID (LP)",
        "Proper noisy supervision in pre-training (e.g., 5% or 10%) can benefit the "
        "performance on ID downstream tasks", "Sec. 4.3.1, Fig. 3",
        measure_text=("Linear probing on ID tasks with all downstream data: accuracy of the "
                      "better of the 5 % and 10 % models (chosen per cell by its mean over "
                      "replicates) minus the 0 % model, paired by seed. Choosing the better of "
                      "two levels favours a positive effect slightly; scales without a 5 % "
                      "level use 10 % only."),
        effect="ID accuracy, best slight noise minus clean (points)", direction=1,
        metric="accuracy", kind="id", methods=("lp",), cell_effect=_slight_benefit),
    _trend_claim(
        "C2", "OOD harm grows with noise (LP)",
        "The robustness of transferability on OOD downstream tasks constantly deteriorates "
        "as the noise increases", "Sec. 4.3.1, Fig. 3",
        "accuracy", "ood", "lp",
        "OOD accuracy (mean over target domains), 0 % minus 30 % noise (points)",
        "Linear-probe OOD accuracy (mean over the task's target domains or corruptions)", -1,
        note="A negative slope is the claimed trend."),
    Claim(
        "C3a", "Gap shrinks from LP to LoRA",
        "With pre-trained parameters and representations being modified by LoRA, the "
        "differences between the noisy and the clean pre-trained models ... become smaller",
        "Sec. 4.3.2, Fig. 4",
        measure_text=("Gap of a method = mean over the noisy levels of abs(accuracy(noise) - "
                      "accuracy(0 %)), on ID (test) and OOD (mean) tasks, per replicate. Effect "
                      "= gap(LP) - gap(LoRA), paired by seed, on the ViT backbones that have "
                      "LoRA. The absolute value adds seed noise to both gaps."),
        effect="gap(LP) minus gap(LoRA) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "lora"),
        cell_effect=lambda a, b: _gap(a).sub(_gap(b)).dropna()),
    Claim(
        "C3b", "Gap shrinks from LoRA to FT",
        "The differences between noisy and clean pre-trained model are further reduced "
        "with FT", "Sec. 4.3.3, Fig. 4",
        measure_text="As C3a with gap(LoRA) - gap(FT), on the backbones that have both.",
        effect="gap(LoRA) minus gap(FT) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lora", "ft"),
        cell_effect=lambda a, b: _gap(a).sub(_gap(b)).dropna()),
    Claim(
        "C3c", "Gap shrinks from LP to FT",
        "As more pre-trained parameters are modified on downstream tasks, i.e., from LP (to "
        "LoRA) to FT, the difference ... between noisy pre-trained models becomes smaller",
        "Fig. 4 caption",
        measure_text="As C3a with gap(LP) - gap(FT), on every backbone that has FT.",
        effect="gap(LP) minus gap(FT) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "ft"),
        cell_effect=lambda a, b: _gap(a).sub(_gap(b)).dropna()),
    _trend_claim(
        "C4", "SVE rises with noise (ID)",
        "as the noise ratio slightly increases, the learned representation usually presents "
        "slightly higher SVE ... as the noise ratio further increases, the increased SVE",
        "Sec. 5, Fig. 5", "sve", "id", "frozen",
        "SVE of frozen features on the ID test set, 30 % minus 0 % noise (nats)",
        "Singular value entropy of the frozen features of the ID test images", 1, digits=4,
        note="Spectra depend only on the pre-trained model: the replicate is the pre-training "
             "seed."),
    _trend_claim(
        "C5", "LSVR rises with noise (OOD)",
        "As the noise ratio increases, the LSVR increases consistently with the decreasing "
        "largest singular value", "Sec. 5 text",
        "lsvr", "ood", "frozen",
        "LSVR of frozen features, mean over the OOD target sets, 30 % minus 0 % noise",
        "LSVR = -log(s1 / sum s) of the frozen features of each OOD target set, averaged "
        "over targets", 1, digits=4,
        note="The paper's Fig. 5 caption says the opposite (\"the LSVR drops significantly\"); "
             "the scorecard follows the Sec. 5 text, which matches the definition "
             "(a smaller largest singular value gives a larger LSVR)."),
    Claim(
        "C6a", "NMTune beats LP (ID)",
        "Our method presents better SVE and LSVR on both ID and OOD tasks with better "
        "generalization performance", "Sec. 6.2, Fig. 7 caption",
        measure_text=("ID accuracy of black-box NMTune (lambda 0.01) minus LP, averaged over "
                      "the noise levels, paired by seed. The paper plots F1; the index holds "
                      "both and the scorecard uses accuracy."),
        effect="ID accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
        kind="id", methods=("nmtune", "lp"), cell_effect=_mean_diff, control=_MLP_CONTROL),
    Claim(
        "C6b", "NMTune beats MLP tuning (ID)",
        "Further introducing our method can rectify the effect of noise on ID tasks",
        "Sec. 6.2, Fig. 7",
        measure_text=("ID accuracy of NMTune minus MLP tuning (the same MLP without the three "
                      "terms), averaged over the noise levels, paired by seed."),
        effect="ID accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
        kind="id", methods=("nmtune", "mlp"), cell_effect=_mean_diff),
    Claim(
        "C6c", "NMTune beats LP (OOD)",
        "one can observe significantly better generalization performance deploying NMTune, "
        "compared to the MLP and LP", "Sec. 6.2, Fig. 7",
        measure_text="As C6a on OOD tasks (mean over target domains).",
        effect="OOD accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
        kind="ood", methods=("nmtune", "lp"), cell_effect=_mean_diff, control=_MLP_CONTROL),
    Claim(
        "C6d", "NMTune beats MLP tuning (OOD)",
        "one can observe significantly better generalization performance deploying NMTune, "
        "compared to the MLP and LP", "Sec. 6.2, Fig. 7",
        measure_text="As C6b on OOD tasks (mean over target domains).",
        effect="OOD accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
        kind="ood", methods=("nmtune", "mlp"), cell_effect=_mean_diff),
    Claim(
        "C7", "NMTune makes the clean model best (ID)",
        "leading the clean pre-trained feature extractor to achieve the best results",
        "Sec. 6.2, Fig. 7",
        measure_text=("ID accuracy under NMTune of the 0 % model minus the best noisy model "
                      "(the noisy level with the highest mean), paired by seed. The same "
                      "quantity under LP and MLP tuning is shown for contrast (the paper: "
                      "there the clean model is not best)."),
        effect="NMTune ID accuracy, clean minus best noisy (points)", direction=1,
        metric="accuracy", kind="id", methods=("nmtune",), cell_effect=_clean_best,
        secondary=(("same under LP", ("lp",), _clean_best),
                   ("same under MLP", ("mlp",), _clean_best)),
        precondition=_LP_RECTIFY,
        note="Only cells where the clean model was not already best under LP count: "
             "elsewhere there is nothing to rectify."),
    Claim(
        "C8a", "LoRA + NMTune makes the clean model best (ID)",
        "Parameter-efficient NMTune can rectify the behavior of noisy pre-trained models, "
        "whereas LoRA alone cannot", "Sec. 6.2, Fig. 8",
        measure_text=("As C7 for LoRA + NMTune (lambda 0.01); the same quantity under plain "
                      "LoRA is shown for contrast."),
        effect="LoRA+NMTune ID accuracy, clean minus best noisy (points)", direction=1,
        metric="accuracy", kind="id", methods=("lora_nmtune",), cell_effect=_clean_best,
        secondary=(("same under LoRA", ("lora",), _clean_best),),
        precondition=("clean minus best noisy under LoRA", ("lora",), _clean_best),
        note="As for C7, against plain LoRA: only cells where LoRA alone left a noisy model "
             "best count."),
    Claim(
        "C8b", "LoRA + NMTune beats LoRA (ID)",
        "NMTune also improves the generalization performance in general on both ID and OOD "
        "downstream tasks", "Sec. 6.2, Fig. 8",
        measure_text=("ID accuracy of LoRA + NMTune minus LoRA, averaged over the noise "
                      "levels, paired by seed."),
        effect="ID accuracy, LoRA+NMTune minus LoRA (points)", direction=1, metric="accuracy",
        kind="id", methods=("lora_nmtune", "lora"), cell_effect=_mean_diff),
    Claim(
        "C8c", "LoRA + NMTune beats LoRA (OOD)",
        "NMTune also improves the generalization performance in general on both ID and OOD "
        "downstream tasks", "Sec. 6.2, Fig. 8",
        measure_text="As C8b on OOD tasks (mean over target domains).",
        effect="OOD accuracy, LoRA+NMTune minus LoRA (points)", direction=1,
        metric="accuracy", kind="ood", methods=("lora_nmtune", "lora"),
        cell_effect=_mean_diff),
    Claim(
        "C9a", "NMTune's features have a larger SVE than LP's (ID)",
        "our method provides a larger and flatter SVE, compared to LP", "Sec. 6.2, Fig. 7b",
        measure_text=("SVE of the features the classifier sees, on the ID test set: NMTune's "
                      "transformed features Z minus the frozen features of LP, averaged over "
                      "the noise levels, paired by replicate."),
        effect="ID SVE, NMTune minus LP (nats)", direction=1, metric="sve", kind="id",
        methods=("nmtune", "lp"), cell_effect=_mean_diff, digits=4),
    Claim(
        "C9b", "NMTune's features have a larger SVE than MLP tuning's (ID)",
        "only adding an MLP to LP can result in a smaller SVE ... In contrast, our method "
        "provides a larger and flatter SVE", "Sec. 6.2, Fig. 7b",
        measure_text="As C9a with NMTune minus MLP tuning (the same head without the terms).",
        effect="ID SVE, NMTune minus MLP (nats)", direction=1, metric="sve", kind="id",
        methods=("nmtune", "mlp"), cell_effect=_mean_diff, digits=4),
    Claim(
        "C9c", "NMTune's features have a smaller LSVR than MLP tuning's (OOD)",
        "MLP tuning usually imposes larger LSVR compared to LP ... corresponding to the "
        "smaller relative values of the LSVR in noisy pre-trained models for NMTune",
        "Sec. 6.2, Fig. 7d",
        measure_text=("LSVR of the tuned features on the OOD target sets (mean over targets): "
                      "NMTune minus MLP tuning, averaged over the noise levels, paired by "
                      "replicate; the paper claims a negative effect."),
        effect="OOD LSVR, NMTune minus MLP", direction=-1, metric="lsvr", kind="ood",
        methods=("nmtune", "mlp"), cell_effect=_mean_diff, digits=4),
)


def _on(base: Claim, cid: str, title: str, source: str, rows_text: str, **changes) -> Claim:
    """``base`` measured on another experiment's rows: same effect function, same direction."""
    return replace(base, id=cid, title=title, source=source,
                   measure_text=f"{base.measure_text} {rows_text}", **changes)


def _both_preprocessings(claims: tuple[Claim, ...]) -> tuple[Claim, ...]:
    """Each spectral claim (metric sve / lsvr) twice, each labelled: under the paper's
    definition (raw features) and, as ``<id>A``, under the authors' preprocessing (rows
    L2-normalised and centred, metrics ``sve_authors`` / ``lsvr_authors``; nml.spectrum)."""
    from .spectrum import METRIC_NAMES
    out = []
    for c in claims:
        if c.metric not in METRIC_NAMES["authors"]:
            out.append(c)
            continue
        out.append(replace(c, title=f"{c.title}, paper's definition (raw features)"))
        out.append(replace(
            c, id=f"{c.id}A", title=f"{c.title}, authors' preprocessing",
            metric=METRIC_NAMES["authors"][c.metric],
            measure_text=(f"{c.measure_text} Spectrum under the authors' preprocessing: each "
                          f"feature row L2-normalised and centred over its dimensions before "
                          f"the SVD, as the authors' code (and so the paper's Fig. 5) does."),
            note=(f"{c.note} Units stored before nml stored this preprocessing carry no such "
                  f"rows: a scale whose units were not migrated "
                  f"(scripts/migrate_spectrum_authors.py) shows 'not run' (not stored), never a "
                  f"zero.").strip()))
    return tuple(out)


_MAIN_CLAIMS = _both_preprocessings(_MAIN_CLAIMS)
_MAIN = {c.id: c for c in _MAIN_CLAIMS}
_CLIP_ROWS = ("Rows: experiment clip, the CLIP image encoder pre-trained with captions swapped "
              "between random image-text pairs at each noise ratio (its image features are "
              "what LP, MLP tuning, NMTune and the spectra see).")
_CLIP_QUOTE = ("the noise in pre-training can have certain benevolent effects on downstream "
               "tasks that is agnostic to model architectures, proxy pre-training objectives "
               "(FS and CLIP)")
_CLIP_SPECTRUM_QUOTE = ("For both ResNet-50 and ViT-B-16 and FS and CLIP pre-training "
                        "objectives, the trends of the SVE change in ID tasks and the LSVR "
                        "change in OOD tasks are similar")

#: CLIP pre-training with noisy captions (paper 4.2-6.2, the CLIP columns and panels).
CLIP_CLAIMS: tuple[Claim, ...] = (
    _trend_claim(
        "K1", "CLIP zero-shot accuracy falls with caption noise",
        "as the noise ratio in the pre-training dataset increases, the pre-training "
        "performance ... degrades",
        "Sec. 4.2, Table 1 (CLIP: zero-shot 32.64 % at 0 %, 26.53 % at 30 %, ResNet-50 YFCC15M)",
        "zero_shot_accuracy", None, "pretrain",
        "zero-shot accuracy of the CLIP model, 0 % minus 30 % caption noise (points)",
        "Zero-shot accuracy of the pre-trained CLIP model on the upstream test set (class "
        "prompts, prompt ensembling)", -1, experiment="clip",
        note="The replicate is the pre-training seed; with one seed there is no interval."),
    _on(_MAIN["C1"], "K2", "Slight caption noise helps ID (LP, CLIP)",
        "Sec. 4.3.1, Fig. 3 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_QUOTE, experiment="clip"),
    _on(_MAIN["C2"], "K3", "OOD harm grows with caption noise (LP, CLIP)",
        "Sec. 4.3.1, Fig. 3 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C4"], "K4", "SVE rises with caption noise (ID, CLIP), paper's definition",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C5"], "K5", "LSVR rises with caption noise (OOD, CLIP), paper's definition",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C4A"], "K4A", "SVE rises with caption noise (ID, CLIP), authors' preprocessing",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C5A"], "K5A", "LSVR rises with caption noise (OOD, CLIP), authors' preprocessing",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C6a"], "K6a", "NMTune beats LP (ID, CLIP)", "Sec. 6.2, Fig. 7 (CLIP panels)",
        _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6b"], "K6b", "NMTune beats MLP tuning (ID, CLIP)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6c"], "K6c", "NMTune beats LP (OOD, CLIP)", "Sec. 6.2, Fig. 7 (CLIP panels)",
        _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6d"], "K6d", "NMTune beats MLP tuning (OOD, CLIP)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C7"], "K7", "NMTune makes the clean CLIP model best (ID)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS,
        quote="Further introducing our method can rectify the effect of noise on ID tasks, "
              "leading the clean pre-trained feature extractor to achieve the best results for "
              "both models and pre-training paradigms", experiment="clip"),
)

_ASYM = dict(experiment="asymmetric", noise_levels=ASYMMETRIC_NOISE)
_ASYM_ROWS = ("Rows: experiment asymmetric, pre-training noise flipped only among the upstream "
              "classes related to the downstream ID task's (ratios 0, 2.5, 5 and 10 %, the "
              "rate within those classes); the 0 % model is the shared clean one. Every task of "
              "the claim's kind enters, related to the noisy classes or not (cpu scale: CIFAR-10 "
              "related, Caltech-101 unrelated, PACS partly related; tiny scale: both tasks "
              "related); the per-cell line shows each.")
_RECTIFY = ("black-box NMTune can also facilitate downstream performance and rectify the "
            "malicious behaviors of models")

#: Asymmetric pre-training noise (paper 7.3, Fig. 10).
ASYMMETRIC_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "A1", "Slight asymmetric noise helps ID (LP)",
        "With asymmetric noise, slight noise still benefits ID performance, even on noise "
        "related tasks", "Sec. 7.3, Fig. 10 caption",
        measure_text=("Linear probing on ID tasks: accuracy of the better of the 2.5 % and 5 % "
                      "models (the scorecard's slight asymmetric levels: the paper's grid is "
                      "0 / 2.5 / 5 / 10 %, and it finds that on related tasks performance "
                      "'degrades earlier'; chosen per cell by the mean over replicates) minus "
                      "the 0 % model, paired by replicate. " + _ASYM_ROWS),
        effect="ID accuracy, best slight asymmetric noise minus clean (points)", direction=1,
        metric="accuracy", kind="id", methods=("lp",),
        cell_effect=partial(_slight_benefit, levels=SLIGHT_ASYMMETRIC), **_ASYM),
    _trend_claim(
        "A2", "OOD harm grows with asymmetric noise (LP)",
        "For OOD tasks, asymmetric noise consistently hurts performance", "Sec. 7.3, Fig. 10b",
        "accuracy", "ood", "lp",
        "OOD accuracy (mean over target domains), 0 % minus 10 % asymmetric noise (points)",
        "Linear-probe OOD accuracy (mean over the task's target domains) under asymmetric "
        "pre-training noise", -1, top="10 %, the highest asymmetric ratio",
        note=_ASYM_ROWS + " A negative slope is the claimed trend.", **_ASYM),
    _on(_MAIN["C6a"], "A3a", "NMTune beats LP under asymmetric noise (ID)", "Sec. 7.3, Fig. 10a",
        _ASYM_ROWS, quote=_RECTIFY, **_ASYM),
    _on(_MAIN["C6c"], "A3b", "NMTune beats LP under asymmetric noise (OOD)", "Sec. 7.3, Fig. 10b",
        _ASYM_ROWS, quote=_RECTIFY, **_ASYM),
    Claim(
        "A4", "NMTune makes the clean model best under asymmetric noise (ID)", _RECTIFY,
        "Sec. 7.3, Fig. 10a",
        measure_text=("As C7 (NMTune ID accuracy of the 0 % model minus the best noisy model, "
                      "paired by replicate; the same under LP for contrast). " + _ASYM_ROWS),
        effect="NMTune ID accuracy, clean minus best asymmetric-noisy model (points)",
        direction=1, metric="accuracy", kind="id", methods=("nmtune",),
        cell_effect=_clean_best, secondary=(("same under LP", ("lp",), _clean_best),),
        precondition=_LP_RECTIFY, **_ASYM),
    Claim(
        "A5", "NMTune narrows the clean-noisy gap under asymmetric noise",
        "Our method presents better performance with smaller difference between the clean and "
        "noisy pre-trained models", "Sec. 7.3, Fig. 10 caption",
        measure_text=("As C3a with gap(LP) - gap(NMTune): the gap of a method is the mean over "
                      "the noisy levels of abs(accuracy(noise) - accuracy(0 %)), on ID (test) "
                      "and OOD (mean) tasks, paired by replicate. " + _ASYM_ROWS),
        effect="gap(LP) minus gap(NMTune) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "nmtune"),
        cell_effect=lambda a, b: _gap(a).sub(_gap(b)).dropna(), **_ASYM),
)

_ETA_ROWS = ("Rows: experiment noisy_downstream (symmetric flips of a share eta of the "
             "downstream training labels; test labels clean), ID tasks, pre-training noise at "
             "the scale's levels. A cell is one backbone, task and eta, so the headline "
             "averages over the eta levels that enter: {}. The eta = 0 rows of this experiment "
             "(the clean-label setting of the main claims) do not enter.")


def _eta_text(levels) -> str:
    return ", ".join(f"{e * 100:g} %" for e in levels)


#: Noisy pre-training and noisy downstream labels (paper 7.4, Fig. 9; ICLR App. B.5).
NOISY_DOWNSTREAM_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "N1", "Slight noise helps LP on noisy downstream labels",
        "the 5% and 10% noisy pre-trained models usually outperform the clean pre-trained "
        "model on downstream tasks, even the tasks contain different levels of downstream "
        "noise", "Sec. 7.4, Fig. 9",
        measure_text=("As C1 (LP accuracy of the better of the 5 % and 10 % models minus the "
                      "0 % model, paired by seed). " + _ETA_ROWS.format(_eta_text(NOISY_ETA))),
        effect="ID accuracy under noisy labels, best slight noise minus clean (points)",
        direction=1, metric="accuracy", kind="id", methods=("lp",),
        cell_effect=_slight_benefit, experiment="noisy_downstream", label_noise=NOISY_ETA),
    Claim(
        "N2", "NMTune makes the clean model best on noisy downstream labels",
        "The NMTune results show that the clean pre-trained models now produce superior "
        "performance compared to noisy pre-trained models", "Sec. 7.4, Fig. 9",
        measure_text=("As C7 (NMTune accuracy of the 0 % model minus the best noisy model, "
                      "paired by seed; the same under LP for contrast). "
                      + _ETA_ROWS.format(_eta_text(NOISY_ETA))),
        effect="NMTune ID accuracy under noisy labels, clean minus best noisy (points)",
        direction=1, metric="accuracy", kind="id", methods=("nmtune",),
        cell_effect=_clean_best, secondary=(("same under LP", ("lp",), _clean_best),),
        precondition=_LP_RECTIFY, experiment="noisy_downstream", label_noise=NOISY_ETA,
        note="The paper adds that this holds even where NMTune falls short of LP (N4)."),
    Claim(
        "N3", "NMTune beats LP at light downstream label noise",
        "It also improves the general performance when the noise ratio in downstream tasks is "
        "light, e.g., smaller than 40%", "Sec. 7.4, Fig. 9",
        measure_text=("As C6a (NMTune minus LP accuracy, averaged over the pre-training noise "
                      "levels, paired by seed). " + _ETA_ROWS.format(_eta_text(LIGHT_ETA))),
        effect="ID accuracy, NMTune minus LP at eta below 40 % (points)", direction=1,
        metric="accuracy", kind="id", methods=("nmtune", "lp"), cell_effect=_mean_diff,
        experiment="noisy_downstream", label_noise=LIGHT_ETA),
    Claim(
        "N4", "NMTune falls short of LP at heavy downstream label noise",
        "When the noise ratio in downstream tasks further increases, the performance of NMTune "
        "falls short of LP", "Sec. 7.4, Fig. 9",
        measure_text=("As N3 at the heavier levels; the paper claims a negative effect here. "
                      + _ETA_ROWS.format(_eta_text(HEAVY_ETA))),
        effect="ID accuracy, NMTune minus LP at eta of 40 % and more (points)", direction=-1,
        metric="accuracy", kind="id", methods=("nmtune", "lp"), cell_effect=_mean_diff,
        experiment="noisy_downstream", label_noise=HEAVY_ETA),
)

_PRACTICAL = dict(experiment="practical", noise_levels=None, pool_noise=True,
                  tasks=PRACTICAL_TASKS)
_PRACTICAL_ROWS = ("Rows: experiment practical, black-box tuning on the frozen features of a "
                   "released model (a cell per model and task): a sentence encoder tuned on "
                   "SST-2 train and tested on SST-2 test (ID; the SST-2 dev rows are not used) "
                   "and on IMDB test (OOD); an ImageNet-1K EfficientNet-Lite0 tuned on CIFAR-10 "
                   "(and Caltech-101 when run; ID, their test sets) and on PACS photo (OOD, the "
                   "mean over art painting, cartoon and sketch). Pre-training noise is not "
                   "controlled, so all of a model's rows form one noise level whatever their noise label (the paper's Tables 4-5 "
                   "have no noise axis either); pairs are downstream seeds.")
_BEST = "In Table 5, NMTune consistently achieves the best generalization performance"

#: NMTune on practical pre-trained models (paper 7.1-7.2, Tables 3-5).
PRACTICAL_CLAIMS: tuple[Claim, ...] = (
    Claim("P1", "NMTune beats LP on a practical model (ID)", _BEST, "Sec. 7.2, Table 5",
          measure_text="ID test accuracy of black-box NMTune minus LP. " + _PRACTICAL_ROWS,
          effect="ID accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
          kind="id", methods=("nmtune", "lp"), cell_effect=_mean_diff, control=_MLP_CONTROL,
          test_sets=PRACTICAL_ID_SETS, **_PRACTICAL),
    Claim("P2", "NMTune beats LP on a practical model (OOD)",
          "It presents superior performance gain, especially on OOD tasks of GLUE-X",
          "Sec. 7.2, Table 5",
          measure_text=("OOD accuracy (IMDB test; the mean over the PACS target domains) "
                        "of black-box NMTune minus LP. " + _PRACTICAL_ROWS),
          effect="OOD accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
          kind="ood", methods=("nmtune", "lp"), cell_effect=_mean_diff, control=_MLP_CONTROL,
          test_sets=PRACTICAL_OOD_SETS, **_PRACTICAL),
    Claim("P3", "NMTune beats MLP tuning on a practical model (ID)", _BEST, "Sec. 7.2, Table 5",
          measure_text="As P1 with NMTune minus MLP tuning. " + _PRACTICAL_ROWS,
          effect="ID accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
          kind="id", methods=("nmtune", "mlp"), cell_effect=_mean_diff,
          test_sets=PRACTICAL_ID_SETS, **_PRACTICAL),
    Claim("P4", "NMTune beats MLP tuning on a practical model (OOD)", _BEST,
          "Sec. 7.2, Table 5",
          measure_text="As P2 with NMTune minus MLP tuning. " + _PRACTICAL_ROWS,
          effect="OOD accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
          kind="ood", methods=("nmtune", "mlp"), cell_effect=_mean_diff,
          test_sets=PRACTICAL_OOD_SETS, **_PRACTICAL),
)

_ABLATION = dict(experiment="ablation", variants=True)
_ABLATION_ROWS = ("Rows: experiment ablation (chapter 11: one factor changed at a time from the "
                  "paper's setting, a 2-layer ReLU MLP with hidden width 4D and term weights "
                  "1/1/1 at lambda 0.01), ID tasks as in the paper's ablation. Which variant a row "
                  "belongs to comes from its unit config (the variant column that load_index "
                  "adds).")
_PAIRED = "averaged over the pre-training noise levels both variants have, paired by seed. "
_PAPER_SETTING = arm("nmtune")

#: NMTune ablations (ICLR version App. B.7, Tables 15-16).
ABLATION_CLAIMS: tuple[Claim, ...] = (
    Claim("B1", "The MLP's non-linearity matters",
          "removing the non-linearity reduces the performance significantly",
          "ICLR App. B.7, Table 15",
          measure_text=("ID accuracy of NMTune in the paper's setting minus NMTune with an "
                        "identity activation (no non-linearity), " + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, ReLU minus no non-linearity (points)", direction=1,
          metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", mlp_activation="identity")),
          cell_effect=_mean_diff, **_ABLATION),
    Claim("B2", "A third MLP layer helps (slightly)",
          "Adding more layers only improves the performance slightly",
          "ICLR App. B.7, Table 15",
          measure_text=("ID accuracy of NMTune with a 3-layer MLP minus the paper's 2 layers, "
                        + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, 3 layers minus 2 (points)", direction=1, metric="accuracy",
          kind="id", methods=(arm("nmtune", mlp_layers=3), _PAPER_SETTING),
          cell_effect=_mean_diff,
          note="Only the sign is scored: the fixed rule cannot test 'slightly'.", **_ABLATION),
    Claim("B3", "L_SVD helps generalisation",
          "the dominant singular value regularization L_SVD helps improve generalization",
          "ICLR App. B.7, Table 16",
          measure_text=("ID accuracy of NMTune in the paper's setting minus NMTune without the "
                        "SVD term (its weight 0, the other two at 1), " + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, with minus without L_SVD (points)", direction=1,
          metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", w_svd=0.0)), cell_effect=_mean_diff,
          **_ABLATION),
    Claim("B4", "L_COV makes the clean model best",
          "the proposed covariance regularization L_COV in general rectifies the effect of "
          "noise, improving the performance of clean pre-trained models to achieve better "
          "results than noisy pre-trained models", "ICLR App. B.7, Table 16",
          measure_text=("(clean minus best noisy model) under NMTune in the paper's setting "
                        "minus the same without the covariance term (its weight 0), ID accuracy, "
                        "paired by seed; each of the two is shown as well. " + _ABLATION_ROWS),
          effect="clean-minus-noisy ID accuracy, with minus without L_COV (points)",
          direction=1, metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", w_cov=0.0)),
          cell_effect=lambda a, b: _clean_best(a).sub(_clean_best(b)).dropna(),
          secondary=(("clean minus best noisy, paper setting", (_PAPER_SETTING,), _clean_best),
                     ("same without L_COV", (arm("nmtune", w_cov=0.0),), _clean_best)),
          **_ABLATION),
)

#: Each family of claims beyond the main experiments, with what its experiment's rows are.
FAMILIES: tuple[tuple[tuple[Claim, ...], str], ...] = (
    (CLIP_CLAIMS, "CLIP pre-training with captions swapped between random pairs"),
    (ASYMMETRIC_CLAIMS, "asymmetric pre-training noise at "
                        + ", ".join(f"{x * 100:g}" for x in ASYMMETRIC_NOISE) + " %"),
    (NOISY_DOWNSTREAM_CLAIMS, "noisy downstream labels: only rows with label noise eta > 0 "
                              "enter, and eta is part of the cell, backbone / task / eta"),
    (PRACTICAL_CLAIMS, "a released sentence encoder on SST-2 and IMDB; pre-training noise "
                       "unknown, so all rows of a model are one noise level"),
    (ABLATION_CLAIMS, "NMTune variants, one factor at a time; each compared arm is one "
                      "variant, read from the unit configs"),
)

CLAIMS: tuple[Claim, ...] = (_MAIN_CLAIMS + CLIP_CLAIMS + ASYMMETRIC_CLAIMS
                             + NOISY_DOWNSTREAM_CLAIMS + PRACTICAL_CLAIMS + ABLATION_CLAIMS)


#: Claims of the paper that no chapter of this book measures (yet), with the reason.
NOT_RUN_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("Slight noise also helps COCO detection and instance segmentation: \"slight pre-training "
     "noisy (up to 5% or 10%) pre-trained models can also benefit the downstream performance\"",
     "Sec. 4.4, Table 2",
     "Out of scope: COCO 2017 is not available on this project's machines and detection / "
     "segmentation heads (Mask R-CNN, FPN) are not part of this reproduction."),
    ("NMTune improves practical large vision models: \"Our method improves the quality of the "
     "noisy pre-trained features with better accuracy and F1 score on both ID and OOD vision "
     "tasks\" (EfficientNet-B3, ResNetv2-152x2, Swin-L, ViT-L, ConvNext-L)",
     "Sec. 7.1, Tables 3-4",
     "None of these five can be fetched on this project's offline machines; the "
     "practical-models chapter tunes a packaged ImageNet-1K EfficientNet-Lite0 (4.7 M "
     "parameters) on CIFAR-10 and PACS and a packaged sentence encoder on SST-2 / "
     "IMDB instead (claims P1-P4 per model)."),
)

#: Claims of the paper that a chapter measures but the fixed sign rule cannot score.
NOT_SCORED_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("\"the proposed NMTune introduces minimal computation, compared to MLP with exactly the "
     "same parameters\"", "Sec. 7.5, Table 6",
     "Measured in chapter 10 (experiment runtime): 'minimal' is a claim about the size of the "
     "extra cost, whose sign (NMTune costs more than the same MLP) is not in question, so the "
     "chapter reports the measured times and ratios instead of a verdict."),
    ("Asymmetric noise: \"compared to unrelated tasks, the beneficial noise ratio decreases in "
     "related tasks, and performance degrades earlier\"", "Sec. 7.3, Fig. 10a",
     "A comparison of where the benefit peaks on related and unrelated tasks, not a sign of one "
     "effect; the tiny scale has no unrelated ID task. A1 scores the benefit per task (its "
     "per-cell line at the cpu scale shows the related CIFAR-10 and the unrelated Caltech-101)."),
)


# -- measuring ------------------------------------------------------------------------------------

@dataclass
class Measurement:
    """A claim measured at one scale: per-cell and headline effects, and their sources."""

    claim: Claim
    scale: str
    cells: dict[str, pd.Series]                 # cell -> replicate -> effect
    headline: pd.Series                          # replicate -> mean effect over cells
    secondary: dict[str, pd.Series]              # label -> replicate -> headline of that quantity
    rows: pd.DataFrame                           # the index rows used
    replicate: str
    duplicates: int
    missing: str = ""                            # why nothing could be measured
    excluded: dict[str, str] = field(default_factory=dict)  # cell -> why it does not enter
    control: pd.Series | None = None             # replicate -> headline of Claim.control
    pretrain_seeds: int = 0                      # pre-training seeds behind the replicates


def _headline(cells: dict[str, pd.Series]) -> pd.Series:
    if not cells:
        return pd.Series(dtype=float)
    common = None
    for s in cells.values():
        common = set(s.index) if common is None else common & set(s.index)
    reps = sorted(common or ())
    if not reps:
        return pd.Series(dtype=float)
    return pd.concat([s.loc[reps] for s in cells.values()], axis=1).mean(axis=1)


def measure(index: pd.DataFrame, claim: Claim | str, scale: str) -> Measurement:
    """Measure one claim at one scale from the result index (see the module docstring).

    Used by the scorecard page; ``measure(index, "C1", "cpu").rows`` are the exact index rows
    behind a number on the page.
    """
    if isinstance(claim, str):
        by_id = {c.id: c for c in CLAIMS}
        if claim not in by_id:
            raise NMLError(f"unknown claim {claim!r}; known claims: {', '.join(by_id)}")
        claim = by_id[claim]
    extra = [spec for spec in (claim.control, claim.precondition) if spec is not None]
    methods = tuple(dict.fromkeys(claim.methods + tuple(
        m for _, ms, _ in (*claim.secondary, *extra) for m in ms)))
    rows = _gather(index, scale, claim, claim.kind, methods)
    cells = _per_cell(rows.frames, claim.methods, claim.cell_effect)
    excluded = {}
    for name, why in _weak_ood_cells(index, scale, claim, cells).items():
        excluded[name] = why
        cells.pop(name)
    if claim.precondition is not None:
        label, ms, fn = claim.precondition
        before = _per_cell(rows.frames, ms, fn)
        for name in list(cells):
            if name in before and before[name].mean() >= 0:
                excluded[name] = (f"nothing to rectify: the clean model is already best there "
                                  f"({label}: {before[name].mean():+.{claim.digits}f})")
                cells.pop(name)
    secondary = {label: _headline(_per_cell(rows.frames, ms, fn))
                 for label, ms, fn in claim.secondary}
    control = None
    if claim.control is not None:
        _, ms, fn = claim.control
        control = _headline({k: v for k, v in _per_cell(rows.frames, ms, fn).items()
                             if k not in excluded})
    pretrain_seeds = int(rows.used["pretrain_seed"].nunique()) if not rows.used.empty else 0
    missing = ""
    if not cells and excluded:
        missing = "no cell enters: " + "; ".join(f"{k} ({v})" for k, v in excluded.items())
    elif not cells:
        absent = [_arm_text(m) for m in claim.methods if rows.frames[m].empty]
        missing = (f"no rows for {', '.join(absent)}" if absent else
                   "rows present but no complete comparison (a noise level or a method is "
                   "missing for every backbone and task)")
        if absent and claim.experiment:
            missing += f" in experiment {claim.experiment}"
        lacking = [c for c in _unit_columns_read(claim) if c not in index]
        if absent and lacking:
            missing += (f" (the index has no {' or '.join(lacking)} column: load it with "
                        "nml.scorecard.load_index, which reads it from the unit configs)")
    return Measurement(claim, scale, cells, _headline(cells), secondary, rows.used, rows.replicate,
                       rows.duplicates, missing, excluded, control, pretrain_seeds)


def _weak_ood_cells(index: pd.DataFrame, scale: str, claim: Claim,
                    cells: dict[str, pd.Series]) -> dict[str, str]:
    """Cells of OOD tasks whose clean model's linear probe does not beat chance by
    :data:`OOD_SIGNAL_MARGIN` points (or has no such probe stored): cell -> why.

    The probe is the claim's experiment's (``linear_probe`` for the main claims) at noise 0,
    full data, clean labels, mean over the task's targets, averaged over every seed. Claims
    that name their own test sets (the practical models) are not gated.
    """
    if claim.test_sets is not None or not cells:
        return {}
    from .data import TASKS, chance_accuracy
    at = index[(index["scale"] == scale)]
    kinds = _task_kinds(at)
    probe = at[(at["method"] == "lp") & (at["experiment"] == (claim.experiment or "linear_probe"))
               & (at["metric"] == "accuracy") & (at["test_set"].astype(str) == "mean")
               & np.isclose(at["noise"].astype(float), 0.0)]
    if "fraction" in probe:
        probe = probe[probe["fraction"].isna() | np.isclose(probe["fraction"].astype(float), 1)]
    if "label_noise" in probe:
        probe = probe[probe["label_noise"].isna() | (probe["label_noise"].astype(float) == 0)]
    out = {}
    for name in cells:
        backbone, task = name.split(" / ")[:2]
        if kinds.get(task) != "ood" or task not in TASKS:
            continue
        values = probe[(probe["backbone"] == backbone) & (probe["task"] == task)]["value"]
        chance = chance_accuracy(task)
        if values.empty:
            out[name] = "OOD task without a stored clean linear probe to show it carries signal"
        elif values.mean() < chance + OOD_SIGNAL_MARGIN:
            out[name] = (f"OOD task near chance: clean LP {values.mean():.1f} % against chance "
                         f"{chance:.1f} % (needs +{OOD_SIGNAL_MARGIN:g} points)")
    return out


@dataclass
class ScoreRow:
    """One line of the scorecard: a claim at a scale, its interval and verdict."""

    measurement: Measurement
    headline: Interval | None
    cells: dict[str, Interval]
    secondary: dict[str, Interval]
    verdict: str
    reason: str = ""                 # why the verdict is what it is, in words
    control: Interval | None = None  # Claim.control's headline, when the claim has one


def score(index: pd.DataFrame, claim: Claim | str, scale: str) -> ScoreRow:
    """Measure ``claim`` at ``scale`` and give it its verdict (:data:`VERDICT_RULE`, caps
    included). Used by the scorecard page and, through :func:`claim_sentences`, every chapter.
    """
    m = measure(index, claim, scale)
    claim = m.claim
    cells = {name: t_interval(s.to_numpy()) for name, s in m.cells.items()}
    headline = t_interval(m.headline.to_numpy()) if m.cells else None
    if headline is not None and headline.n == 0:
        # Cells without a shared replicate: no headline interval, the mean of cell means.
        headline = Interval(float(np.mean([c.mean for c in cells.values()])), None, None, 0)
    secondary = {k: t_interval(v.to_numpy()) for k, v in m.secondary.items() if len(v)}
    control = t_interval(m.control.to_numpy()) if m.control is not None and len(m.control) \
        else None
    result = verdict(headline, cells, claim.direction)
    reason = VERDICT_MEANING[result]
    if result == "untestable":
        reason = f"one replicate ({m.replicate}): no interval"
    if result == "not run" and m.excluded:
        result, reason = "untestable", m.missing
    signs = {int(np.sign(iv.mean)) for iv in cells.values() if np.isfinite(iv.mean)} - {0}
    if len(signs) > 1:
        reason = "opposite signs across tasks, judged per task: " + reason
    by_model = m.replicate.startswith("pre-training seed")
    if claim.about_pretraining and result in ("reproduced", "partly", "inconclusive") and (
            not by_model or m.pretrain_seeds < MIN_PRETRAIN_SEEDS):
        result = "untestable"
        reason = (f"a claim about pre-training noise, measured over {m.pretrain_seeds} "
                  f"pre-training seed{'s' if m.pretrain_seeds != 1 else ''} (needs "
                  f"{MIN_PRETRAIN_SEEDS}); replicate = {m.replicate}")
    return ScoreRow(m, headline, cells, secondary, result, reason, control)


def claim_sentences(claim_ids, scale: str, index: pd.DataFrame | None = None, *,
                    link: str = "../book/scorecard.html") -> str:
    """Markdown verdicts for ``claim_ids`` at ``scale``: one bullet per claim with the effect,
    its 95 % interval, the replicates, the verdict and why, and a link to the scorecard row.

    The chapters print their verdicts with this, so a chapter and the scorecard can never
    disagree: both come from :func:`score`. Used by chapters 01, 02, 03 and 06.
    """
    index = load_index() if index is None else index
    lines = []
    for cid in claim_ids:
        r = score(index, cid, scale)
        c, m = r.measurement.claim, r.measurement
        if r.headline is None:
            effect = f"not measured here ({m.missing})"
        else:
            effect = f"{c.effect}: {r.headline.format(c.digits)}"
        text = (f"- **{c.id}** {c.title} (paper: {c.source}). {effect}; replicate = "
                f"{m.replicate}. **{r.verdict}**: {r.reason}.")
        if len(r.cells) > 1 or m.excluded:
            text += " Per task: " + "; ".join(
                f"{name.split(' / ', 1)[1]} {iv.format(c.digits)}"
                for name, iv in r.cells.items())
            if m.excluded:
                text += "; left out: " + "; ".join(
                    f"{name.split(' / ', 1)[1]} ({why})" for name, why in m.excluded.items())
            text += "."
        if c.control is not None:
            text += (f" Control, {c.control[0]}: " + (r.control.format(c.digits)
                     if r.control is not None else "not stored at this scale") + _control_note(r))
        lines.append(text + f" <a href=\"{link}#{claim_anchor(c.id, scale)}\">Scorecard "
                     f"row</a>.")
    return "\n".join(lines)


def verdict_block(claim_ids, scale: str, index: pd.DataFrame | None = None) -> str:
    """A chapter's verdict section: :func:`claim_sentences` under a line saying where the rule
    comes from. Used by chapters 01, 02, 03 and 06."""
    return ("The verdicts below are computed by `nml.scorecard` with the same fixed rule and the "
            "same rows as the [reproduction scorecard](../book/scorecard.md) (a chapter and the "
            "scorecard cannot disagree):\n\n" + claim_sentences(claim_ids, scale, index))


def minimum_detectable_effect(row: ScoreRow, power: float = 0.8) -> float | None:
    """The smallest true effect this many replicates would detect with probability ``power``
    (two-sided 95 % t-test on the replicate-level effects, their measured spread taken as the
    truth): ``(t(0.975, n-1) + t(power, n-1)) * sd / sqrt(n)``. None with fewer than 2
    replicates. Used by chapter 02 (how small an ID bump the grid could see)."""
    from scipy import stats
    x = row.measurement.headline.to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    n, sd = len(x), float(np.std(x, ddof=1))
    return float((stats.t.ppf(0.975, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def _control_note(r: ScoreRow) -> str:
    """What the MLP control says about an "NMTune beats LP" claim."""
    if r.control is not None and r.control.excludes_zero() and r.control.mean > 0:
        return (": the MLP head alone beats LP too, so this comparison says nothing about "
                "NMTune's regularisers; NMTune minus MLP tuning is the claim that tests them.")
    return "."


def claim_anchor(cid: str, scale: str) -> str:
    """The HTML id of a claim's row at a scale on the scorecard page (links from chapters)."""
    return f"{scale}-{cid}".lower().replace("_", "-")


# -- the page -------------------------------------------------------------------------------------

def _cell_text(text: str) -> str:
    """Text safe inside a MyST pipe table (no pipes, no dollar math, no line breaks)."""
    return " ".join(text.replace("|", "/").replace("$", "").split())


def _units(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "none"
    counts = rows.groupby(["experiment", "method"])["key"].nunique()
    return ", ".join(f"{exp}/{method} ({n} units)" for (exp, method), n in counts.items())


def _scales_present(index: pd.DataFrame, scales) -> list[str]:
    present = set(index["scale"].dropna().astype(str)) if len(index) else set()
    ordered = [s for s in SCALE_ORDER if s in present] + sorted(present - set(SCALE_ORDER))
    return [s for s in ordered if scales is None or s in scales]


def _rows_used_text() -> str:
    """The page's "Rows used" bullet: which store experiment each claim family reads."""
    def ids(claims) -> str:   # "T1, C1-C8c": a range per leading letter
        runs: list[list[str]] = []
        for c in claims:
            if runs and runs[-1][0][0] == c.id[0]:
                runs[-1].append(c.id)
            else:
                runs.append([c.id])
        return ", ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    parts = [f"{ids(claims)}: `{claims[0].experiment}` ({what})" for claims, what in FAMILIES]
    return (f"Claims {ids(_MAIN_CLAIMS)} take each method's rows from its main experiment of "
            "the store (" + ", ".join(f"{m}: `{e}`" for m, e in EXPERIMENT_OF.items())
            + "), at full downstream data, clean downstream labels and, for NMTune, lambda = "
            "0.01; ablation, slider and noisy-downstream runs are not mixed in, nor are the "
            "asymmetric-noise models of chapter 08 that share experiment `pretrain` (their noise "
            "type is read from the unit configs). The other "
            "families read one experiment for every method, with the same filters unless said: "
            + "; ".join(parts) + ".")


def render_markdown(index: pd.DataFrame, scales=None, *, source: str = "results/index.csv") -> str:
    """The scorecard page (MyST markdown for Jupyter Book 1.x) from a result index.

    ``scales``: the scales to show (default: every scale in the index, best first). Scales
    asked for but absent from the index are listed as not run. Used by book/scorecard.md.
    """
    index = index.copy()
    asked = list(scales) if scales is not None else None
    scored = {scale: [score(index, c, scale) for c in CLAIMS]
              for scale in _scales_present(index, asked)}
    # A scale whose rows serve no claim (a benchmark's own label, say) gets no table.
    other = [s for s, rows in scored.items() if all(r.verdict == "not run" for r in rows)]
    shown = [s for s in scored if s not in other]
    lines = [
        "(scorecard)=",
        "# Reproduction scorecard",
        "",
        "Each claim of the paper (journal version) that this book measures, the effect the "
        "book measured, and a verdict. The page is generated from the result store by "
        "`python -m nml scorecard` (module `nml.scorecard`); every number below is recomputed "
        f"from `{source}` ({len(index)} rows, "
        f"{index['key'].nunique() if 'key' in index else 0} units) and nothing on it is "
        "typed by hand.",
        "",
        "## How to read it",
        "",
        "- **Scales.** One table per scale, best scale first. A claim can be reproduced at one "
        "scale and not at another: the small scales use far smaller data, models and epoch "
        "counts than the paper, so a verdict says what this scale shows, not whether the paper "
        "is right.",
        "- **Rows used.** " + _rows_used_text(),
        "- **Effect.** Each claim is turned into one number whose sign the paper predicts "
        "(column *claimed*). The effect is computed per backbone and downstream task (a "
        "*cell*) and per replicate, then averaged over cells. Accuracies are in percentage "
        "points; SVE and LSVR in nats. Only the paper's noise ratios (0, 5, 10, 20 and 30 %) "
        "enter; a scale without a 5 % or 20 % model uses the ratios it has. The asymmetric-noise "
        "claims use the paper's ratios for that study instead ("
        + ", ".join(f"{x * 100:g}" for x in ASYMMETRIC_NOISE) + " %), and the practical-model "
        "claims take every row of a model as one level.",
        "- **Replicates and interval.** When a scale has several pre-training seeds, a "
        "replicate is one pre-training seed (its downstream seeds averaged); with a single "
        "pre-trained model per noise level, a replicate is a downstream seed, and the interval "
        "then covers downstream variation only, not the variation between pre-training runs. "
        "Compared values are paired by seed. The interval is the 95 % Student-t interval of "
        "the mean of the replicate-level effects (mean plus or minus t(0.975, n-1) times the "
        "standard error); with one replicate there is none.",
        "- **Verdict.** " + VERDICT_RULE,
        "",
        "The exact rows behind any number: `nml.scorecard.measure(index, claim_id, "
        "scale).rows` with `index = nml.scorecard.load_index()` (the store's index plus the "
        "ablation variant and the pre-training noise type of each row, read from the unit "
        "configs).",
        "",
    ]
    if not shown:
        lines += ["## Results", "", "The result index holds no results yet: every claim below "
                  "is **not run**.", ""]
    for scale in shown:
        label = SCALE_LABELS.get(scale, f"scale {scale}")
        rows = scored[scale]
        counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
        lines += [f"## {label[0].upper() + label[1:]}", "",
                  "Verdicts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
                  "| Claim | Effect measured | Claimed | Our effect, 95 % interval (n) "
                  "| Verdict |",
                  "|---|---|---|---|---|"]
        for r in rows:
            c = r.measurement.claim
            effect = r.headline.format(c.digits) if r.headline is not None else \
                "not measured"
            lines.append("| " + " | ".join(_cell_text(t) for t in (
                f"**{c.id}** {c.title}", c.effect,
                "> 0" if c.direction > 0 else "< 0", effect, f"**{r.verdict}**")) + " |")
        lines += ["", f"### Details at the {scale} scale", ""]
        for r in rows:
            m = r.measurement
            c = m.claim
            head = (f"- <span id=\"{claim_anchor(c.id, scale)}\"></span>**{c.id}** "
                    f"(\"{_cell_text(c.quote)}\", {c.source}): **{r.verdict}**, "
                    f"{_cell_text(r.reason)}")
            if r.headline is None:
                lines.append(f"{head}.")
                continue
            parts = [f"replicate = {m.replicate}"]
            if len(r.cells) > 1 or (r.headline.n == 0):
                parts.append("per cell: " + "; ".join(
                    f"{name} {iv.format(c.digits)}" for name, iv in r.cells.items()))
            else:
                parts.append(f"cell: {next(iter(r.cells))}")
            for label, iv in r.secondary.items():
                parts.append(f"{label}: {iv.format(c.digits)}")
            if r.control is not None:
                parts.append(f"control, {c.control[0]}: {r.control.format(c.digits)}"
                             + _control_note(r).rstrip("."))
            for name, why in m.excluded.items():
                parts.append(f"left out: {name} ({why})")
            if m.duplicates:
                parts.append(f"{m.duplicates} replicate values average more than one stored "
                             f"unit with the same labels")
            parts.append(f"units: {_units(m.rows)}")
            lines.append(f"{head}. " + _cell_text("; ".join(parts)) + ".")
        lines.append("")
    absent = [s for s in (asked or []) if s not in shown and s not in other]
    if other:
        lines += ["## Other scales in the index", ""]
        lines += [f"- `{s}`: rows of {_units(index[index['scale'] == s])}, none of which is "
                  f"used by a claim below." for s in other]
        lines.append("")
    if absent:
        lines += ["## Scales without results", ""]
        lines += [f"- {SCALE_LABELS.get(s, s)}: no rows in the index; every claim is "
                  f"**not run** at this scale." for s in absent]
        lines.append("")
    lines += ["## How each claim is measured", ""]
    for c in CLAIMS:
        text = f"- **{c.id} {c.title}** ({c.source}). {c.measure_text}"
        if c.note:
            text += f" {c.note}"
        lines.append(_cell_text(text))
    lines += ["", "## Claims not run", "",
              "These claims of the paper are **not run** at any scale of this book:", "",
              "| Claim | Paper | Why not run |", "|---|---|---|"]
    for claim, source, reason in NOT_RUN_CLAIMS:
        lines.append("| " + " | ".join(_cell_text(t) for t in (claim, source, reason)) + " |")
    lines += ["", "## Claims measured but not scored", "",
              "A chapter measures these, but the fixed rule above cannot give them a verdict:", "",
              "| Claim | Paper | Why not scored |", "|---|---|---|"]
    for claim, source, reason in NOT_SCORED_CLAIMS:
        lines.append("| " + " | ".join(_cell_text(t) for t in (claim, source, reason)) + " |")
    lines.append("")
    return "\n".join(lines)


# -- files and command line ----------------------------------------------------------------------

def default_scorecard_path() -> Path:
    """``book/scorecard.md`` beside the ``nml`` package. Used by book/scorecard.md."""
    return Path(__file__).resolve().parents[1] / "book" / "scorecard.md"


def load_index(results: str | Path | None = None) -> pd.DataFrame:
    """The result index of the store at ``results`` (default: the repository's ``results/``),
    with the columns of :data:`UNIT_COLUMNS` read from the unit configs (:func:`unit_columns`):
    the ablation variant of each row (``variant``) and the pre-training noise type of each
    pre-trained model (``noise_type``).

    Used by ``python -m nml scorecard`` and the scorecard test.
    """
    from .results import ResultStore
    store = ResultStore(results)
    if not (store.root / "index.csv").exists() and not store.root.is_dir():
        raise NMLError(f"no result store at {store.root}; run the chapters first (e.g. "
                       f"`python -m nml grid --scale tiny`) or pass --results PATH")
    return _with_unit_columns(store.index(), store.root)


def _variant_of(config: dict) -> str:
    """Variant label (:func:`variant_label`) of an ablation unit: the tuning knobs of
    :data:`VARIANT_KNOBS` that differ from :class:`nml.tune.TuneConfig`'s defaults (the paper's
    setting, label '')."""
    from .tune import TuneConfig
    default, tune = TuneConfig(), config.get("tune", {})
    return variant_label({k: tune[k] for k in VARIANT_KNOBS
                          if k in tune and tune[k] != getattr(default, k)})


def _noise_type_of(config: dict) -> str:
    """Pre-training noise type of a pre-trained model's unit: its config's ``noise_type``, or
    :class:`nml.pretrain.PretrainConfig`'s default (symmetric) when the config has none."""
    if config.get("noise_type"):
        return str(config["noise_type"])
    from .pretrain import PretrainConfig
    return PretrainConfig().noise_type


#: Columns that :func:`load_index` adds to the index from the unit configs (the index has no
#: column for them): column -> (store experiments whose units have a value, the reader of a
#: unit config). Rows of other experiments get NaN.
UNIT_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[dict], str]]] = {
    "variant": (VARIANT_EXPERIMENTS, _variant_of),
    "noise_type": (NOISE_TYPE_EXPERIMENTS, _noise_type_of),
}


def _unit_columns_read(claim: "Claim") -> tuple[str, ...]:
    """The :data:`UNIT_COLUMNS` that :func:`_select` needs for ``claim``'s rows."""
    experiments = {claim.experiment or EXPERIMENT_OF[m] for m in claim.methods}
    needed = {"variant": claim.variants,
              "noise_type": bool(experiments & set(NOISE_TYPE_EXPERIMENTS))}
    return tuple(c for c in UNIT_COLUMNS if needed[c])


def unit_columns(results: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Column of :data:`UNIT_COLUMNS` -> store key -> value, for every unit of the experiments
    that column covers, read from the stored unit configs (one pass over each experiment).
    Used by :func:`load_index`.
    """
    from .results import ResultStore
    store = ResultStore(results)
    out: dict[str, dict[str, str]] = {column: {} for column in UNIT_COLUMNS}
    experiments = dict.fromkeys(e for exps, _ in UNIT_COLUMNS.values() for e in exps)
    for experiment in experiments:
        for unit in store.units(experiment):
            for column, (exps, read) in UNIT_COLUMNS.items():
                if experiment in exps:
                    out[column][unit.key] = read(unit.config)
    return out


def unit_variants(results: str | Path | None = None) -> dict[str, str]:
    """Store key -> variant label (:func:`variant_label`) of every unit of the ablation
    experiments (:data:`VARIANT_EXPERIMENTS`), read from the unit configs: the tuning knobs of
    :data:`VARIANT_KNOBS` that differ from :class:`nml.tune.TuneConfig`'s defaults (the paper's
    setting, label ''). The index has no column for these knobs.
    """
    return unit_columns(results)["variant"]


def unit_noise_types(results: str | Path | None = None) -> dict[str, str]:
    """Store key -> pre-training noise type ("symmetric" | "asymmetric") of every unit of
    :data:`NOISE_TYPE_EXPERIMENTS`, read from the unit configs. The index has no column for it.
    """
    return unit_columns(results)["noise_type"]


def _with_unit_columns(index: pd.DataFrame, results: str | Path | None) -> pd.DataFrame:
    """``index`` with the columns of :data:`UNIT_COLUMNS` (NaN for rows of units of other
    experiments, or of units absent from the store)."""
    values = unit_columns(results)
    index = index.copy()
    for column, by_key in values.items():
        index[column] = index["key"].map(by_key) if "key" in index and len(index) else np.nan
    return index


def write_scorecard(results: str | Path | None = None, out: str | Path | None = None,
                    scales=None) -> Path:
    """Regenerate the scorecard page from the store; returns the path written.

    Used by book/scorecard.md (via ``python -m nml scorecard``).
    """
    from .results import atomic_write_bytes
    path = Path(out) if out is not None else default_scorecard_path()
    text = render_markdown(load_index(results), scales=scales)
    atomic_write_bytes(path, text.encode())
    return path


def main_cli(args: argparse.Namespace) -> None:
    """``python -m nml scorecard``: write (or, with --check, verify) book/scorecard.md.

    Used by book/scorecard.md; bad input raises NMLError (exit code 2 in ``nml.cli``).
    """
    scales = args.scales.split(",") if getattr(args, "scales", None) else None
    out = Path(args.out) if args.out else default_scorecard_path()
    if getattr(args, "check", False):
        text = render_markdown(load_index(args.results), scales=scales)
        if not out.exists() or out.read_text() != text:
            raise NMLError(f"{out} is out of date with the result index; regenerate it with "
                           f"`python -m nml scorecard`")
        print(f"{out} is up to date")
        return
    path = write_scorecard(args.results, out, scales=scales)
    print(f"wrote {path}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``scorecard`` subcommand to ``python -m nml``'s subparsers.

    Used by ``nml.cli.build_parser`` for book/scorecard.md.
    """
    p = subparsers.add_parser("scorecard", help="regenerate the reproduction scorecard page")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.add_argument("--out", default=None, help="page to write (default: book/scorecard.md)")
    p.add_argument("--scales", default=None,
                   help="comma list of scales to show (default: every scale in the index)")
    p.add_argument("--check", action="store_true",
                   help="do not write: exit 2 when the page differs from a fresh render")
    p.set_defaults(func=main_cli)
    return p
