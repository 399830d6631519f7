"""Plotting helpers: the one home for every figure the book draws.

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

Used by every chapter (01_noisy_pretraining to 06_nmtune) and by book/scorecard.md.
"""

from __future__ import annotations

import html as _html
import json
import math
import textwrap
import uuid
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from .errors import NMLError

__all__ = [
    "ERROR_KINDS", "SCALE_LABELS", "PlotlyMimeRenderer", "caption", "add_caption", "show",
    "figure_html", "summarize_over_seeds", "accuracy_vs_noise", "spectrum_figure",
    "lambda_slider_figure",
]

#: How each scale is named on figures (see book/intro.md).
SCALE_LABELS = {
    "tiny": "tiny scale (embedded synthetic data, CPU)",
    "cpu": "reduced CPU scale (real data)",
    "cifar": "GPU scale (CIFAR-100 pre-training)",
}

#: Error-bar kinds: half-width of a 95% Student-t interval of the mean, or the sample std.
ERROR_KINDS = ("ci95", "std")

#: Caption characters per line (a figure in the book's text column is about 750 px wide).
CAPTION_LINE_CHARS = 110

#: Default figure height in pixels (the static HTML needs a fixed height: the page has none).
DEFAULT_HEIGHT = 450

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


# --------------------------------------------------------------------------------------------
# Captions: every figure states its scale
# --------------------------------------------------------------------------------------------

def caption(*, scale: str, data: str, model: str, epochs: int | str | None = None,
            seeds: int | str | None = None, error: str | None = None,
            extra: str | None = None) -> str:
    """One line saying at which scale a figure was measured.

    Example: ``caption(scale="cifar", data="CIFAR-100 -> CIFAR-10", model="ResNet-18",
    epochs=30, seeds=3, error="ci95")`` gives
    ``"GPU scale (CIFAR-100 pre-training) · data: CIFAR-100 -> CIFAR-10 · model: ResNet-18 ·
    30 epochs · 3 seeds · error bars: 95% t-interval of the mean"``.

    Used by every chapter (pass the result to the figure helpers' ``caption=`` or to
    :func:`add_caption`).
    """
    if scale not in SCALE_LABELS:
        raise NMLError(f"unknown scale {scale!r}; use one of {', '.join(SCALE_LABELS)}")
    parts = [SCALE_LABELS[scale], f"data: {data}", f"model: {model}"]
    if epochs is not None:
        parts.append(f"{epochs} epoch{'' if str(epochs) == '1' else 's'}")
    if seeds is not None:
        parts.append(f"{seeds} seed{'' if str(seeds) == '1' else 's'}")
    if error is not None:
        parts.append("error bars: " + _error_label(error))
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def add_caption(fig: go.Figure, text: str) -> go.Figure:
    """Write ``text`` under the plot area, inside the figure, so it travels with the figure.

    Used by every chapter (the figure helpers call it for their ``caption=`` argument).
    """
    # plotly does not wrap annotation text: break it into lines that fit a book page's width.
    lines = textwrap.wrap(text, width=CAPTION_LINE_CHARS) or [""]
    fig.add_annotation(text="<br>".join(_html.escape(line) for line in lines), xref="paper",
                       yref="paper", x=0, y=0, yshift=-60, xanchor="left", yanchor="top",
                       showarrow=False, align="left", font={"size": 11, "color": "#555"})
    margin_b = fig.layout.margin.b if fig.layout.margin.b is not None else 0
    fig.update_layout(margin={"b": max(margin_b, 90 + 15 * len(lines))})
    return fig


# --------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------

