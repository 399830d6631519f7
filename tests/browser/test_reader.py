"""The built book as a reader sees it: offline, at a desktop's 1400x900 and a phone's 390x844.

For every page that _toc.yml lists, at both sizes, with the network blocked (conftest.py's
OFFLINE_ARGS): formulas are typeset by the book's own MathJax (no raw TeX left), no console error,
no request leaves the book, nothing overflows the page sideways (wide tables and formulas scroll
inside their own box), every figure sits in a numbered figure whose caption is body-size text
under it; the sidebar numbers the chapters, each chapter offers its notebook and the papermill
command. Every figure is linked from the chapter's text by its number; at phone width no table
is more than a few screens wide or has paragraph-tall rows; captions, legends and tables name
models, tasks and domains in words, not as code identifiers. A screenshot of every page at both
sizes goes to _build/screenshots/ for human review.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from book_env import HTML, SCREENS, set_screen
from test_book import CHAPTERS, PAGES, _open, _uncaught_errors, _wait_for_plots

pytestmark = pytest.mark.browser

#: Tallest screenshot saved (px): the scorecard is long; the top of a page shows its layout.
MAX_SHOT_PX = 12_000


def save_full_page(driver, path: Path, screen: str) -> None:
    """A screenshot of the whole page (up to MAX_SHOT_PX tall), not only the viewport.

    The viewport is made as tall as the page for the shot (and restored after): chromium's
    captureBeyondViewport drew some long pages shifted left, half the text cut off.
    """
    import time

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, _, mobile = SCREENS[screen]
    height = min(int(size["height"]), MAX_SHOT_PX)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    time.sleep(0.5)  # one layout pass at the new height
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
    finally:
        set_screen(driver, screen)


def external_requests(driver, book_url: str) -> list[str]:
    """URLs the page asked for outside the book (from chromium's performance log)."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        if not url.startswith((book_url, "data:", "blob:", "about:", "chrome")):
            out.append(url)
    return sorted(set(out))


# Waits for MathJax (the book's local copy) to finish typesetting; "none" if the page has none.
MATHJAX_DONE_JS = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !window.MathJax.startup || !window.MathJax.startup.promise) {
  done(document.querySelector('script[src*="mathjax"]') ? 'not-started' : 'none'); return;
}
window.MathJax.startup.promise.then(() => done('typeset'), e => done('error: ' + e));
"""

# Text that is still raw TeX after typesetting: \\( \\) \\[ \\] or $...$ with a backslash or ^ / _
# outside code blocks and outside MathJax's own output.
RAW_TEX_JS = r"""
const root = document.querySelector('article') || document.body;
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(n) {
  const p = n.parentElement;
  if (!p || p.closest('pre, code, script, style, mjx-container, .highlight, .nml-plotly, textarea'))
    return NodeFilter.FILTER_REJECT;
  return NodeFilter.FILTER_ACCEPT; }});
const bad = [];
const pattern = /\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\s][^$]*[\\^_][^$]*\$/;
while (walker.nextNode()) {
  const t = walker.currentNode.textContent;
  if (pattern.test(t)) bad.push(t.trim().slice(0, 120));
}
const math = Array.from(root.querySelectorAll('.math'));
return {raw: bad.slice(0, 5), math: math.length,
        untypeset: math.filter(m => !m.querySelector('mjx-container')).length};
"""

# Elements that stick out of the viewport sideways without a scrolling box around them.
OVERFLOW_JS = """
const vw = document.documentElement.clientWidth;
const scrolls = el => { const s = getComputedStyle(el);
  return ['auto', 'scroll', 'hidden'].includes(s.overflowX) && el.clientWidth <= vw; };
