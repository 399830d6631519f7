"""The built book in a real browser: every chapter draws its plotly figures, the λ slider moves.

Run with `make browser-test` after `make book`. Generic over the chapters that _toc.yml lists
(every `notebooks/...` entry), so a new chapter is checked as soon as it is in the table of contents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from book_env import HTML, ROOT, SCREENS, set_screen

pytestmark = pytest.mark.browser

PLOT_TIMEOUT_S = 60


def toc_pages() -> list[str]:
    """Every page (relative to _build/html) that _toc.yml lists, root first, in order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(re.sub(r"\.(ipynb|md|py)$", "", node[key]) + ".html")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]

# JavaScript run in the page: the state of every plotly figure on it.
PLOTS_STATE_JS = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
return {
  plotly: typeof window.Plotly === 'object' && typeof window.Plotly.newPlot === 'function',
  plotlyScripts: Array.from(document.querySelectorAll('script[src]'))
      .map(s => s.getAttribute('src')).filter(s => /plotly/i.test(s)),
  nmlDivs: document.querySelectorAll('.nml-plotly').length,
  notDrawn: Array.from(document.querySelectorAll('.nml-plotly'))
      .filter(d => !d.classList.contains('js-plotly-plot')).length,
  plots: plots.map(gd => ({
      id: gd.id,
      traces: gd.querySelectorAll('.main-svg .trace').length,
      nData: (gd.data || []).length,
      sliders: ((gd.layout || {}).sliders || []).length,
  })),
};
"""


def _wait_for_plots(driver, page: str) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    def drawn(d):
        state = d.execute_script(PLOTS_STATE_JS)
        ok = state["plots"] and all(p["traces"] > 0 for p in state["plots"]) \
            and state["notDrawn"] == 0
        return state if ok else False

    try:
        return WebDriverWait(driver, PLOT_TIMEOUT_S, poll_frequency=0.5).until(drawn)
    except Exception:  # a timeout: report what the page does hold
        state = driver.execute_script(PLOTS_STATE_JS)
        logs = [e["message"] for e in driver.get_log("browser")]
        pytest.fail(f"{page}: no drawn plotly figure within {PLOT_TIMEOUT_S}s; page state "
                    f"{json.dumps(state)}; console: {logs[-10:]}")


def _open(driver, book_url: str, page: str) -> None:
    if not (HTML / page).exists():
        pytest.fail(f"_toc.yml lists {page} but the build has no such page: rebuild with `make book`")
    driver.get(book_url + page)
    from selenium.webdriver.support.ui import WebDriverWait

    # The new page, fully parsed (not the previous page still unloading).
    WebDriverWait(driver, 60, poll_frequency=0.1).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && location.href === arguments[0]",
        book_url + page))


def _uncaught_errors(driver) -> list[str]:
    """Every console error of the page (no exceptions: book/_ext/nml_book.py removed the one
    Jupyter Book 1.x wrote on every page, "Identifier 'THEBE_JS_URL' has already been declared")."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


@pytest.mark.parametrize("page", PAGES)
def test_plotly_js_is_loaded_exactly_on_the_pages_that_draw_a_figure(driver, book_url, page):
    _open(driver, book_url, page)
    state = driver.execute_script(PLOTS_STATE_JS)
    if state["nmlDivs"]:
        assert state["plotly"], f"{page}: window.Plotly is missing (is book/_static/plotly.min.js there?)"
        assert len(state["plotlyScripts"]) == 1 and "_static/plotly.min.js" in state["plotlyScripts"][0], \
            f"{page}: expected one local _static/plotly.min.js, found {state['plotlyScripts']}"
    else:
        assert not state["plotlyScripts"], \
            f"{page} draws no figure but loads {state['plotlyScripts']} (4.8 MB for nothing)"
    assert not _uncaught_errors(driver), f"{page}: JavaScript errors {_uncaught_errors(driver)}"


