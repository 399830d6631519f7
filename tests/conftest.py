"""Test-wide settings: a fresh cache folder, so no test passes thanks to a user's warm cache.

``nml`` keeps decoded datasets, cached features and pre-training checkpoints under
``$NML_CACHE``. A test that found a finished checkpoint there would skip the very training it
checks, so the whole session gets its own empty cache (set ``NML_TEST_CACHE`` to reuse one
between runs while developing).
"""

import os
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache():
    reuse = os.environ.get("NML_TEST_CACHE")
    if reuse:
        os.environ["NML_CACHE"] = reuse
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nml-test-cache-") as folder:
        previous = os.environ.get("NML_CACHE")
        os.environ["NML_CACHE"] = folder
        yield
        if previous is None:
            os.environ.pop("NML_CACHE", None)
        else:
            os.environ["NML_CACHE"] = previous
