"""Plotting helpers: the one home for every figure the book draws, and the one import chapters
need for figures, tables over seeds, labels and display (this module re-exports the names of
:mod:`nml.labels`, :mod:`nml.tables` and :mod:`nml.display`).

Every chapter builds its figures here and displays them with :func:`show`, so that all pages
look alike and every figure states its scale and its seed spread (the book's honesty rules).

Data shapes
-----------
The figure helpers read *tidy* tables, one row per measured number, with the columns of the
result index (:data:`nml.results.INDEX_COLUMNS`)::

    experiment, scale, backbone, noise, pretrain_seed, seed, method, task, metric, value

``noise`` is the pre-training label-noise ratio as a fraction in [0, 1) (plotted in percent),
``value`` the measured number (accuracies as fractions in [0, 1] or percent, plotted as given).
Repeated rows for one (noise, method, task) cell, differing in ``pretrain_seed`` and/or ``seed``,
are the seeds over which the mean and the error bar are computed. Spectra are plain arrays of
singular values in descending order, as :func:`nml.spectrum.singular_values` returns them.

Displaying figures
------------------
:func:`show` emits one output with two representations:

* ``text/html``: a ``<div>`` plus a small script that calls ``window.Plotly.newPlot`` with the
  figure's JSON. The book (Jupyter Book 1.x, myst-nb) picks this representation (``_config.yml``
  sets ``nb_mime_priority_overrides``), and every page loads one shared local
  ``_static/plotly.min.js`` (``html_js_files``): no plotly.js copy per page, no CDN.
* ``application/vnd.plotly.v1+json``: the figure itself. JupyterLab, Notebook 7 and VS Code render
  this with their built-in plotly renderer (it outranks ``text/html``), so a live session draws
  the figure too, without the book's ``_static`` folder.

A chapter that calls plain ``fig.show()`` stores only the JSON representation; myst-nb cannot
render that by itself (the page would lose the figure). :class:`PlotlyMimeRenderer`, a myst-nb
plugin registered in pyproject.toml, draws such outputs with the same local plotly.js, so no
figure is lost; :func:`show` remains the way to write figures (it also works outside JupyterLab).

Where things are
----------------
* :mod:`nml.labels`: names on figures and the caption format; :mod:`nml.tables`: statistics over
  seeds; :mod:`nml.display`: :func:`show` and the myst-nb plugin; :mod:`nml.spectrum_figures`:
  the spectrum and lambda-slider figures; this module: the other figures.
* Captions: :func:`caption` (the one caption format; a figure's scale, data, model, epochs,
  seeds) and :func:`scale_caption`, which fills :func:`caption` from a scale preset and the
  rows shown (with :func:`seeds_text`).
* Tables over seeds: :func:`summarize_over_seeds` (mean, error, n: every helper's statistics),
  :func:`mean_ci_table` ("mean ± error" strings), :func:`mean_over` (average over tasks or test
  sets within a run), :func:`headline_rows` and :func:`headline_by_task` (one row per run and
  task; tasks are never averaged together), :func:`collapse_corruptions`, :func:`best_noise`.
* Effects of noise: :func:`noise_effect` (each noise level minus the clean model, Welch 95%
  interval), :func:`format_effect` (as prose), :func:`gap_bars_figure` (as bars);
  :func:`metric_correlations` (spectral metric vs accuracy).
* Figures: :func:`accuracy_vs_noise` (one panel), :func:`noise_panels` (a grid or a stack of
  panels against pre-training or downstream noise; :func:`label_noise_panels` for the latter),
  :func:`spectrum_figure`, :func:`lambda_slider_figure`, :func:`grouped_bar_figure`,
  :func:`factor_panels`.

Used by every chapter (01_noisy_pretraining to 11_ablations) and by book/scorecard.md.
"""

from __future__ import annotations