def test_toc_lists_chapters():
    if not CHAPTERS:
        pytest.skip("_toc.yml lists no notebooks/ chapter yet: no figures to check in a browser")


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_draws_its_plotly_figures_with_the_local_plotly_js(driver, book_url, page,
                                                                   screenshot_dir):
    _open(driver, book_url, page)
    state = _wait_for_plots(driver, page)
    # plotly.js comes once, from the book's own _static folder (no CDN, no copy per figure).
    assert state["plotly"], f"{page}: window.Plotly is missing"
    assert len(state["plotlyScripts"]) == 1 and "_static/plotly.min.js" in state["plotlyScripts"][0], \
        f"{page}: expected one local _static/plotly.min.js, found {state['plotlyScripts']}"
    page_bytes = (HTML / page).stat().st_size
    assert page_bytes < 3_000_000, f"{page} is {page_bytes} bytes: is plotly.js embedded in it?"
    for plot in state["plots"]:
        assert plot["nData"] > 0 and plot["traces"] > 0, f"{page}: empty figure {plot}"
    assert not _uncaught_errors(driver), f"{page}: JavaScript errors {_uncaught_errors(driver)}"
    # Screenshots of the first two chapters (scrolled to their first figure) for human review.
    index = CHAPTERS.index(page)
    if index < 2:
        driver.execute_script(
            "document.querySelector('.js-plotly-plot').scrollIntoView({block: 'center'});")
        driver.save_screenshot(str(screenshot_dir / f"{Path(page).stem}.png"))


SLIDER_STATE_JS = """
const gd = document.getElementById(arguments[0]);
return {
  active: gd.layout.sliders[0].active,
  steps: gd.layout.sliders[0].steps.length,
  data: JSON.stringify(gd.data.map(t => [Array.from(t.x || []), Array.from(t.y || [])])),
  title: JSON.stringify(gd.layout.title),
};
"""


@pytest.mark.parametrize("screen", list(SCREENS))
@pytest.mark.parametrize("page", CHAPTERS)
def test_plotly_sliders_change_the_figure_data(driver, book_url, page, screen, screenshot_dir):
    """At a desktop's and a phone's width: click the rail as a user would; the data changes."""
    set_screen(driver, screen)
    try:
        _check_sliders(driver, book_url, page, screen, screenshot_dir)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _check_sliders(driver, book_url, page, screen, screenshot_dir):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, book_url, page)
    state = _wait_for_plots(driver, page)
    with_slider = [p["id"] for p in state["plots"] if p["sliders"] > 0]
    if not with_slider:
        pytest.skip(f"{page} has no plotly slider")
    for plot_id in with_slider:
        before = driver.execute_script(SLIDER_STATE_JS, plot_id)
        assert before["steps"] >= 2
        # As a user would: click the slider rail at the step farthest from the active one.
        rail = driver.find_element(
            "css selector", f"#{plot_id} .slider-container .slider-rail-touch-rect")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
        width = rail.size["width"]
        # Usable on a phone: the rail spans most of the screen, every step's label is shown.
        screen_width = driver.execute_script("return document.documentElement.clientWidth")
        assert width >= 0.5 * min(screen_width, 700), \
            f"{page} at {screen}: the slider rail is {width}px on a {screen_width}px screen"
        labels = driver.execute_script(
            "return document.querySelectorAll('#' + arguments[0] + ' .slider-label-group').length",
            plot_id)
        assert labels == before["steps"], \
            f"{page} at {screen}: the slider shows {labels} of its {before['steps']} step labels"
        target_right = (before["active"] or 0) < before["steps"] / 2
        offset = (width / 2 - 4) if target_right else (-width / 2 + 4)
        ActionChains(driver).move_to_element_with_offset(rail, int(offset), 0).click().perform()
        WebDriverWait(driver, 20, poll_frequency=0.25).until(
            lambda d: d.execute_script(SLIDER_STATE_JS, plot_id)["data"] != before["data"])
        after = driver.execute_script(SLIDER_STATE_JS, plot_id)
        assert after["active"] != before["active"], "the slider did not move"
        assert after["data"] != before["data"], "moving the slider did not change gd.data"
        assert not _uncaught_errors(driver), _uncaught_errors(driver)
    driver.save_screenshot(str(screenshot_dir / f"{Path(page).stem}_slider_moved_{screen}.png"))
