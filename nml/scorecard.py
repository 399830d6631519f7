"""The reproduction scorecard: the paper's claims as data, measured from the result index.

Each :class:`Claim` quotes the paper (journal version), says how the claim is measured from
``results/index.csv`` and which sign of the effect the paper claims. :func:`measure` computes
the effect at one scale with a 95 % t-interval over seeds; :func:`verdict` applies the fixed
rule in :data:`VERDICT_RULE`; :func:`render_markdown` writes the book page ``book/scorecard.md``
and ``python -m nml scorecard`` regenerates it.

How an effect is computed (the same for every claim):

1. Select the claim's rows of one scale (method, metric, task kind, test set; tuning rows at
   full data, clean downstream labels and, for NMTune, the paper's lambda 0.01).
2. Replicates: when the rows hold more than one pre-training seed, a replicate is a
   pre-training seed (values averaged over downstream seeds first); otherwise it is a
   downstream seed of the single pre-trained model, so the interval covers downstream
   variation only. Compared values are paired by replicate (same seed on both sides).
3. A *cell* is one backbone and one downstream task. The effect is computed per cell and
   replicate; the headline effect of a replicate is the mean over the claim's cells (the paper
   also averages over tasks), using the replicates that every cell has.
4. Interval: mean +- t(0.975, n-1) * sd / sqrt(n) over the n replicate-level effects; none
   for n = 1.

Used by the book page book/scorecard.md (reproduction scorecard) and ``python -m nml scorecard``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import NMLError

__all__ = ["Claim", "CLAIMS", "NOT_RUN_CLAIMS", "Interval", "Measurement", "ScoreRow",
           "VERDICTS", "VERDICT_RULE", "EXPERIMENT_OF", "PAPER_LAMBDA", "PAPER_NOISE", "SLIGHT_NOISE", "SCALE_ORDER",
           "t_interval", "verdict", "measure", "score", "render_markdown", "load_index",
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
#: Scales in the order the page shows them (best first).
SCALE_ORDER = ("cifar", "cpu", "tiny")
def _scale_labels() -> dict[str, str]:
    """Each scale's description, from its one home (:data:`nml.experiments.SCALES`)."""
    from .experiments import SCALES
    return {name: scale.description for name, scale in SCALES.items()}


SCALE_LABELS = _scale_labels()

VERDICTS = ("reproduced", "partly", "not reproduced at this scale", "not run")

VERDICT_RULE = (
    "The verdict is decided by this rule alone, fixed before any result was looked at and "
    "never tuned: "
    "**not run**: the index holds no complete set of rows for the claim at this scale. "
    "**reproduced**: the headline effect has the sign the paper claims and its 95 % interval "
    "excludes 0, and no single cell (backbone and task) shows an effect whose interval "
    "excludes 0 in the opposite direction. "
    "**partly**: the headline effect has the claimed sign but its interval includes 0 "
    "(always the case with one replicate, which has no interval); or the headline is "
    "significant but some cell is significantly opposite; or the headline has the wrong sign "
    "but at least one cell has the claimed sign with an interval that excludes 0 (the claim "
    "holds on some tasks only). "
    "**not reproduced at this scale**: the headline effect has the wrong sign (or is exactly "
    "0), whether or not its interval excludes 0, and no cell holds significantly.")


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
    """The verdict of :data:`VERDICT_RULE` for a headline interval and per-cell intervals.

    ``direction`` is +1 when the paper claims a positive effect, -1 for a negative one.
    Used by the scorecard page.
    """
    if headline is None or not np.isfinite(headline.mean):
        return "not run"

    def significant(iv: Interval, sign: int) -> bool:
        return iv.excludes_zero() and np.sign(iv.mean) == sign

    right_sign = np.sign(headline.mean) == direction
    cell_right = any(significant(iv, direction) for iv in cells.values())
    cell_wrong = any(significant(iv, -direction) for iv in cells.values())
    if right_sign:
        if significant(headline, direction) and not cell_wrong:
            return "reproduced"
        return "partly"
    return "partly" if cell_right else "not reproduced at this scale"


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


