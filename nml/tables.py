"""Statistics over seeds for the chapters' tables and figures: mean, 95 % interval and n per
cell (:func:`summarize_over_seeds`), effects of noise with Welch intervals, averages over tasks.

Used by every chapter (through :mod:`nml.plots`, which re-exports these names).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import NMLError
from .labels import COLUMN_LABELS, check_columns, error_label, human_label, task_label

__all__ = ["bars_text", "summarize_over_seeds", "mean_over", "collapse_corruptions",
           "mean_ci_table", "readable_table", "noise_effect", "format_effect",
           "metric_correlations", "SPECTRUM_KEY", "headline_rows", "pick_spectra",
           "compare_variants", "best_noise", "headline_by_task"]

def bars_text(error: str, n) -> str:
    """What a figure's error bars are, consistent with its seeds: "error bars: 95% t-interval
    of the mean over seeds (n = 3 runs per point)", or, when every point is a single run,
    "one run per point: no error bars" (never both "1 seed" and a claimed interval).

    ``n``: the runs behind each plotted point (the ``n`` column of
    :func:`summarize_over_seeds`). Used by every figure helper here (all chapters).
    """
    counts = sorted({int(v) for v in np.asarray(n).ravel()}) if np.size(n) else [1]
    if counts[-1] <= 1:
        return "one run per point: no error bars"
    runs = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
    note = "; points from 1 run have no bar" if counts[0] == 1 else ""
    return f"error bars: {error_label(error)} (n = {runs} runs per point{note})"


def summarize_over_seeds(df: pd.DataFrame, by: Sequence[str], *, value: str = "value",
                         error: str = "ci95") -> pd.DataFrame:
    """Mean, error half-width and count of ``value`` for each group of ``by``.

    Every row in a group is one seed (pre-training seed and/or tuning seed). ``error="ci95"``:
    ``t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation (ddof 1);
    ``error="std"``: ``s``. A group with one row has no spread: its error is 0 and ``n`` = 1
    says so in the hover text.

    Used by every figure and table helper here and directly by chapters 04_lora,
    05_full_finetune, 06_nmtune, 08_asymmetric_noise, 09_noisy_downstream and 11_ablations.
    """
    from scipy import stats

    error_label(error)
    check_columns(df, [*by, value], "summarize_over_seeds")
    grouped = df.groupby(list(by), sort=True, dropna=False)[value]
    out = grouped.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                      n="count").reset_index()
    if error == "std":
        out["err"] = out["sd"]
    else:
        tq = np.array([stats.t.ppf(0.975, n - 1) if n > 1 else 0.0 for n in out["n"]])
        out["err"] = tq * out["sd"] / np.sqrt(out["n"])
    return out


# --------------------------------------------------------------------------------------------
# Chapter tables and effects: mean ± CI, differences to the clean model, correlations
# --------------------------------------------------------------------------------------------

#: Columns that label a stored row but not the run it belongs to: the result store's unit key
#: (one per task) and the experiment name (chapters combine runs stored by several experiments).
_NOT_RUN_COLUMNS = ("key", "experiment")


def mean_over(df: pd.DataFrame, column: str, *, label: str | None = "mean") -> pd.DataFrame:
    """Average ``value`` over the values of ``column`` within each run (one seed stays one row).

    E.g. ``mean_over(rows, "task")``: the paper's "average accuracy over ID tasks", computed per
    (backbone, noise, pre-training seed, tuning seed, ...) so that the seed spread survives.
    A run is one combination of every other column except ``value`` and the store's ``key`` /
    ``experiment`` labels, so extra label columns (``kind``, ``factor``, ...) are kept.
    ``column`` is set to ``label`` in the result, or with ``label=None`` to the values averaged,
    sorted and joined by " + ".

    Used by chapters 02_linear_probe and 03_feature_spectrum.
    """
    check_columns(df, [column, "value"], "mean_over")
    keys = [c for c in df.columns if c not in (column, "value", *_NOT_RUN_COLUMNS)]
    grouped = df.groupby(keys, dropna=False, sort=True) if keys else df.groupby(
        np.zeros(len(df), dtype=int))
    out = grouped.agg(value=("value", "mean"),
                      _averaged=(column, lambda v: " + ".join(sorted({str(x) for x in v}))))
    out = out.reset_index(drop=not keys)
    averaged = out.pop("_averaged")
    out[column] = averaged if label is None else label
    return out


def collapse_corruptions(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``test_set`` is ``corruption@severity`` (CIFAR-10-C) averaged per severity.

    Each run's rows for one severity become one row with ``test_set`` = ``"corrupted @ s"``,
    so a per-target figure shows one curve per severity instead of one per corruption; other
    test sets pass through unchanged.

    Used by chapter 02_linear_probe (the per-target OOD breakdown).
    """
    check_columns(df, ["test_set", "value"], "collapse_corruptions")
    corrupted = df["test_set"].astype(str).str.contains("@")
    if not corrupted.any():
        return df.copy()
    part = df[corrupted].copy()
    name_severity = part["test_set"].astype(str).str.split("@")
    part["_corruption"] = name_severity.str[0]
    part["test_set"] = "corrupted @ " + name_severity.str[1]
    part = mean_over(part, "_corruption").drop(columns="_corruption")
    return pd.concat([df[~corrupted], part], ignore_index=True)


