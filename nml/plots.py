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

Where things are
----------------
* Captions: :func:`caption` (the one caption format; a figure's scale, data, model, epochs,
  seeds) and :func:`scale_caption`, which fills :func:`caption` from a scale preset and the
  rows shown (with :func:`seeds_text`).
* Tables over seeds: :func:`summarize_over_seeds` (mean, error, n: every helper's statistics),
  :func:`mean_ci_table` ("mean ± error" strings), :func:`mean_over` (average over tasks or test
  sets within a run) and :func:`average_by_kind` (the paper's average-ID / average-OOD numbers),
  :func:`headline_rows`, :func:`collapse_corruptions`, :func:`best_noise`.
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
import json
import math
import re
import uuid
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from .errors import NMLError

__all__ = [
    # constants
    "ERROR_KINDS", "SCALE_LABELS", "DEFAULT_HEIGHT", "BACKBONE_LABELS",
    "METHOD_LABELS", "SPECTRUM_KEY",
    # captions and display
    "caption", "scale_caption", "seeds_text", "task_label", "add_caption", "figure_caption",
    "show", "figure_html", "PlotlyMimeRenderer", "FIGURE_MIME", "NARROW_PX", "TASK_LABELS",
    "human_label", "log_ticks",
    "palette_color",
    # tables and statistics over seeds
    "summarize_over_seeds", "headline_rows", "mean_over", "average_by_kind",
    "collapse_corruptions", "mean_ci_table", "noise_effect", "format_effect",
    "metric_correlations", "best_noise", "pick_spectra", "compare_variants", "bars_text",
    "readable_table",
    # figures
    "accuracy_vs_noise", "noise_panels", "label_noise_panels", "gap_bars_figure",
    "spectrum_figure", "lambda_slider_figure", "grouped_bar_figure", "factor_panels",
]

#: How each scale is named on figures (see book/intro.md).
SCALE_LABELS = {
    "tiny": "tiny scale (embedded synthetic data, CPU)",
    "cpu": "reduced CPU scale (real data)",
    "cifar": "GPU scale (CIFAR-100 pre-training)",
}

#: Error-bar kinds: half-width of a 95% Student-t interval of the mean, or the sample std.
ERROR_KINDS = ("ci95", "std")

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
        # "1 seed", "1 pre-training seed", "3 pre-training seeds"
        # singular only when every count in it is 1 ("1 pre-training x 3 LP" is 3 seeds)
        counts = re.findall(r"\d+", str(seeds))
        one = bool(counts) and all(c == "1" for c in counts)
        parts.append(f"{seeds} seed{'' if one else 's'}")
    if error is not None:
        parts.append("error bars: " + _error_label(error))
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def add_caption(fig: go.Figure, text: str) -> go.Figure:
    """Attach ``text`` to the figure as its caption; :func:`show` prints it under the figure.

    The caption travels with the figure in ``fig.layout.meta["nml_caption"]`` (not drawn inside
    the plot, where it was small grey text that phones clipped): the book renders it as a real,
    numbered figure caption at body-text size, a live notebook as a ``<figcaption>``. A second
    call appends a sentence. Read it back with :func:`figure_caption`.

    Used by every chapter (the figure helpers call it for their ``caption=`` argument).
    """
    meta = dict(fig.layout.meta) if isinstance(fig.layout.meta, Mapping) else {}
    old = meta.get("nml_caption")
    meta["nml_caption"] = f"{old} · {text}" if old else str(text)
    fig.update_layout(meta=meta)
    return fig


def figure_caption(fig: go.Figure | Mapping) -> str:
    """The caption :func:`add_caption` attached to ``fig`` ("" when it has none).

    Used by :func:`show` (every chapter) and the tests.
    """
    layout = fig.layout if isinstance(fig, go.Figure) else (fig.get("layout") or {})
    meta = layout.meta if isinstance(fig, go.Figure) else layout.get("meta")
    return str(meta.get("nml_caption", "")) if isinstance(meta, Mapping) else ""


# --------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------

#: Below this width (px) a figure is redrawn for a phone: side-by-side panels stacked into one
#: column, the legend under the plot, small margins (:func:`figure_html`'s script).
NARROW_PX = 600

# The script that draws one figure with the page's window.Plotly. On a narrow screen it stacks
# the panels of a subplot grid into one column (each axis pair gets its own band, the subplot
# titles move with their panel), puts the legend under the plot and trims the margins, so a
# two-panel figure or the lambda slider is usable at 390 px.
_DRAW_JS = """
(function () {
  var id = "%(id)s", fig = %(fig)s, config = %(config)s, NARROW = %(narrow)d;
  function narrowLayout(layout, width) {
    var L = JSON.parse(JSON.stringify(layout || {}));
    var keys = Object.keys(L).filter(function (k) { return /^xaxis[0-9]*$/.test(k); });
    var cells = keys.map(function (k) {
      var ax = L[k], yk = "yaxis" + String(ax.anchor || "y").slice(1);
      return {x: ax, y: L[yk] || (L[yk] = {}), xd: (ax.domain || [0, 1]).slice(),
              yd: ((L[yk] || {}).domain || [0, 1]).slice()};
    });
    var cols = {};
    cells.forEach(function (c) { cols[c.xd[0].toFixed(3)] = 1; });
    var legendItems = (fig.data || []).filter(function (t) { return t.showlegend !== false && t.name; }).length;
    var legendRows = Math.ceil(legendItems / (width < 420 ? 1 : 2));
    var n = cells.length, stack = Object.keys(cols).length > 1;
    var panel = 250, gap = 80, slider = (L.sliders && L.sliders.length) ? 110 : 0;
    var top = 30, bottom = 60 + slider + 22 * legendRows;
    var plotH = stack ? n * panel + (n - 1) * gap : Math.max(260, (L.height || 450) - 120);
    L.height = top + plotH + bottom;
    L.margin = {l: 55, r: 12, t: top, b: bottom};
    L.legend = Object.assign({}, L.legend || {}, {orientation: "h", x: 0, xanchor: "left",
      y: -(60 + slider) / plotH, yanchor: "top", font: {size: 11}});
    if (slider) {
      L.sliders = L.sliders.map(function (s) {
        return Object.assign({}, s, {x: 0, len: 1, y: -55 / plotH, yanchor: "top",
          pad: {t: 10, b: 0}, font: {size: 11}});
      });
    }
    if (!stack) { return L; }
    cells.sort(function (a, b) { return (b.yd[1] - a.yd[1]) || (a.xd[0] - b.xd[0]); });
    var moved = {};
    cells.forEach(function (c, i) {
      var hi = 1 - i * (panel + gap) / plotH, lo = hi - panel / plotH;
      (L.annotations || []).forEach(function (a, j) {
        if (moved[j] || a.xref !== "paper" || a.yref !== "paper") { return; }
        var cx = (c.xd[0] + c.xd[1]) / 2;
        if (Math.abs(a.x - cx) < 0.02 && Math.abs(a.y - c.yd[1]) < 0.02) {
          a.x = 0.5; a.y = hi; moved[j] = 1; a.font = Object.assign({}, a.font || {}, {size: 12});
        }
      });
      c.x.domain = [0, 1]; c.y.domain = [Math.max(lo, 0), Math.min(hi, 1)];
      if (c.x.matches) { delete c.x.matches; }
      c.x.title = Object.assign({}, c.x.title || {}, {standoff: 4});
      if (c.y.title && c.y.title.text) { c.y.title.font = {size: 11}; }
    });
    return L;
  }
  function draw() {
    var el = document.getElementById(id);
    if (!window.Plotly || !el) { return false; }
    var width = el.clientWidth || (el.parentElement || {}).clientWidth || window.innerWidth;
    var layout = Object.assign({}, fig.layout, {width: width}), cfg = config;
    if (width > 0 && width < NARROW) {
      layout = Object.assign(narrowLayout(fig.layout, width), {width: width});
      el.style.height = layout.height + "px";
      cfg = Object.assign({}, config, {displayModeBar: false});
    }
    window.Plotly.newPlot(id, fig.data, layout, cfg).then(function () {
      // Later width changes (rotation, a resized window) resize the plot to its column.
      if (window.ResizeObserver) {
        var last = width;
        new ResizeObserver(function () {
          var w = el.clientWidth;
          if (w > 0 && Math.abs(w - last) > 2 && (w < NARROW) === (last < NARROW)) {
            last = w; window.Plotly.relayout(el, {width: w});
          }
        }).observe(el);
      }
    });
    return true;
  }
  if (!draw()) {
    window.addEventListener("load", function () {
      if (!draw()) {
        var el = document.getElementById(id);
        if (el) { el.style.height = "auto"; el.textContent = "(figure not drawn: plotly.js is not loaded on this page)"; }
      }
    });
  }
})();
"""


def figure_html(fig: go.Figure | Mapping, *, div_id: str | None = None) -> str:
    """The ``text/html`` representation that :func:`show` emits.

    ``fig``: a plotly figure, or its JSON dict (``application/vnd.plotly.v1+json`` content).
    A ``<div>`` and a script drawing the figure with the page's ``window.Plotly`` (the book's
    ``_static/plotly.min.js``, loaded on the pages that hold a figure). Narrower than
    :data:`NARROW_PX` the script stacks side-by-side panels into one column and moves the legend
    under the plot. If plotly.js is not there when the script runs, it tries again on the page's
    ``load`` event and otherwise writes a one-line note into the div instead of failing
    silently. ``</`` in the JSON is escaped so a string in the figure cannot close the script.

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
    script = _DRAW_JS % {"id": div_id, "fig": fig_json, "config": config, "narrow": NARROW_PX}
    return (
        f'<div id="{div_id}" class="nml-plotly plotly-graph-div" '
        f'style="height:{int(height)}px; width:100%;"></div>\n'
        f'<script type="text/javascript">{script}</script>'
    )


#: The mime type of :func:`show`'s figure directive: MyST text that the book renders (through
#: :class:`PlotlyMimeRenderer`) as a numbered figure with its caption underneath.
FIGURE_MIME = "text/x.nml-figure+markdown"

_FIGURE_NUMBER = re.compile(r"^\s*Figure\s+(\d+)\.(\d+)\s*[:.]\s*")


def _myst_escape(text: str) -> str:
    """Plain text made literal for MyST (no emphasis, roles, math or HTML out of it)."""
    return re.sub(r"([\\`*_\[\]<>$|{}#])", r"\\\1", str(text))


class PlotlyMimeRenderer:
    """myst-nb plugin: draw ``application/vnd.plotly.v1+json`` outputs in the built book, and
    render :func:`show`'s :data:`FIGURE_MIME` output as MyST (a numbered, captioned figure).

    Registered in pyproject.toml (entry point group ``myst_nb.mime_renderers``). myst-nb renders
    every mime type of an output while parsing and warns on types it does not know; plotly's
    default renderer (a plain ``fig.show()``) writes only this JSON type, which would leave the
    page without its figure. With this plugin such an output becomes the same ``<div>`` + script
    as :func:`figure_html`, drawn by the book's one local plotly.js. For :func:`show`'s outputs
    the figure directive wins (priority -10), which pastes the glued ``text/html`` figure.

    Used by the book build (``make book``), for every chapter.
    """

    mime_type = "application/vnd.plotly.v1+json"
    # The figure directive first; plotly JSON after text/html (0 in _config.yml), before images.
    mime_priority_overrides = [("html", FIGURE_MIME, -10), ("html", mime_type, 35)]

    @staticmethod
    def handle_mime(renderer, data, inline: bool):
        """Return docutils nodes for a plotly JSON or figure output, or None for any other."""
        if inline:
            return None
        if data.mime_type == FIGURE_MIME:
            return renderer._render_markdown_base(data, fmt="myst", inline=False)
        if data.mime_type != PlotlyMimeRenderer.mime_type:
            return None
        from docutils import nodes

        content = data.content
        if isinstance(content, str):
            content = json.loads(content)
        return [nodes.raw(text=figure_html(content), format="html",
                          classes=["output", "text_html"])]


def show(fig: go.Figure, *, div_id: str | None = None, name: str | None = None) -> None:
    """Display a plotly figure as a numbered figure with its caption, in the book and in Jupyter.

    The plot's title (less a typed "Figure 6.2:" prefix: the book numbers figures itself) and
    the caption of :func:`add_caption` become the figure's caption, printed under the plot at
    body-text size; the plot itself carries no title. ``name``: the figure's label for
    ``{numref}`` links from the text; by default ``fig-6-2`` for a title typed "Figure 6.2: ...",
    else a fresh unique label.

    Emits two outputs. (1) The figure, glued (myst-nb ``glue``, hidden) under the label: its
    ``text/html`` (:func:`figure_html`, drawn by the book's local ``_static/plotly.min.js``),
    ``application/vnd.plotly.v1+json`` and ``text/plain``. (2) What a reader sees:
    :data:`FIGURE_MIME`, a MyST ``{glue:figure}`` directive with the caption, which the book
    renders (:class:`PlotlyMimeRenderer`) as a numbered Sphinx figure; ``text/html`` (the plot
    plus a ``<figcaption>``) and the plotly JSON for JupyterLab / Notebook 7 / VS Code, which
    render the JSON natively; ``text/plain`` for terminals. Use it instead of ``fig.show()``.

    Used by every chapter.
    """
    from IPython.display import display

    if not isinstance(fig, go.Figure):
        raise NMLError(f"show() takes a plotly.graph_objects.Figure, got {type(fig).__name__}; "
                       "build the figure with nml.plots or plotly first")
    fig = go.Figure(fig)  # a copy: the caller's figure keeps its title
    raw_title = fig.layout.title.text or ""
    number = _FIGURE_NUMBER.match(raw_title)
    title = _FIGURE_NUMBER.sub("", raw_title).strip()
    if name is None:
        name = (f"fig-{number.group(1)}-{number.group(2)}" if number
                else f"fig-{uuid.uuid4().hex[:10]}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise NMLError(f"show(name={name!r}): a figure label is letters, digits, '-' and '_', "
                       "starting with a letter (e.g. 'fig-6-2')")
    caption_text = figure_caption(fig)
    fig.update_layout(title=None, meta=None,
                      margin={"t": 40 if not fig.layout.annotations else 50})
    fig_json = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    plain = f"<plotly figure {name}: {title or 'untitled'}, {len(fig.data)} traces>"
    from myst_nb.ext.glue import GLUE_PREFIX

    display({GLUE_PREFIX + "text/html": figure_html(fig_json, div_id=div_id),
             GLUE_PREFIX + "application/vnd.plotly.v1+json": fig_json,
             GLUE_PREFIX + "text/plain": plain},
            raw=True, metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})
    lead = f"**{_myst_escape(title.rstrip('.'))}.** " if title else ""
    directive = (f"```{{glue:figure}} {name}\n:name: {name}\n:figclass: nml-figure\n\n"
                 f"{lead}{_myst_escape(caption_text)}\n```\n")
    figcaption = (f"<figcaption><b>{_html.escape(title)}</b> "
                  f"{_html.escape(caption_text)}</figcaption>")
    display({FIGURE_MIME: directive,
             "text/html": f"<figure>{figure_html(fig_json)}{figcaption}</figure>",
             "application/vnd.plotly.v1+json": fig_json,
             "text/plain": plain}, raw=True)


# --------------------------------------------------------------------------------------------
# Summaries over seeds
# --------------------------------------------------------------------------------------------

def _error_label(error: str) -> str:
    if error == "ci95":
        return "95% t-interval of the mean over seeds"
    if error == "std":
        return "standard deviation over seeds"
    raise NMLError(f"unknown error-bar kind {error!r}; use one of {', '.join(ERROR_KINDS)}")


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
    return f"error bars: {_error_label(error)} (n = {runs} runs per point{note})"


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

    Used by every figure and table helper here and directly by chapters 04_lora,
    05_full_finetune, 06_nmtune, 08_asymmetric_noise, 09_noisy_downstream and 11_ablations.
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


def palette_color(i: int) -> str:
    """The book's ``i``-th trace colour (cycled). Used by chapter 06_nmtune's live figure."""
    return _color(i)


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
        name = ", ".join(_group_label(c, k) for c, k in zip(group_by, key))
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
        height=DEFAULT_HEIGHT, template="plotly_white",
        legend_title_text=", ".join(_COLUMN_LABELS.get(c, c) for c in group_by),
    )
    if caption:
        add_caption(fig, caption + " · " + bars_text(error, summary["n"]))
    return fig


# --------------------------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------------------------

_GROUP_TITLES = {"top20": "top 20", "mid": "middle", "rest": "rest"}
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


def log_ticks(lo: float, hi: float) -> dict:
    """Ticks of a log axis over ``[lo, hi]`` (data units) written out in full: ``{"tickvals",
    "ticktext"}`` for ``fig.update_yaxes(**log_ticks(lo, hi))``.

    plotly labels the minor ticks of a short log axis with their leading digit only ("2", "5"
    between 10 and 100 read as values 2 and 5), and a tall one with a label at every digit,
    which crowds a phone's 250 px panel. Here: 1-2-5 steps over up to about two decades, 1-3
    steps over up to four, one tick per decade beyond; every label the value itself ("200").

    Used by :func:`spectrum_figure` and :func:`lambda_slider_figure` (chapters 03_feature_spectrum,
    06_nmtune).
    """
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= 0:
        return {}
    lo, hi = min(lo, hi), max(lo, hi)
    span = math.log10(hi / lo) if hi > lo else 0.0
    for mantissas in ([1, 2, 5], [1, 3], [1]) if span > 1.2 else ([1, 2, 3, 5], [1, 2, 5]):
        vals = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1,
                                             math.ceil(math.log10(hi)) + 1) for m in mantissas]
        vals = [v for v in vals if lo <= v * (1 + 1e-9) and v <= hi * (1 + 1e-9)]
        if len(vals) <= 7:
            break
    if len(vals) < 2:  # less than a 1-2-5 step apart: the two ends, rounded
        vals = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})

    def text(v: float) -> str:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-") if (v >= 1e5 or v < 1e-3) \
            else f"{v:g}"
    return {"tickvals": vals, "ticktext": [text(v) for v in vals]}


def spectrum_figure(spectra: Mapping, *, title: str | None = None,
                    caption: str | None = None,
                    y_title: str = "singular value σ (log scale)") -> go.Figure:
    """Singular values on a log y axis, one trace per noise level, the index groups as subplots.

    ``spectra``: ``{noise level: singular values}``, the keys noise ratios (``0.05``, shown as
    "noise 5%") or any labels, the values 1-d arrays in descending order. The groups are those of
    :func:`nml.spectrum.spectrum_groups`: indices 1-20, 21-500 and 501-D; a group that is empty for
    every spectrum (features with D <= 500) is left out. Hover shows the singular value's
    1-based index and its value. One legend entry per noise level controls all subplots. The
    subplot titles give the index ranges actually shown ("middle (21-128)" when D = 128);
    ``y_title`` names what the values are (e.g. normalised p_i rather than raw σ_i).

    Used by chapters 03_feature_spectrum and 06_nmtune.
    """
    from .spectrum import spectrum_groups

    if not isinstance(spectra, Mapping) or not spectra:
        raise NMLError("spectrum_figure takes a non-empty mapping {noise level: singular values}")
    groups = {key: spectrum_groups(_as_spectrum(s, _label(key))) for key, s in spectra.items()}
    names = [g for g in ("top20", "mid", "rest") if any(len(gr[g]) for gr in groups.values())]
    top = max(len(gr[g]) + _GROUP_OFFSETS[g] for gr in groups.values() for g in names
              if len(gr[g]))
    titles = []
    for g in names:
        last = max((len(gr[g]) + _GROUP_OFFSETS[g] for gr in groups.values() if len(gr[g])),
                   default=top)
        titles.append(f"{_GROUP_TITLES[g].split(' (')[0]} ({_GROUP_OFFSETS[g] + 1}-{last})")
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=titles)
    for i, (key, grouped) in enumerate(groups.items()):
        label = _label(key)
        for col, g in enumerate(names, start=1):
            values = np.asarray(grouped[g], dtype=float)
            index = np.arange(1, len(values) + 1) + _GROUP_OFFSETS[g]
            fig.add_trace(go.Scatter(
                x=index, y=values, name=label, legendgroup=label, showlegend=col == 1,
                mode="lines", line={"color": _color(i)},
                hovertemplate=f"{_html.escape(label)}<br>index %{{x}}<br>%{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
            fig.update_yaxes(type="log", row=1, col=col)
            fig.update_xaxes(title_text="singular value index", row=1, col=col)
    for col, g in enumerate(names, start=1):
        values = np.concatenate([np.asarray(gr[g], dtype=float) for gr in groups.values()])
        values = values[values > 0]
        if values.size:
            fig.update_yaxes(**log_ticks(float(values.min()), float(values.max())),
                             row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(title=title or "singular value spectrum of the features",
                      height=DEFAULT_HEIGHT, template="plotly_white")
    if caption:
        add_caption(fig, caption)
    return fig


# --------------------------------------------------------------------------------------------
# Lambda slider (NMTune)
# --------------------------------------------------------------------------------------------

#: Axis titles of the metrics the chapters plot (values in percent are stored in percent).
_METRIC_TITLES = {"accuracy": "accuracy (%)", "f1": "macro-F1 (%)"}


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

    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                        subplot_titles=(f"{_METRIC_TITLES.get(metric, metric or 'value')} at this λ",
                                        "spectrum of Z at this λ"))
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
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text=_METRIC_TITLES.get(metric, metric or "value"),
                     row=1, col=1)
    if positive.size:
        fig.update_yaxes(type="log", range=[math.log10(positive.min()) - 0.1,
                                            math.log10(positive.max()) + 0.1], row=1, col=2,
                         **log_ticks(float(positive.min()), float(positive.max())))
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
        steps.append({"method": "restyle", "label": f"{lam:g}", "args": [data_update]})
    fig.update_layout(
        # The legend under the slider, so both panels keep the column's width.
        title=base_title, height=DEFAULT_HEIGHT + 120,
        template="plotly_white", legend={"orientation": "h", "x": 0, "y": -0.42,
                                         "yanchor": "top"}, margin={"b": 200},
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "λ = "},
                  "pad": {"t": 60}}],
    )
    if caption:
        add_caption(fig, caption + " · " + bars_text(error, summary["n"])
                    + " · the slider under the plot sets λ for both panels")
    return fig


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

    Used by chapters 02_linear_probe and 03_feature_spectrum, and by :func:`average_by_kind`
    (04_lora, 05_full_finetune, 06_nmtune, 11_ablations).
    """
    _check_columns(df, [column, "value"], "mean_over")
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
    _check_columns(df, ["test_set", "value"], "collapse_corruptions")
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
                arrays, names=[_COLUMN_LABELS.get(n, n) for n in index.names])
        return pd.Index([label(v, index.name) for v in index],
                        name=_COLUMN_LABELS.get(index.name, index.name))

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
    _check_columns(df, ["noise", value, *by], "noise_effect")
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


def format_effect(row: Mapping, *, unit: str = " points", digits: int = 2) -> str:
    """One :func:`noise_effect` row as prose: ``"+1.20 points (95% CI -0.30 to 2.70)"``.

    Says "no interval: 1 run" when there is no confidence interval.

    Used by chapters 02_linear_probe and 08_asymmetric_noise.
    """
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
    _check_columns(x, [*on, *by, "value"], "metric_correlations (x)")
    _check_columns(y, [*on, *by, "value"], "metric_correlations (y)")
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


# --------------------------------------------------------------------------------------------
# Chapter helpers (04_lora, 05_full_finetune, 06_nmtune): captions from a scale, multi-panel
# noise plots, gaps to the clean model, spectra picked out of a grid
# --------------------------------------------------------------------------------------------

#: Readable backbone names for captions, legends and tables (:func:`human_label`).
BACKBONE_LABELS = {
    "resnet18_cifar": "ResNet-18", "resnet18_cifar_narrow": "ResNet-18 ¼ width",
    "resnet_micro": "micro ResNet", "vit_small_cifar": "ViT-S", "vit_narrow_cifar": "ViT ¼ width",
    "vit_micro": "micro ViT", "clip_vit_micro": "micro CLIP ViT",
    "clip_vit_narrow": "CLIP ViT ¼ width", "clip_vit_small": "CLIP ViT-S",
}

#: Readable tuning-method names for legends, axes and tables (:func:`human_label`).
METHOD_LABELS = {
    "lp": "LP", "mlp": "MLP", "nmtune": "NMTune", "lora": "LoRA",
    "lora_nmtune": "LoRA + NMTune", "ft": "FT", "frozen": "frozen features",
}

#: Readable task names (the kind, ID or OOD, is added by :func:`task_label`).
TASK_LABELS = {
    "cifar10": "CIFAR-10", "caltech101": "Caltech-101", "cifar100": "CIFAR-100",
    "pacs_photo": "PACS photo → other domains", "pacs_sketch": "PACS sketch → other domains",
    "cifar10c": "CIFAR-10 → CIFAR-10-C", "synthetic_id": "synthetic ID",
    "synthetic_upstream": "synthetic upstream set",
    "synthetic_ood_photo": "synthetic photo → other domains",
    "synthetic_ood_sketch": "synthetic sketch → other domains",
}


def human_label(value, column: str | None = None) -> str:
    """The one reader-facing name of an identifier, for every figure legend and table.

    Methods, backbones and tasks by :data:`METHOD_LABELS`, :data:`BACKBONE_LABELS`,
    :data:`TASK_LABELS`; with ``column`` "noise" / "label_noise" a ratio reads
    "10 % noise" / "10 % downstream noise"; with ``column`` "test_set" a target domain or
    corruption reads as words ("art painting", "all corruptions at severity 5"). Anything else
    is returned as text.

    Used by every chapter's figures and tables (through the figure helpers and
    :func:`readable_table`).
    """
    if column in ("noise", "label_noise") and isinstance(value, (int, float, np.number)):
        return f"{float(value) * 100:g} % {'noise' if column == 'noise' else 'downstream noise'}"
    if column == "fraction" and isinstance(value, (int, float, np.number)):
        return f"{float(value) * 100:g} % of the training data"
    if column == "test_set" and isinstance(value, str):
        # "art_painting" -> "art painting"; collapse_corruptions' "corrupted @ 5" -> severity
        severity = re.fullmatch(r"corrupted @ (\d+)", value)
        if severity:
            return f"all corruptions at severity {severity.group(1)}"
        if "@" in value:
            name, level = value.split("@", 1)
            return f"{name.replace('_', ' ')} at severity {level}"
        return {"mean": "mean over targets"}.get(value, value.replace("_", " "))
    if isinstance(value, str):
        for table in (METHOD_LABELS, BACKBONE_LABELS, TASK_LABELS):
            if value in table:
                return table[value]
    return str(value)


#: The fields of a :class:`nml.chapters.GridResult` spectra key, in order.
SPECTRUM_KEY = ("method", "backbone", "noise", "pretrain_seed", "seed", "task", "test_set", "lam")

_WHITEBOX = ("lora", "lora_nmtune", "ft")


def headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The one test set per task that figures show: ``test`` (ID) or ``mean`` (OOD targets).

    An ID task has a single test set; an OOD task has one per target domain (or corruption)
    plus ``mean``, their average, which is what the paper's OOD figures plot.

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune, 08_asymmetric_noise and
    09_noisy_downstream (and by :func:`average_by_kind`).
    """
    from .data import TASKS

    _check_columns(df, ["task", "test_set"], "headline_rows")
    kinds = df["task"].map(lambda t: TASKS[t].kind if t in TASKS else None)
    keep = ((kinds == "id") & (df["test_set"] == "test")) | \
        ((kinds == "ood") & (df["test_set"] == "mean"))
    return df[keep]


def task_label(task: str) -> str:
    """``"CIFAR-10 (ID)"``: a task's readable name (:data:`TASK_LABELS`) with its kind.

    A name that is not a downstream task (e.g. the upstream set) gets no kind.

    Used by chapters 06_nmtune, 08_asymmetric_noise and 09_noisy_downstream, and by
    :func:`scale_caption` and :func:`gap_bars_figure` (04_lora, 05_full_finetune).
    """
    from .data import TASKS

    name = TASK_LABELS.get(task, str(task))
    return f"{name} ({TASKS[task].kind.upper()})" if task in TASKS else name


def seeds_text(df: pd.DataFrame, *, by: Sequence[str] = ("backbone", "task", "noise")) -> str:
    """How many runs each plotted point averages, per method: "LP 3 seeds (1 pre-training x 3
    tuning); FT 1 seed: no spread".

    A run is one distinct (``pretrain_seed``, ``seed``) pair inside a cell of ``by`` (and of
    ``method``, when the table has that column); ``df`` should hold one metric of one test set
    per cell. Where cells of one method differ, the range is given.

    Used by :func:`scale_caption` (chapters 04_lora to 11_ablations).
    """
    _check_columns(df, ["pretrain_seed", "seed"], "seeds_text")
    by = [c for c in by if c in df.columns]
    methods = sorted(df["method"].unique(), key=_method_order) if "method" in df.columns \
        else [None]
    texts = {}
    for method in methods:
        part = df if method is None else df[df["method"] == method]
        groups = [g for _, g in part.groupby(by, dropna=False)] if by else [part]
        runs = [len(g[["pretrain_seed", "seed"]].drop_duplicates()) for g in groups]
        pre = max(g["pretrain_seed"].nunique() for g in groups)
        tune = max(g["seed"].nunique() for g in groups)
        lo, hi = min(runs), max(runs)
        if hi == 1:
            texts[method] = "1 seed: no spread"
        elif lo == hi:
            texts[method] = f"{hi} seeds ({pre} pre-training x {tune} tuning)"
        else:
            texts[method] = f"{lo}-{hi} seeds per point" + (" (1 seed: no spread)" if lo == 1
                                                             else "")
    if len(set(texts.values())) == 1:  # every method has the same seeds: say it once
        return next(iter(texts.values()))
    return "; ".join(f"{METHOD_LABELS.get(m, m)} {t}" for m, t in texts.items())


def _method_order(method: str) -> int:
    order = list(METHOD_LABELS)
    return order.index(method) if method in order else len(order)


def scale_caption(scale, df: pd.DataFrame, *, extra: str | None = None) -> str:
    """A figure caption from the scale preset and the rows the figure shows.

    States the data (upstream dataset -> the tasks in ``df``), the models (the backbones in
    ``df``), the epochs (pre-training; black-box tuning and / or LoRA / FT, as the methods in
    ``df`` need, with the white-box train-image cap when the scale has one) and the seeds of
    each method (:func:`seeds_text`). ``scale``: a :class:`nml.experiments.Scale` (e.g.
    ``pipe.scale``). Nothing is hard-coded: a rerun at another scale gets its own caption.

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune, 08_asymmetric_noise,
    09_noisy_downstream and 11_ablations.
    """
    _check_columns(df, ["backbone", "pretrain_seed", "seed"], "scale_caption")
    tasks = sorted(df["task"].unique()) if "task" in df.columns else []
    data = human_label(scale.upstream) + (" → " + ", ".join(task_label(t) for t in tasks)
                                          if tasks else "")
    model = ", ".join(BACKBONE_LABELS.get(b, b) for b in sorted(df["backbone"].unique()))
    methods = set(df["method"].unique()) if "method" in df.columns else set()
    backbones = set(df["backbone"].unique())
    clip_epochs = dict(scale.clip_overrides).get("epochs", scale.pretrain_epochs)
    if backbones and all(b.startswith("clip_") for b in backbones):
        epochs = [f"CLIP pre-training {clip_epochs}"]
    else:
        epochs = [f"pre-training {scale.pretrain_epochs}"]
    # Name only the methods the figure shows ("LP 10" beside FT, not "LP / MLP / NMTune 10").
    def named(group):
        return " / ".join(METHOD_LABELS.get(m, m) for m in sorted(group, key=_method_order))
    blackbox = methods - set(_WHITEBOX) - {"pretrain", "frozen"}
    if blackbox:
        epochs.append(f"{named(blackbox)} {scale.tune_epochs}")
    if methods & set(_WHITEBOX):
        cap = (f" on <= {scale.whitebox_train_limit} train images"
               if scale.whitebox_train_limit else "")
        epochs.append(f"{named(methods & set(_WHITEBOX))} {scale.whitebox_epochs}{cap}")
    parts = ["epochs: " + ", ".join(epochs), seeds_text(df)]
    if extra:
        parts.append(extra)
    return caption(scale=scale.name, data=data, model=model, extra=" · ".join(parts))


def _group_label(column: str, value) -> str:
    """Legend name of one group value: :func:`human_label`, with pre-training noise spelled out."""
    if column in ("noise", "label_noise") and isinstance(value, (int, float, np.number)):
        return f"{'pre-training' if column == 'noise' else 'downstream'} noise {value * 100:g} %"
    return human_label(value, column)


def _group_sort_key(column: str, value):
    if column == "method":
        return (_method_order(value), str(value))
    if isinstance(value, (int, float, np.number)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


_COLUMN_LABELS = {"method": "tuning method", "backbone": "model", "task": "task",
                  "noise": "pre-training noise", "label_noise": "downstream noise",
                  "fraction": "training data", "test_set": "test set"}

_X_TITLES = {"noise": "pre-training label noise (%)", "label_noise": "downstream label noise η (%)"}


def noise_panels(panels: Mapping[str, pd.DataFrame], *, x: str = "noise",
                 group_by: Sequence[str] = ("method",), error: str = "ci95", cols: int = 2,
                 title: str | None = None, y_titles: Mapping[str, str] | None = None,
                 x_title: str | None = None, shared_yaxes: bool = False,
                 legend_title: str | None = None, caption: str | None = None,
                 panel_height: int = 340) -> go.Figure:
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
    them); ``y_titles`` gives panels their y axis titles.

    Used by chapters 03_feature_spectrum, 04_lora, 05_full_finetune, 06_nmtune,
    08_asymmetric_noise and 09_noisy_downstream.
    """
    if not isinstance(panels, Mapping) or not panels:
        raise NMLError("noise_panels takes a non-empty mapping {panel title: rows}")
    group_by = list(group_by)
    summaries = {}
    for name, df in panels.items():
        _check_columns(df, [x, "value", *group_by], f"noise_panels (panel {name!r})")
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
                x=_noise_percent(part[x]), y=part["mean"].to_numpy(), name=label,
                legendgroup=label, showlegend=not any(t.name == label for t in fig.data),
                mode="lines+markers", line={"color": _color(i)},
                error_y={"type": "data", "array": part["err"].to_numpy(), "visible": True},
                customdata=np.stack([part["err"].to_numpy(), part["n"].to_numpy()], axis=1),
                hovertemplate=(f"{_html.escape(label)}<br>{_html.escape(x_title)} %{{x:g}}"
                               "<br>mean %{y:.4g}<br>± %{customdata[0]:.3g}"
                               "<br>n = %{customdata[1]}<extra></extra>"),
            ), row=r, col=c)
        if not stacked or r == rows:
            fig.update_xaxes(title_text=x_title, row=r, col=c)
        if y_titles and name in y_titles and (c == 1 or not shared_yaxes):
            fig.update_yaxes(title_text=y_titles[name], row=r, col=c)
    fig.update_layout(title=title or "metrics vs pre-training noise",
                      height=120 + panel_height * rows, template="plotly_white",
                      legend_title_text=legend_title or " / ".join(group_by))
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
    _check_columns(gaps, [x, panel_by, "noise", "diff", "err"], "gap_bars_figure")
    panels = sorted(gaps[panel_by].unique())
    xs = sorted(gaps[x].unique(), key=_method_order if x == "method" else str)
    x_labels = [METHOD_LABELS.get(v, BACKBONE_LABELS.get(v, str(v))) for v in xs]
    titles = [task_label(p) if panel_by == "task" else str(p) for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles)
    for j, noise in enumerate(sorted(gaps["noise"].unique())):
        label = _label(float(noise))
        for c, panel in enumerate(panels, start=1):
            part = gaps[(gaps[panel_by] == panel) & (gaps["noise"] == noise)].set_index(x)
            ys = [float(part.loc[v, "diff"]) if v in part.index else None for v in xs]
            errs = [float(part.loc[v, "err"]) if v in part.index else float("nan") for v in xs]
            fig.add_trace(go.Bar(
                x=x_labels, y=ys, name=label, legendgroup=label, showlegend=c == 1,
                marker_color=_color(j + 1),
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
    ``reference``, per metric, task kind (:func:`average_by_kind`) and noise level.

    ``frames``: ``{variant name: tidy tuning rows}``; the difference pairs runs by pre-trained
    model and tuning seed. A metric a variant's units do not store (e.g. the authors'
    spectrum preprocessing in units stored before it existed) reads "not stored", never 0.
    Returns one row per (metric, kind, noise) with a column per variant and one per difference.

    Used by chapter 11_ablations (the paper's NMTune against the authors' code).
    """
    keys = ["kind", "noise", "pretrain_seed", "seed"]
    out = []
    for metric in metrics:
        per = {}
        for name, df in frames.items():
            part = df[df["metric"] == metric]
            per[name] = average_by_kind(part)[[*keys, "value"]] if len(part) else None
        cells = {}
        for name, df in per.items():
            if df is None:
                continue
            for r in summarize_over_seeds(df, ["kind", "noise"]).itertuples():
                cells.setdefault((r.kind, r.noise), {})[name] = \
                    f"{r.mean:.{digits}f} ± {r.err:.{digits}f} (n={r.n})"
            if name != reference and per[reference] is not None:
                paired = df.merge(per[reference], on=keys, suffixes=("", "_ref"))
                paired["diff"] = paired["value"] - paired["value_ref"]
                for r in summarize_over_seeds(paired, ["kind", "noise"], value="diff").itertuples():
                    star = " *" if r.n > 1 and abs(r.mean) > r.err else ""
                    cells.setdefault((r.kind, r.noise), {})[f"{name} − {reference}"] = \
                        f"{r.mean:+.{digits}f} ± {r.err:.{digits}f}{star}"
        kinds_noise = sorted(cells) or []
        for kind, noise in kinds_noise:
            row = {"metric": metric, "kind": kind, "noise": f"{noise * 100:g}%"}
            for name in frames:
                row[name] = cells[(kind, noise)].get(name, "not stored")
                if name != reference:
                    diff = f"{name} − {reference}"
                    row[diff] = cells[(kind, noise)].get(diff, "not stored")
            out.append(row)
        if not kinds_noise:
            out.append({"metric": metric, "kind": "", "noise": "",
                        **{name: "not stored" for name in frames}})
    return pd.DataFrame(out)


def average_by_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Each run's headline number averaged over the tasks of one kind: the paper's "average ID"
    and "average OOD" results.

    Takes tidy rows (any test sets; :func:`headline_rows` picks ``test`` / ``mean``), returns
    one row per run, metric and kind with a ``kind`` column ("ID" or "OOD") and ``value`` the
    mean over that kind's tasks (:func:`mean_over`); the other columns (``backbone``,
    ``method``, ``noise``, ``pretrain_seed``, ``seed``, ``lam``, ...) are kept, so the seeds
    stay separate for the error bars. ``task`` becomes the tasks averaged, joined by " + ".

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune and 11_ablations.
    """
    from .data import TASKS

    rows = headline_rows(df).copy()
    if rows.empty:
        raise NMLError("average_by_kind: no ID 'test' or OOD 'mean' rows in the table")
    rows["kind"] = rows["task"].map(lambda t: TASKS[t].kind.upper())
    # The test set differs between kinds ("test" / "mean") and says nothing once averaged.
    return mean_over(rows.drop(columns="test_set"), "task", label=None)


def best_noise(summary: pd.DataFrame, *, by: Sequence[str]) -> pd.DataFrame:
    """Per ``by`` group of a :func:`summarize_over_seeds` table: the noise level with the
    highest mean, that mean, the clean (noise 0) mean and whether the clean model is best.

    Columns: ``by``, ``best_noise``, ``best_mean``, ``clean_mean``, ``clean_is_best``. The
    paper's "rectify" claim (NMTune makes the clean model the best on ID tasks) is
    ``clean_is_best`` for the NMTune rows.

    Used by chapters 04_lora, 06_nmtune and 09_noisy_downstream.
    """
    by = list(by)
    _check_columns(summary, [*by, "noise", "mean"], "best_noise")
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
    _check_columns(table, [x, group, value], "grouped_bar_figure")
    xs = list(dict.fromkeys(table[x]))
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(table[group])):
        part = table[table[group] == name].set_index(x)
        ys = [float(part.loc[v, value]) if v in part.index else None for v in xs]
        fig.add_trace(go.Bar(
            x=xs, y=ys, name=str(name), marker_color=_color(i),
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
                  error: str = "ci95") -> go.Figure:
    """One-factor-at-a-time ablation panels: a column per factor, a row per ``row`` value
    (e.g. ID / OOD), the factor's levels on x (in the order ``levels[factor]`` gives), one line
    per ``color`` value (pre-training noise) with mean ± error over seeds.

    ``summary``: a :func:`summarize_over_seeds` table with columns ``factor``, ``level``,
    ``row``, ``color``, ``mean``, ``err``, ``n``. ``references`` (optional): columns ``row``,
    ``color``, ``method``, ``mean``; each row is drawn as a horizontal line across that row's
    panels in the colour of its noise level (dotted for MLP tuning, dash-dot otherwise), so
    every variant can be read against MLP tuning and LP.

    Used by chapter 11_ablations.
    """
    _check_columns(summary, [factor, level, row, color, "mean", "err", "n"], "factor_panels")
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
                label = _label(float(col_value)) if color == "noise" else str(col_value)
                fig.add_trace(go.Scatter(
                    x=cell["_x"], y=cell["mean"], mode="lines+markers", name=label,
                    legendgroup=label, showlegend=(r == 1 and c == 1),
                    line={"color": _color(i + 1), "width": 1.5},
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
                                      line_color=_color(i + 1),
                                      line_dash="dot" if ref["method"] == "mlp" else "dashdot")
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=order,
                             row=r, col=c)
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
