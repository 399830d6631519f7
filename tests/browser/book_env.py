"""Where the built book is, and the skip-or-fail rule, shared by conftest.py and test_book.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: The book's root (holds _toc.yml and _build/). NML_BOOK_ROOT points elsewhere, e.g. at a
#: scratch copy of the book while developing this test.
ROOT = Path(os.environ.get("NML_BOOK_ROOT") or Path(__file__).resolve().parents[2])
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine; fail in CI (CI=true), where nothing may be skipped silently."""
    if in_ci():
        pytest.fail(reason + " (CI=true: failing instead of skipping)")
    pytest.skip(reason)


#: Reader's screens: name -> (width, height, mobile), CSS px.
SCREENS = {"desktop": (1400, 900, False), "phone": (390, 844, True)}


def set_screen(driver, screen: str) -> None:
    """Emulate a reader's screen exactly (CSS px viewport; touch / mobile for the phone)."""
    width, height, mobile = SCREENS[screen]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def _find(names: list[str]) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            return path
    return None


def start_chromium(profile_dir: Path, *extra_args: str):
    """Headless Debian chromium through Debian's chromedriver, with a fresh profile.

    Skips (fails with CI=true) when selenium, chromium or chromedriver is missing.
    """
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
                f"--user-data-dir={profile_dir}", *extra_args):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Explicit driver path: selenium then never tries to download a driver.
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    browser.set_page_load_timeout(120)
    return browser
