# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Noisy pre-training meets noisy downstream labels (Section 7.4)
#
# Noisy *model* learning (the pre-training data were noisy) and noisy *label* learning (the
# downstream data are noisy) can happen together. The paper's Section 7.4 (journal version;
# ICLR Appendix B.5) takes the ResNet-50 models pre-trained with noise
# γ ∈ {0, 5, 10, 20, 30}% and tunes them on CIFAR-10 and CIFAR-100 whose training labels were
# flipped uniformly at random at η ∈ {0, 10, 20, 30, 40, 50}%, with LP and black-box NMTune. Its
# findings (Figs. 9, 15 and 16):
#
# > (LP) "the 5% and 10% noisy pre-trained models usually outperform the clean pre-trained model
# > on downstream tasks, even the tasks contain different levels of downstream noise."
# >
# > (NMTune) "the clean pre-trained models now produce superior performance compared to noisy
# > pre-trained models. It also improves the general performance when the noise ratio in
# > downstream tasks is light, e.g., smaller than 40%. When the noise ratio in downstream tasks
# > further increases, the performance of NMTune falls short of LP [...] even with a slightly
# > worse performance than LP, the performance of clean pre-trained mode still stays the best
# > with NMTune."
#
# **This chapter** repeats the study at this book's scale: for each pre-training noise level of
# the scale, LP and NMTune on the scale's ID task(s), with symmetric label noise η in the
# downstream *training* set (`TuneConfig.label_noise`, drawn by `nml.noise.symmetric_noise`,
# another draw per tuning seed); the test labels stay clean. One convolutional backbone (the
# scale's first; the paper's study uses ResNet-50). Results are stored under the experiment name
# `noisy_downstream` (`results/index.csv`).

# %% tags=["parameters", "hide-input"]
# auto: the best scale whose results are all stored (cifar, then cpu_seeds, then cpu); otherwise
# the tiny scale, computed on the spot on any CPU. Or name one: "tiny", "cpu", "cpu_seeds",
# "cifar".
scale = "auto"
# One more pre-training noise ratio γ to include (a fraction in [0, 1)); it joins the scale's
# own levels (0, 10, 30 % at the tiny and cpu scales; 0, 5, 10, 20, 30 % at the cifar scale).
noise = 0.1
# NMTune weight λ (paper: 0.01 for every experiment).
lam = 0.01
# None: the scale's first (convolutional) backbone; or one name, e.g. "resnet18_cifar".
backbone = None
# None: the scale's ID task(s); or one task name, e.g. "cifar10".
task = None
# Compute units missing from the result store (False: replay stored results only).
compute = True
# Folder with the dataset tarballs; None: $NML_DATA (the tiny scale needs no data).
data_root = None
# "cpu" or "cuda"; None: cuda when a GPU is visible.
device = None

# %% tags=["remove-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from nml import plots
from nml.chapters import DOWNSTREAM_NOISE_LEVELS, ChapterParams, run_chapter

params = ChapterParams.from_dict(scale=scale, noise=noise, lam=lam, backbone=backbone,
                                 task=task, compute=compute, data_root=data_root, device=device)
pipe, results = run_chapter("09_noisy_downstream", params, progress=False)
rows = pd.concat([r.rows for r in results], ignore_index=True)
acc = plots.headline_rows(rows[rows["metric"] == "accuracy"])
tasks = sorted(acc["task"].unique())
levels = sorted(acc["noise"].unique())
n_pre, n_tune = acc["pretrain_seed"].nunique(), acc["seed"].nunique()
display(Markdown(
    f"**Scale:** {results[0].description}"
    f"{' (the fallback of scale=auto: no better scale is fully stored)' if results[0].scale == 'tiny' else ''}. "
    f"Backbone {', '.join(plots.human_label(b) for b in acc['backbone'].unique())} pre-trained "
    f"on {plots.human_label(pipe.scale.upstream)} at γ = {', '.join(f'{v * 100:g}%' for v in levels)} "
    f"({pipe.scale.pretrain_epochs} epochs, {n_pre} pre-training seed{'s' if n_pre > 1 else ''}); "
    f"LP and NMTune (λ = {params.lam:g}, {pipe.scale.tune_epochs} epochs, {n_tune} tuning seeds) "
    f"on {', '.join(plots.task_label(t) for t in tasks)} with downstream label noise "
    f"η = {', '.join(f'{v * 100:g}%' for v in DOWNSTREAM_NOISE_LEVELS)}."))

