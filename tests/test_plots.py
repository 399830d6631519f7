"""Tests for nml.plots: figure structure, error bars by hand, log axes, the λ slider, show()."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from IPython.core.interactiveshell import InteractiveShell

from nml import plots
from nml.errors import NMLError


def _rows(cells):
    """Tidy result rows from {(method, task, noise): [values over seeds]}."""
    out = []
    for (method, task, noise), values in cells.items():
        for seed, v in enumerate(values):
            out.append({"experiment": "lp", "scale": "tiny", "backbone": "resnet_micro",
                        "noise": noise, "pretrain_seed": 0, "seed": seed, "method": method,
                        "task": task, "metric": "accuracy", "value": v})
    return pd.DataFrame(out)


CELLS = {
    ("lp", "cifar10", 0.0): [0.70, 0.72, 0.74],
    ("lp", "cifar10", 0.1): [0.60, 0.66],
    ("lp", "cifar10", 0.3): [0.50],
    ("mlp", "cifar10", 0.0): [0.80, 0.80, 0.80],
    ("mlp", "cifar10", 0.1): [0.75, 0.77, 0.79],
    ("mlp", "cifar10", 0.3): [0.70, 0.71, 0.72],
}


def test_accuracy_vs_noise_one_trace_per_method_task_and_ci95_by_hand():
    df = _rows(CELLS)
    # A row of another metric must not leak into the accuracy means.
    df = pd.concat([df, df.assign(metric="sve", value=5.0)], ignore_index=True)
    fig = plots.accuracy_vs_noise(df, caption=plots.caption(
        scale="tiny", data="synthetic", model="resnet_micro", epochs=2, seeds=3))
    assert [t.name for t in fig.data] == ["LP, CIFAR-10", "MLP, CIFAR-10"]
    lp = fig.data[0]
    np.testing.assert_allclose(lp.x, [0, 10, 30])
    np.testing.assert_allclose(lp.y, [0.72, 0.63, 0.50])
    # n = 3, values 0.70 0.72 0.74: s = 0.02, t_{0.975,2} = 4.302652729911275
    # n = 2, values 0.60 0.66:      s = 0.06/sqrt(2), t_{0.975,1} = 12.706204736174698
    # n = 1: no spread, error 0
    expected = [4.302652729911275 * 0.02 / math.sqrt(3),
                12.706204736174698 * (0.06 / math.sqrt(2)) / math.sqrt(2), 0.0]
    np.testing.assert_allclose(lp.error_y.array, expected, rtol=1e-9)
    assert "n = " in lp.hovertemplate
    # The caption travels with the figure (not drawn inside it) and states the bars honestly:
    # points from 1 run get no bar, and the caption says so.
    text = plots.figure_caption(fig)
    assert not fig.layout.annotations
    assert "tiny scale" in text and "95% t-interval" in text
    assert "n = 1-3 runs per point; points from 1 run have no bar" in text


def test_accuracy_vs_noise_std_errors_and_grouping_by_task_only():
    fig = plots.accuracy_vs_noise(_rows(CELLS), error="std", group_by=("method",))
    mlp = fig.data[1]
    np.testing.assert_allclose(mlp.error_y.array, [0.0, 0.02, 0.01], atol=1e-12)


def test_chance_levels_are_drawn_once_per_class_count_and_only_where_asked():
    levels = plots.chance_levels(["cifar10c", "pacs_photo", "pacs_heldout_sketch"])
    assert levels == {"chance, 7 classes": pytest.approx(100 / 7),
                      "chance, 10 classes": pytest.approx(10.0)}
    fig = plots.accuracy_vs_noise(_rows(CELLS), chance=levels)
    assert sorted(shape.y0 for shape in fig.layout.shapes) == pytest.approx([10.0, 100 / 7])
    assert [t.name for t in fig.data][-2:] == ["chance, 7 classes", "chance, 10 classes"]
    assert not plots.accuracy_vs_noise(_rows(CELLS)).layout.shapes
    assert plots.chance_levels([]) == {}
    # in a panel grid, the lines go into the named panel only, one legend entry each
    grid = plots.noise_panels({"ID": _rows(CELLS), "OOD": _rows(CELLS), "OOD 2": _rows(CELLS)},
                              cols=3, chance={"OOD": {"chance, 7 classes": 100 / 7},
                                              "OOD 2": {"chance, 7 classes": 100 / 7}})
    assert [shape.yref for shape in grid.layout.shapes] == ["y2", "y3"]
    assert [t.name for t in grid.data].count("chance, 7 classes") == 1


def test_accuracy_vs_noise_bad_input_is_a_clear_error():
    with pytest.raises(NMLError, match="lacks column"):
        plots.accuracy_vs_noise(pd.DataFrame({"noise": [0.1], "value": [1.0]}))
    with pytest.raises(NMLError, match="no rows with metric"):
        plots.accuracy_vs_noise(_rows(CELLS), metric="f1")
    with pytest.raises(NMLError, match="error-bar kind"):
        plots.accuracy_vs_noise(_rows(CELLS), error="sem")
    with pytest.raises(NMLError, match=r"ratios in \[0, 1\)"):
        plots.accuracy_vs_noise(_rows({("lp", "c", 10.0): [0.5]}))


def test_caption_rejects_unknown_scale():
    assert plots.caption(scale="cpu", data="d", model="m", epochs=1, seeds=1) == (
        "reduced CPU scale (real data) · data: d · model: m · 1 epoch · 1 seed")
    assert plots.caption(scale="cpu", data="d", model="m", seeds="1 pre-training").endswith(
        "1 pre-training seed")
    assert plots.caption(scale="cpu", data="d", model="m", seeds="10 pre-training").endswith(
        "10 pre-training seeds")
    with pytest.raises(NMLError, match="unknown scale"):
        plots.caption(scale="huge", data="d", model="m")


def _spectrum(d, decay):
    return np.sort(np.exp(-decay * np.arange(d)) + 1e-3)[::-1]


def test_spectrum_figure_log_axes_groups_and_hover():
    spectra = {0.0: _spectrum(600, 0.01), 0.1: _spectrum(600, 0.02)}
    fig = plots.spectrum_figure(spectra)
    # two noise levels x three groups (1-20, 21-500, 501-600)
    assert len(fig.data) == 6
    assert [a.text for a in fig.layout.annotations] == [
        "top 20 (1-20)", "middle (21-500)", "rest (501-600)"]
    for axis in ("yaxis", "yaxis2", "yaxis3"):
        assert fig.layout[axis].type == "log"
    first = fig.data[0]
    assert list(first.x) == list(range(1, 21))
    np.testing.assert_allclose(first.y, spectra[0.0][:20])
    mid = fig.data[1]
    assert mid.x[0] == 21 and mid.x[-1] == 500
    rest = fig.data[2]
    assert rest.x[0] == 501 and len(rest.x) == 100
    assert "index %{x}" in first.hovertemplate and "%{y" in first.hovertemplate
    assert first.name == "noise 0%" and fig.data[3].name == "noise 10%"
    assert [t.showlegend for t in fig.data] == [True, False, False] * 2


def test_spectrum_figure_small_feature_dim_leaves_out_empty_groups():
    fig = plots.spectrum_figure({"clean": _spectrum(64, 0.1)})
    assert len(fig.data) == 2  # 1-20 and 21-64; no "rest" panel for D <= 500
    with pytest.raises(NMLError, match="negative or non-finite"):
        plots.spectrum_figure({0.0: np.array([1.0, -1.0])})


def _slider_inputs(lams=(0.0, 0.01, 0.1)):
    rows = []
    spectra = {}
    for i, lam in enumerate(lams):
        spectra[lam] = {}
        for noise in (0.0, 0.1, 0.3):
            spectra[lam][noise] = _spectrum(50, 0.05 + 0.05 * i + noise)
            for seed in range(3):
                rows.append({"lam": lam, "noise": noise, "task": "cifar10", "seed": seed,
                             "metric": "accuracy", "value": 0.7 - noise / 3 + 0.01 * i + 0.002 * seed})
    return pd.DataFrame(rows), spectra


def test_lambda_slider_steps_each_change_accuracy_and_spectrum():
    df, spectra = _slider_inputs()
    fig = plots.lambda_slider_figure(df, spectra, active=1)
    assert len(fig.data) == 1 + 3  # one accuracy trace (one task) + one spectrum per noise level
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == 3 and slider.active == 1
    assert [s.label for s in slider.steps] == ["0", "0.01", "0.1"]
    ys = []
    for step in slider.steps:
        assert step.method == "restyle"
        (data_update,) = step.args  # data only: the λ shows in the slider's current value
        assert len(data_update["y"]) == len(fig.data)
        ys.append(data_update["y"])
    for a in range(3):
        for b in range(a + 1, 3):
            # Both the accuracy curve (trace 0) and every spectrum differ between steps.
            for trace in range(len(fig.data)):
                assert not np.allclose(ys[a][trace], ys[b][trace]), (a, b, trace)
    # The figure starts at the active step.
    np.testing.assert_allclose(fig.data[0].y, ys[1][0])
    # Accuracy means by hand at λ = 0.1 (index 2): 0.7 - noise/3 + 0.02 + mean(0, .002, .004)
    np.testing.assert_allclose(ys[2][0], [0.7 + 0.02 + 0.002, 0.7 - 0.1 / 3 + 0.022,
                                          0.7 - 0.1 + 0.022])
    assert fig.layout.yaxis2.type == "log"
    # Steps' arrays are plain lists (they go into the page's JSON as they are).
    json.dumps(slider.steps[0].args[0])


def test_log_axes_label_their_ticks_with_full_values():
    # plotly writes a short log axis's minor ticks as "2", "5" (read as 2 and 5, not 200 and
    # 500); log_ticks writes every label as its value, few enough for a phone's panel.
    ticks = plots.log_ticks(20.0, 400.0)
    assert ticks["ticktext"] == ["20", "50", "100", "200"]
    assert ticks["tickvals"] == pytest.approx([20, 50, 100, 200])
    wide = plots.log_ticks(1.2, 1500.0)
    assert wide["ticktext"] == ["3", "10", "30", "100", "300", "1000"]
    assert plots.log_ticks(1e-4, 1.0)["ticktext"] == ["1e-4", "0.001", "0.01", "0.1", "1"]
    assert len(plots.log_ticks(3.0, 3.5)["tickvals"]) == 2
    assert plots.log_ticks(0.0, 1.0) == {}
    fig = plots.spectrum_figure({0.0: _spectrum(600, 0.01)})
    for axis in ("yaxis", "yaxis2", "yaxis3"):
        vals = fig.layout[axis].tickvals
        assert 2 <= len(vals) <= 9 and len(fig.layout[axis].ticktext) == len(vals)
    df, spectra = _slider_inputs()
    fig = plots.lambda_slider_figure(df, spectra)
    assert fig.layout.yaxis.title.text == "accuracy (%)"
    lo, hi = (10 ** r for r in fig.layout.yaxis2.range)
    assert all(lo <= v <= hi for v in fig.layout.yaxis2.tickvals)


def test_lambda_slider_bad_input():
    df, spectra = _slider_inputs()
    with pytest.raises(NMLError, match="no spectra"):
        plots.lambda_slider_figure(df, {0.0: spectra[0.0]})
    with pytest.raises(NMLError, match="at least two"):
        plots.lambda_slider_figure(df[df["lam"] == 0.0], spectra)
    with pytest.raises(NMLError, match="not an index"):
        plots.lambda_slider_figure(df, spectra, active=3)


def test_show_emits_a_glued_figure_and_a_numbered_captioned_figure_directive():
    from myst_nb.ext.glue import GLUE_PREFIX

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="</script><b>x"))
    fig.update_layout(title="Figure 6.2: NMTune *as* λ changes")
    plots.add_caption(fig, "reduced CPU scale · 3 seeds · error bars: 95% t-interval")
    shell = InteractiveShell.instance()
    published = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: published.append(
        (data, metadata))
    try:
        plots.show(fig, div_id="fig-test")
    finally:
        del shell.display_pub.publish
    (glued, glue_meta), (shown, _) = published
    # (1) The figure, glued under its label and hidden (prefixed mime types).
    assert glue_meta["scrapbook"] == {"name": "fig-6-2", "mime_prefix": GLUE_PREFIX}
    html = glued[GLUE_PREFIX + "text/html"]
    assert 'id="fig-test"' in html and "window.Plotly.newPlot" in html
    # No plotly.js inside the page output (the book loads one shared copy) and no CDN.
    assert len(html) < 30_000 and "cdn" not in html.lower() and "<script src" not in html
    # A "</script>" in the data must not end the script early.
    assert html.count("</script>") == 1
    assert glued[GLUE_PREFIX + "application/vnd.plotly.v1+json"]["data"][0]["type"] == "scatter"
    # The plot carries no title and no caption text inside it: both go to the caption.
    layout = glued[GLUE_PREFIX + "application/vnd.plotly.v1+json"]["layout"]
    assert "title" not in layout or not layout["title"].get("text")
    assert "nml_caption" not in json.dumps(layout)
    # (2) What a reader sees: a numbered figure directive with the caption (MyST-escaped).
    directive = shown[plots.FIGURE_MIME]
    assert directive.startswith("```{glue:figure} fig-6-2\n:name: fig-6-2\n")
    assert "**NMTune \\*as\\* λ changes.** reduced CPU scale · 3 seeds" in directive
    assert "Figure 6.2" not in directive  # the book numbers figures itself
    assert "<figcaption>" in shown["text/html"]
    assert shown["application/vnd.plotly.v1+json"]["data"][0]["type"] == "scatter"
    # The caller's figure is unchanged.
    assert fig.layout.title.text.startswith("Figure 6.2")
    with pytest.raises(NMLError, match="plotly.graph_objects.Figure"):
        plots.show({"data": []})
    with pytest.raises(NMLError, match="figure label"):
        plots.show(fig, name="6.2 bad")


def test_bars_text_never_claims_an_interval_for_single_runs():
    assert plots.bars_text("ci95", [1, 1]) == "one run per point: no error bars"
    assert plots.bars_text("ci95", [3, 3]) == (
        "error bars: 95% t-interval of the mean over seeds (n = 3 runs per point)")
    assert "points from 1 run have no bar" in plots.bars_text("std", [1, 5])


def test_human_label_is_the_one_mapping_for_legends_and_tables():
    assert plots.human_label("resnet18_cifar_narrow") == "ResNet-18 ¼ width"
    assert plots.human_label("nmtune") == "NMTune"
    assert plots.human_label("pacs_photo") == "PACS photo → other domains"
    assert plots.human_label(0.1, "noise") == "10 % noise"
    assert plots.human_label(0.25, "fraction") == "25 % of the training data"
    assert plots.human_label("something_else") == "something_else"


def test_myst_nb_plugin_draws_json_only_plotly_outputs_with_the_local_plotly_js():
    from types import SimpleNamespace

    fig = go.Figure(go.Bar(x=["a"], y=[1]), layout={"height": 300})
    content = json.loads(fig.to_json())
    json_output = SimpleNamespace(mime_type="application/vnd.plotly.v1+json", content=content)
    (node,) = plots.PlotlyMimeRenderer.handle_mime(None, json_output, False)
    # show()'s figure directive is ranked above every other representation in the HTML build.
    assert ("html", plots.FIGURE_MIME, -10) in plots.PlotlyMimeRenderer.mime_priority_overrides
    assert node["format"] == "html"
    assert "window.Plotly.newPlot" in node.astext() and "height:300px" in node.astext()
    # Other outputs and inline outputs are left to myst-nb.
    assert plots.PlotlyMimeRenderer.handle_mime(
        None, SimpleNamespace(mime_type="text/html", content="<b>x</b>"), False) is None
    assert plots.PlotlyMimeRenderer.handle_mime(None, json_output, True) is None
    # Registered for myst-nb, which finds plugins through this entry point group.
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="myst_nb.mime_renderers")}
    assert "nml.plots:PlotlyMimeRenderer" in names


# --------------------------------------------------------------------------------------------
# Chapter helpers: tables, effects of noise, multi-panel figures
# --------------------------------------------------------------------------------------------

def _tuned(cells, *, test_set="test", metric="accuracy", backbone="resnet_micro"):
    """Tidy tuning rows from {(method, task, noise): [values over tuning seeds]}."""
    out = []
    for (method, task, noise), values in cells.items():
        for seed, v in enumerate(values):
            out.append({"experiment": "lp", "scale": "tiny", "backbone": backbone,
                        "noise": noise, "pretrain_seed": 0, "seed": seed, "method": method,
                        "task": task, "test_set": test_set, "metric": metric, "value": v,
                        "key": f"{method}-{task}-{noise}-{seed}"})
    return pd.DataFrame(out)


def test_noise_effect_is_welchs_interval_as_scipy_computes_it():
    from scipy import stats

    noisy, clean = [61.0, 64.0, 66.5, 60.0], [70.0, 71.0, 75.0]
    df = _rows({("lp", "t", 0.0): clean, ("lp", "t", 0.1): noisy, ("lp", "t", 0.3): [50.0]})
    eff = plots.noise_effect(df, by=["method", "task"]).set_index("noise")
    assert list(eff.index) == [0.1, 0.3], "the baseline itself is not a row"
    ci = stats.ttest_ind(noisy, clean, equal_var=False).confidence_interval(0.95)
    row = eff.loc[0.1]
    assert row["diff"] == pytest.approx(np.mean(noisy) - np.mean(clean))
    assert (row["lo"], row["hi"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert row["err"] == pytest.approx(row["hi"] - row["diff"])
    assert (row["n"], row["n_baseline"]) == (4, 3)
    # One run at 30%: a difference, but no interval.
    assert eff.loc[0.3, "diff"] == pytest.approx(50.0 - np.mean(clean))
    assert np.isnan(eff.loc[0.3, "lo"]) and np.isnan(eff.loc[0.3, "err"])
    assert plots.format_effect(eff.loc[0.3]) == "-22.00 points (no interval: 1 run)"
    assert plots.format_effect(eff.loc[0.1]) == (
        f"{row['diff']:+.2f} points (95% CI {ci.low:+.2f} to {ci.high:+.2f})")
    # the table cell: unit and interval kind live in the caption
    assert plots.format_effect(eff.loc[0.1], compact=True) == (
        f"{row['diff']:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]")
    assert plots.format_effect(eff.loc[0.3], compact=True) == "-22.00 (1 run)"


def test_noise_effect_needs_the_clean_model():
    with pytest.raises(NMLError, match="no run at noise 0.0"):
        plots.noise_effect(_rows({("lp", "t", 0.1): [1.0, 2.0]}), by=["method"])
    with pytest.raises(NMLError, match="lacks column"):
        plots.noise_effect(_rows(CELLS), by=["fraction"])


def test_gap_bars_heights_are_the_differences_and_missing_intervals_draw_no_bar():
    df = _rows({("lp", "a", 0.0): [70.0, 72.0], ("lp", "a", 0.1): [60.0, 66.0],
                ("ft", "a", 0.0): [80.0, 80.0, 80.0], ("ft", "a", 0.1): [78.0],
                ("lp", "b", 0.0): [50.0, 52.0], ("lp", "b", 0.1): [55.0, 57.0]})
    gaps = plots.noise_effect(df, by=["method", "task"])
    fig = plots.gap_bars_figure(gaps, x="method", panel_by="task", caption="cap")
    assert len(fig.data) == 2, "one bar trace per (noise level, panel)"
    panel_a, panel_b = fig.data
    assert list(panel_a.x) == ["LP", "FT"], "methods in the book's order, readable names"
    np.testing.assert_allclose(panel_a.y, [63.0 - 71.0, 78.0 - 80.0])
    assert list(panel_a.text) == ["-8.0", "-2.0"]
    lp_err = gaps.set_index(["method", "task"]).loc[("lp", "a"), "err"]
    np.testing.assert_allclose(panel_a.error_y.array, [lp_err, 0.0])
    assert panel_a.customdata[1][0] == "no interval (1 run)"
    assert list(panel_b.x) == ["LP", "FT"] and panel_b.y[1] is None  # no FT run on task b
    assert panel_b.y[0] == pytest.approx(5.0)
    with pytest.raises(NMLError, match="lacks column"):
        plots.gap_bars_figure(gaps.rename(columns={"diff": "gap"}))


def test_mean_ci_table_cells_by_hand():
    table = plots.mean_ci_table(_rows(CELLS), "method", "noise", digits=3)
    assert list(table.columns) == ["0 % noise", "10 % noise", "30 % noise"]
    assert table.columns.name == "pre-training noise"
    assert table.index.name == "tuning method" and list(table.index) == ["LP", "MLP"]
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert table.loc["LP", "0 % noise"] == f"0.720 ± {half:.3f}"
    assert table.loc["LP", "30 % noise"] == "0.500 (1 seed)"
    assert table.loc["MLP", "0 % noise"] == "0.800 ± 0.000"
    # Fractions sort as numbers (10 %, 25 %, 100 %), not as text (10, 100, 25).
    fractions = pd.concat([_rows(CELLS).assign(fraction=f) for f in (1.0, 0.25, 0.1)])
    table = plots.mean_ci_table(fractions, "fraction", "method")
    assert list(table.index) == ["10 %", "25 %", "100 %"]
    assert table.index.name == "training data"


def test_mean_over_keeps_runs_apart_and_labels_the_average():
    df = _tuned({("lp", "synthetic_id", 0.0): [60.0, 70.0], ("lp", "cifar10", 0.0): [80.0, 90.0]})
    out = plots.mean_over(df, "task")
    assert len(out) == 2, "one row per tuning seed: the seed spread survives"
    np.testing.assert_allclose(out.sort_values("seed")["value"], [70.0, 80.0])
    assert set(out["task"]) == {"mean"} and "key" not in out.columns
    assert set(out.columns) == {"backbone", "method", "metric", "noise", "pretrain_seed",
                                "scale", "seed", "test_set", "value", "task"}
    twice = plots.mean_over(plots.mean_over(df, "seed"), "task")
    assert len(twice) == 1 and twice.loc[0, "value"] == pytest.approx(75.0)
    joined = plots.mean_over(df.assign(kind="ID"), "task", label=None)
    assert set(joined["task"]) == {"cifar10 + synthetic_id"} and set(joined["kind"]) == {"ID"}
    with pytest.raises(NMLError, match="lacks column"):
        plots.mean_over(df, "fraction")


def test_headline_rows_task_label_and_best_noise():
    df = pd.concat([_tuned({("lp", "synthetic_id", 0.0): [1.0]}),
                    _tuned({("lp", "synthetic_id", 0.0): [2.0]}, test_set="train"),
                    _tuned({("lp", "cifar10c", 0.0): [3.0]}, test_set="mean"),
                    _tuned({("lp", "cifar10c", 0.0): [4.0]}, test_set="fog@1")])
    assert sorted(plots.headline_rows(df)["value"]) == [1.0, 3.0]
    assert plots.task_label("cifar10c") == "CIFAR-10 → CIFAR-10-C (OOD)"
    assert plots.task_label("cifar100") == "CIFAR-100"  # not a downstream task: no "(?)"
    assert plots.task_label("nonexistent") == "nonexistent"
    summary = plots.summarize_over_seeds(_rows(CELLS), ["method", "noise"])
    best = plots.best_noise(summary, by=["method"]).set_index("method")
    assert best.loc["lp", "best_noise"] == 0.0 and bool(best.loc["lp", "clean_is_best"])
    assert best.loc["mlp", "best_mean"] == pytest.approx(0.8)
    shifted = summary.assign(mean=np.where(summary["noise"] == 0.1, 0.99, summary["mean"]))
    best = plots.best_noise(shifted, by=["method"]).set_index("method")
    assert best.loc["lp", "best_noise"] == 0.1 and not best.loc["lp", "clean_is_best"]
    assert best.loc["lp", "clean_mean"] == pytest.approx(0.72)
    with pytest.raises(NMLError, match="lacks column"):
        plots.best_noise(_rows(CELLS), by=["method"])


def test_collapse_corruptions_averages_each_severity_within_a_run():
    df = _tuned({("lp", "cifar10c", 0.0): [10.0, 20.0]}, test_set="fog@1")
    df = pd.concat([df, _tuned({("lp", "cifar10c", 0.0): [30.0, 40.0]}, test_set="snow@1"),
                    _tuned({("lp", "cifar10c", 0.0): [1.0, 2.0]}, test_set="fog@5"),
                    _tuned({("lp", "cifar10c", 0.0): [7.0, 8.0]}, test_set="mean")],
                   ignore_index=True)
    out = plots.collapse_corruptions(df)
    assert len(out) == 6, "two seeds x (severity 1, severity 5, mean)"
    sev1 = out[out["test_set"] == "corrupted @ 1"].sort_values("seed")
    np.testing.assert_allclose(sev1["value"], [20.0, 30.0])
    np.testing.assert_allclose(
        out[out["test_set"] == "corrupted @ 5"].sort_values("seed")["value"], [1.0, 2.0])
    np.testing.assert_allclose(out[out["test_set"] == "mean"]["value"], [7.0, 8.0])
    clean = df[df["test_set"] == "mean"]
    pd.testing.assert_frame_equal(plots.collapse_corruptions(clean), clean)


def test_metric_correlations_match_numpy_and_scipy():
    from scipy import stats

    noise = [0.0, 0.05, 0.1, 0.3]
    sve = [5.0, 4.6, 4.9, 3.0]
    acc = [70.0, 69.0, 71.0, 60.0]
    x = pd.DataFrame([{"backbone": "b", "noise": n, "seed": s, "value": v + 0.1 * s}
                      for n, v in zip(noise, sve) for s in (-1, 1)])
    y = pd.DataFrame([{"backbone": "b", "noise": n, "seed": 0, "value": v}
                      for n, v in zip(noise, acc)])
    out = plots.metric_correlations(x, y, by=["backbone"], x_name="SVE", y_name="acc")
    assert len(out) == 1 and out.loc[0, "n"] == 4 and out.loc[0, "pair"] == "SVE vs acc"
    assert out.loc[0, "pearson_r"] == pytest.approx(np.corrcoef(sve, acc)[0, 1])
    assert out.loc[0, "spearman_rho"] == pytest.approx(stats.spearmanr(sve, acc)[0])
    short = plots.metric_correlations(x[x["noise"] < 0.1], y)
    assert short.loc[0, "n"] == 2 and np.isnan(short.loc[0, "pearson_r"])


def test_noise_panels_grid_colours_and_legend_once_per_group():
    a = _rows(CELLS)
    b = _rows({k: v for k, v in CELLS.items() if k[0] == "mlp"})
    fig = plots.noise_panels({"ID": a, "OOD": b}, y_titles={"ID": "acc"}, caption="cap")
    assert [t.name for t in fig.data] == ["LP", "MLP", "MLP"]
    assert [t.showlegend for t in fig.data] == [True, True, False]
    assert fig.data[1].line.color == fig.data[2].line.color, "one colour per method throughout"
    assert fig.data[2].xaxis == "x2"
    np.testing.assert_allclose(fig.data[0].y, [0.72, 0.63, 0.50])
    assert fig.layout.yaxis.title.text == "acc"
    assert "95% t-interval" in plots.figure_caption(fig)
    # Stacked (cols=1): one shared x axis, its title on the bottom panel only.
    stacked = plots.noise_panels({"SVE": a, "accuracy": a}, group_by=["backbone"], cols=1)
    assert [t.name for t in stacked.data] == ["micro ResNet", "micro ResNet"]
    assert stacked.layout.xaxis2.title.text == "pre-training label noise (%)"
    assert not stacked.layout.xaxis.title.text
    with pytest.raises(NMLError, match="non-empty mapping"):
        plots.noise_panels([(a, "acc")])
    with pytest.raises(NMLError, match="lacks column"):
        plots.noise_panels({"p": a.drop(columns="method")})


def test_label_noise_panels_is_noise_panels_over_downstream_noise():
    df = pd.DataFrame([{"noise": g, "label_noise": eta, "pretrain_seed": 0, "seed": s,
                        "value": 80 - 50 * eta - 10 * g + s}
                       for g in (0.0, 0.1) for eta in (0.0, 0.4) for s in range(2)])
    fig = plots.label_noise_panels({"LP": df}, y_title="acc (%)")
    assert [t.name for t in fig.data] == ["pre-training noise 0 %", "pre-training noise 10 %"]
    np.testing.assert_allclose(fig.data[0].x, [0.0, 40.0])
    np.testing.assert_allclose(fig.data[1].y, [80 - 1 + 0.5, 80 - 20 - 1 + 0.5])
    assert fig.layout.xaxis.title.text == "downstream label noise η (%)"
    assert fig.layout.title.text == "acc (%) vs downstream label noise"


def test_seeds_text_and_scale_caption_state_the_runs():
    from nml.experiments import SCALES

    df = pd.concat([_tuned({("lp", "synthetic_id", 0.0): [1.0, 2.0, 3.0]}),
                    _tuned({("ft", "synthetic_id", 0.0): [1.0]})], ignore_index=True)
    assert plots.seeds_text(df) == "LP 3 seeds (1 pre-training x 3 tuning); FT 1 seed: no spread"
    assert plots.seeds_text(df[df["method"] == "lp"]) == "3 seeds (1 pre-training x 3 tuning)"
    tiny = SCALES["tiny"]
    text = plots.scale_caption(tiny, df, extra="λ = 0.01")
    assert text.startswith(plots.SCALE_LABELS["tiny"])
    assert "data: synthetic upstream set → synthetic ID (ID)" in text
    assert "model: micro ResNet" in text
    # only the methods shown: LP and FT here, not "LP / MLP / NMTune" and "LoRA / FT"
    assert f"pre-training {tiny.pretrain_epochs}, LP {tiny.tune_epochs}, FT " in text
    assert f"FT {tiny.whitebox_epochs}" in text and text.endswith("λ = 0.01")
    assert "NMTune" not in text and "LoRA" not in text
    with pytest.raises(NMLError, match="lacks column"):
        plots.scale_caption(tiny, df.drop(columns="backbone"))


def test_pick_spectra_by_field_lowest_seed_first():
    spectra = {("nmtune", "b", 0.1, 0, 1, "t", "test", 0.01): np.array([3.0]),
               ("nmtune", "b", 0.1, 0, 0, "t", "test", 0.01): np.array([2.0]),
               ("nmtune", "b", 0.0, 0, 0, "t", "test", 0.01): np.array([1.0]),
               ("lp", "b", 0.0, 0, 0, "t", "test", None): np.array([9.0])}
    out = plots.pick_spectra(spectra, by="noise", method="nmtune", lam=0.01)
    assert list(out) == [0.0, 0.1]
    assert out[0.1][0] == 2.0, "the lowest seeds win"
    with pytest.raises(NMLError, match="unknown field"):
        plots.pick_spectra(spectra, by="depth")
    with pytest.raises(NMLError, match="no spectrum matches"):
        plots.pick_spectra(spectra, by="noise", method="ft")


def test_every_public_name_is_exported():
    import inspect

    defined = {n for n, v in vars(plots).items() if not n.startswith("_")
               and (inspect.isfunction(v) or inspect.isclass(v))
               and getattr(v, "__module__", "") == "nml.plots"}
    assert defined <= set(plots.__all__)
    assert all(hasattr(plots, n) for n in plots.__all__)
    for name in defined:
        assert "Used by" in (getattr(plots, name).__doc__ or ""), name


def test_compare_variants_pairs_by_seed_and_says_not_stored():
    def rows(values, metric):
        return pd.DataFrame([{"scale": "tiny", "backbone": "resnet_micro", "noise": 0.0,
                              "pretrain_seed": 0, "seed": s, "method": "nmtune",
                              "task": "synthetic_id", "test_set": "test", "metric": metric,
                              "value": v} for s, v in enumerate(values)])
    paper = pd.concat([rows([70.0, 72.0, 74.0], "accuracy"), rows([3.0, 3.1, 3.2], "sve")])
    authors = pd.concat([rows([71.0, 74.0, 74.0], "accuracy"), rows([3.5, 3.5, 3.5], "sve"),
                         rows([2.0, 2.0, 2.0], "sve_authors")])
    table = plots.compare_variants({"paper": paper, "authors": authors},
                                   ["accuracy", "sve_authors"], reference="paper")
    acc = table[table["metric"] == "accuracy"].iloc[0]
    assert acc["paper"].startswith("72.00 ± ") and acc["paper"].endswith("(n=3)")
    assert acc["authors"].startswith("73.00 ± ")
    diff = acc["authors − paper"]          # paired differences 1, 2, 0: mean 1
    assert diff.startswith("+1.00 ± ") and not diff.endswith("*")
    spec = table[table["metric"] == "sve_authors"].iloc[0]
    assert spec["paper"] == "not stored" and spec["authors − paper"] == "not stored"
    assert spec["authors"].startswith("2.00 ± 0.00")


def test_compare_variants_keeps_tasks_apart():
    # Two OOD tasks whose differences have opposite signs: an average over the kind would
    # report ~0; each task must keep its own row and its own sign.
    def rows(task, values):
        return pd.DataFrame([{"scale": "cpu", "backbone": "b", "noise": 0.1, "pretrain_seed": p,
                              "seed": 0, "method": "nmtune", "task": task, "test_set": "mean",
                              "metric": "accuracy", "value": v} for p, v in enumerate(values)])
    paper = pd.concat([rows("cifar10c", [50.0, 51.0, 52.0]), rows("pacs_photo", [30.0, 30.0, 31.0])])
    authors = pd.concat([rows("cifar10c", [53.0, 54.0, 55.0]), rows("pacs_photo", [27.0, 27.0, 28.0])])
    table = plots.compare_variants({"paper": paper, "authors": authors}, ["accuracy"],
                                   reference="paper").set_index("task")
    assert set(table.index) == {plots.task_label("cifar10c"), plots.task_label("pacs_photo")}
    assert table.loc[plots.task_label("cifar10c"), "authors − paper"].startswith("+3.00 ± 0.00")
    assert table.loc[plots.task_label("pacs_photo"), "authors − paper"].startswith("-3.00 ± 0.00")


def test_captions_count_seeds_and_name_test_sets_in_words():
    # "1 pre-training x 3 LP" is three seeds, not one ("3 LP seed" read as a typo)
    assert plots.caption(scale="cpu", data="d", model="m",
                         seeds="1 pre-training x 3 LP").endswith("1 pre-training x 3 LP seeds")
    assert plots.caption(scale="cpu", data="d", model="m", seeds=1).endswith("· 1 seed")
    assert plots.caption(scale="cpu", data="d", model="m",
                         seeds="1 pre-training").endswith("1 pre-training seed")
    assert [plots.human_label(v, "test_set") for v in
            ("art_painting", "corrupted @ 5", "fog@3", "mean")] == [
        "art painting", "all corruptions at severity 5", "fog at severity 3", "mean over targets"]


def test_grouped_bars_wrap_long_labels_and_label_log_ticks_in_full():
    table = pd.DataFrame({"x": ["this CPU (measured)", "paper V100, vision ID (quoted)"],
                          "g": ["A", "B"], "value": [1.95, 1.03]})
    fig = plots.grouped_bar_figure(table, x="x", group="g", log_y=True,
                                   hlines={"MLP tuning = 1": 1.0})
    assert fig.layout.xaxis.tickangle == 0
    assert list(fig.layout.xaxis.ticktext) == ["this CPU<br>(measured)",
                                               "paper V100,<br>vision ID<br>(quoted)"]
    assert fig.layout.yaxis.type == "log" and "1" in fig.layout.yaxis.ticktext
    # the reference line's label sits at its line: log10(1) = 0 on a log axis, not at 10**1
    (note,) = [a for a in fig.layout.annotations if a.text == "MLP tuning = 1"]
    assert note.y == 0 and note.yref == "y"


def test_per_task_panels_are_ordered_and_titled_in_two_lines():
    assert plots.tasks_in_order(["pacs_photo", "cifar10c", "cifar10", "cifar10c"]) == [
        "cifar10", "cifar10c", "pacs_photo"]
    assert plots.task_panel_title("cifar10", "accuracy (%)") == \
        f"{plots.task_label('cifar10')}<br>accuracy (%)"
    ood = plots.task_panel_title("pacs_heldout_sketch", "LSVR")
    assert ood.endswith("<br>LSVR") and "(OOD)" not in ood


def test_retrained_text_names_each_rerun_and_its_accuracies():
    from nml.plots import retrained_text
    assert retrained_text({}, "x") == ""
    note = {"stored_test_accuracy": 59.59, "this_run_test_accuracy": 59.18}
    text = retrained_text({("resnet", 0.0, 0): note, ("resnet", 0.1, 2): {
        "stored_test_accuracy": 56.81, "this_run_test_accuracy": 56.62}}, "the points")
    assert text.startswith("**Provenance.** 2 pre-trained models were trained again")
    assert "so the points come from sibling models of one configuration." in text
    assert text.endswith("0% noise, seed 0: 59.18 % (stored 59.59 %); "
                         "10% noise, seed 2: 56.62 % (stored 56.81 %).")
    one = retrained_text({("resnet", 0.0, 0): note}, "the points")
    assert "1 pre-trained model was trained again because its checkpoint did" in one
