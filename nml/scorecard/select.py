"""What a claim is (:class:`Claim`) and how its rows are selected from the result index and
turned into per-cell effects (endpoints, slopes, gaps, paired differences).

Used by :mod:`nml.scorecard.measure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..index_columns import variant_label
from .rules import EXPERIMENT_OF, NOISE_TYPE_EXPERIMENTS, PAPER_LAMBDA, PAPER_NOISE, SLIGHT_NOISE
from .source import UNIT_COLUMNS

# -- selecting rows -------------------------------------------------------------------------------

def task_kinds(df: pd.DataFrame) -> dict[str, str]:
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


def arm_text(spec: str) -> str:
    """An arm as the page names it: ``nmtune``, ``nmtune (paper setting)``, ``nmtune (w_svd=0)``."""
    method, at, variant = spec.partition("@")
    return method if not at else f"{method} ({variant or 'paper setting'})"


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
    ``variant`` column, derived from the unit configs by :mod:`nml.index_columns`); rows of
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
        kinds = task_kinds(index[index["scale"] == scale])
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


def gather(index: pd.DataFrame, scale: str, claim: "Claim", kind: str | tuple[str, ...] | None,
            methods: tuple[str, ...]) -> _Rows:
    """The rows of every arm of ``claim`` at ``scale``, paired by replicate (see the package
    docstring, step 2). Used by :func:`nml.scorecard.measure`."""
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

def endpoint(df: pd.DataFrame, sign: int) -> pd.Series:
    """sign * (value at the highest noise level - value at 0 %), per replicate."""
    t = _pivot(df)
    if 0.0 not in t.index or t.index.max() <= 0:
        return pd.Series(dtype=float)
    return (sign * (t.loc[t.index.max()] - t.loc[0.0])).dropna()


def slope(df: pd.DataFrame) -> pd.Series:
    """Least-squares slope of value on noise ratio, per 10 points of noise, per replicate."""
    t = _pivot(df)
    out = {}
    for rep in t.columns:
        col = t[rep].dropna()
        if len(col) >= 2:
            out[rep] = float(np.polyfit(col.index.to_numpy(float), col.to_numpy(), 1)[0]) * 0.1
    return pd.Series(out, dtype=float)


def slight_benefit(df: pd.DataFrame, levels: tuple[float, ...] = SLIGHT_NOISE) -> pd.Series:
    """Best slight level (of ``levels``, default 5 % or 10 %, best by mean over replicates)
    minus 0 %, per replicate."""
    t = _pivot(df)
    slight = [n for n in t.index if any(np.isclose(n, s) for s in levels)]
    if 0.0 not in t.index or not slight:
        return pd.Series(dtype=float)
    best = max(slight, key=lambda n: t.loc[n].mean())
    return (t.loc[best] - t.loc[0.0]).dropna()


def clean_best(df: pd.DataFrame) -> pd.Series:
    """0 % minus the best noisy level (best by mean over replicates), per replicate."""
    t = _pivot(df)
    noisy = [n for n in t.index if n > 0]
    if 0.0 not in t.index or not noisy:
        return pd.Series(dtype=float)
    best = max(noisy, key=lambda n: t.loc[n].mean())
    return (t.loc[0.0] - t.loc[best]).dropna()


def gap(df: pd.DataFrame) -> pd.Series:
    """Mean over the noisy levels of abs(value(noise) - value(0 %)), per replicate."""
    t = _pivot(df)
    noisy = [n for n in t.index if n > 0]
    if 0.0 not in t.index or not noisy:
        return pd.Series(dtype=float)
    return (t.loc[noisy] - t.loc[0.0]).abs().mean(axis=0, skipna=False).dropna()


def mean_diff(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Mean over the noise levels both have of (a - b), paired by replicate."""
    ta, tb = _pivot(a), _pivot(b)
    levels = ta.index.intersection(tb.index)
    reps = ta.columns.intersection(tb.columns)
    if levels.empty or reps.empty:
        return pd.Series(dtype=float)
    return (ta.loc[levels, reps] - tb.loc[levels, reps]).mean(axis=0, skipna=False).dropna()


def per_cell(frames: dict[str, pd.DataFrame], methods: tuple[str, ...],
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
        return self.cell_effect is not mean_diff


def unit_columns_read(claim: Claim) -> tuple[str, ...]:
    """The :data:`~nml.scorecard.source.UNIT_COLUMNS` that :func:`_select` needs for ``claim``'s
    rows (a bare index without them scores such a claim "not run")."""
    experiments = {claim.experiment or EXPERIMENT_OF[m] for m in claim.methods}
    needed = {"variant": claim.variants,
              "noise_type": bool(experiments & set(NOISE_TYPE_EXPERIMENTS))}
    return tuple(c for c in UNIT_COLUMNS if needed[c])