def figure_html(fig: go.Figure | Mapping, *, div_id: str | None = None) -> str:
    """The ``text/html`` representation that :func:`show` emits.

    ``fig``: a plotly figure, or its JSON dict (``application/vnd.plotly.v1+json`` content).
    A ``<div>`` and a script drawing the figure with the page's ``window.Plotly`` (the book's
    shared ``_static/plotly.min.js``). If plotly.js is not there when the script runs, it tries
    again on the page's ``load`` event and otherwise writes a one-line note into the div instead
    of failing silently. ``</`` in the JSON is escaped so a string in the figure cannot close
    the script tag.

    Used by :func:`show` (every chapter) and :class:`PlotlyMimeRenderer` (the book build).
    """
    div_id = div_id or f"nml-fig-{uuid.uuid4().hex[:12]}"
    if isinstance(fig, go.Figure):
        fig_json = pio.to_json(fig, validate=False, remove_uids=True)
        height = fig.layout.height
    else:
        fig_json = json.dumps({"data": fig.get("data", []), "layout": fig.get("layout", {})})
        height = (fig.get("layout") or {}).get("height")
    fig_json = fig_json.replace("</", "<\\/")
    height = height or DEFAULT_HEIGHT
    config = json.dumps({"responsive": True, "displaylogo": False})
    return (
        f'<div id="{div_id}" class="nml-plotly plotly-graph-div" '
        f'style="height:{int(height)}px; width:100%;"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  var id = "{div_id}", fig = {fig_json}, config = {config};\n'
        "  function draw() {\n"
        "    if (!window.Plotly || !document.getElementById(id)) { return false; }\n"
        "    window.Plotly.newPlot(id, fig.data, fig.layout, config);\n"
        "    return true;\n"
        "  }\n"
        "  if (!draw()) {\n"
        '    window.addEventListener("load", function () {\n'
        "      if (!draw()) {\n"
        "        var el = document.getElementById(id);\n"
        "        if (el) { el.style.height = 'auto'; el.textContent = "
        "'(figure not drawn: plotly.js is not loaded on this page)'; }\n"
        "      }\n"
        "    });\n"
        "  }\n"
        "})();\n"
        "</script>"
    )


class PlotlyMimeRenderer:
    """myst-nb plugin: draw ``application/vnd.plotly.v1+json`` outputs in the built book.

    Registered in pyproject.toml (entry point group ``myst_nb.mime_renderers``). myst-nb renders
    every mime type of an output while parsing and warns on types it does not know; plotly's
    default renderer (a plain ``fig.show()``) writes only this JSON type, which would leave the
    page without its figure. With this plugin such an output becomes the same ``<div>`` + script
    as :func:`figure_html`, drawn by the book's one local plotly.js. For :func:`show`'s outputs
    the HTML representation wins (``_config.yml``: ``nb_mime_priority_overrides``).

    Used by the book build (``make book``), for every chapter.
    """

    mime_type = "application/vnd.plotly.v1+json"
    # After text/html (0 in _config.yml), before images and text.
    mime_priority_overrides = [("html", mime_type, 35)]

    @staticmethod
    def handle_mime(renderer, data, inline: bool):
        """Return docutils nodes for a plotly JSON output, or None for any other output."""
        if data.mime_type != PlotlyMimeRenderer.mime_type or inline:
            return None
        from docutils import nodes

        content = data.content
        if isinstance(content, str):
            content = json.loads(content)
        return [nodes.raw(text=figure_html(content), format="html",
                          classes=["output", "text_html"])]


def show(fig: go.Figure, *, div_id: str | None = None) -> None:
    """Display a plotly figure in the built book and in a live Jupyter session alike.

    Emits one output carrying ``text/html`` (:func:`figure_html`, drawn by the book's single
    local ``_static/plotly.min.js``), ``application/vnd.plotly.v1+json`` (drawn natively by
    JupyterLab / Notebook 7 / VS Code) and ``text/plain`` (a one-line summary for terminals).
    Use it instead of ``fig.show()``: plotly's default renderer stores only the JSON (which
    myst-nb draws only through :class:`PlotlyMimeRenderer`, and a front end without a plotly
    renderer not at all), and its ``notebook`` renderer embeds 4.8 MB of plotly.js per page.

    Used by every chapter.
    """
    from IPython.display import display

    if not isinstance(fig, go.Figure):
        raise NMLError(f"show() takes a plotly.graph_objects.Figure, got {type(fig).__name__}; "
                       "build the figure with nml.plots or plotly first")
    title = fig.layout.title.text or "untitled"
    fig_json = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    bundle = {
        "text/html": figure_html(fig_json, div_id=div_id),
        "application/vnd.plotly.v1+json": fig_json,
        "text/plain": f"<plotly figure: {title!s}, {len(fig.data)} traces>",
    }
    display(bundle, raw=True)


