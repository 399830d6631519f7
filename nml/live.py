"""The live λ explorer of chapter 06_nmtune: a slider that re-tunes NMTune and redraws in place.

In a live Jupyter session (``make lab``, then ``notebooks/06_nmtune.ipynb``), moving the slider
to a weight λ

1. replays the units of that λ from the result store, or computes the ones it lacks (with
   progress bars) through the chapter's own :class:`~nml.chapters.Grid` and
   :func:`~nml.chapters.run_grid`, which store them as ordinary units (a later run, the book
   and ``python -m nml grid`` replay them);
2. redraws one plotly ``FigureWidget`` in place: left, the accuracy of every (task, noise
   level) against λ, the stored curve with the chosen λ marked on it; right, the singular
   values of the tuned ID features ``Z`` at the chosen λ next to those at λ = 0 (MLP tuning).

The figure is a ``FigureWidget`` (plotly's anywidget: its JavaScript ships inside the plotly
package, and the widget manager comes with ``jupyterlab_widgets``), so nothing is fetched from
a CDN. Without a front end that can show widgets (the static book, papermill, a terminal),
:func:`lambda_explorer` shows one line that says how to go live and creates no widget.

Used by chapter 06_nmtune.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pandas as pd

from .chapters import Grid, GridResult, run_grid
from .errors import NMLError
from .experiments import MissingResult, Pipeline
from .vocab import PAPER_LAMBDA

__all__ = ["LAMBDA_CHOICES", "LIVE_ENV", "LAB_COMMAND", "LambdaExplorer", "live_unavailable",
           "live_message", "lambda_explorer"]

#: The λ values the live slider offers: the scale's sweep (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
#: plus the 1-2-5 steps between them and both ends. A fixed grid of round values keeps the
#: stored units comparable between sessions (a free float slider would store 0.0031622... once).
LAMBDA_CHOICES = (0.0, 0.0001, 0.0003, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05,
                  0.1, 0.2, 0.3, 0.5, 1.0)

#: ``NML_LIVE=1`` declares a live widget front end that :func:`live_unavailable` cannot see
#: (a Jupyter client that does not start its kernels through Jupyter Server).
LIVE_ENV = "NML_LIVE"

#: How a reader goes live (README.md, the chapter's note and the one-line message agree).
LAB_COMMAND = "make lab"


def live_unavailable() -> str | None:
    """Why widgets cannot be live here (one line), or None when they can.

    Live means: an IPython kernel started by Jupyter Server (JupyterLab, Notebook 7), which sets
    ``JPY_SESSION_NAME`` in the kernel's environment, with ipywidgets and anywidget installed.
    papermill and the book build (nbclient) start kernels without a front end, so widgets there
    would only leave dead views (and CDN script tags) in the saved notebook.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return "IPython is not installed"
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return "no Jupyter kernel is running this code"
    try:
        import anywidget  # noqa: F401 - plotly's FigureWidget needs it
        import ipywidgets  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install -r requirements.txt)"
    if os.environ.get(LIVE_ENV) == "1" or os.environ.get("JPY_SESSION_NAME"):
        return None
    return "no widget front end (a static page, papermill or a book build runs this cell)"


def _label(lam: float) -> str:
    return f"{lam:g}"