import html as _html
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .display import DEFAULT_HEIGHT, FIGURE_MIME, NARROW_PX, PlotlyMimeRenderer, figure_html, show
from .errors import NMLError
from .labels import (BACKBONE_LABELS, COLUMN_LABELS, ERROR_KINDS, METHOD_LABELS, SCALE_LABELS,
                     TASK_LABELS, add_caption, caption, check_columns, figure_caption, human_label,
                     log_ticks, method_order, noise_label, noise_percent, nth_color, palette_color,
                     retrained_text, scale_caption, seeds_text, task_label, task_panel_title,
                     tasks_in_order)
from .spectrum_figures import lambda_slider_figure, spectrum_figure
from .tables import (SPECTRUM_KEY, bars_text, best_noise, collapse_corruptions,
                     compare_variants, format_effect, headline_by_task, headline_rows,
                     mean_ci_table, mean_over,
                     metric_correlations, noise_effect, pick_spectra, readable_table,
                     summarize_over_seeds)

__all__ = [
    # constants
    "ERROR_KINDS", "SCALE_LABELS", "DEFAULT_HEIGHT", "BACKBONE_LABELS",
    "METHOD_LABELS", "SPECTRUM_KEY",
    # captions and display
    "caption", "scale_caption", "seeds_text", "task_label", "task_panel_title", "tasks_in_order",
    "add_caption", "figure_caption", "retrained_text",
    "show", "figure_html", "PlotlyMimeRenderer", "FIGURE_MIME", "NARROW_PX", "TASK_LABELS",
    "human_label", "log_ticks",
    "palette_color",
    # tables and statistics over seeds
    "summarize_over_seeds", "headline_rows", "mean_over",
    "collapse_corruptions", "mean_ci_table", "noise_effect", "format_effect",
    "metric_correlations", "best_noise", "pick_spectra", "compare_variants", "bars_text",
    "readable_table", "headline_by_task",
    # figures
    "accuracy_vs_noise", "chance_levels", "chance_by_task_label", "noise_panels",
    "label_noise_panels", "gap_bars_figure",
    "spectrum_figure", "lambda_slider_figure", "grouped_bar_figure", "factor_panels",
]

# --------------------------------------------------------------------------------------------
# Accuracy vs noise
# --------------------------------------------------------------------------------------------

def accuracy_vs_noise(df: pd.DataFrame, *, metric: str | None = "accuracy",
                      group_by: Sequence[str] = ("method", "task"), error: str = "ci95",
                      title: str | None = None, y_title: str | None = None,
                      caption: str | None = None,
                      chance: Mapping[str, float] | None = None) -> go.Figure:
    """Mean metric against pre-training noise, one trace per (method, task), error bars over seeds.

    ``df``: tidy rows with columns ``noise``, ``value``, the ``group_by`` columns and, when
    ``metric`` is given, ``metric`` (rows of other metrics are dropped). The x axis shows the
    noise ratio in percent; each point is the mean over the rows of one (group, noise) cell and
    its error bar the ``error`` kind (see :func:`summarize_over_seeds`); the hover text gives
    mean, error and the number of runs ``n``. ``chance``: ``{legend label: accuracy %}`` drawn
    as dotted reference lines (:func:`chance_levels`), for OOD accuracy.

    Used by every chapter that plots a metric against pre-training noise (01_noisy_pretraining
    to 06_nmtune).
    """
    group_by = list(group_by)
    check_columns(df, ["noise", "value", *group_by] + (["metric"] if metric else []),
                   "accuracy_vs_noise")
    rows = df[df["metric"] == metric] if metric else df
    if rows.empty:
        raise NMLError(f"accuracy_vs_noise: no rows with metric == {metric!r}; the table has "
                       f"metrics {sorted(df['metric'].unique())}")
    summary = summarize_over_seeds(rows, [*group_by, "noise"], error=error)
    fig = go.Figure()
    for i, (key, part) in enumerate(summary.groupby(group_by, sort=True)):
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(_group_label(c, k) for c, k in zip(group_by, key))
        part = part.sort_values("noise")
        fig.add_trace(go.Scatter(
            x=noise_percent(part["noise"]), y=part["mean"].to_numpy(), name=name,
            mode="lines+markers", line={"color": nth_color(i)},
            error_y={"type": "data", "array": part["err"].to_numpy(), "visible": True},
            customdata=np.stack([part["err"].to_numpy(), part["n"].to_numpy()], axis=1),
            hovertemplate=(f"{_html.escape(name)}<br>noise %{{x:.0f}}%<br>mean %{{y:.4g}}"
                           "<br>± %{customdata[0]:.3g}<br>n = %{customdata[1]}<extra></extra>"),
        ))
    fig.update_layout(
        title=title or f"{metric or 'value'} vs pre-training noise",
        xaxis_title="pre-training label noise (%)", yaxis_title=y_title or (metric or "value"),
        height=DEFAULT_HEIGHT, template="plotly_white",
        legend_title_text=", ".join(COLUMN_LABELS.get(c, c) for c in group_by),
    )
    _draw_chance(fig, chance or {})
    if caption:
        add_caption(fig, caption + " · " + bars_text(error, summary["n"]))
    return fig


