"""nml.live: chapter 06's λ explorer replays what the store holds and computes only the rest.

The widget in a real JupyterLab is tests/browser/test_lab.py (`make lab-test`); here the same
object without a browser, on a one-model, one-task sweep of the tiny scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nml.chapters import ChapterParams, chapter_grids, run_grid
from nml.experiments import MissingResult, Pipeline
from nml.live import LAB_COMMAND, LambdaExplorer, lambda_explorer, live_message, \
    live_unavailable
from nml.results import ResultStore


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Chapter 06's sweep grid narrowed to the clean model and the ID task; λ 0, 0.01 stored."""
    store = ResultStore(tmp_path_factory.mktemp("results"))
    grid = chapter_grids("06_nmtune", ChapterParams(scale="tiny"), "tiny")[1]
    grid = dataclasses.replace(grid, noise_levels=(0.0,), tasks=("synthetic_id",),
                               lambdas=(0.0, 0.01))
    pipe = Pipeline("tiny", store=store, progress=False)
    run_grid(pipe, grid, progress=False)
    return pipe, grid


def _n_units(store: ResultStore) -> int:
    return len(list((store.root / "nmtune").glob("*.json")))


def test_explorer_replays_stored_and_computes_missing(sweep):
    pipe, grid = sweep
    store = pipe.store
    explorer = LambdaExplorer(pipe, grid, spec_task="synthetic_id", spec_set="test", lam=0.011,
                              choices=(0.0, 0.01, 0.02))
    assert sorted(explorer.results) == [0.0, 0.01], "only the stored λ values are replayed"
    assert explorer.lam == 0.01, "the first λ is the choice nearest to lam"
    fig = explorer.figure()
    assert fig.layout.meta["lam"] == 0.01
    marker = fig.data[1]                       # one series (task, noise), then the marker
    assert marker.name == "at the chosen λ" and list(marker.x) == ["0.01"]
    stored_01 = explorer.accuracy().query("lam == 0.01")["value"].tolist()
    assert list(marker.y) == pytest.approx(stored_01)
    assert list(fig.data[0].x) == ["0", "0.01"], "the stored curve holds the stored λ values"

    before = _n_units(store)
    result = explorer.ensure(0.02, progress=False)
    assert explorer.last_computed and _n_units(store) == before + 1
    explorer.lam = 0.02
    explorer.redraw()
    assert fig.layout.meta == {"lam": 0.02, "computed": True}
    assert list(fig.data[0].x) == ["0", "0.01", "0.02"]
    # What the figure marks is what the store now holds, replayed by an ordinary pipeline.
    replay = Pipeline("tiny", store=store, replay_only=True, progress=False)
    stored = run_grid(replay, dataclasses.replace(grid, lambdas=(0.02,)), progress=False)
    acc = stored.metric("accuracy", test_set="test")["value"].tolist()
    assert list(fig.data[1].y) == pytest.approx(acc) and len(acc) == 1
    assert 0 <= acc[0] <= 100
    s = np.asarray(fig.data[2].y)              # σ at λ = 0.02, clean model
    assert s.shape == result.spectra[next(iter(result.spectra))].shape
    assert np.all(np.diff(s) <= 1e-6) and s[0] > 0, "singular values, descending"
    assert len(fig.data[3].y) == len(s), "the λ = 0 reference spectrum is drawn"

    explorer.ensure(0.02, progress=False)
    assert not explorer.last_computed and _n_units(store) == before + 1, "replayed, not redone"


def test_explorer_replay_only_says_what_is_missing(sweep):
    pipe, grid = sweep
    explorer = LambdaExplorer(pipe, grid, spec_task="synthetic_id", spec_set="test",
                              choices=(0.0, 0.01, 0.05), compute=False)
    with pytest.raises(MissingResult, match="not stored at scale 'tiny'"):
        explorer.ensure(0.05, progress=False)


def test_not_live_outside_jupyter_one_line(sweep, capsys):
    pipe, grid = sweep
    reason = live_unavailable()
    assert reason == "no Jupyter kernel is running this code"
    assert lambda_explorer(pipe, grid, notebook="notebooks/06_nmtune.ipynb",
                           spec_task="synthetic_id", spec_set="test") is None
    line = live_message(reason, "notebooks/06_nmtune.ipynb")
    assert "\n" not in line and LAB_COMMAND in line and "notebooks/06_nmtune.ipynb" in line
    assert line in capsys.readouterr().out


def test_explorer_needs_an_nmtune_sweep(sweep):
    from nml.errors import NMLError
    pipe, grid = sweep
    with pytest.raises(NMLError, match="NMTune sweep grid"):
        LambdaExplorer(pipe, dataclasses.replace(grid, methods=("lp",)), spec_task="synthetic_id",
                       spec_set="test")
