"""The book's Sphinx extension (book/_ext/nml_book.py): table-cell classes, the rerun box."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nml import plots

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import nml_book  # noqa: E402


def test_scale_labels_match_the_captions():
    # The rerun box reads the page's scale from the caption text that nml.plots writes.
    assert {v: k for k, v in nml_book.SCALE_BY_LABEL.items()} == plots.SCALE_LABELS


@pytest.mark.parametrize("text", ["48.20 ± 1.25", "0.500 (1 seed)", "-0.03", "12 %", "1.92x",
                                  "+1.20 points (95% CI -0.30 to +2.70)"])
def test_numbers_are_right_aligned_cells(text):
    assert 'class="nml-num"' in nml_book.mark_table_cells(f"<td>{text}</td>")


@pytest.mark.parametrize("text", ["LP", "ResNet-18 ¼ width", "noise 10 % of 100 classes", ""])
def test_words_are_wrapping_cells(text):
    assert 'class="nml-text"' in nml_book.mark_table_cells(f"<td>{text}</td>")


def test_existing_classes_are_kept():
    out = nml_book.mark_table_cells('<td id="x" class="data row0" >46.66 ± 0.76</td>')
    assert out == '<td id="x" class="nml-num data row0" >46.66 ± 0.76</td>'


def test_every_scale_has_a_caption_label():
    # a scale without one fails every figure caption of a chapter that shows it
    from nml.experiments import SCALES
    assert set(plots.SCALE_LABELS) == set(SCALES)
    assert all(plots.caption(scale=name, data="d", model="m").startswith(label)
               for name, label in plots.SCALE_LABELS.items())


def test_rerun_box_names_the_notebook_and_the_scale_the_page_shows():
    body = "<h1>t</h1><p>" + plots.SCALE_LABELS["cpu"] + " · data</p>"
    box = nml_book.rerun_box("notebooks/06_nmtune", body, lambda p, _: "../" + p)
    assert 'href="../_sources/notebooks/06_nmtune.ipynb"' in box
    assert ("NML_DATA=/path/to/data .venv/bin/papermill notebooks/06_nmtune.ipynb out.ipynb "
            "-p scale cpu") in box
    tiny = nml_book.rerun_box("notebooks/01_x", plots.SCALE_LABELS["tiny"], lambda p, _: p)
    assert "NML_DATA" not in tiny and "-p scale tiny" in tiny
    assert "-p scale auto" in nml_book.rerun_box("notebooks/01_x", "no caption", lambda p, _: p)
    # the 3-seed CPU scale, on a page whose text also names the reduced one later on
    seeds = nml_book.rerun_box(
        "notebooks/02_x", plots.SCALE_LABELS["cpu_seeds"] + " · ... " + plots.SCALE_LABELS["cpu"],
        lambda p, _: p)
    assert "-p scale cpu_seeds" in seeds and "NML_DATA=" in seeds


def test_scorecard_claims_link_to_the_chapter_figure_or_the_chapter():
    from nml.scorecard import CLAIMS

    assert {c.id for c in CLAIMS} <= set(nml_book.CLAIM_FIGURES), "a claim without a link"
    body = "<tr><td><p><strong>C6d</strong> NMTune</p></td><td><strong>K1</strong> x</td></tr>"
    labels = {"fig-6-1": ("notebooks/06_nmtune", "fig-6-1", "caption")}
    out = nml_book.link_claims(body, labels, lambda doc: "../" + doc + ".html")
    assert '<a class="reference internal nml-claim" href="../notebooks/06_nmtune.html#fig-6-1"' in out
    # K1's figure is not in this build: the link goes to its chapter.
    assert 'href="../notebooks/01_noisy_pretraining.html"' in out
