"""Where the built book is, and the skip-or-fail rule, shared by conftest.py and test_book.py."""

from __future__ import annotations

import os
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