const out = [];
for (const el of document.querySelectorAll('article *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.right <= vw + 1) continue;
  let p = el.parentElement, boxed = false;
  while (p && p !== document.body) { if (scrolls(p)) { boxed = true; break; } p = p.parentElement; }
  if (!boxed) out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.'
      + String(el.className).slice(0, 40) + ' right=' + Math.round(r.right));
}
return {page: document.documentElement.scrollWidth, viewport: vw, offenders: out.slice(0, 8)};
"""

# Every plotly figure: in a numbered <figure> with a real caption under it, at body-text size.
CAPTIONS_JS = """
const bodySize = parseFloat(getComputedStyle(document.querySelector('article p') || document.body).fontSize);
return Array.from(document.querySelectorAll('.nml-plotly')).map(div => {
  const fig = div.closest('figure');
  const cap = fig && fig.querySelector('figcaption');
  const capBox = cap && cap.getBoundingClientRect(), divBox = div.getBoundingClientRect();
  return {id: div.id, inFigure: !!fig, figureId: fig ? fig.id : null,
          number: cap ? (cap.querySelector('.caption-number') || {}).textContent || '' : '',
          text: cap ? cap.textContent.trim() : '',
          size: cap ? parseFloat(getComputedStyle(cap.querySelector('.caption-text') || cap).fontSize) : 0,
          bodySize: bodySize, below: !!cap && capBox.top >= divBox.bottom - 1,
          fitsWidth: divBox.right <= document.documentElement.clientWidth + 1};
});
"""


def _chapter_number(page: str) -> int | None:
    match = re.match(r"notebooks/(\d+)_", page)
    return int(match.group(1)) if match else None


@pytest.fixture(params=list(SCREENS))
def screen(request, driver):
    set_screen(driver, request.param)
    yield request.param
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# Plotly annotations (panel titles) whose top lies above their figure's box: clipped by the SVG.
CLIPPED_TITLES_JS = r"""
const out = [];
document.querySelectorAll('.js-plotly-plot').forEach(gd => {
  const top = gd.getBoundingClientRect().top;
  gd.querySelectorAll('.annotation-text-g').forEach(a => {
    const r = a.getBoundingClientRect();
    if (r.height > 0 && r.top < top - 1)
      out.push(a.textContent.slice(0, 40) + ' (' + Math.round(top - r.top) + ' px above)');
  });
});
return out;
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(driver, book_url, page, screen, screenshot_dir):
    driver.get_log("performance")  # start from an empty request log
    _open(driver, book_url, page)
    problems = []
    has_figures = driver.execute_script("return document.querySelectorAll('.nml-plotly').length")
    if has_figures:
        _wait_for_plots(driver, page)
    # Formulas: typeset by the local MathJax, none left raw.
    driver.set_script_timeout(60)
    status = driver.execute_async_script(MATHJAX_DONE_JS)
    tex = driver.execute_script(RAW_TEX_JS)
    if tex["math"] and status != "typeset":
        problems.append(f"MathJax did not typeset ({status})")
    if tex["raw"] or tex["untypeset"]:
        problems.append(f"raw TeX left: {tex['raw']} ({tex['untypeset']} of {tex['math']} "
                        "formulas not typeset)")
    # Figures: numbered, captioned under the plot at body-text size.
    chapter = _chapter_number(page)
    for fig in driver.execute_script(CAPTIONS_JS):
        if not fig["inFigure"] or not fig["number"].startswith("Figure"):
            problems.append(f"figure {fig['id']} is not a numbered figure: {fig}")
            continue
        if chapter is not None and not fig["number"].startswith(f"Figure {chapter}."):
            problems.append(f"{fig['number']!r} in chapter {chapter}")
        if len(fig["text"]) < 60 or not fig["below"]:
            problems.append(f"{fig['number']}: caption missing, too short or not under the plot")
        if fig["size"] < fig["bodySize"] - 0.5:
            problems.append(f"{fig['number']}: caption {fig['size']}px < body {fig['bodySize']}px")
        if not fig["fitsWidth"]:
            problems.append(f"{fig['number']}: the plot is wider than the screen")
        text = fig["text"]
        if re.search(r"\b1 pre-training seeds\b|\(\?\)|\b1 seeds\b", text) or (
                re.search(r"(^|\D)1 seed: no spread", text) and "error bars: 95" in text
                and "no bar" not in text):
            problems.append(f"{fig['number']}: self-contradicting caption: {fig['text'][:200]}")
    # Panel titles sit inside their figure (a two-line title once lost its first line above
    # the phone layout's top margin).
    clipped = driver.execute_script(CLIPPED_TITLES_JS) if has_figures else []
    if clipped:
        problems.append(f"panel titles cut off above their figure at {screen}: {clipped[:5]}")
    # Layout: nothing sticks out sideways (tables and formulas scroll inside their own box).
    overflow = driver.execute_script(OVERFLOW_JS)
    if overflow["page"] > overflow["viewport"] + 1 or overflow["offenders"]:
        problems.append(f"horizontal overflow at {screen}: {overflow}")
    # No console error, no request off the book (the network is blocked: it would fail).
    errors = _uncaught_errors(driver)
    if errors:
        problems.append(f"console errors: {errors[:5]}")
    outside = external_requests(driver, book_url)
    if outside:
        problems.append(f"requests outside the book: {outside[:5]}")
    name = page.replace("/", "__").removesuffix(".html")
    save_full_page(driver, screenshot_dir / f"{name}__{screen}.png", screen)
    assert not problems, f"{page} at {screen}: " + "; ".join(problems)


