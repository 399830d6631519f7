"""Sphinx extension for the nml book (registered in _config.yml, ``sphinx.local_extensions``).

Per page, at ``html-page-context``:

* plotly.js (``_static/plotly.min.js``, 4.8 MB) is added only to pages that draw a figure
  (their body holds an ``nml-plotly`` div from :func:`nml.plots.figure_html`);
* scripts that Jupyter Book writes twice (sphinx-thebe's inline ``const THEBE_JS_URL``, which
  threw "Identifier 'THEBE_JS_URL' has already been declared" on every page) are written once;
* every chapter page (``notebooks/NN_name``) opens with a "Rerun this chapter" box: a link to
  its output-free ``.ipynb`` and the exact papermill command for the scale the page shows.
"""

from __future__ import annotations

import html
import re

#: Scale names by the label nml.plots.SCALE_LABELS prints in captions (kept in step by a test).
SCALE_BY_LABEL = {
    "GPU scale (CIFAR-100 pre-training)": "cifar",
    "reduced CPU scale (real data)": "cpu",
    "tiny scale (embedded synthetic data, CPU)": "tiny",
}


def page_scale(body: str) -> str:
    """The scale a chapter page shows: the first scale label in its captions ("auto" if none)."""
    found = [(body.find(label), name) for label, name in SCALE_BY_LABEL.items()
             if label in body]
    return min(found)[1] if found else "auto"


def rerun_box(pagename: str, body: str, pathto) -> str:
    """The "Rerun this chapter" box of a chapter page (HTML)."""
    nb = f"{pagename}.ipynb"
    scale = page_scale(body)
    data = "" if scale == "tiny" else "NML_DATA=/path/to/data "
    command = f"{data}.venv/bin/papermill {nb} out.ipynb -p scale {scale}"
    href = pathto(f"_sources/{nb}", 1)
    return (
        '<div class="admonition note nml-rerun">'
        '<p class="admonition-title">Rerun this chapter</p>'
        f'<p>Notebook: <a href="{html.escape(href)}" download>{html.escape(nb.split("/")[-1])}</a>'
        " (no outputs; its <code>.py</code> twin is the source). From the repository root, after"
        " <code>make setup</code>, this reproduces the page from the stored results"
        " (<code>-p compute False</code> replays only; see <em>Rerunning</em> for other"
        " parameters):</p>"
        f'<div class="highlight"><pre>{html.escape(command)}</pre></div></div>'
    )


#: A table cell that holds a number: "48.20 ± 1.25", "-0.30", "12 %", "0.500 (1 seed)",
#: "+1.20 points (95% CI -0.30 to +2.70)", "1.9x".
_NUMBER = re.compile(
    r"^[-+−–]?\d[\d,]*(\.\d+)?\s*(x|%|points?|nats?)?"
    r"(\s*±\s*\d[\d,]*(\.\d+)?\s*%?)?"
    r"(\s*\((1 seed|\d+ runs?|n = \d+|95 ?% CI [^)]*|no interval[^)]*)\))?\s*(points?)?$")
_CELL = re.compile(r"<td(\s[^>]*)?>(.*?)</td>", re.S)


def mark_table_cells(body: str) -> str:
    """Class every table cell ``nml-num`` (a number: right-aligned, kept on one line) or
    ``nml-text`` (words: left-aligned, wrapping), so numbers line up and text columns wrap."""
    def mark(m):
        attrs, content = m.group(1) or "", m.group(2)
        text = html.unescape(re.sub(r"<[^>]+>", "", content)).strip()
        cls = "nml-num" if text and _NUMBER.match(text) else "nml-text"
        if 'class="' in attrs:
            attrs = attrs.replace('class="', f'class="{cls} ', 1)
        else:
            attrs += f' class="{cls}"'
        return f"<td{attrs}>{content}</td>"
    return _CELL.sub(mark, body)


def _on_page(app, pagename, templatename, context, doctree):
    body = context.get("body", "") or ""
    if "<td" in body:
        body = context["body"] = mark_table_cells(body)
    if "nml-plotly" in body:
        app.add_js_file("plotly.min.js", priority=100)
    # Drop scripts written twice (same file, same inline body).
    files = context.get("script_files", [])
    scripts, seen = [], set()
    for script in files:
        # (file, inline body): the same script at two priorities is still one script.
        key = (getattr(script, "filename", None),
               (getattr(script, "attributes", {}) or {}).get("body"),
               None if getattr(script, "filename", None) or (getattr(script, "attributes", {}) or {}).get("body") else str(script))
        if key in seen:
            continue
        seen.add(key)
        scripts.append(script)
    files[:] = scripts  # in place: the builder's list
    if pagename.startswith("notebooks/") and body:
        box = rerun_box(pagename, body, context["pathto"])
        # After the chapter's title.
        context["body"] = re.sub(r"(</h1>)", lambda m: m.group(1) + box, body, count=1)


def setup(app):
    # Late (priority 900): after sphinx-thebe and myst-nb have added their scripts.
    app.connect("html-page-context", _on_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