# %% [markdown]
# ## The downstream noise
#
# The training labels of the task are flipped uniformly to other classes, as in the paper, with
# `nml.noise.symmetric_noise` (cleanlab, rounded to whole flips: see chapter 1); each tuning seed
# draws its own noisy labels. Each run stored the share of its training labels that its draw
# really flipped (metric `train_noise_rate`); the table shows them, mean and range over the
# stored runs (the draw depends on the tuning seed, not on the pre-trained model). At η = 0 no
# label is flipped.

# %% tags=["hide-input"]
rates = rows[rows["metric"] == "train_noise_rate"]
realised = {}
for t in tasks:
    cells = []
    for eta in DOWNSTREAM_NOISE_LEVELS:
        v = rates[(rates["task"] == t) & np.isclose(rates["label_noise"], eta)]["value"]
        cells.append("0" if eta == 0 else "not stored" if v.empty else
                     f"{v.mean():.4f} ({v.min():.4f} to {v.max():.4f}, {len(v)} runs)")
    realised[t] = cells
display(pd.DataFrame({plots.task_label(t): v for t, v in realised.items()}, index=[f"η = {eta * 100:g}%" for eta in DOWNSTREAM_NOISE_LEVELS])
        .style.set_caption("Table 9.1: realised fraction of flipped downstream training labels "
                           "(mean, range and number of stored runs)"))

# %% [markdown]
# ## Accuracy against downstream noise (the paper's Figs. 15 and 16)
#
# One panel per tuning method (and task), one line per pre-training noise level γ. The paper's
# question is the *order of the lines*: under LP the slightly noisy models lie above the clean
# one at every η; under NMTune the clean model lies on top ({numref}`fig-9-1` for the first
# task).

# %% tags=["hide-input"]
fig_no = 0
for t in tasks:
    fig_no += 1
    part = acc[acc["task"] == t]
    fig = plots.label_noise_panels(
        {f"{plots.METHOD_LABELS[m]} on {plots.task_label(t)}": part[part["method"] == m]
         for m in ("lp", "nmtune")},
        title=f"Figure 9.{fig_no}: test accuracy vs downstream label noise, "
              f"{plots.task_label(t)}",
        caption=plots.scale_caption(pipe.scale, part, extra=f"NMTune λ = {params.lam:g} · "
                                    "clean test labels"))
    fig.update_yaxes(showticklabels=True)  # each panel its own numbers: a phone stacks them
    plots.show(fig)

# %% [markdown]
# The same runs with the pre-training noise on the x axis, one panel per η
# ({numref}`fig-9-by-eta` for the first task): within a panel, LP and NMTune on the same models.

# %% tags=["hide-input"]
for i, t in enumerate(tasks):
    fig_no += 1
    part = acc[acc["task"] == t]
    fig = plots.noise_panels(
        {f"η = {eta * 100:g}%": part[np.isclose(part["label_noise"], eta)]
         for eta in DOWNSTREAM_NOISE_LEVELS},
        cols=3, panel_height=300,
        title=f"Figure 9.{fig_no}: LP vs NMTune against pre-training noise, per downstream "
              f"noise η, {plots.task_label(t)}",
        y_titles={f"η = {eta * 100:g}%": "accuracy (%)" for eta in DOWNSTREAM_NOISE_LEVELS[::3]},
        caption=plots.scale_caption(pipe.scale, part, extra=f"NMTune λ = {params.lam:g}"))
    # a label that does not depend on how many tasks the scale has (the text links to it)
    plots.show(fig, name="fig-9-by-eta" if i == 0 else f"fig-9-by-eta-{i + 1}")