# Every figure is linked from the text ({numref}): a figure without a link is one the reader may
# never look at, a link that lands nowhere or names another number misleads. Figures drawn in a
# loop (one per backbone or task) share a cell; a link to the first covers the cell.
FIGURE_LINKS_JS = r"""
const art = document.querySelector('article') || document.body;
const figs = Array.from(art.querySelectorAll('figure.nml-figure[id]'));
const here = location.pathname;
const refs = {}, broken = [], mislabelled = [];
for (const a of art.querySelectorAll('a[href*="#"]')) {
  if (a.closest('figure')) continue;
  const u = new URL(a.href);
  if (u.pathname !== here || !u.hash.startsWith('#fig-')) continue;
  const id = decodeURIComponent(u.hash.slice(1));
  const fig = document.getElementById(id);
  if (!fig) { broken.push(a.textContent.trim() + ' -> #' + id); continue; }
  refs[id] = (refs[id] || 0) + 1;
  const number = ((fig.querySelector('.caption-number') || {}).textContent || '').trim();
  if (number && a.textContent.trim() !== number) mislabelled.push(a.textContent.trim() + ' -> ' + number);
}
const cellOf = f => f.closest('.cell') || f.parentElement;
const referencedCells = new Set(figs.filter(f => refs[f.id]).map(cellOf));
const unreferenced = figs.filter(f => !refs[f.id] && !referencedCells.has(cellOf(f)))
  .map(f => f.id + ' (' + ((f.querySelector('.caption-number') || {}).textContent || '').trim() + ')');
return {figures: figs.length, links: Object.keys(refs).length, broken, mislabelled, unreferenced};
"""

# Tables at phone width: each fits its column or scrolls inside it, but none is so wide that a
# reader scrolls three screens sideways, and no row is a paragraph tall (Table 7.1 was 1193 px
# wide in a 358 px column, its rows 451 px tall).
TABLES_JS = r"""
const art = document.querySelector('article') || document.body;
const vh = window.innerHeight;
return Array.from(art.querySelectorAll('table')).filter(t => {
  const head = t.querySelector('thead');   // the scorecard's phone cards hide their header
  return !(head && getComputedStyle(head).display === 'none');
}).map(t => {
  const rows = Array.from(t.querySelectorAll('tr')).map(r => r.getBoundingClientRect().height);
  const cap = t.querySelector('caption');
  return {table: (cap ? cap.textContent : (t.querySelector('th,td') || {}).textContent || '').trim().slice(0, 50),
          width: t.scrollWidth, column: (t.parentElement || t).clientWidth,
          tallestRow: Math.round(Math.max(0, ...rows)), viewport: vh};
});
"""

#: Widest table at phone width, in columns; tallest table row, as a share of the viewport.
MAX_TABLE_COLUMNS, MAX_ROW_SHARE = 2.75, 0.35