def mean_ci_table(df: pd.DataFrame, index: Sequence[str], columns: Sequence[str] | str, *,
                  value: str = "value", error: str = "ci95", digits: int = 2) -> pd.DataFrame:
    """A table of "mean ± error" strings over seeds, rows ``index``, columns ``columns``.

    One cell per (index, columns) group; its rows are the seeds (see
    :func:`summarize_over_seeds`). A cell with one row reads "mean (1 seed)": no spread to show.
    Noise and data-fraction columns are shown in percent ("noise 10%", "25% of the data").

    Used by chapters 01_noisy_pretraining, 02_linear_probe, 03_feature_spectrum,
    09_noisy_downstream and 11_ablations.
    """
    index = [index] if isinstance(index, str) else list(index)
    columns = [columns] if isinstance(columns, str) else list(columns)
    summary = summarize_over_seeds(df, [*index, *columns], value=value, error=error)

    def cell(r) -> str:
        if r["n"] < 2:
            return f"{r['mean']:.{digits}f} (1 seed)"
        return f"{r['mean']:.{digits}f} ± {r['err']:.{digits}f}"

    summary["cell"] = summary.apply(cell, axis=1)
    # Pivot on the numbers (so 10 % sorts before 25 % and 100 %), then name things for readers.
    table = summary.pivot_table(index=index, columns=columns, values="cell", aggfunc="first",
                                sort=True)
    return readable_table(table)


def readable_table(table: pd.DataFrame) -> pd.DataFrame:
    """A table with reader-facing labels: every index and column value through
    :func:`human_label` (with its level's name, so noise 0.1 reads "10 % noise"; a fraction
    0.25 reads "25 %" under the level name "training data"), level names spelled out ("tuning
    method", "model").

    Sort the table on its numeric labels *before* calling this (the labels become text).

    Used by :func:`mean_ci_table` and by chapters 02_linear_probe, 07_practical_models and
    09_noisy_downstream.
    """
    def label(value, name):
        # the level is named "training data": its cells need only the percentage
        if name == "fraction" and isinstance(value, (int, float, np.number)):
            return f"{float(value) * 100:g} %"
        return human_label(value, name)

    def relabel(index: pd.Index) -> pd.Index:
        if isinstance(index, pd.MultiIndex):
            arrays = [[label(v, name) for v in index.get_level_values(i)]
                      for i, name in enumerate(index.names)]
            return pd.MultiIndex.from_arrays(
                arrays, names=[COLUMN_LABELS.get(n, n) for n in index.names])
        return pd.Index([label(v, index.name) for v in index],
                        name=COLUMN_LABELS.get(index.name, index.name))

    out = table.copy()
    out.index = relabel(out.index)
    out.columns = relabel(out.columns)
    return out


