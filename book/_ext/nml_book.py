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
    "CPU scale (real data, 3 pre-training seeds)": "cpu_seeds",
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


#: Where the scorecard's claims are shown: claim id -> (figure labels to try, in order, chapter).
#: A label exists when the chapter drew that figure at the page's scale (nml.plots.show names
#: a figure "fig-6-1" after the number typed in its title); otherwise the link goes to the
#: chapter. The scorecard itself (nml.scorecard) stays free of book paths.
CLAIM_FIGURES = {
    "T1": (("fig-1-1",), "01_noisy_pretraining"), "K1": (("fig-1-2",), "01_noisy_pretraining"),
    "C1": (("fig-2-1",), "02_linear_probe"), "C2": (("fig-2-2",), "02_linear_probe"),
    # The gap figures come after one figure per backbone: named, not numbered (04, 05).
    "C3a": (("fig-4-gaps",), "04_lora"), "C3b": (("fig-5-gaps",), "05_full_finetune"),
    "C3c": (("fig-5-gaps",), "05_full_finetune"),
    "C4": (("fig-3-4",), "03_feature_spectrum"), "C5": (("fig-3-5",), "03_feature_spectrum"),
    "C4A": (("fig-3-4",), "03_feature_spectrum"), "C5A": (("fig-3-5",), "03_feature_spectrum"),
    "K4A": (("fig-3-6",), "03_feature_spectrum"), "K5A": (("fig-3-6",), "03_feature_spectrum"),
    **{c: (("fig-6-1",), "06_nmtune") for c in ("C9a", "C9b", "C9c", "C9aA", "C9bA", "C9cA")},
    **{c: (("fig-6-1",), "06_nmtune") for c in ("C6a", "C6b", "C6c", "C6d", "C7")},
    **{c: (("fig-4-1",), "04_lora") for c in ("C8a", "C8b", "C8c")},
    **{c: (("fig-3-6",), "03_feature_spectrum") for c in ("K2", "K3", "K4", "K5")},
    **{c: (("fig-6-4", "fig-6-3"), "06_nmtune") for c in ("K6a", "K6b", "K6c", "K6d", "K7")},
    **{c: (("fig-8-2",), "08_asymmetric_noise") for c in ("A1", "A2", "A3a", "A3b", "A4")},
    "A5": (("fig-8-3",), "08_asymmetric_noise"),
    **{c: (("fig-9-1",), "09_noisy_downstream") for c in ("N1", "N2", "N3", "N4")},
    **{c: (("fig-7-1",), "07_practical_models") for c in ("P1", "P2", "P3", "P4")},
    "B1": (("fig-11-1",), "11_ablations"), "B2": (("fig-11-1",), "11_ablations"),
    "B3": (("fig-11-2",), "11_ablations"), "B4": (("fig-11-2",), "11_ablations"),
}

_CLAIM_CELL = re.compile(r"(<td[^>]*>\s*(?:<p>)?\s*)<strong>([A-Z]\d+[a-d]?A?)</strong>")


def link_claims(body: str, labels: dict, pathto) -> str:
    """Scorecard table rows: the claim id becomes a link to the chapter's figure."""
    def link(m):
        claim = m.group(2)
        if claim not in CLAIM_FIGURES:
            return m.group(0)
        candidates, chapter = CLAIM_FIGURES[claim]
        target = next((labels[c] for c in candidates if c in labels), None)
        if target:
            href = pathto(target[0]) + "#" + target[1]
            title = "the chapter's figure"
        else:
            href, title = pathto(f"notebooks/{chapter}"), "the chapter"
        return (f'{m.group(1)}<a class="reference internal nml-claim" href="{html.escape(href)}" '
                f'title="{title}"><strong>{claim}</strong></a>')
    return _CLAIM_CELL.sub(link, body)


def _on_page(app, pagename, templatename, context, doctree):
    body = context.get("body", "") or ""
    if pagename == "book/scorecard":
        labels = app.env.domaindata.get("std", {}).get("labels", {})
        body = context["body"] = link_claims(body, labels, context["pathto"])
    if "<td" in body:
        body = context["body"] = mark_table_cells(body)
    if "nml-plotly" in body:
        app.add_js_file("plotly.min.js", priority=100)
    # Drop scripts written twice (same file, same inline body).
    files = context.get("script_files", [])
    scripts, seen = [], set()
    for script in files:
        # (file, inline body): the same script at two priorities is still one script; an
        # inline script's file is None or "" depending on who added it.
        name = getattr(script, "filename", None) or None
        body_js = (getattr(script, "attributes", {}) or {}).get("body") or None
        key = (name, body_js) if (name or body_js) else str(script)
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
