"""Fixtures for the browser test: the built book served over http, and a headless chromium.

The book must have been built first (`make book`). Outside CI a missing build or a missing
chromium skips the tests with the reason; with CI=true both are failures, because there the
browser test is the proof that the published pages draw their figures.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from book_env import HTML, SCREENSHOTS, skip_or_fail, start_chromium


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
    browser = start_chromium(tmp_path_factory.mktemp("chromium-profile"), *OFFLINE_ARGS)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