# %% [markdown]
# ## The numbers
#
# Test accuracy (%), mean ± 95% t-interval over seeds, per downstream noise η (rows) and method
# and pre-training noise γ (columns).

# %% tags=["hide-input"]
for i, t in enumerate(tasks, start=1):
    part = acc[acc["task"] == t].copy()
    part["η"] = [f"η = {v * 100:g}%" for v in part["label_noise"]]
    part["method"] = part["method"].map(plots.METHOD_LABELS)
    table = plots.mean_ci_table(part, ["η"], ["method", "noise"])
    display(table.style.set_caption(f"Table 9.{i + 1}: {t} test accuracy (%); "
                                    f"{results[0].description}"))

# %% [markdown]
# ## What this scale shows
#
# Read from the stored numbers. "Best γ" is the pre-training noise level with the highest mean
# accuracy at that η; the NMTune - LP difference is on the clean model, with Welch's 95%
# interval over seeds.

# %% tags=["remove-input"]
from scipy import stats


def welch(a, b):
    """Mean of a - mean of b and the half-width of Welch's 95% interval (NaN with < 2 runs)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return diff, 0.0
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return diff, float(stats.t.ppf(0.975, dof) * se)


summary = plots.summarize_over_seeds(acc, ["task", "method", "label_noise", "noise"])
best = plots.best_noise(summary, by=["task", "method", "label_noise"])
lines = []
for t in tasks:
    lines.append(f"**{plots.task_label(t)}**\n")
    lines.append("| η | LP: best γ | NMTune: best γ | NMTune - LP, clean model (points) |")
    lines.append("|---|---|---|---|")
    for eta in DOWNSTREAM_NOISE_LEVELS:
        b = best[(best["task"] == t) & np.isclose(best["label_noise"], eta)].set_index("method")
        if not {"lp", "nmtune"} <= set(b.index):
            continue
        cell = acc[(acc["task"] == t) & np.isclose(acc["label_noise"], eta)
                   & np.isclose(acc["noise"], 0.0)]
        diff, half = welch(cell[cell["method"] == "nmtune"]["value"],
                           cell[cell["method"] == "lp"]["value"])
        sig = "" if np.isnan(half) or abs(diff) <= half else " (beyond the seed spread)"
        lines.append(f"| {eta * 100:g}% | {b.loc['lp', 'best_noise'] * 100:g}% "
                     f"({b.loc['lp', 'best_mean']:.2f}) | {b.loc['nmtune', 'best_noise'] * 100:g}% "
                     f"({b.loc['nmtune', 'best_mean']:.2f}) | {diff:+.2f} ± "
                     f"{half:.2f}{sig} |")
    lines.append("")
    clean = summary[(summary["task"] == t) & np.isclose(summary["noise"], 0.0)]
    lo_eta, hi_eta = min(DOWNSTREAM_NOISE_LEVELS), max(DOWNSTREAM_NOISE_LEVELS)

    def clean_mean(m, eta):
        return float(clean[(clean["method"] == m)
                           & np.isclose(clean["label_noise"], eta)]["mean"].iloc[0])
    drops = {m: clean_mean(m, lo_eta) - clean_mean(m, hi_eta) for m in ("lp", "nmtune")}
    lines.append(
        f"- *The downstream noise itself* costs the clean model {drops['lp']:.2f} points under LP "
        f"and {drops['nmtune']:.2f} under NMTune from η = {lo_eta * 100:g}% to "
        f"{hi_eta * 100:g}%.")
    lines.append("")
if n_pre == 1:
    lines.append(
        f"With one pre-training seed per noise level (γ = "
        f"{', '.join(f'{v * 100:g}%' for v in levels)}), the spread between pre-trained models "
        f"is not in the error bars, which cover the tuning seeds only: an ordering of the γ lines "
        f"that differs by less than about a point is not evidence either way.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Verdicts

# %% tags=["remove-input"]
from nml.scorecard import verdict_block

# The paper's claims are judged by the scorecard's rule (paired intervals over seeds), not from
# which mean is highest in the table above.
display(Markdown(verdict_block(("N1", "N2", "N3", "N4"), results[0].scale)))