def noise_effect(df: pd.DataFrame, by: Sequence[str] = ("method", "task"), *,
                 baseline: float = 0.0, value: str = "value") -> pd.DataFrame:
    """Difference of each noise level's mean from the clean (``baseline``) model's, with a 95% CI.

    Per group of ``by`` and each noise level other than ``baseline``: ``diff = mean(level) -
    mean(baseline)`` and Welch's 95% t-interval ``[lo, hi]`` (unequal variances; the seeds of the
    two models are independent runs), ``err = hi - diff`` its half-width (the error bar of
    :func:`gap_bars_figure`). With fewer than two runs on either side there is no interval:
    ``lo``, ``hi`` and ``err`` are NaN. ``n`` and ``n_baseline`` count the runs. Every group
    needs a run at ``baseline``; the paper's Fig. 4 prints ``diff`` on top of each bar.

    Used by chapters 02_linear_probe, 04_lora, 05_full_finetune and 08_asymmetric_noise.
    """
    from scipy import stats

    by = list(by)
    check_columns(df, ["noise", value, *by], "noise_effect")
    out = []
    for key, part in df.groupby(by, dropna=False, sort=True) if by else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        base = part.loc[np.isclose(part["noise"], baseline), value].to_numpy(float)
        if base.size == 0:
            raise NMLError(f"noise_effect: group {dict(zip(by, key))} has no run at noise "
                           f"{baseline}; the difference needs the clean model")
        for level, rows in part.groupby("noise", sort=True):
            if np.isclose(level, baseline):
                continue
            x = rows[value].to_numpy(float)
            diff = float(x.mean() - base.mean())
            lo = hi = float("nan")
            if x.size > 1 and base.size > 1:
                va, vb = x.var(ddof=1) / x.size, base.var(ddof=1) / base.size
                se = math.sqrt(va + vb)
                if se > 0:
                    dof = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (base.size - 1))
                    half = float(stats.t.ppf(0.975, dof)) * se
                else:
                    half = 0.0
                lo, hi = diff - half, diff + half
            out.append({**dict(zip(by, key)), "noise": float(level), "mean": float(x.mean()),
                        "baseline_mean": float(base.mean()), "diff": diff, "lo": lo, "hi": hi,
                        "err": hi - diff, "n": int(x.size), "n_baseline": int(base.size)})
    return pd.DataFrame(out, columns=[*by, "noise", "mean", "baseline_mean", "diff", "lo", "hi",
                                      "err", "n", "n_baseline"])


def format_effect(row: Mapping, *, unit: str = " points", digits: int = 2,
                  compact: bool = False) -> str:
    """One :func:`noise_effect` row as prose: ``"+1.20 points (95% CI -0.30 to 2.70)"``, or
    with ``compact`` as a table cell whose caption names the unit and the interval:
    ``"+1.20 [-0.30, +2.70]"``.

    Says "no interval: 1 run" ("1 run" when compact) when there is no confidence interval.

    Used by chapters 02_linear_probe (compact, Table 2.2) and 08_asymmetric_noise.
    """
    if compact:
        text = f"{row['diff']:+.{digits}f}"
        if np.isnan(row["lo"]):
            return text + f" ({min(row['n'], row['n_baseline'])} run)"
        return text + f" [{row['lo']:+.{digits}f}, {row['hi']:+.{digits}f}]"
    text = f"{row['diff']:+.{digits}f}{unit}"
    if np.isnan(row["lo"]):
        return text + f" (no interval: {min(row['n'], row['n_baseline'])} run)"
    return text + f" (95% CI {row['lo']:+.{digits}f} to {row['hi']:+.{digits}f})"


