"""Every chapter is a jupytext pair: notebooks/NN_name.py (the source) + NN_name.ipynb (what runs).

Fails when the two drift apart (edit the .py, then `jupytext --sync notebooks/NN_name.py`), when
the .ipynb carries outputs (it is committed clean; the book and papermill produce outputs), when a
notebook lacks the papermill `parameters` cell or a kernel, or when _toc.yml does not list it.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between the pair: each cell's type, source and tags."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ())))
            for c in nb.cells]


def _toc_files() -> set[str]:
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                found.add(node["file"].removesuffix(".ipynb"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return found


def test_there_are_chapter_notebooks_or_a_clear_skip():
    if not SOURCES and not IPYNBS:
        pytest.skip("no notebooks/NN_*.py chapters yet")


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.name)
def test_every_ipynb_has_its_py_source(ipynb: Path):
    assert ipynb.with_suffix(".py").exists(), (
        f"{ipynb.name} has no paired {ipynb.stem}.py: the percent-format .py is the reviewed "
        f"source; create it with `jupytext --to py:percent {ipynb.relative_to(ROOT)}`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_pair_is_in_sync_clean_and_parameterised(source: Path):
    ipynb = source.with_suffix(".ipynb")
    sync = f"run `jupytext --sync {source.relative_to(ROOT)}`"
    assert ipynb.exists(), f"{source.name} has no paired {ipynb.name}; {sync}"

    from_py = jupytext.read(source)
    from_ipynb = jupytext.read(ipynb)
    py_cells, nb_cells = _cells(from_py), _cells(from_ipynb)
    if py_cells != nb_cells:
        first = next((i for i, (a, b) in enumerate(zip(py_cells, nb_cells)) if a != b),
                     min(len(py_cells), len(nb_cells)))
        pytest.fail(f"{source.name} and {ipynb.name} differ (cells: {len(py_cells)} vs "
                    f"{len(nb_cells)}, first difference at cell {first}); {sync}")

    for i, cell in enumerate(from_ipynb.cells):
        if cell.cell_type == "code":
            assert not cell.get("outputs"), (
                f"{ipynb.name} cell {i} has outputs: commit notebooks without outputs "
                f"(`jupytext --sync` rewrites it clean, or clear outputs before saving)")
            assert cell.get("execution_count") is None, f"{ipynb.name} cell {i} has an execution count"

    tagged = [c for c in from_ipynb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", (
        f"{ipynb.name} needs exactly one code cell tagged `parameters` (papermill's -p values "
        f"replace it); in the .py: `# %% tags=[\"parameters\"]`")

    kernel = from_ipynb.metadata.get("kernelspec", {}).get("name")
    assert kernel, (f"{ipynb.name} has no kernelspec (papermill and the book build need one); "
                    f"run `jupytext --set-kernel python3 {source.relative_to(ROOT)}`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_chapter_is_listed_in_the_toc(source: Path):
    entry = f"notebooks/{source.stem}"
    assert entry in _toc_files(), (
        f"_toc.yml does not list {entry}: add `- file: {entry}` under the Chapters part, "
        "or the book never shows it")
