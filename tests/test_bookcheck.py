"""A failed book build stays failed: the error-output scan and the Makefile's book target."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nml.bookcheck import error_outputs, main, scan_book

REPO = Path(__file__).resolve().parents[1]

# What myst-nb writes for a cell that raised (trimmed from a real chapter 09 page).
ERROR_PAGE = """<html><body><div class="cell docutils container">
<div class="cell_output docutils container">
<div class="output traceback highlight-ipythontb notranslate"><div class="highlight"><pre>
<span></span><span class="gt">-----------</span>
<span class="ne">DataError</span><span class="g g-Whitespace">   </span>Traceback (most recent call last)
<span class="ne">DataError</span>: no data folder: pass root=&lt;folder&gt; or set NML_DATA
</pre></div></div></div></div></body></html>"""
CLEAN_PAGE = """<html><body><div class="cell_output docutils container">
<div class="output text_plain highlight-myst-ansi notranslate"><pre>Traceback is a word</pre>
</div></div></body></html>"""


def test_error_output_is_found_and_named():
    found = error_outputs(ERROR_PAGE)
    assert found == ["DataError: no data folder: pass root=<folder> or set NML_DATA"]
    assert error_outputs(CLEAN_PAGE) == []


def test_scan_book_reports_each_bad_page(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "09.html").write_text(ERROR_PAGE)
    (tmp_path / "notebooks" / "02.html").write_text(CLEAN_PAGE)
    (tmp_path / "index.html").write_text(CLEAN_PAGE)
    assert scan_book(tmp_path) == ["notebooks/09.html: DataError: no data folder: pass "
                                   "root=<folder> or set NML_DATA"]
    assert main([str(tmp_path)]) == 1
    assert "notebooks/09.html" in capsys.readouterr().err
    (tmp_path / "notebooks" / "09.html").write_text(CLEAN_PAGE)
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path / "missing")]) == 2


FAKE_JUPYTER_BOOK = """#!/bin/sh
# Stands in for jupyter-book: records whether Sphinx's saved state survived, writes one page.
if [ -d _build/.doctrees ]; then echo kept >> fake.log; else echo fresh >> fake.log; fi
mkdir -p _build/.doctrees _build/html
cp fake_page.html _build/html/page.html
exit "$(cat fake_rc)"
"""


@pytest.fixture
def book_tree(tmp_path):
    """A copy of the Makefile with a fake venv whose jupyter-book we control."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for name in ("requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    (bin_dir / "jupyter-book").write_text(FAKE_JUPYTER_BOOK)
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    (tmp_path / ".venv" / ".nml-setup.stamp").write_text("")
    (tmp_path / "book" / "_static").mkdir(parents=True)
    (tmp_path / "book" / "_static" / "plotly.min.js").write_text("")
    (tmp_path / "results").mkdir()
    (tmp_path / "nml").mkdir()
    return tmp_path


def _make_book(tree: Path, page: str, rc: int = 0) -> int:
    (tree / "fake_page.html").write_text(page)
    (tree / "fake_rc").write_text(str(rc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "-o", ".venv/.nml-setup.stamp", "book"], cwd=tree, env=env,
                          capture_output=True, text=True).returncode


def test_failed_book_build_stays_failed(book_tree):
    ok = book_tree / "_build" / ".book-ok.stamp"
    # The builder exits 0 but a page holds a cell error: make book fails, leaves no stamp ...
    assert _make_book(book_tree, ERROR_PAGE) != 0 and not ok.exists()
    # ... and fails again the second time, having dropped Sphinx's state to re-read every page.
    assert _make_book(book_tree, ERROR_PAGE) != 0 and not ok.exists()
    # Fixed: success, then an incremental build keeps the saved state.
    assert _make_book(book_tree, CLEAN_PAGE) == 0 and ok.exists()
    assert _make_book(book_tree, CLEAN_PAGE) == 0 and ok.exists()
    # The builder itself fails: no stamp, and the next build starts from scratch again.
    assert _make_book(book_tree, CLEAN_PAGE, rc=1) != 0 and not ok.exists()
    assert _make_book(book_tree, CLEAN_PAGE) == 0 and ok.exists()
    assert (book_tree / "fake.log").read_text().split() == [
        "fresh", "fresh", "fresh", "kept", "kept", "fresh"]


def test_nml_error_in_a_notebook_is_one_line_and_still_fails(monkeypatch):
    """A chapter that cannot run says so in one line on its page, and the cell still fails."""
    import nbclient
    import nbformat
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import nml"),
                nbformat.v4.new_code_cell("from nml.errors import DataError\n"
                                          "raise DataError('no data folder: set NML_DATA')")]
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120).execute()
    (out,) = nb.cells[1].outputs
    assert out["output_type"] == "error" and out["ename"] == "DataError"
    assert out["traceback"] == ["DataError: no data folder: set NML_DATA"]
    # Without allow_errors (as the book build runs) the error still stops the notebook.
    nb.cells[1].outputs = []
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