def metric_correlations(x: pd.DataFrame, y: pd.DataFrame, *, on: Sequence[str] = ("noise",),
                        by: Sequence[str] = (), x_name: str = "x",
                        y_name: str = "y") -> pd.DataFrame:
    """Pearson and Spearman correlation between two metrics' seed means across noise levels.

    ``x`` and ``y``: tidy rows (``value``) of two metrics; each is averaged over seeds per
    ``(*by, *on)`` cell, the cells are matched on ``on`` within each ``by`` group and correlated.
    ``n`` is the number of matched cells (noise levels): with three points a correlation is
    weak evidence, and the table says how many there are. Fewer than three points give NaN.

    Used by chapter 03_feature_spectrum (SVE vs ID accuracy, LSVR vs OOD accuracy).
    """
    from scipy import stats

    on, by = list(on), list(by)
    check_columns(x, [*on, *by, "value"], "metric_correlations (x)")
    check_columns(y, [*on, *by, "value"], "metric_correlations (y)")
    # Internal column names, so that x_name may equal an ``on`` column (e.g. "noise").
    mx = x.groupby([*by, *on], dropna=False)["value"].mean().rename("_x")
    my = y.groupby([*by, *on], dropna=False)["value"].mean().rename("_y")
    both = pd.concat([mx, my], axis=1, join="inner").reset_index()
    out = []
    for key, part in both.groupby(by, dropna=False, sort=True) if by else [((), both)]:
        key = key if isinstance(key, tuple) else (key,)
        n = len(part)
        varied = n >= 3 and part["_x"].nunique() > 1 and part["_y"].nunique() > 1
        pearson = float(stats.pearsonr(part["_x"], part["_y"])[0]) if varied else float("nan")
        spearman = float(stats.spearmanr(part["_x"], part["_y"])[0]) if varied else float("nan")
        out.append({**dict(zip(by, key)), "pair": f"{x_name} vs {y_name}", "pearson_r": pearson,
                    "spearman_rho": spearman, "n": n})
    return pd.DataFrame(out)


#: The fields of a :class:`nml.chapters.GridResult` spectra key, in order.
SPECTRUM_KEY = ("method", "backbone", "noise", "pretrain_seed", "seed", "task", "test_set", "lam")


def headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The one test set per task that figures show: ``test`` (ID) or ``mean`` (OOD targets).

    An ID task has a single test set; an OOD task has one per target domain (or corruption)
    plus ``mean``, their average, which is what the paper's OOD figures plot.

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune, 07_practical_models,
    08_asymmetric_noise, 09_noisy_downstream and 11_ablations (and by :func:`headline_by_task`
    and :func:`compare_variants`).
    """
    from .data import TASKS

    check_columns(df, ["task", "test_set"], "headline_rows")
    kinds = df["task"].map(lambda t: TASKS[t].kind if t in TASKS else None)
    keep = ((kinds == "id") & (df["test_set"] == "test")) | \
        ((kinds == "ood") & (df["test_set"] == "mean"))
    return df[keep]


def headline_by_task(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`headline_rows` with the test set dropped and ``task`` in words
    (:func:`nml.labels.task_label`, e.g. "CIFAR-10 (ID)"): one row per run and task, for tables
    and panels that keep every task apart (the book never averages tasks of one kind: two
    effects of opposite sign would cancel).

    Used by chapters 07_practical_models and 11_ablations.
    """
    out = headline_rows(df).drop(columns="test_set")
    return out.assign(task=out["task"].map(task_label))


def pick_spectra(spectra: Mapping, *, by: str, **where) -> dict:
    """``{value of field by: singular values}`` out of a GridResult's ``spectra`` dict.

    ``spectra`` keys are tuples in :data:`SPECTRUM_KEY` order; ``where`` fixes other fields
    (``method="nmtune", task="synthetic_id", test_set="test"``). Where several keys share a
    ``by`` value (several seeds), the one that sorts first (the lowest seeds) is kept, so the
    choice is deterministic. Returns the values in ascending order of ``by``.

    Used by chapter 06_nmtune (the λ slider and the spectrum figure).
    """
    unknown = [k for k in [by, *where] if k not in SPECTRUM_KEY]
    if unknown:
        raise NMLError(f"pick_spectra: unknown field(s) {unknown}; the key fields are "
                       f"{SPECTRUM_KEY}")
    pos = {name: i for i, name in enumerate(SPECTRUM_KEY)}
    out: dict = {}
    for key in sorted(spectra, key=lambda k: tuple(str(v) for v in k)):
        if all((key[pos[f]] == v) or (isinstance(v, float) and key[pos[f]] is not None
                                      and np.isclose(key[pos[f]], v))
               for f, v in where.items()):
            out.setdefault(key[pos[by]], spectra[key])
    if not out:
        raise NMLError(f"pick_spectra: no spectrum matches {where}")
    return dict(sorted(out.items(), key=lambda kv: kv[0]))