#: Identifiers a reader should never meet in a caption, legend or table (nml.plots.human_label
#: names them): backbones, upstream sets, tasks and target domains as the code spells them.
RAW_IDS = re.compile(r"\b(resnet18_cifar_narrow|resnet18_cifar|vit_small_cifar|vit_narrow_cifar|"
                     r"resnet_micro|vit_micro|clip_vit_micro|synthetic_upstream|synthetic_id|"
                     r"synthetic_ood_\w+|pacs_photo|pacs_sketch|cifar10c|art_painting|"
                     r"pearson_r|spearman_rho)\b|\bcifar100 ->")

# Captions, plotly legend names and table cells of a page (not its prose or verdict lists).
LABELS_JS = """
const art = document.querySelector('article') || document.body;
const out = [];
art.querySelectorAll('figcaption, table caption, table th, table td').forEach(
    e => out.push(e.textContent));
art.querySelectorAll('.js-plotly-plot').forEach(gd => (gd.data || []).forEach(
    t => t.name && out.push(String(t.name))));
return out;
"""


@pytest.mark.parametrize("page", CHAPTERS)
def test_every_figure_is_linked_from_the_text(driver, book_url, page):
    _open(driver, book_url, page)
    links = driver.execute_script(FIGURE_LINKS_JS)
    assert links["figures"], f"{page}: no numbered figure"
    assert not links["broken"], f"{page}: links to figures that are not there: {links['broken']}"
    assert not links["mislabelled"], f"{page}: link text differs from the figure's number: " \
        f"{links['mislabelled']}"
    assert not links["unreferenced"], f"{page}: figures no sentence links to: " \
        f"{links['unreferenced']}"


@pytest.mark.parametrize("page", PAGES)
def test_tables_fit_a_phone(driver, book_url, page):
    set_screen(driver, "phone")
    try:
        _open(driver, book_url, page)
        tables = driver.execute_script(TABLES_JS)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    bad = [t for t in tables if t["width"] > MAX_TABLE_COLUMNS * t["column"]
           or t["tallestRow"] > MAX_ROW_SHARE * t["viewport"]]
    assert not bad, f"{page} at 390 px: tables too wide or with paragraph-tall rows: {bad}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_captions_legends_and_tables_use_readable_names(driver, book_url, page):
    _open(driver, book_url, page)
    if driver.execute_script("return document.querySelectorAll('.nml-plotly').length"):
        _wait_for_plots(driver, page)
    raw = sorted({m.group(0) for text in driver.execute_script(LABELS_JS)
                  for m in RAW_IDS.finditer(text)})
    assert not raw, f"{page}: code identifiers in captions, legends or tables: {raw}"


def test_sidebar_numbers_the_chapters_as_the_text_does(driver, book_url):
    _open(driver, book_url, PAGES[0])
    links = driver.execute_script("""
        return Array.from(document.querySelectorAll('.bd-sidenav a.reference.internal'))
          .map(a => [a.getAttribute('href'), a.textContent.trim()]);""")
    numbered = {href: text for href, text in links if "notebooks/" in href}
    assert numbered, f"no chapter links in the sidebar: {links}"
    for href, text in numbered.items():
        chapter = int(re.search(r"notebooks/(\d+)_", href).group(1))
        assert text.startswith(f"{chapter}. "), f"sidebar entry {text!r} for {href}: not numbered {chapter}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_offers_its_notebook_and_the_papermill_command(driver, book_url, page):
    _open(driver, book_url, page)
    box = driver.execute_script("""
        const b = document.querySelector('.nml-rerun');
        if (!b) return null;
        const a = b.querySelector('a[download]');
        return {href: a ? a.href : null, command: (b.querySelector('pre') || {}).textContent};""")
    assert box, f"{page}: no 'Rerun this chapter' box"
    stem = Path(page).stem
    assert box["href"] and box["href"].endswith(f"{stem}.ipynb"), box
    target = HTML / box["href"][len(book_url):]
    assert target.is_file(), f"{page}: the notebook link {box['href']} points at no file"
    nb = json.loads(target.read_text())
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), \
        f"{target} has no papermill parameters cell"
    assert re.search(rf"papermill notebooks/{stem}\.ipynb out\.ipynb -p scale (tiny|cpu|cifar|auto)",
                     box["command"]), box["command"]
