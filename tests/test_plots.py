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
    assert [t.name for t in fig.data] == ["lp / cifar10", "mlp / cifar10"]
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
    lines = fig.layout.annotations[0].text.split("<br>")
    assert all(len(line) <= plots.CAPTION_LINE_CHARS for line in lines)
    assert "tiny scale" in " ".join(lines) and "95% t-interval" in " ".join(lines)


def test_accuracy_vs_noise_std_errors_and_grouping_by_task_only():
    fig = plots.accuracy_vs_noise(_rows(CELLS), error="std", group_by=("method",))
    mlp = fig.data[1]
    np.testing.assert_allclose(mlp.error_y.array, [0.0, 0.02, 0.01], atol=1e-12)


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
        "top 20 (1-20)", "middle (21-500)", "rest (501-D)"]
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
        assert step.method == "update"
        data_update, layout_update = step.args[0], step.args[1]
        assert len(data_update["y"]) == len(fig.data)
        assert "λ =" in layout_update["title.text"]
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


def test_lambda_slider_bad_input():
    df, spectra = _slider_inputs()
    with pytest.raises(NMLError, match="no spectra"):
        plots.lambda_slider_figure(df, {0.0: spectra[0.0]})
    with pytest.raises(NMLError, match="at least two"):
        plots.lambda_slider_figure(df[df["lam"] == 0.0], spectra)
    with pytest.raises(NMLError, match="not an index"):
        plots.lambda_slider_figure(df, spectra, active=3)


def test_show_emits_html_for_the_book_and_plotly_json_for_jupyter():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="</script><b>x"))
    fig.update_layout(title="t")
    shell = InteractiveShell.instance()
    published = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: published.append(data)
    try:
        plots.show(fig, div_id="fig-test")
    finally:
        del shell.display_pub.publish
    (bundle,) = published
    assert set(bundle) == {"text/html", "application/vnd.plotly.v1+json", "text/plain"}
    html = bundle["text/html"]
    assert 'id="fig-test"' in html and "window.Plotly.newPlot" in html
    # No plotly.js inside the page output (the book loads one shared copy) and no CDN.
    assert len(html) < 20_000 and "cdn" not in html.lower() and "<script src" not in html
    # A "</script>" in the data must not end the script early.
    assert html.count("</script>") == 1
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["type"] == "scatter"
    with pytest.raises(NMLError, match="plotly.graph_objects.Figure"):
        plots.show({"data": []})


def test_myst_nb_plugin_draws_json_only_plotly_outputs_with_the_local_plotly_js():
    from types import SimpleNamespace

    fig = go.Figure(go.Bar(x=["a"], y=[1]), layout={"height": 300})
    content = json.loads(fig.to_json())
    json_output = SimpleNamespace(mime_type="application/vnd.plotly.v1+json", content=content)
    (node,) = plots.PlotlyMimeRenderer.handle_mime(None, json_output, False)
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