def chance_levels(tasks: Sequence[str]) -> dict[str, float]:
    """``{legend label: accuracy %}`` of guessing, one entry per class count among ``tasks``
    (e.g. ``"chance, 7 classes": 14.29``): the floor an OOD accuracy figure draws, so that a
    task sitting on it reads as carrying no signal. Used by chapters 02-06, 08 and 11."""
    from .data import TASKS, chance_accuracy
    levels = {}
    for task in sorted(set(tasks), key=lambda t: TASKS[t].num_classes):
        levels[f"chance, {TASKS[task].num_classes} classes"] = chance_accuracy(task)
    return levels


def chance_by_task_label(tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{task_label(task): chance_levels([task])}`` for the OOD tasks among ``tasks``: the
    ``chance`` argument of a figure whose panels or rows are keyed by the task's name in words
    (:func:`headline_by_task`). Used by chapter 11_ablations."""
    from .data import TASKS
    return {task_label(t): chance_levels([t]) for t in sorted(set(tasks))
            if TASKS[t].kind == "ood"}


def _draw_chance(fig: go.Figure, levels: Mapping[str, float], row=None, col=None) -> None:
    """Dotted grey lines at ``levels`` (one legend entry each, shared across panels)."""
    for i, (label, y) in enumerate(levels.items()):
        dash = ("dot", "dashdot", "longdash")[i % 3]
        fig.add_hline(y=y, line_dash=dash, line_color="#777", line_width=1, row=row, col=col)
        if not any(t.name == label for t in fig.data):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label,
                                     line={"dash": dash, "color": "#777", "width": 1},
                                     hoverinfo="skip"))


def _group_label(column: str, value) -> str:
    """Legend name of one group value: :func:`human_label`, with pre-training noise spelled out."""
    if column in ("noise", "label_noise") and isinstance(value, (int, float, np.number)):
        return f"{'pre-training' if column == 'noise' else 'downstream'} noise {value * 100:g} %"
    return human_label(value, column)


def _group_sort_key(column: str, value):
    if column == "method":
        return (method_order(value), str(value))
    if isinstance(value, (int, float, np.number)):
        return (0, float(value), "")
    return (1, 0.0, str(value))

_X_TITLES = {"noise": "pre-training label noise (%)", "label_noise": "downstream label noise η (%)"}


def noise_panels(panels: Mapping[str, pd.DataFrame], *, x: str = "noise",
                 group_by: Sequence[str] = ("method",), error: str = "ci95", cols: int = 2,
                 title: str | None = None, y_titles: Mapping[str, str] | None = None,
                 x_title: str | None = None, shared_yaxes: bool = False,
                 legend_title: str | None = None, caption: str | None = None,
                 panel_height: int = 340,
                 chance: Mapping[str, Mapping[str, float]] | None = None) -> go.Figure:
    """Metric-vs-noise panels in a grid, one colour and one legend entry per group throughout.

    ``panels``: ``{panel title: tidy rows}``, each table already narrowed to the one metric
    and test set the panel plots (columns ``x``, ``value``, ``pretrain_seed``, ``seed`` and the
    ``group_by`` columns). ``x`` is a noise ratio column plotted in percent: ``"noise"``
    (pre-training label noise, the default) or ``"label_noise"`` (downstream label noise, see
    :func:`label_noise_panels`). Each point is the mean over the seeds of one (group, x) cell
    with its ``error`` bar (:func:`summarize_over_seeds`); hover gives mean, error and ``n``.
    Methods and backbones are named as in :data:`METHOD_LABELS` / :data:`BACKBONE_LABELS`,
    noise groups as "pre-training noise 10%". ``cols=1`` stacks the panels on one shared x
    axis (e.g. a spectral metric above the accuracy it predicts, as the paper's Fig. 5 pairs
    them); ``y_titles`` gives panels their y axis titles; ``chance`` gives accuracy panels
    their chance levels (``{panel title: chance_levels(tasks)}``), drawn as dotted lines.

    Used by chapters 03_feature_spectrum, 04_lora, 05_full_finetune, 06_nmtune,
    08_asymmetric_noise and 09_noisy_downstream.
    """
    if not isinstance(panels, Mapping) or not panels:
        raise NMLError("noise_panels takes a non-empty mapping {panel title: rows}")
    group_by = list(group_by)
    summaries = {}
    for name, df in panels.items():
        check_columns(df, [x, "value", *group_by], f"noise_panels (panel {name!r})")
        summaries[name] = summarize_over_seeds(df, [*group_by, x], error=error)
    keys = sorted({tuple(r) for s in summaries.values()
                   for r in s[group_by].itertuples(index=False)},
                  key=lambda k: tuple(_group_sort_key(c, v) for c, v in zip(group_by, k)))
    cols = max(1, min(cols, len(panels)))
    rows = math.ceil(len(panels) / cols)
    stacked = cols == 1 and rows > 1
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels),
                        shared_xaxes=stacked, shared_yaxes=shared_yaxes,
                        vertical_spacing=(0.08 if stacked else 0.13) if rows > 1 else 0.1,
                        horizontal_spacing=0.06 if shared_yaxes else 0.1)
    x_title = x_title or _X_TITLES.get(x, f"{x} (%)")
    for p, (name, summary) in enumerate(summaries.items()):
        r, c = p // cols + 1, p % cols + 1
        for i, key in enumerate(keys):
            mask = np.ones(len(summary), dtype=bool)
            for col, k in zip(group_by, key):
                mask &= (summary[col] == k).to_numpy()
            part = summary[mask].sort_values(x)
            if part.empty:
                continue
            label = " / ".join(_group_label(col, k) for col, k in zip(group_by, key))
            fig.add_trace(go.Scatter(
                x=noise_percent(part[x]), y=part["mean"].to_numpy(), name=label,
                legendgroup=label, showlegend=not any(t.name == label for t in fig.data),
                mode="lines+markers", line={"color": nth_color(i)},
                error_y={"type": "data", "array": part["err"].to_numpy(), "visible": True},
                customdata=np.stack([part["err"].to_numpy(), part["n"].to_numpy()], axis=1),
                hovertemplate=(f"{_html.escape(label)}<br>{_html.escape(x_title)} %{{x:g}}"
                               "<br>mean %{y:.4g}<br>± %{customdata[0]:.3g}"
                               "<br>n = %{customdata[1]}<extra></extra>"),
            ), row=r, col=c)
        _draw_chance(fig, (chance or {}).get(name, {}), row=r, col=c)
        if not stacked or r == rows:
            fig.update_xaxes(title_text=x_title, row=r, col=c)
        if y_titles and name in y_titles and (c == 1 or not shared_yaxes):
            fig.update_yaxes(title_text=y_titles[name], row=r, col=c)
    fig.update_layout(title=title or "metrics vs pre-training noise",
                      height=120 + panel_height * rows, template="plotly_white",
                      legend_title_text=legend_title or " / ".join(
                          COLUMN_LABELS.get(c, c) for c in group_by))
    if caption:
        add_caption(fig, caption + " · " + bars_text(
            error, np.concatenate([s["n"].to_numpy() for s in summaries.values()])))
    return fig


def gap_bars_figure(gaps: pd.DataFrame, *, x: str = "method", panel_by: str = "task",
                    title: str | None = None, y_title: str = "noisy - clean",
                    caption: str | None = None) -> go.Figure:
    """Grouped bars of :func:`noise_effect`: one panel per ``panel_by`` value, ``x`` groups,
    one bar per noise level, the signed difference to the clean model (``diff``) printed on
    each bar and its Welch 95% interval (``err``) as the error bar; a difference without an
    interval (one run on a side, ``err`` NaN) gets no error bar and says so on hover.

    Used by chapters 04_lora, 05_full_finetune and 08_asymmetric_noise.
    """
    check_columns(gaps, [x, panel_by, "noise", "diff", "err"], "gap_bars_figure")
    panels = sorted(gaps[panel_by].unique())
    xs = sorted(gaps[x].unique(), key=method_order if x == "method" else str)
    x_labels = [METHOD_LABELS.get(v, BACKBONE_LABELS.get(v, str(v))) for v in xs]
    # two short lines per title, so that three panels in a row do not overprint each other
    titles = [_wrap_label(task_label(p), 24) if panel_by == "task" else str(p) for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles)
    for j, noise in enumerate(sorted(gaps["noise"].unique())):
        label = noise_label(float(noise))
        for c, panel in enumerate(panels, start=1):
            part = gaps[(gaps[panel_by] == panel) & (gaps["noise"] == noise)].set_index(x)
            ys = [float(part.loc[v, "diff"]) if v in part.index else None for v in xs]
            errs = [float(part.loc[v, "err"]) if v in part.index else float("nan") for v in xs]
            fig.add_trace(go.Bar(
                x=x_labels, y=ys, name=label, legendgroup=label, showlegend=c == 1,
                marker_color=nth_color(j + 1),
                error_y={"type": "data", "array": [0.0 if np.isnan(e) else e for e in errs],
                         "visible": True},
                customdata=[["no interval (1 run)"] if np.isnan(e) else [f"± {e:.3g}"]
                            for e in errs],
                # The value at the bar's foot (by the zero line), clear of the error bar.
                text=[f"{y:+.1f}" if y is not None else "" for y in ys], textposition="inside",
                insidetextanchor="start", textangle=0, textfont={"size": 10},
                constraintext="inside",
                hovertemplate=(f"{_html.escape(label)}<br>%{{x}}<br>difference %{{y:+.3g}}"
                               " %{customdata[0]}<extra></extra>"),
            ), row=1, col=c)
        fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.add_hline(y=0, line_color="#888", line_width=1)
    fig.update_layout(title=title or "difference between noisy and clean pre-trained models",
                      barmode="group", height=DEFAULT_HEIGHT, template="plotly_white",
                      # A bar too short for its label drops the label (hover still gives it)
                      # instead of printing it across the bar's edge and the error bar.
                      uniformtext={"minsize": 9, "mode": "hide"},
                      legend_title_text="pre-training noise")
    if caption:
        add_caption(fig, caption)
    return fig


# --------------------------------------------------------------------------------------------
# Chapters 10_runtime and 11_ablations: grouped bars of measurements, one-factor ablation panels
# --------------------------------------------------------------------------------------------

def grouped_bar_figure(table: pd.DataFrame, *, x: str, group: str, value: str = "value",
                       y_title: str = "", text_format: str = "{:.2f}",
                       hlines: Mapping[str, float] | None = None, log_y: bool = False,
                       title: str | None = None, caption: str | None = None) -> go.Figure:
    """Grouped bars of single measurements (no seeds): one bar per (``x``, ``group``) row of
    ``table``, its value printed on it; ``hlines`` draws labelled reference lines (a target,
    the MLP-tuning baseline). The x and group orders are those of first appearance in
    ``table``. For numbers measured once (timings), so it draws no error bars: say so in the
    caption.

    Used by chapter 10_runtime.
    """
    check_columns(table, [x, group, value], "grouped_bar_figure")
    xs = list(dict.fromkeys(table[x]))
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(table[group])):
        part = table[table[group] == name].set_index(x)
        ys = [float(part.loc[v, value]) if v in part.index else None for v in xs]
        fig.add_trace(go.Bar(
            x=xs, y=ys, name=str(name), marker_color=nth_color(i),
            text=[text_format.format(y) if y is not None else "" for y in ys],
            textposition="outside", textangle=0, textfont={"size": 10}, cliponaxis=False,
            hovertemplate=f"{_html.escape(str(name))}<br>%{{x}}<br>%{{y:.4g}}<extra></extra>"))
    for label, y in (hlines or {}).items():
        fig.add_hline(y=y, line_dash="dash", line_color="#555", line_width=1)
        # The label just above its line. (add_hline's own annotation is placed at y itself,
        # which on a log axis means 10**y: the labels floated far above their lines.)
        fig.add_annotation(text=label, xref="paper", x=0, xanchor="left", yanchor="bottom",
                           y=math.log10(y) if log_y and y > 0 else y, yref="y",
                           showarrow=False, font={"size": 11, "color": "#555"})
    fig.update_layout(title=title, barmode="group", template="plotly_white",
                      height=DEFAULT_HEIGHT, yaxis_title=y_title, legend_title_text=group)
    if log_y:
        values = np.array([v for t in fig.data for v in t.y if v is not None]
                          + list((hlines or {}).values()), dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        # plotly pads a log axis's range: ticks a little beyond the values (unused if outside)
        fig.update_yaxes(type="log", **(log_ticks(float(values.min()) / 1.25,
                                                  float(values.max()) * 1.25)
                                        if values.size else {}))
    # Long category names wrap onto lines instead of being drawn rotated across the caption.
    fig.update_xaxes(tickangle=0, tickmode="array", tickvals=xs,
                     ticktext=[_wrap_label(str(v)) for v in xs])
    if caption:
        add_caption(fig, caption)
    return fig


def _wrap_label(text: str, width: int = 14) -> str:
    """``text`` broken at spaces into lines of about ``width`` characters (plotly ``<br>``)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join(lines + [line]) if line else text


def factor_panels(summary: pd.DataFrame, *, levels: Mapping[str, Sequence], factor: str = "factor",
                  level: str = "level", row: str = "kind", color: str = "noise",
                  references: pd.DataFrame | None = None, y_title: str = "accuracy (%)",
                  title: str | None = None, caption: str | None = None,
                  error: str = "ci95",
                  chance: Mapping[str, Mapping[str, float]] | None = None) -> go.Figure:
    """One-factor-at-a-time ablation panels: a column per factor, a row per ``row`` value
    (e.g. ID / OOD), the factor's levels on x (in the order ``levels[factor]`` gives), one line
    per ``color`` value (pre-training noise) with mean ± error over seeds.

    ``summary``: a :func:`summarize_over_seeds` table with columns ``factor``, ``level``,
    ``row``, ``color``, ``mean``, ``err``, ``n``. ``references`` (optional): columns ``row``,
    ``color``, ``method``, ``mean``; each row is drawn as a horizontal line across that row's
    panels in the colour of its noise level (dotted for MLP tuning, dash-dot otherwise), so
    every variant can be read against MLP tuning and LP. ``chance``: ``{row value:
    chance_levels(...)}`` (:func:`chance_by_task_label`), drawn as dotted lines across that
    row's panels.

    Used by chapter 11_ablations.
    """
    check_columns(summary, [factor, level, row, color, "mean", "err", "n"], "factor_panels")
    factors = [f for f in levels if f in set(summary[factor])]
    if not factors:
        raise NMLError(f"factor_panels: none of the factors {list(levels)} is in the table")
    rows = sorted(summary[row].unique())
    colors = sorted(summary[color].unique())
    fig = make_subplots(rows=len(rows), cols=len(factors), shared_yaxes="rows",
                        subplot_titles=[*factors, *[""] * (len(factors) * (len(rows) - 1))],
                        horizontal_spacing=0.03, vertical_spacing=0.12)
    for r, row_value in enumerate(rows, start=1):
        for c, name in enumerate(factors, start=1):
            order = [str(v) for v in levels[name]]
            part = summary[(summary[row] == row_value) & (summary[factor] == name)]
            for i, col_value in enumerate(colors):
                cell = part[part[color] == col_value].copy()
                if cell.empty:
                    continue
                cell["_x"] = cell[level].astype(str)
                cell = cell[cell["_x"].isin(order)]
                cell["_pos"] = cell["_x"].map(order.index)
                cell = cell.sort_values("_pos")
                label = noise_label(float(col_value)) if color == "noise" else str(col_value)
                fig.add_trace(go.Scatter(
                    x=cell["_x"], y=cell["mean"], mode="lines+markers", name=label,
                    legendgroup=label, showlegend=(r == 1 and c == 1),
                    line={"color": nth_color(i + 1), "width": 1.5},
                    error_y={"type": "data", "array": cell["err"].to_numpy(), "visible": True},
                    customdata=np.stack([cell["err"].to_numpy(), cell["n"].to_numpy()], axis=1),
                    hovertemplate=(f"{_html.escape(label)}<br>{_html.escape(name)} = %{{x}}"
                                   "<br>mean %{y:.4g} ± %{customdata[0]:.3g}"
                                   "<br>n = %{customdata[1]}<extra></extra>")),
                    row=r, col=c)
                if references is not None:
                    refs = references[(references[row] == row_value)
                                      & (references[color] == col_value)]
                    for _, ref in refs.iterrows():
                        fig.add_hline(y=float(ref["mean"]), row=r, col=c, line_width=1,
                                      line_color=nth_color(i + 1),
                                      line_dash="dot" if ref["method"] == "mlp" else "dashdot")
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=order,
                             row=r, col=c)
            _draw_chance(fig, (chance or {}).get(row_value, {}), row=r, col=c)
        fig.update_yaxes(title_text=f"{row_value}: {y_title}", row=r, col=1)
    fig.update_layout(title=title, template="plotly_white", height=140 + 300 * len(rows),
                      legend_title_text="pre-training noise" if color == "noise" else color)
    if caption:
        extra = (" · dotted line: MLP tuning, dash-dot: LP (same colour = same noise)"
                 if references is not None else "")
        add_caption(fig, caption + extra + " · " + bars_text(error, summary["n"]))
    return fig


