"""The spectrum figures: singular values by index group (:func:`spectrum_figure`) and the lambda
slider over NMTune runs (:func:`lambda_slider_figure`).

Used by chapters 03_feature_spectrum and 06_nmtune (through :mod:`nml.plots`, which re-exports
them).
"""

from __future__ import annotations

import html as _html
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .display import DEFAULT_HEIGHT
from .errors import NMLError
from .labels import (METRIC_TITLES, add_caption, check_columns, log_ticks, noise_label,
                     noise_percent, nth_color)
from .tables import bars_text, summarize_over_seeds

# --------------------------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------------------------

__all__ = ["spectrum_figure", "lambda_slider_figure"]

_GROUP_TITLES = {"top20": "top 20", "mid": "middle", "rest": "rest"}
_GROUP_OFFSETS = {"top20": 0, "mid": 20, "rest": 500}


def _as_spectrum(values, name: str) -> np.ndarray:
    s = np.asarray(values, dtype=float).ravel()
    if s.size == 0:
        raise NMLError(f"spectrum {name!r} is empty; pass the singular values of a feature matrix")
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise NMLError(f"spectrum {name!r} has negative or non-finite values; singular values are "
                       ">= 0 (compute them with nml.spectrum.singular_values)")
    return s


def spectrum_figure(spectra: Mapping, *, title: str | None = None,
                    caption: str | None = None,
                    y_title: str = "singular value σ (log scale)") -> go.Figure:
    """Singular values on a log y axis, one trace per noise level, the index groups as subplots.

    ``spectra``: ``{noise level: singular values}``, the keys noise ratios (``0.05``, shown as
    "noise 5%") or any labels, the values 1-d arrays in descending order. The groups are those of
    :func:`nml.spectrum.spectrum_groups`: indices 1-20, 21-500 and 501-D; a group that is empty for
    every spectrum (features with D <= 500) is left out. Hover shows the singular value's
    1-based index and its value. One legend entry per noise level controls all subplots. The
    subplot titles give the index ranges actually shown ("middle (21-128)" when D = 128);
    ``y_title`` names what the values are (e.g. normalised p_i rather than raw σ_i).

    Used by chapters 03_feature_spectrum and 06_nmtune.
    """
    from .spectrum import spectrum_groups

    if not isinstance(spectra, Mapping) or not spectra:
        raise NMLError("spectrum_figure takes a non-empty mapping {noise level: singular values}")
    groups = {key: spectrum_groups(_as_spectrum(s, noise_label(key))) for key, s in spectra.items()}
    names = [g for g in ("top20", "mid", "rest") if any(len(gr[g]) for gr in groups.values())]
    top = max(len(gr[g]) + _GROUP_OFFSETS[g] for gr in groups.values() for g in names
              if len(gr[g]))
    titles = []
    for g in names:
        last = max((len(gr[g]) + _GROUP_OFFSETS[g] for gr in groups.values() if len(gr[g])),
                   default=top)
        titles.append(f"{_GROUP_TITLES[g].split(' (')[0]} ({_GROUP_OFFSETS[g] + 1}-{last})")
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=titles)
    for i, (key, grouped) in enumerate(groups.items()):
        label = noise_label(key)
        for col, g in enumerate(names, start=1):
            values = np.asarray(grouped[g], dtype=float)
            index = np.arange(1, len(values) + 1) + _GROUP_OFFSETS[g]
            fig.add_trace(go.Scatter(
                x=index, y=values, name=label, legendgroup=label, showlegend=col == 1,
                mode="lines", line={"color": nth_color(i)},
                hovertemplate=f"{_html.escape(label)}<br>index %{{x}}<br>%{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
            fig.update_yaxes(type="log", row=1, col=col)
            fig.update_xaxes(title_text="singular value index", row=1, col=col)
    for col, g in enumerate(names, start=1):
        values = np.concatenate([np.asarray(gr[g], dtype=float) for gr in groups.values()])
        values = values[values > 0]
        if values.size:
            fig.update_yaxes(**log_ticks(float(values.min()), float(values.max())),
                             row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(title=title or "singular value spectrum of the features",
                      height=DEFAULT_HEIGHT, template="plotly_white")
    if caption:
        add_caption(fig, caption)
    return fig


def lambda_slider_figure(accuracy: pd.DataFrame, spectra: Mapping, *, lam_col: str = "lam",
                         metric: str | None = "accuracy", group_by: Sequence[str] = ("task",),
                         error: str = "ci95", active: int = 0, title: str | None = None,
                         caption: str | None = None) -> go.Figure:
    """A slider over precomputed NMTune weights λ that moves an accuracy curve and a spectrum.

    Left: mean metric against pre-training noise at the chosen λ, one trace per ``group_by``
    value (e.g. per task), error bars over seeds. Right: the singular values of the tuned
    features ``Z`` at the chosen λ, one trace per noise level, log y axis. Each slider step uses
    plotly's ``"update"`` method with the step's precomputed ``y`` / error arrays, so the slider
    works in the static book page with no kernel. Both axes keep one range over all steps, so
    moving the slider shows the change rather than a rescaled axis.

    ``accuracy``: tidy rows with columns ``lam_col``, ``noise``, ``value``, the ``group_by``
    columns and ``metric``. ``spectra``: ``{λ: {noise level: singular values}}`` holding every λ
    of ``accuracy``. ``active``: the index (into the sorted λ values) shown first.

    Used by chapter 06_nmtune.
    """
    # long: one figure with a slider: traces, frames and steps are built together so they stay in
    # step
    group_by = list(group_by)
    check_columns(accuracy, [lam_col, "noise", "value", *group_by]
                   + (["metric"] if metric else []), "lambda_slider_figure")
    rows = accuracy[accuracy["metric"] == metric] if metric else accuracy
    if rows.empty:
        raise NMLError(f"lambda_slider_figure: no rows with metric == {metric!r}")
    lams = sorted(float(v) for v in rows[lam_col].unique())
    if len(lams) < 2:
        raise NMLError(f"lambda_slider_figure needs at least two values of {lam_col!r}, got {lams}")
    spectra_by_lam = {float(k): v for k, v in spectra.items()}
    missing = [lam for lam in lams if lam not in spectra_by_lam]
    if missing:
        raise NMLError(f"lambda_slider_figure: no spectra for {lam_col} = {missing}; "
                       f"spectra has keys {sorted(spectra_by_lam)}")
    if not 0 <= active < len(lams):
        raise NMLError(f"active = {active} is not an index into the {len(lams)} λ values")

    summary = summarize_over_seeds(rows, [lam_col, *group_by, "noise"], error=error)
    group_keys = sorted({tuple(r) for r in summary[group_by].itertuples(index=False)})
    noise_keys = list(spectra_by_lam[lams[0]].keys())
    for lam in lams:
        if list(spectra_by_lam[lam].keys()) != noise_keys:
            raise NMLError(f"spectra at λ = {lam} have noise levels {list(spectra_by_lam[lam])}, "
                           f"but λ = {lams[0]} has {noise_keys}; give every λ the same levels")

    def acc_arrays(lam):
        out = []
        for key in group_keys:
            mask = summary[lam_col] == lam
            for col, k in zip(group_by, key):
                mask &= summary[col] == k
            part = summary[mask].sort_values("noise")
            out.append((noise_percent(part["noise"]), part["mean"].to_numpy(),
                        part["err"].to_numpy(), part["n"].to_numpy()))
        return out

    def spec_arrays(lam):
        return [_as_spectrum(spectra_by_lam[lam][k], noise_label(k)) for k in noise_keys]

    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                        subplot_titles=(f"{METRIC_TITLES.get(metric, metric or 'value')} at this λ",
                                        "spectrum of Z at this λ"))
    first_acc, first_spec = acc_arrays(lams[active]), spec_arrays(lams[active])
    for i, (key, (x, y, err, n)) in enumerate(zip(group_keys, first_acc)):
        name = " / ".join(str(k) for k in key)
        fig.add_trace(go.Scatter(
            x=x, y=y, name=name, mode="lines+markers", line={"color": nth_color(i)},
            error_y={"type": "data", "array": err, "visible": True},
            hovertemplate=f"{_html.escape(name)}<br>noise %{{x:.0f}}%<br>mean %{{y:.4g}}<extra></extra>",
        ), row=1, col=1)
    for j, (key, s) in enumerate(zip(noise_keys, first_spec)):
        label = noise_label(key)
        fig.add_trace(go.Scatter(
            x=np.arange(1, len(s) + 1), y=s, name=label, mode="lines",
            line={"color": nth_color(len(group_keys) + j), "dash": "solid"},
            hovertemplate=f"{_html.escape(label)}<br>index %{{x}}<br>σ = %{{y:.4g}}<extra></extra>",
        ), row=1, col=2)

    # One y range per panel over all λ, so a step changes the curves, not the axes.
    all_acc = [a for lam in lams for a in acc_arrays(lam)]
    lo = min(float(np.nanmin(y - e)) for _, y, e, _ in all_acc)
    hi = max(float(np.nanmax(y + e)) for _, y, e, _ in all_acc)
    pad = 0.05 * (hi - lo) if hi > lo else 0.01 * max(abs(hi), 1.0)
    all_s = np.concatenate([s for lam in lams for s in spec_arrays(lam)])
    positive = all_s[all_s > 0]
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text=METRIC_TITLES.get(metric, metric or "value"),
                     row=1, col=1)
    if positive.size:
        fig.update_yaxes(type="log", range=[math.log10(positive.min()) - 0.1,
                                            math.log10(positive.max()) + 0.1], row=1, col=2,
                         **log_ticks(float(positive.min()), float(positive.max())))
    else:
        fig.update_yaxes(type="log", row=1, col=2)
    fig.update_yaxes(title_text="singular value σ", row=1, col=2)
    fig.update_xaxes(title_text="pre-training label noise (%)", row=1, col=1)
    fig.update_xaxes(title_text="singular value index", row=1, col=2)

    base_title = title or "NMTune: accuracy and spectrum as the regularizer weight λ changes"
    steps = []
    for lam in lams:
        acc, spec = acc_arrays(lam), spec_arrays(lam)
        # Plain lists: the step's arrays go into the page's JSON as they are.
        data_update = {
            "x": [a[0].tolist() for a in acc] + [list(range(1, len(s) + 1)) for s in spec],
            "y": [a[1].tolist() for a in acc] + [s.tolist() for s in spec],
            "error_y": [{"type": "data", "array": a[2].tolist(), "visible": True} for a in acc]
                       + [{"visible": False} for _ in spec],
        }
        steps.append({"method": "restyle", "label": f"{lam:g}", "args": [data_update]})
    fig.update_layout(
        # The legend under the slider, so both panels keep the column's width.
        title=base_title, height=DEFAULT_HEIGHT + 120,
        template="plotly_white", legend={"orientation": "h", "x": 0, "y": -0.42,
                                         "yanchor": "top"}, margin={"b": 200},
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "λ = "},
                  "pad": {"t": 60}}],
    )
    if caption:
        add_caption(fig, caption + " · " + bars_text(error, summary["n"])
                    + " · the slider under the plot sets λ for both panels")
    return fig