def compare_variants(frames: Mapping[str, pd.DataFrame], metrics: Sequence[str], *,
                     reference: str, digits: int = 2) -> pd.DataFrame:
    """Each variant's mean ± 95 % t-interval over seeds and its paired difference to
    ``reference``, per metric, task and noise level.

    ``frames``: ``{variant name: tidy tuning rows}``; each task contributes its headline test
    set (:func:`headline_rows`), and tasks are never averaged together, so that two effects of
    opposite sign cannot cancel. The difference pairs runs by pre-trained model and tuning
    seed. A metric a variant's units do not store (e.g. the authors' spectrum preprocessing in
    units stored before it existed) reads "not stored", never 0. Returns one row per (metric,
    task, noise), the task named by :func:`nml.labels.task_label`, with a column per variant
    and one per difference.

    Used by chapter 11_ablations (the paper's NMTune against the authors' code).
    """
    keys = ["task", "noise", "pretrain_seed", "seed"]
    out = []
    for metric in metrics:
        per = {}
        for name, df in frames.items():
            part = df[df["metric"] == metric]
            per[name] = headline_rows(part)[[*keys, "value"]] if len(part) else None
        cells = {}
        for name, df in per.items():
            if df is None:
                continue
            for r in summarize_over_seeds(df, ["task", "noise"]).itertuples():
                cells.setdefault((r.task, r.noise), {})[name] = \
                    f"{r.mean:.{digits}f} ± {r.err:.{digits}f} (n={r.n})"
            if name != reference and per[reference] is not None:
                paired = df.merge(per[reference], on=keys, suffixes=("", "_ref"))
                paired["diff"] = paired["value"] - paired["value_ref"]
                for r in summarize_over_seeds(paired, ["task", "noise"], value="diff").itertuples():
                    star = " *" if r.n > 1 and abs(r.mean) > r.err else ""
                    cells.setdefault((r.task, r.noise), {})[f"{name} − {reference}"] = \
                        f"{r.mean:+.{digits}f} ± {r.err:.{digits}f}{star}"
        tasks_noise = sorted(cells)
        for task, noise in tasks_noise:
            row = {"metric": metric, "task": task_label(task), "noise": f"{noise * 100:g}%"}
            for name in frames:
                row[name] = cells[(task, noise)].get(name, "not stored")
                if name != reference:
                    diff = f"{name} − {reference}"
                    row[diff] = cells[(task, noise)].get(diff, "not stored")
            out.append(row)
        if not tasks_noise:
            out.append({"metric": metric, "task": "", "noise": "",
                        **{name: "not stored" for name in frames}})
    return pd.DataFrame(out)


def best_noise(summary: pd.DataFrame, *, by: Sequence[str]) -> pd.DataFrame:
    """Per ``by`` group of a :func:`summarize_over_seeds` table: the noise level with the
    highest mean, that mean, the clean (noise 0) mean and whether the clean model is best.

    Columns: ``by``, ``best_noise``, ``best_mean``, ``clean_mean``, ``clean_is_best``. The
    paper's "rectify" claim (NMTune makes the clean model the best on ID tasks) is
    ``clean_is_best`` for the NMTune rows.

    Used by chapters 04_lora, 06_nmtune and 09_noisy_downstream.
    """
    by = list(by)
    check_columns(summary, [*by, "noise", "mean"], "best_noise")
    out = []
    for key, part in summary.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        best = part.loc[part["mean"].idxmax()]
        clean = part[np.isclose(part["noise"], 0.0)]
        clean_mean = float(clean["mean"].iloc[0]) if len(clean) else float("nan")
        out.append({**dict(zip(by, key)), "best_noise": float(best["noise"]),
                    "best_mean": float(best["mean"]), "clean_mean": clean_mean,
                    "clean_is_best": bool(len(clean)) and np.isclose(float(best["noise"]), 0.0)})
    return pd.DataFrame(out)