def _select(index: pd.DataFrame, scale: str, method: str, metric: str, kind: str) -> pd.DataFrame:
    """Rows of one method and metric on ID or OOD tasks, at the paper's default settings.

    OOD accuracy uses ``test_set == "mean"`` (mean over target domains); OOD spectra are
    averaged over the target test sets here; ID uses ``test_set == "test"``.
    """
    df = index[(index["scale"] == scale) & (index["method"] == method)
               & (index["experiment"] == EXPERIMENT_OF[method])]
    if df.empty:
        return df
    kinds = _task_kinds(index[index["scale"] == scale])
    df = df[df["task"].map(kinds) == kind]
    df = df[df["metric"] == metric]
    if "fraction" in df:
        df = df[df["fraction"].isna() | np.isclose(df["fraction"].astype(float), 1.0)]
    if "label_noise" in df:
        df = df[df["label_noise"].isna() | (df["label_noise"].astype(float) == 0.0)]
    if "nmtune" in method and "lam" in df:
        df = df[df["lam"].isna() | np.isclose(df["lam"].astype(float), PAPER_LAMBDA)]
    df = df[_paper_noise(df["noise"])]
    test_set = df["test_set"].astype(str)
    if kind == "id":
        df = df[test_set == "test"]
    elif (test_set == "mean").any():
        df = df[test_set == "mean"]
    else:  # spectra of OOD tasks: every target domain, averaged below per unit
        df = df[test_set != "train"]
        df = (df.groupby(["experiment", "key", "method", "backbone", "task", "noise",
                          "pretrain_seed", "seed"], as_index=False)["value"].mean())
    return df


def _paper_noise(noise: pd.Series) -> pd.Series:
    """True where the noise ratio is one of the paper's levels (:data:`PAPER_NOISE`)."""
    values = noise.astype(float).to_numpy()
    return pd.Series(np.isclose(values[:, None], PAPER_NOISE).any(axis=1), index=noise.index)


@dataclass
class _Rows:
    """Selected rows of each method of a claim, collapsed to one value per replicate."""

    frames: dict[str, pd.DataFrame]        # method -> backbone, task, noise, rep, value
    used: pd.DataFrame                     # the index rows these values come from
    replicate: str                         # "pre-training seed" | "downstream seed"
    duplicates: int                        # replicate values averaging more than one unit


def _gather(index: pd.DataFrame, scale: str, metric: str, kind: str | tuple[str, ...],
            methods: tuple[str, ...]) -> _Rows:
    kinds = (kind,) if isinstance(kind, str) else kind
    raw = {m: pd.concat([_select(index, scale, m, metric, k) for k in kinds],
                        ignore_index=True) for m in methods}
    used = pd.concat([r for r in raw.values() if not r.empty] or [pd.DataFrame()],
                     ignore_index=True)
    by_pretrain = (not used.empty) and used["pretrain_seed"].nunique() > 1
    # Spectra and pre-training rows carry seed = pretrain_seed: their replicate is the
    # pre-trained model whatever the number of seeds.
    model_level = (not used.empty) and bool((used["seed"] == used["pretrain_seed"]).all())
    frames, duplicates = {}, 0
    for m, df in raw.items():
        if df.empty:
            frames[m] = pd.DataFrame(columns=["backbone", "task", "noise", "rep", "value"])
            continue
        df = df.assign(noise=df["noise"].astype(float).round(6))
        counts = df.groupby(["backbone", "task", "noise", "pretrain_seed", "seed"]).size()
        duplicates += int((counts > 1).sum())
        per_seed = df.groupby(["backbone", "task", "noise", "pretrain_seed", "seed"],
                              as_index=False)["value"].mean()
        rep_col = "pretrain_seed" if by_pretrain else "seed"
        frames[m] = (per_seed.groupby(["backbone", "task", "noise", rep_col], as_index=False)
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


def _slight_benefit(df: pd.DataFrame) -> pd.Series:
    """Best slight level (5 % or 10 %, best by mean over replicates) minus 0 %, per replicate."""
    t = _pivot(df)
    slight = [n for n in t.index if any(np.isclose(n, s) for s in SLIGHT_NOISE)]
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


def _trend_claim(cid, title, quote, source, metric, kind, method, effect, unit_word,
                 direction, note="", digits=2) -> Claim:
    sign = -1 if direction < 0 else 1
    return Claim(cid, title, quote, source,
                 measure_text=(f"{unit_word} at the highest noise ratio (30 %, or the highest "
                               f"present) compared with 0 %, per replicate; the least-squares slope over all noise "
                               f"levels (per 10 points of noise) is given as well."),
                 effect=effect, direction=1, metric=metric, kind=kind, methods=(method,),
                 cell_effect=lambda df: _endpoint(df, sign), digits=digits,
                 secondary=(("slope per 10 points of noise", (method,), _slope),), note=note)


CLAIMS: tuple[Claim, ...] = (
    _trend_claim(
        "T1", "Pre-training accuracy falls with noise",
        "as the noise ratio in the pre-training dataset increases, the pre-training "
        "performance ... degrades", "Sec. 4.2, Table 1",
        "accuracy", None, "pretrain",
        "clean test accuracy of the pre-training task, 0 % minus 30 % noise (points)",
        "Upstream test accuracy (clean test labels)", -1,
        note="The replicate is the pre-training seed; with one seed there is no interval."),
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
        kind="id", methods=("nmtune", "lp"), cell_effect=_mean_diff),
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
        kind="ood", methods=("nmtune", "lp"), cell_effect=_mean_diff),
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
        note="Where the clean model is already best under LP (C1 not reproduced), C7 holding "
             "says little about NMTune rectifying anything: compare with the LP line."),
    Claim(
        "C8a", "LoRA + NMTune makes the clean model best (ID)",
        "Parameter-efficient NMTune can rectify the behavior of noisy pre-trained models, "
        "whereas LoRA alone cannot", "Sec. 6.2, Fig. 8",
        measure_text=("As C7 for LoRA + NMTune (lambda 0.01); the same quantity under plain "
                      "LoRA is shown for contrast."),
        effect="LoRA+NMTune ID accuracy, clean minus best noisy (points)", direction=1,
        metric="accuracy", kind="id", methods=("lora_nmtune",), cell_effect=_clean_best,
        secondary=(("same under LoRA", ("lora",), _clean_best),),
        note="As for C7: the LoRA line shows whether there was anything to rectify."),
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
)