# --------------------------------------------------------------------------------------------
# Summaries over seeds
# --------------------------------------------------------------------------------------------

def _error_label(error: str) -> str:
    if error == "ci95":
        return "95% t-interval of the mean over seeds"
    if error == "std":
        return "standard deviation over seeds"
    raise NMLError(f"unknown error-bar kind {error!r}; use one of {', '.join(ERROR_KINDS)}")


def _check_columns(df: pd.DataFrame, needed: Iterable[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise NMLError(f"{what} takes a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise NMLError(f"{what}: the table lacks column(s) {missing}; it has {list(df.columns)}. "
                       "Pass rows in the result-index shape (see nml.plots' module docstring)")
    if df.empty:
        raise NMLError(f"{what}: the table is empty; check the filter that selected the rows")


def summarize_over_seeds(df: pd.DataFrame, by: Sequence[str], *, value: str = "value",
                         error: str = "ci95") -> pd.DataFrame:
    """Mean, error half-width and count of ``value`` for each group of ``by``.

    Every row in a group is one seed (pre-training seed and/or tuning seed). ``error="ci95"``:
    ``t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation (ddof 1);
    ``error="std"``: ``s``. A group with one row has no spread: its error is 0 and ``n`` = 1
    says so in the hover text.

    Used by :func:`accuracy_vs_noise`, :func:`lambda_slider_figure` and the scorecard.
    """
    from scipy import stats

    _error_label(error)
    _check_columns(df, [*by, value], "summarize_over_seeds")
    grouped = df.groupby(list(by), sort=True, dropna=False)[value]
    out = grouped.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                      n="count").reset_index()
    if error == "std":
        out["err"] = out["sd"]
    else:
        tq = np.array([stats.t.ppf(0.975, n - 1) if n > 1 else 0.0 for n in out["n"]])
        out["err"] = tq * out["sd"] / np.sqrt(out["n"])
    return out


def _noise_percent(noise: pd.Series | np.ndarray) -> np.ndarray:
    values = np.asarray(noise, dtype=float)
    if np.any(values < 0) or np.any(values >= 1):
        raise NMLError("noise values must be ratios in [0, 1) (0.05 for 5%); got "
                       f"{sorted(set(values.tolist()))}")
    return values * 100.0


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


# --------------------------------------------------------------------------------------------
# Accuracy vs noise
# --------------------------------------------------------------------------------------------

def accuracy_vs_noise(df: pd.DataFrame, *, metric: str | None = "accuracy",
                      group_by: Sequence[str] = ("method", "task"), error: str = "ci95",
                      title: str | None = None, y_title: str | None = None,
                      caption: str | None = None) -> go.Figure:
    """Mean metric against pre-training noise, one trace per (method, task), error bars over seeds.

    ``df``: tidy rows with columns ``noise``, ``value``, the ``group_by`` columns and, when
    ``metric`` is given, ``metric`` (rows of other metrics are dropped). The x axis shows the
    noise ratio in percent; each point is the mean over the rows of one (group, noise) cell and
    its error bar the ``error`` kind (see :func:`summarize_over_seeds`); the hover text gives
    mean, error and the number of runs ``n``.

    Used by every chapter that plots a metric against pre-training noise (01_noisy_pretraining
    to 06_nmtune).
    """
    group_by = list(group_by)
    _check_columns(df, ["noise", "value", *group_by] + (["metric"] if metric else []),
                   "accuracy_vs_noise")
    rows = df[df["metric"] == metric] if metric else df
    if rows.empty:
        raise NMLError(f"accuracy_vs_noise: no rows with metric == {metric!r}; the table has "
                       f"metrics {sorted(df['metric'].unique())}")
    summary = summarize_over_seeds(rows, [*group_by, "noise"], error=error)
    fig = go.Figure()
    for i, (key, part) in enumerate(summary.groupby(group_by, sort=True)):
        key = key if isinstance(key, tuple) else (key,)
        name = " / ".join(str(k) for k in key)
        part = part.sort_values("noise")
        fig.add_trace(go.Scatter(
            x=_noise_percent(part["noise"]), y=part["mean"].to_numpy(), name=name,
            mode="lines+markers", line={"color": _color(i)},
            error_y={"type": "data", "array": part["err"].to_numpy(), "visible": True},
            customdata=np.stack([part["err"].to_numpy(), part["n"].to_numpy()], axis=1),
            hovertemplate=(f"{_html.escape(name)}<br>noise %{{x:.0f}}%<br>mean %{{y:.4g}}"
                           "<br>± %{customdata[0]:.3g}<br>n = %{customdata[1]}<extra></extra>"),
        ))
    fig.update_layout(
        title=title or f"{metric or 'value'} vs pre-training noise",
        xaxis_title="pre-training label noise (%)", yaxis_title=y_title or (metric or "value"),
        height=DEFAULT_HEIGHT, template="plotly_white", legend_title_text=" / ".join(group_by),
    )
    if caption:
        add_caption(fig, caption + " · error bars: " + _error_label(error))
    return fig


# --------------------------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------------------------

_GROUP_TITLES = {"top20": "top 20 (1-20)", "mid": "middle (21-500)", "rest": "rest (501-D)"}
_GROUP_OFFSETS = {"top20": 0, "mid": 20, "rest": 500}


def _label(key) -> str:
    if isinstance(key, (float, np.floating)) and 0 <= key < 1:
        return f"noise {key * 100:g}%"
    return str(key)


def _as_spectrum(values, name: str) -> np.ndarray:
    s = np.asarray(values, dtype=float).ravel()
    if s.size == 0:
        raise NMLError(f"spectrum {name!r} is empty; pass the singular values of a feature matrix")
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise NMLError(f"spectrum {name!r} has negative or non-finite values; singular values are "
                       ">= 0 (compute them with nml.spectrum.singular_values)")
    return s


def spectrum_figure(spectra: Mapping, *, title: str | None = None,
                    caption: str | None = None) -> go.Figure:
    """Singular values on a log y axis, one trace per noise level, the index groups as subplots.

    ``spectra``: ``{noise level: singular values}``, the keys noise ratios (``0.05``, shown as
    "noise 5%") or any labels, the values 1-d arrays in descending order. The groups are those of
    :func:`nml.spectrum.spectrum_groups`: indices 1-20, 21-500 and 501-D; a group that is empty for
    every spectrum (features with D <= 500) is left out. Hover shows the singular value's
    1-based index and its value. One legend entry per noise level controls all subplots.

    Used by chapters 03_feature_spectrum and 06_nmtune.
    """
    from .spectrum import spectrum_groups

    if not isinstance(spectra, Mapping) or not spectra:
        raise NMLError("spectrum_figure takes a non-empty mapping {noise level: singular values}")
    groups = {key: spectrum_groups(_as_spectrum(s, _label(key))) for key, s in spectra.items()}
    names = [g for g in ("top20", "mid", "rest") if any(len(gr[g]) for gr in groups.values())]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[_GROUP_TITLES[g] for g in names])
    for i, (key, grouped) in enumerate(groups.items()):
        label = _label(key)
        for col, g in enumerate(names, start=1):
            values = np.asarray(grouped[g], dtype=float)
            index = np.arange(1, len(values) + 1) + _GROUP_OFFSETS[g]
            fig.add_trace(go.Scatter(
                x=index, y=values, name=label, legendgroup=label, showlegend=col == 1,
                mode="lines", line={"color": _color(i)},
                hovertemplate=f"{_html.escape(label)}<br>index %{{x}}<br>σ = %{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
            fig.update_yaxes(type="log", row=1, col=col)
            fig.update_xaxes(title_text="singular value index", row=1, col=col)
    fig.update_yaxes(title_text="singular value σ", row=1, col=1)
    fig.update_layout(title=title or "singular value spectrum of the features",
                      height=DEFAULT_HEIGHT, template="plotly_white")
    if caption:
        add_caption(fig, caption)
    return fig


# --------------------------------------------------------------------------------------------
# Lambda slider (NMTune)
# --------------------------------------------------------------------------------------------

def lambda_slider_figure(accuracy: pd.DataFrame, spectra: Mapping, *, lam_col: str = "lam",
                         metric: str | None = "accuracy", group_by: Sequence[str] = ("task",),
                         error: str = "ci95", active: int = 0, title: str | None = None,
                         caption: str | None = None) -> go.Figure:
    """A slider over precomputed NMTune weights λ that moves an accuracy curve and a spectrum.

    Left: mean metric against pre-training noise at the chosen λ, one trace per ``group_by``
    value (e.g. per task), error bars over seeds. Right: the singular values of the tuned
    features ``Z`` at the chosen λ, one trace per noise level, log y axis. Each slider step uses
    plotly's ``"update"`` method with the step's precomputed ``y`` / error arrays, so the slider
    works in the static book page with no kernel. Both axes keep one range over all steps, so
    moving the slider shows the change rather than a rescaled axis.

    ``accuracy``: tidy rows with columns ``lam_col``, ``noise``, ``value``, the ``group_by``
    columns and ``metric``. ``spectra``: ``{λ: {noise level: singular values}}`` holding every λ
    of ``accuracy``. ``active``: the index (into the sorted λ values) shown first.

    Used by chapter 06_nmtune.
    """
    group_by = list(group_by)
    _check_columns(accuracy, [lam_col, "noise", "value", *group_by]
                   + (["metric"] if metric else []), "lambda_slider_figure")
    rows = accuracy[accuracy["metric"] == metric] if metric else accuracy
    if rows.empty:
        raise NMLError(f"lambda_slider_figure: no rows with metric == {metric!r}")
    lams = sorted(float(v) for v in rows[lam_col].unique())
    if len(lams) < 2:
        raise NMLError(f"lambda_slider_figure needs at least two values of {lam_col!r}, got {lams}")
    spectra_by_lam = {float(k): v for k, v in spectra.items()}
    missing = [lam for lam in lams if lam not in spectra_by_lam]
    if missing:
        raise NMLError(f"lambda_slider_figure: no spectra for {lam_col} = {missing}; "
                       f"spectra has keys {sorted(spectra_by_lam)}")
    if not 0 <= active < len(lams):
        raise NMLError(f"active = {active} is not an index into the {len(lams)} λ values")

    summary = summarize_over_seeds(rows, [lam_col, *group_by, "noise"], error=error)
    group_keys = sorted({tuple(r) for r in summary[group_by].itertuples(index=False)})
    noise_keys = list(spectra_by_lam[lams[0]].keys())
    for lam in lams:
        if list(spectra_by_lam[lam].keys()) != noise_keys:
            raise NMLError(f"spectra at λ = {lam} have noise levels {list(spectra_by_lam[lam])}, "
                           f"but λ = {lams[0]} has {noise_keys}; give every λ the same levels")

    def acc_arrays(lam):
        out = []
        for key in group_keys:
            mask = summary[lam_col] == lam
            for col, k in zip(group_by, key):
                mask &= summary[col] == k
            part = summary[mask].sort_values("noise")
            out.append((_noise_percent(part["noise"]), part["mean"].to_numpy(),
                        part["err"].to_numpy(), part["n"].to_numpy()))
        return out

    def spec_arrays(lam):
        return [_as_spectrum(spectra_by_lam[lam][k], _label(k)) for k in noise_keys]

    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], subplot_titles=(
        f"{metric or 'value'} vs pre-training noise", "singular values of the tuned features"))
    first_acc, first_spec = acc_arrays(lams[active]), spec_arrays(lams[active])
    for i, (key, (x, y, err, n)) in enumerate(zip(group_keys, first_acc)):
        name = " / ".join(str(k) for k in key)
        fig.add_trace(go.Scatter(
            x=x, y=y, name=name, mode="lines+markers", line={"color": _color(i)},
            error_y={"type": "data", "array": err, "visible": True},
            hovertemplate=f"{_html.escape(name)}<br>noise %{{x:.0f}}%<br>mean %{{y:.4g}}<extra></extra>",
        ), row=1, col=1)
    for j, (key, s) in enumerate(zip(noise_keys, first_spec)):
        label = _label(key)
        fig.add_trace(go.Scatter(
            x=np.arange(1, len(s) + 1), y=s, name=label, mode="lines",
            line={"color": _color(len(group_keys) + j), "dash": "solid"},
            hovertemplate=f"{_html.escape(label)}<br>index %{{x}}<br>σ = %{{y:.4g}}<extra></extra>",
        ), row=1, col=2)

    # One y range per panel over all λ, so a step changes the curves, not the axes.
    all_acc = [a for lam in lams for a in acc_arrays(lam)]
    lo = min(float(np.nanmin(y - e)) for _, y, e, _ in all_acc)
    hi = max(float(np.nanmax(y + e)) for _, y, e, _ in all_acc)
    pad = 0.05 * (hi - lo) if hi > lo else 0.01 * max(abs(hi), 1.0)
    all_s = np.concatenate([s for lam in lams for s in spec_arrays(lam)])
    positive = all_s[all_s > 0]
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text=metric or "value", row=1, col=1)
    if positive.size:
        fig.update_yaxes(type="log", range=[math.log10(positive.min()) - 0.1,
                                            math.log10(positive.max()) + 0.1], row=1, col=2)
    else:
        fig.update_yaxes(type="log", row=1, col=2)
    fig.update_yaxes(title_text="singular value σ", row=1, col=2)
    fig.update_xaxes(title_text="pre-training label noise (%)", row=1, col=1)
    fig.update_xaxes(title_text="singular value index", row=1, col=2)

    base_title = title or "NMTune: accuracy and spectrum as the regularizer weight λ changes"
    steps = []
    for lam in lams:
        acc, spec = acc_arrays(lam), spec_arrays(lam)
        # Plain lists: the step's arrays go into the page's JSON as they are.
        data_update = {
            "x": [a[0].tolist() for a in acc] + [list(range(1, len(s) + 1)) for s in spec],
            "y": [a[1].tolist() for a in acc] + [s.tolist() for s in spec],
            "error_y": [{"type": "data", "array": a[2].tolist(), "visible": True} for a in acc]
                       + [{"visible": False} for _ in spec],
        }
        steps.append({"method": "update", "label": f"{lam:g}",
                      "args": [data_update, {"title.text": f"{base_title} (λ = {lam:g})"}]})
    fig.update_layout(
        title=f"{base_title} (λ = {lams[active]:g})", height=DEFAULT_HEIGHT + 50,
        template="plotly_white",
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "λ = "},
                  "pad": {"t": 60}}],
    )
    if caption:
        add_caption(fig, caption + " · error bars: " + _error_label(error))
        # The slider sits under the plot; the caption goes below the slider.
        fig.layout.annotations[-1].yshift = -150
        fig.update_layout(margin={"b": fig.layout.margin.b + 90})
    return fig
