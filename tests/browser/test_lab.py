"""Chapter 06's live λ explorer in a real JupyterLab, driven by headless chromium.

`make lab-test` (CI: after the static browser test) starts JupyterLab with `make lab` on a free
local port with a token, on a private copy of the result store, opens chapter 06 prepared by
papermill at the tiny scale, runs it, finds the λ slider, moves it one step with the keyboard
(real key events on the focused slider handle), waits until the FigureWidget's data change,
and checks the new λ's accuracies against the units the store now holds for that λ (computed
by the slider, since the store lacked them). Chromium resolves no host but 127.0.0.1, so the
widgets must come from the installed packages, not a CDN. A screenshot goes to
_build/screenshots/; the server is shut down by its process id.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from book_env import ROOT, SCREENSHOTS, skip_or_fail, start_chromium

pytestmark = pytest.mark.browser

CHAPTER = ROOT / "notebooks" / "06_nmtune.ipynb"
START_TIMEOUT_S = 120      # JupyterLab answering on its port
RUN_TIMEOUT_S = 600        # the whole chapter at the tiny scale, replayed from the store
CHANGE_TIMEOUT_S = 600     # one λ step: its NMTune units tuned (or the models trained first)

# The explorer's state in the page: its slider's readout and its figure's data.
EXPLORER_JS = """
const box = document.querySelector('.nml-lambda-explorer');
if (!box) return null;
const gd = box.querySelector('.js-plotly-plot');
const readout = box.querySelector('.widget-readout');
if (!gd || !gd.data || !gd.layout) return {ready: false};
const marker = gd.data.find(t => t.name === 'at the chosen λ');
return {
  ready: true,
  readout: readout ? readout.textContent.trim() : null,
  meta: gd.layout.meta || null,
  marker: marker ? {x: marker.x, y: marker.y, customdata: marker.customdata} : null,
  nTraces: gd.data.length,
  svgTraces: gd.querySelectorAll('.main-svg .trace').length,
};
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, poll: float = 1.0, driver=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    shot = ""
    if driver is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "06_nmtune_lab_failure.png"))
        shot = f" (screenshot: {SCREENSHOTS / '06_nmtune_lab_failure.png'})"
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{shot}")