#: Claims of the paper that no chapter of this book measures (yet), with the reason.
NOT_RUN_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("Slight noise also helps COCO detection and instance segmentation: \"slight pre-training "
     "noisy (up to 5% or 10%) pre-trained models can also benefit the downstream performance\"",
     "Sec. 4.4, Table 2",
     "Out of scope: COCO 2017 is not available on this project's machines and detection / "
     "segmentation heads (Mask R-CNN, FPN) are not part of this reproduction."),
    ("The same trends for image-text (CLIP) pre-training on noisy captions",
     "Sec. 4.2-5, Table 1 and Figs. 3-5 (CLIP columns)",
     "Not run until the CLIP chapter exists (caption swapping is implemented in nml.noise)."),
    ("Asymmetric noise: \"slight noise still benefits ID performance, even on noise related "
     "tasks\"; NMTune narrows the gap", "Sec. 7.3, Fig. 10",
     "Not run until the asymmetric-noise chapter exists."),
    ("With noisy downstream labels, 5 % / 10 % noisy models still outperform the clean one "
     "under LP, and NMTune makes the clean model best", "Sec. 7.4, Fig. 9",
     "Not run until the noisy-downstream chapter exists."),
    ("NMTune improves practical large vision and language models (ResNet152x2, Swin-L, "
     "EfficientNet-B3, ConvNext-L, BERT-L, RoBERTa-L, GPT-2, ...)", "Sec. 7.1-7.2, Tables 3-5",
     "Not run until the practical-models chapter exists."),
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
    methods = tuple(dict.fromkeys(claim.methods + tuple(
        m for _, ms, _ in claim.secondary for m in ms)))
    kind = claim.kind if claim.kind is not None else "id"
    if claim.methods == ("pretrain",):
        rows = _gather_pretrain(index, scale)
    else:
        rows = _gather(index, scale, claim.metric, kind, methods)
    cells = _per_cell(rows.frames, claim.methods, claim.cell_effect)
    secondary = {label: _headline(_per_cell(rows.frames, ms, fn))
                 for label, ms, fn in claim.secondary}
    missing = ""
    if not cells:
        absent = [m for m in claim.methods if rows.frames[m].empty]
        missing = (f"no rows for {', '.join(absent)}" if absent else
                   "rows present but no complete comparison (a noise level or a method is "
                   "missing for every backbone and task)")
    return Measurement(claim, scale, cells, _headline(cells), secondary, rows.used, rows.replicate,
                       rows.duplicates, missing)


def _gather_pretrain(index: pd.DataFrame, scale: str) -> _Rows:
    df = index[(index["scale"] == scale) & (index["method"] == "pretrain")
               & (index["experiment"] == EXPERIMENT_OF["pretrain"])
               & (index["metric"] == "accuracy")]
    df = df[_paper_noise(df["noise"])]
    if df.empty:
        return _Rows({"pretrain": pd.DataFrame(columns=["backbone", "task", "noise", "rep",
                                                        "value"])}, df, "pre-training seed", 0)
    df = df.assign(noise=df["noise"].astype(float).round(6))
    counts = df.groupby(["backbone", "task", "noise", "pretrain_seed"]).size()
    frame = (df.groupby(["backbone", "task", "noise", "pretrain_seed"], as_index=False)["value"]
             .mean().rename(columns={"pretrain_seed": "rep"}))
    return _Rows({"pretrain": frame}, df, "pre-training seed", int((counts > 1).sum()))


