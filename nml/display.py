"""Showing figures: :func:`show` (HTML for the book, plotly JSON for live notebooks) and the
myst-nb plugin :class:`PlotlyMimeRenderer` that draws plain plotly outputs in the built book.

Used by every chapter (through :mod:`nml.plots`, which re-exports these names).
"""

from __future__ import annotations

import html as _html
import json
import re
import uuid
from typing import Mapping

import plotly.graph_objects as go
import plotly.io as pio

from .errors import NMLError
from .labels import figure_caption

#: Default figure height in pixels (the static HTML needs a fixed height: the page has none).
__all__ = ["DEFAULT_HEIGHT", "NARROW_PX", "figure_html", "FIGURE_MIME", "PlotlyMimeRenderer",
           "show"]

DEFAULT_HEIGHT = 450


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
    // A legend title beside horizontal items squeezes them on a phone: it goes on its own row.
    var legendTitle = L.legend && L.legend.title && L.legend.title.text;
    // A panel title wrapped onto several lines (labels.task_panel_title) needs room above.
    var titleBreaks = Math.max.apply(null, [0].concat((L.annotations || []).map(function (a) {
      return String(a.text || "").split("<br>").length - 1; })));
    var top = 30 + 16 * titleBreaks, bottom = 60 + slider + 22 * (legendRows + (legendTitle ? 1 : 0));
    var plotH = stack ? n * panel + (n - 1) * gap : Math.max(260, (L.height || 450) - 120);
    L.height = top + plotH + bottom;
    L.margin = {l: 55, r: 12, t: top, b: bottom};
    L.legend = Object.assign({}, L.legend || {}, {orientation: "h", x: 0, xanchor: "left",
      y: -(60 + slider) / plotH, yanchor: "top", font: {size: 11}});
    if (legendTitle) { L.legend.title = Object.assign({}, L.legend.title, {side: "top"}); }
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