def _server_pid(runtime_dir: Path, port: int) -> int | None:
    for info in runtime_dir.glob("jpserver-*.json"):
        data = json.loads(info.read_text())
        if data.get("port") == port:
            return int(data["pid"])
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port with a token; yields (url, token, results root, notebook)."""
    if shutil.which("make") is None:
        skip_or_fail("make is needed to start JupyterLab the way readers do (`make lab`)")
    pytest.importorskip("jupyterlab")
    papermill = pytest.importorskip("papermill")
    tmp = tmp_path_factory.mktemp("lab")
    # A private copy of the store: the slider's new units must not land in results/.
    results = tmp / "results"
    shutil.copytree(ROOT / "results", results, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    # Chapter 06 with scale = "tiny" injected (papermill's parameters cell), not executed.
    rel = Path("_build") / "lab-test" / f"06_nmtune_tiny_{secrets.token_hex(4)}.ipynb"
    (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(CHAPTER), str(ROOT / rel), parameters={"scale": "tiny"},
                               prepare_only=True, progress_bar=False)
    port, token = _free_port(), secrets.token_hex(16)
    runtime = tmp / "runtime"
    env = {**os.environ, "NML_RESULTS": str(results), "PYTHONPATH": str(ROOT),
           "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "IPYTHONDIR": str(tmp / "ipython")}
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --LabApp.expose_app_in_browser=True")
    log = open(tmp / "lab.log", "wb")
    # -o: use the environment as it is (CI has just set it up; make test did).
    make = subprocess.Popen(["make", "-o", ".venv/.nml-setup.stamp", "lab", f"LAB_ARGS={args}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers():
        if make.poll() is not None:
            pytest.fail(f"make lab exited with {make.returncode}: "
                        f"{(tmp / 'lab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False
    try:
        _wait(answers, START_TIMEOUT_S, "JupyterLab to answer")
        pid = _wait(lambda: _server_pid(runtime, port), 30, "the server's runtime file")
        yield url, token, results, rel
    finally:
        pid = _server_pid(runtime, port)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)     # the Jupyter server, by its process id
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            make.kill()
            make.wait()
        log.close()
        for leftover in (ROOT / rel).parent.glob(f"{rel.stem}*"):   # the notebook, its pair
            leftover.unlink()
        assert pid is None or not _alive(pid), f"JupyterLab (pid {pid}) is still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def offline_driver(tmp_path_factory):
    """Chromium that resolves no host name except 127.0.0.1: a CDN request cannot succeed."""
    browser = start_chromium(tmp_path_factory.mktemp("chromium-lab"),
                             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    try:
        yield browser
    finally:
        browser.quit()


def _stored_accuracy(results: Path, lam: float) -> dict:
    """{(task, noise): accuracy} of the tiny NMTune units at ``lam`` (headline test sets)."""
    from nml.chapters import ChapterParams, chapter_grids
    from nml.plots import headline_rows
    from nml.results import ResultStore

    grid = chapter_grids("06_nmtune", ChapterParams(scale="tiny"), "tiny")[1]
    index = ResultStore(results).index()
    rows = index[(index["experiment"] == "nmtune") & (index["scale"] == "tiny")
                 & (index["method"] == "nmtune") & (index["metric"] == "accuracy")
                 & np.isclose(index["lam"].astype(float), lam)
                 & index["backbone"].isin(grid.backbones) & index["task"].isin(grid.tasks)
                 & index["pretrain_seed"].isin(grid.pretrain_seeds)
                 & index["seed"].isin(grid.tune_seeds)]
    if rows.empty:
        return {}
    rows = headline_rows(rows)
    return {(t, round(float(n), 6)): float(v)
            for (t, n), v in rows.groupby(["task", "noise"])["value"].mean().items()}


def test_lambda_slider_redraws_the_figure_from_the_store(lab, offline_driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, token, results, rel = lab
    driver = offline_driver
    started = time.monotonic()
    driver.get(f"{url}/lab/tree/{rel.as_posix()}?token={token}")
    # The notebook's panel (headless chromium has no focused widget, so find it by path).
    panel_js = ("const app = window.jupyterapp; if (!app) return null;"
                "const p = Array.from(app.shell.widgets('main')).find("
                f"  w => w.context && w.context.path === {json.dumps(rel.as_posix())});")
    _wait(lambda: driver.execute_script(
        panel_js + "return !!(p && p.sessionContext.session && p.sessionContext.session.kernel);"),
        START_TIMEOUT_S, "the notebook and its kernel", driver=driver)
    # Run the whole chapter (Run > Run All Cells) once its kernel is ready.
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];" + panel_js.replace("return null", "")
        + "app.shell.activateById(p.id);"
        "p.sessionContext.ready.then(() => {"
        "  app.commands.execute('notebook:run-all-cells'); done(true); });")
    before = _wait(lambda: (lambda s: s if s and s.get("ready") and s.get("marker")
                            and s["marker"]["y"] else None)(driver.execute_script(EXPLORER_JS)),
                   RUN_TIMEOUT_S, "the live λ explorer's FigureWidget to draw", driver=driver)
    errors = driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-OutputArea-output[data-mime-type="
        "\"application/vnd.jupyter.stderr\"]')).map(e => e.textContent).filter("
        "t => /Error|Traceback/.test(t));")
    assert not errors, f"the chapter raised while running: {errors[:1]}"
    assert before["svgTraces"] > 0, "the FigureWidget drew no trace"
    lam_before = float(before["meta"]["lam"])
    assert before["readout"] == f"{lam_before:g}"
    assert lam_before == pytest.approx(0.01)
    assert not _stored_accuracy(results, 0.02), "the test store already holds λ = 0.02"

    # Move the slider one step to the right with real key events on its focused handle.
    handle = driver.find_element(By.CSS_SELECTOR, ".nml-lambda-explorer .noUi-handle")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    ActionChains(driver).click(handle).send_keys(Keys.ARROW_RIGHT).perform()
    moved = time.monotonic()
    after = _wait(lambda: (lambda s: s if s and s.get("ready") and s["meta"]
                           and float(s["meta"]["lam"]) != lam_before else None)(
        driver.execute_script(EXPLORER_JS)), CHANGE_TIMEOUT_S,
        "the FigureWidget to show another λ", driver=driver)
    change_s = time.monotonic() - moved
    lam_after = float(after["meta"]["lam"])
    assert lam_after == pytest.approx(0.02), "one step right of 0.01 is 0.02"
    assert after["readout"] == "0.02"
    assert after["meta"]["computed"] is True, "λ = 0.02 was not in the store: it must be computed"
    assert after["marker"]["y"] != before["marker"]["y"], "the marked points did not change"
    assert set(after["marker"]["x"]) == {"0.02"}

    stored = _stored_accuracy(results, lam_after)
    shown = {(t, round(float(n), 6)): float(y)
             for (t, n), y in zip(after["marker"]["customdata"], after["marker"]["y"])}
    assert shown and set(shown) == set(stored), (shown, stored)
    for key, value in shown.items():
        assert value == pytest.approx(stored[key], abs=1e-9), key
    # The new units are ordinary stored units: JSON (config, rows, provenance) + spectra.
    # decode_record: units are stored in the compact format (rows as columns + constants)
    from nml.results import decode_record
    units = [decode_record(p.read_bytes()) for p in (results / "nmtune").glob("*.json")]
    new = [u for u in units if u["config"].get("tune", {}).get("lam") == lam_after
           and u["rows"] and u["rows"][0]["scale"] == "tiny"]
    assert len(new) == len(stored), "one stored unit per (task, noise level)"
    assert all(u["provenance"]["seconds"] > 0 for u in new)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});",
                          driver.find_element(By.CSS_SELECTOR, ".nml-lambda-explorer"))
    driver.save_screenshot(str(SCREENSHOTS / "06_nmtune_lab_lambda_explorer.png"))
    print(f"\nchapter run + explorer drawn: {moved - started:.1f} s; "
          f"λ 0.01 -> 0.02 (computed, {len(new)} units): {change_s:.1f} s")