@dataclass
class ScoreRow:
    """One line of the scorecard: a claim at a scale, its interval and verdict."""

    measurement: Measurement
    headline: Interval | None
    cells: dict[str, Interval]
    secondary: dict[str, Interval]
    verdict: str


def score(index: pd.DataFrame, claim: Claim, scale: str) -> ScoreRow:
    """Measure ``claim`` at ``scale`` and give it its verdict. Used by the scorecard page."""
    m = measure(index, claim, scale)
    cells = {name: t_interval(s.to_numpy()) for name, s in m.cells.items()}
    headline = t_interval(m.headline.to_numpy()) if m.cells else None
    if headline is not None and headline.n == 0:
        # Cells without a shared replicate: no headline interval, the mean of cell means.
        headline = Interval(float(np.mean([c.mean for c in cells.values()])), None, None, 0)
    secondary = {k: t_interval(v.to_numpy()) for k, v in m.secondary.items() if len(v)}
    return ScoreRow(m, headline, cells, secondary, verdict(headline, cells, claim.direction))


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
        "- **Rows used.** Each method's rows come from its main experiment of the store "
        "(" + ", ".join(f"{m}: `{e}`" for m, e in EXPERIMENT_OF.items()) + "), at full "
        "downstream data, clean downstream labels and, for NMTune, lambda = 0.01; ablation, "
        "slider and noisy-downstream runs are not mixed in.",
        "- **Effect.** Each claim is turned into one number whose sign the paper predicts "
        "(column *claimed*). The effect is computed per backbone and downstream task (a "
        "*cell*) and per replicate, then averaged over cells. Accuracies are in percentage "
        "points; SVE and LSVR in nats. Only the paper's noise ratios (0, 5, 10, 20 and 30 %) "
        "enter; a scale without a 5 % or 20 % model uses the ratios it has.",
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
        "scale).rows` with `index = nml.results.ResultStore().index()`.",
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
                  "| Claim | Paper | Effect measured | Claimed | Our effect, 95 % interval (n) "
                  "| Verdict | Units |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            c = r.measurement.claim
            effect = r.headline.format(c.digits) if r.headline is not None else \
                "not run: " + r.measurement.missing
            lines.append("| " + " | ".join(_cell_text(t) for t in (
                f"**{c.id}** {c.title}", f"\"{c.quote}\" ({c.source})", c.effect,
                "> 0" if c.direction > 0 else "< 0", effect, f"**{r.verdict}**",
                _units(r.measurement.rows))) + " |")
        lines += ["", f"### Details at the {scale} scale", ""]
        for r in rows:
            m = r.measurement
            c = m.claim
            if r.headline is None:
                lines.append(f"- **{c.id}**: not run ({m.missing}).")
                continue
            parts = [f"replicate = {m.replicate}"]
            if len(r.cells) > 1 or (r.headline.n == 0):
                parts.append("per cell: " + "; ".join(
                    f"{name} {iv.format(c.digits)}" for name, iv in r.cells.items()))
            else:
                parts.append(f"cell: {next(iter(r.cells))}")
            for label, iv in r.secondary.items():
                parts.append(f"{label}: {iv.format(c.digits)}")
            if m.duplicates:
                parts.append(f"{m.duplicates} replicate values average more than one stored "
                             f"unit with the same labels")
            lines.append(f"- **{c.id}**: " + _cell_text("; ".join(parts)) + ".")
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
    lines.append("")
    return "\n".join(lines)


# -- files and command line ----------------------------------------------------------------------

def default_scorecard_path() -> Path:
    """``book/scorecard.md`` beside the ``nml`` package. Used by book/scorecard.md."""
    return Path(__file__).resolve().parents[1] / "book" / "scorecard.md"


def load_index(results: str | Path | None = None) -> pd.DataFrame:
    """The result index of the store at ``results`` (default: the repository's ``results/``).

    Used by ``python -m nml scorecard`` and the scorecard test.
    """
    from .results import ResultStore
    store = ResultStore(results)
    if not (store.root / "index.csv").exists() and not store.root.is_dir():
        raise NMLError(f"no result store at {store.root}; run the chapters first (e.g. "
                       f"`python -m nml grid --scale tiny`) or pass --results PATH")
    return store.index()


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