class LambdaExplorer:
    """The slider, the status line, the progress area and the ``FigureWidget`` of chapter 06.

    ``pipe``: the chapter's pipeline (its scale, store, data root and device are reused);
    ``sweep_grid``: the chapter's λ-sweep :class:`~nml.chapters.Grid` (its models, tasks and
    seeds; only ``lambdas`` changes); ``spec_task`` / ``spec_set``: whose tuned features the
    spectrum panel shows; ``lam``: the λ shown first (the nearest stored one); ``compute``:
    False replays stored units only (a λ the store lacks then says so instead of computing).
    """

    def __init__(self, pipe: Pipeline, sweep_grid: Grid, *, spec_task: str, spec_set: str,
                 lam: float = PAPER_LAMBDA, choices=LAMBDA_CHOICES, compute: bool = True,
                 title: str = "NMTune at the chosen λ (live)", caption: str | None = None):
        if sweep_grid.methods != ("nmtune",):
            raise NMLError(f"LambdaExplorer needs an NMTune sweep grid, got methods "
                           f"{sweep_grid.methods}")
        self.choices = tuple(sorted({float(v) for v in choices}))
        if len(self.choices) < 2:
            raise NMLError(f"LambdaExplorer needs at least two λ choices, got {self.choices}")
        self.grid = sweep_grid
        self.spec_task, self.spec_set = spec_task, spec_set
        self.title, self.caption = title, caption
        common = dict(store=pipe.store, data_root=pipe.data_root, device=str(pipe.device))
        # Two views of one store: the replay-only one answers "is this λ stored?".
        self._replay = Pipeline(pipe.scale, progress=False, replay_only=True, **common)
        self._compute = Pipeline(pipe.scale, progress=True, replay_only=not compute, **common)
        self.results: dict[float, GridResult] = {}
        for value in self.choices:
            self._try_replay(value)
        if not self.results:
            raise NMLError(f"none of the λ values {self.choices} is stored at scale "
                           f"{pipe.scale.name!r}; run the chapter first (it stores its sweep)")
        self.lam = min(self.results, key=lambda v: abs(v - lam))
        self.last_seconds: float | None = None
        self.last_computed = False

    # -- data ---------------------------------------------------------------------------------
    def _grid_at(self, lam: float) -> Grid:
        return dataclasses.replace(self.grid, lambdas=(float(lam),))

    def _try_replay(self, lam: float) -> GridResult | None:
        try:
            self.results[lam] = run_grid(self._replay, self._grid_at(lam), progress=False)
        except MissingResult:
            return None
        return self.results[lam]

    def ensure(self, lam: float, *, progress: bool = True) -> GridResult:
        """Every unit at ``lam``: replayed, or the missing ones computed and stored."""
        start = time.perf_counter()
        result = self._try_replay(lam)
        self.last_computed = result is None
        if result is None:
            result = run_grid(self._compute, self._grid_at(lam), progress=progress)
            self.results[lam] = result
        self.last_seconds = time.perf_counter() - start
        return result

    def accuracy(self) -> pd.DataFrame:
        """Mean accuracy per (task, noise, λ) over the stored λ values (tuning seeds averaged)."""
        from .plots import headline_rows
        frames = [headline_rows(r.rows) for r in self.results.values()]
        rows = pd.concat(frames, ignore_index=True)
        rows = rows[rows["metric"] == "accuracy"]
        return rows.groupby(["task", "noise", "lam"], as_index=False)["value"].mean()

    def spectra(self, lam: float) -> dict:
        """``{noise: singular values}`` of the tuned ``spec_task`` features at ``lam``."""
        from .plots import pick_spectra
        return pick_spectra(self.results[lam].spectra, by="noise", method="nmtune",
                            task=self.spec_task, test_set=self.spec_set, lam=float(lam))

    # -- figure ---------------------------------------------------------------------------------
    def series(self) -> list[tuple[str, float]]:
        acc = self.accuracy()
        return sorted({(t, float(n)) for t, n in zip(acc["task"], acc["noise"])})

    def figure(self):
        """The ``FigureWidget`` (traces filled by :meth:`redraw`)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from .plots import add_caption, palette_color, task_label

        fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], subplot_titles=(
            "accuracy (%) against the NMTune weight λ",
            f"σ of Z ({self.spec_task} / {self.spec_set})"))
        for i, (task, noise) in enumerate(self.series()):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers",
                                     name=f"{task_label(task)}, {noise:.0%} noise",
                                     line={"color": palette_color(i)}), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="at the chosen λ",
                                 marker={"size": 14, "symbol": "circle-open",
                                         "line": {"width": 3}, "color": "black"}),
                      row=1, col=1)
        noises = sorted({n for _, n in self.series()})
        for j, noise in enumerate(noises):
            color = palette_color(len(self.series()) + j)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line={"color": color},
                                     name=f"σ at the chosen λ, {noise:.0%} noise"), row=1, col=2)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines",
                                     line={"color": color, "dash": "dot"},
                                     name=f"σ at λ = 0 (MLP tuning), {noise:.0%} noise"),
                          row=1, col=2)
        labels = [_label(v) for v in self.choices]
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                         range=[-0.5, len(labels) - 0.5], row=1, col=1)
        fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
        fig.update_xaxes(title_text="index of the singular value", row=1, col=2)
        fig.update_yaxes(type="log", title_text="singular value σ", row=1, col=2)
        # The legend at the foot of the figure, under the caption (add_caption's 60 px shift).
        fig.update_layout(height=660, margin={"b": 230},
                          legend={"font": {"size": 10}, "orientation": "h", "yref": "container",
                                  "y": 0.01, "yanchor": "bottom"})
        if self.caption:
            add_caption(fig, self.caption)
        self.fig = go.FigureWidget(fig)
        self.redraw()
        return self.fig

    def redraw(self) -> None:
        """Put the stored curve, the chosen λ and its spectra into the figure, in place."""
        acc = self.accuracy()
        series = self.series()
        at = acc[np.isclose(acc["lam"], self.lam)]
        zero = self.spectra(0.0) if 0.0 in self.results else {}
        spectra = self.spectra(self.lam)
        with self.fig.batch_update():
            for trace, (task, noise) in zip(self.fig.data, series):
                part = acc[(acc["task"] == task) & np.isclose(acc["noise"], noise)] \
                    .sort_values("lam")
                trace.x = [_label(v) for v in part["lam"]]
                trace.y = part["value"].tolist()
            marker = self.fig.data[len(series)]
            points = [(t, n, at[(at["task"] == t) & np.isclose(at["noise"], n)]["value"])
                      for t, n in series]
            points = [(t, n, float(v.iloc[0])) for t, n, v in points if len(v)]
            marker.x = [_label(self.lam)] * len(points)
            marker.y = [v for _, _, v in points]
            marker.customdata = [[t, n] for t, n, _ in points]
            marker.hovertemplate = "%{customdata[0]}, noise %{customdata[1]}<br>λ = %{x}: " \
                                   "%{y:.2f}%<extra></extra>"
            spec_traces = self.fig.data[len(series) + 1:]
            noises = sorted({n for _, n in series})
            for k, noise in enumerate(noises):
                s = _near(spectra, noise)
                z = _near(zero, noise)
                spec_traces[2 * k].x = [] if s is None else list(range(1, len(s) + 1))
                spec_traces[2 * k].y = [] if s is None else np.asarray(s, float).tolist()
                spec_traces[2 * k + 1].x = [] if z is None else list(range(1, len(z) + 1))
                spec_traces[2 * k + 1].y = [] if z is None else np.asarray(z, float).tolist()
            self.fig.layout.title = {"text": f"{self.title}: λ = {_label(self.lam)}"}
            # For tests and scripts: which λ the figure shows, and the points it marks.
            self.fig.layout.meta = {"lam": self.lam, "computed": self.last_computed}

    # -- widgets --------------------------------------------------------------------------------
    def widget(self):
        """The slider above a status line, a progress area and the figure (a VBox)."""
        import ipywidgets as widgets

        self.slider = widgets.SelectionSlider(
            options=[(_label(v), v) for v in self.choices], value=self.lam, description="λ",
            continuous_update=False, layout={"width": "640px"})
        self.status = widgets.HTML(value=self._status_text())
        self.log = widgets.Output()
        fig = self.figure()
        self.slider.observe(self._on_change, names="value")
        box = widgets.VBox([self.slider, self.status, self.log, fig])
        box.add_class("nml-lambda-explorer")
        return box

    def _status_text(self) -> str:
        stored = sum(1 for v in self.choices if v in self.results)
        return (f"λ = {_label(self.lam)}; {stored} of {len(self.choices)} slider values are "
                f"stored at scale {self._compute.scale.name!r} (the others are computed and "
                f"stored when chosen).")

    def _on_change(self, change) -> None:
        lam = float(change["new"])
        if self._try_replay(lam) is None:
            g = self.grid
            units = (len(g.backbones) * len(g.noise_levels) * len(g.pretrain_seeds)
                     * len(g.tasks) * len(g.tune_seeds))
            self.status.value = (f"λ = {_label(lam)} is not stored: computing its {units} NMTune "
                                 f"units at scale {self._compute.scale.name!r} (progress "
                                 f"below)…")
        with self.log:
            try:
                self.ensure(lam)
            except (NMLError, MissingResult) as err:
                self.log.clear_output()
                self.status.value = f"λ = {_label(lam)}: not shown: {err}"
                return
            except Exception:
                # Anything else is a bug: its traceback stays in the output area below.
                self.status.value = f"λ = {_label(lam)}: failed (traceback below)"
                raise
        self.log.clear_output()
        self.lam = lam
        self.redraw()
        verb = "computed the missing units and stored them" if self.last_computed \
            else "replayed from the store"
        self.status.value = f"{self._status_text()} Last change: {verb} in " \
                            f"{self.last_seconds:.1f} s."


def _near(spectra: dict, noise: float):
    for key, value in spectra.items():
        if np.isclose(float(key), noise):
            return value
    return None


def live_message(reason: str, notebook: str) -> str:
    """The one line a live cell shows where it cannot be live: why, and how to go live."""
    return (f"Live λ explorer not started: {reason}. To go live, run `{LAB_COMMAND}` in the "
            f"repository and run {notebook} there.")


def lambda_explorer(pipe: Pipeline, sweep_grid: Grid, *, notebook: str, **kwargs):
    """Display chapter 06's live λ explorer, or one line saying how to go live.

    ``notebook``: the chapter's path in the repository (named in the one-line message).
    Returns the :class:`LambdaExplorer`, or None when widgets cannot be live here.
    """
    from IPython.display import display

    reason = live_unavailable()
    if reason is not None:
        line = live_message(reason, notebook)
        display({"text/markdown": f"*{line}*", "text/plain": line}, raw=True)
        return None
    explorer = LambdaExplorer(pipe, sweep_grid, **kwargs)
    display(explorer.widget())
    return explorer
