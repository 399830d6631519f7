"""Fixtures for the browser test: the built book served over http, and a headless chromium.

The book must have been built first (`make book`). Outside CI a missing build or a missing
chromium skips the tests with the reason; with CI=true both are failures, because there the
browser test is the proof that the published pages draw their figures.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from book_env import HTML, SCREENSHOTS, skip_or_fail


@pytest.fixture(scope="session")
def html_root() -> Path:
    if not (HTML / "index.html").exists():
        skip_or_fail(f"the book is not built: {HTML / 'index.html'} is missing; run `make book` first")
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def book_url(html_root: Path):
    """Base URL of the built book, served from a thread on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(html_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _find(names: list[str]) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


#: Chromium flags that cut the browser off the network, as a reader on a train: every host name
#: fails to resolve (the book is served on the IP literal 127.0.0.1, which needs no lookup), and
#: any proxy use goes to a closed port. A page that needs a CDN then visibly fails.
OFFLINE_ARGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
)


@pytest.fixture(scope="session")
def driver(tmp_path_factory):
    """Headless Debian chromium through Debian's chromedriver, with a fresh profile, offline
    (:data:`OFFLINE_ARGS`), logging the console and every network request."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = _find(["chromium", "/usr/lib/chromium/chromium", "chromium-browser"])
    chromedriver = _find(["chromedriver", "/usr/lib/chromium/chromedriver"])
    if not chromium or not chromedriver:
        skip_or_fail("chromium and chromedriver are needed for the browser test "
                     "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                *OFFLINE_ARGS):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Explicit driver path: selenium then never tries to download a driver.
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    browser.set_page_load_timeout(120)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