# --------------------------------------------------------------------------------------------
# Downstream label noise (09_noisy_downstream)
# --------------------------------------------------------------------------------------------

def label_noise_panels(panels: Mapping[str, pd.DataFrame], *, error: str = "ci95",
                       cols: int = 2, title: str | None = None, y_title: str = "accuracy (%)",
                       caption: str | None = None, panel_height: int = 360) -> go.Figure:
    """Metric against *downstream* label noise, one trace per pre-training noise level.

    :func:`noise_panels` with ``x="label_noise"`` and ``group_by=("noise",)``: ``panels`` is
    ``{panel title: tidy rows}``, each narrowed to one metric, test set and method (columns
    ``label_noise``, ``noise``, ``value``, ``pretrain_seed``, ``seed``); each point is the mean
    over the seeds of one (pre-training noise, label noise) cell with its ``error`` bar; a
    pre-training noise level keeps one colour and one legend entry across panels; the panels
    share the y axis.

    Used by chapter 09_noisy_downstream.
    """
    if not isinstance(panels, Mapping) or not panels:
        raise NMLError("label_noise_panels takes a non-empty mapping {panel title: rows}")
    return noise_panels(panels, x="label_noise", group_by=("noise",), error=error, cols=cols,
                        title=title or f"{y_title} vs downstream label noise",
                        y_titles={name: y_title for name in panels}, shared_yaxes=True,
                        legend_title="pre-training noise γ", caption=caption,
                        panel_height=panel_height)
