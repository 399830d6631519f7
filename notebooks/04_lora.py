# ---
# jupyter:
#   jupytext:
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
# # LoRA and parameter-efficient NMTune (Sections 4.3.2 and 6.2)
#
# Linear probing keeps the pre-trained features as they are. Does the effect of pre-training
# noise survive a tuning method that changes them? Section 4.3.2 answers with LoRA, which trains
# small low-rank adapters inside the transformer while the backbone stays frozen. The paper's
# findings on ViT-B-16 (Fig. 4e-h):
#
# > "LoRA tuning presents a similar trend on both ID and OOD tasks as in LP: slight noise in
# > pre-training can benefit the ID while hurting the OOD performance; With pre-trained
# > parameters and representations being modified by LoRA, the differences between the noisy
# > and the clean pre-trained models, both improvement and deterioration, become smaller."
#
# Section 6.2 then adds the NMTune regulariser to LoRA (Fig. 8):
#
# > "Parameter-efficient NMTune can rectify the behavior of noisy pre-trained models, whereas
# > LoRA alone cannot. Similarly, NMTune also improves the generalization performance in
# > general on both ID and OOD downstream tasks."
#
# **The methods.** *LoRA* (through `peft`) adds to each fully connected layer $W$ of every ViT
# MLP block a trainable update $BA$ of rank $r = $ `in_features // lora_ratio` (the paper's
# "reduction ratio" 8), and trains it with a new linear head (AdamW, lr 2e-4, weight decay 1e-4,
# cosine schedule). *LoRA + NMTune* needs no extra MLP: the adapted network's penultimate
# features are $Z$, the same batch through the network with the adapters switched off gives
# $F$, and the loss is
#
# $$
# \mathcal{L} = \mathcal{L}_{CE} + \lambda\,(\mathcal{L}_{MSE} + \mathcal{L}_{COV} + \mathcal{L}_{SVD}),
# \qquad \lambda = 0.01
# $$
#
# with the three terms of chapter 6 (consistency with $F$, decorrelation of $Z$'s coordinates,
# the share of the largest singular value of $Z$). *LP* on the frozen features is the reference.
#
# **What this chapter measures.** ID and OOD accuracy of LP, LoRA and LoRA + NMTune against the
# pre-training noise ratio, on every ViT backbone of the scale, and the gap between each noisy
# model and the clean one per method. LoRA needs a transformer: the reduced CPU scale has only a
# ResNet, so `scale="auto"` uses the GPU scale when its results are stored and otherwise the
# tiny scale (computed on any CPU in minutes). The scale is stated under every figure.

# %% tags=["parameters", "hide-input"]
scale = "auto"      # auto | tiny | cifar (cpu has no ViT); auto: best stored scale with a ViT
noise = 0.1         # the noisy model the text compares with the clean one (joins the grid)
lam = 0.01          # NMTune weight λ of LoRA + NMTune (paper: 0.01 for all experiments)
lora_ratio = 8      # LoRA rank: in_features // lora_ratio on the ViT MLP layers (paper: 8)
backbone = None     # one ViT backbone name, or None for every ViT of the scale
task = None         # one downstream task name, or None for every task of the scale
compute = True      # compute units missing from the store (False: replay stored results only)
data_root = None    # folder with the dataset tarballs; None: $NML_DATA (tiny needs no data)
device = None       # "cpu" or "cuda"; None: cuda when a GPU is visible

# %% tags=["remove-input"]
import numpy as np
from IPython.display import Markdown, display

from nml import plots
from nml.chapters import ChapterParams, run_chapter
from nml.data import TASKS

params = ChapterParams.from_dict(scale=scale, noise=noise, lam=lam, lora_ratio=lora_ratio,
                                 backbone=backbone, task=task, compute=compute,
                                 data_root=data_root, device=device)
pipe, (result,) = run_chapter("04_lora", params, progress=False)
rows = plots.headline_rows(result.rows)
# One panel per task, never an average of tasks: two tasks whose noise effects differ in sign
# (or one at chance) would cancel in an average.
tasks = plots.tasks_in_order(rows["task"])
per_task = rows.drop(columns="test_set")
summary = plots.summarize_over_seeds(per_task, ["backbone", "task", "metric", "method", "noise"])
display(Markdown(f"**Scale:** {result.description}. LoRA rank = in_features // "
                 f"{params.lora_ratio}; NMTune weight λ = {params.lam:g}; noise levels "
                 f"{', '.join(f'{n:.0%}' for n in sorted(rows['noise'].unique()))}."))

# %% [markdown]
# ## Accuracy against pre-training noise
#
# The analogue of Fig. 4e-h (LP and LoRA) and Fig. 8 (LoRA and LoRA + NMTune) in one figure per
# ViT backbone ({numref}`fig-4-1` for the first), one panel per downstream task. The paper
# averages its OOD tasks; here each task stands apart, so that effects of opposite sign do not
# cancel, and each OOD panel draws its chance level. The error bars are over seeds.

# %% tags=["hide-input"]
fig_no = 0
for bb in sorted(per_task["backbone"].unique()):
    fig_no += 1
    part = per_task[(per_task["backbone"] == bb) & (per_task["metric"] == "accuracy")]
    fig = plots.noise_panels(
        {plots.task_panel_title(t, "accuracy (%)"): part[part["task"] == t] for t in tasks
         if (part["task"] == t).any()}, cols=3,
        chance={plots.task_panel_title(t, "accuracy (%)"): plots.chance_levels([t])
                for t in tasks if TASKS[t].kind == "ood"},
        title=f"Figure 4.{fig_no}: LP vs LoRA vs LoRA + NMTune, "
              f"{plots.BACKBONE_LABELS.get(bb, bb)}",
        caption=plots.scale_caption(
            pipe.scale, rows[(rows["backbone"] == bb) & (rows["metric"] == "accuracy")],
            extra=f"LoRA rank = in_features // {params.lora_ratio}, NMTune λ = {params.lam:g}"))
    plots.show(fig)

# %% [markdown]
# ## The gap between noisy and clean models
#
# The paper's second finding is about size: LoRA changes the features, so the differences
# between noisy and clean pre-trained models should shrink compared with LP, and with NMTune the
# clean model should come out on top on ID tasks. The bars show each noisy model's mean accuracy
# minus the clean model's, per method ({numref}`fig-4-gaps`).

# %% tags=["hide-input"]
acc = per_task[per_task["metric"] == "accuracy"]
gaps = plots.noise_effect(acc, by=["backbone", "task", "method"])
for i, bb in enumerate(sorted(gaps["backbone"].unique())):
    fig_no += 1
    fig = plots.gap_bars_figure(
        gaps[gaps["backbone"] == bb], x="method", panel_by="task",
        y_title="accuracy, noisy - clean (points)",
        title=f"Figure 4.{fig_no}: noisy minus clean accuracy per method, "
              f"{plots.BACKBONE_LABELS.get(bb, bb)}",
        caption=plots.scale_caption(
            pipe.scale, rows[(rows["backbone"] == bb) & (rows["metric"] == "accuracy")],
            extra="error bars: Welch 95% t-interval of the difference (none where a side has 1 run)"))
    # a label that does not depend on how many backbones the scale has (the scorecard links it)
    plots.show(fig, name="fig-4-gaps" if i == 0 else f"fig-4-gaps-{i + 1}")


# %% [markdown]
# What the figures say, read from the stored numbers:

# %% tags=["remove-input"]
def cell(bb, task, method, nz):
    sel = summary[(summary["backbone"] == bb) & (summary["task"] == task)
                  & (summary["metric"] == "accuracy") & (summary["method"] == method)
                  & np.isclose(summary["noise"], nz)]
    return sel.iloc[0] if len(sel) else None


best = plots.best_noise(summary[summary["metric"] == "accuracy"],
                        by=["backbone", "task", "method"])
noisy = params.noise
lines = []
for bb in sorted(per_task["backbone"].unique()):
    name = plots.BACKBONE_LABELS.get(bb, bb)
    for t in tasks:
        kind = plots.task_label(t)
        lp, lora = cell(bb, t, "lp", 0.0), cell(bb, t, "lora", 0.0)
        if lp is not None and lora is not None and lora["mean"] < lp["mean"]:
            lines.append(
                f"- **{name}, {kind}: LoRA trails LP** on the clean model ({lora['mean']:.1f}% "
                f"vs {lp['mean']:.1f}%): with {pipe.scale.whitebox_epochs} epochs on at most "
                f"{pipe.scale.whitebox_train_limit or 'all'} train images the LoRA runs are "
                "under-trained at this scale, so the comparisons below say little about the "
                "paper's claims.")
    for t in (t for t in tasks if TASKS[t].kind == "id"):
        b = best[(best["backbone"] == bb) & (best["task"] == t)].set_index("method")
        if not {"lp", "lora", "lora_nmtune"} <= set(b.index):
            continue
        rectified = b.loc["lora_nmtune", "clean_is_best"]
        lines.append(
            f"- **{name}, {plots.task_label(t)}: best noise level.** LP "
            f"{b.loc['lp', 'best_noise']:.0%}, LoRA {b.loc['lora', 'best_noise']:.0%}, "
            f"LoRA + NMTune "
            f"{b.loc['lora_nmtune', 'best_noise']:.0%}. "
            + ("The clean model is already the best with LoRA, so there is nothing for NMTune "
               "to rectify at this scale." if rectified and b.loc["lora", "clean_is_best"] else
               "LoRA + NMTune makes the clean model the best: the paper's rectification shows "
               "here." if rectified else
               f"LoRA + NMTune does **not** make the clean model the best (clean "
               f"{b.loc['lora_nmtune', 'clean_mean']:.1f}% vs "
               f"{b.loc['lora_nmtune', 'best_mean']:.1f}% at "
               f"{b.loc['lora_nmtune', 'best_noise']:.0%} noise): rectification does not show "
               f"at this scale."))
    g = gaps[(gaps["backbone"] == bb) & np.isclose(gaps["noise"], noisy)]
    for t in tasks:
        kind = plots.task_label(t)
        gk = g[g["task"] == t].set_index("method")
        if {"lp", "lora"} <= set(gk.index):
            smaller = abs(gk.loc["lora", "diff"]) < abs(gk.loc["lp", "diff"])
            lines.append(
                f"- **{name}, {kind}: gap at {noisy:.0%} noise** (noisy - clean): LP "
                f"{gk.loc['lp', 'diff']:+.1f} ± {gk.loc['lp', 'err']:.1f}, LoRA "
                f"{gk.loc['lora', 'diff']:+.1f} ± {gk.loc['lora', 'err']:.1f}"
                + (f", LoRA + NMTune {gk.loc['lora_nmtune', 'diff']:+.1f} ± "
                   f"{gk.loc['lora_nmtune', 'err']:.1f}" if "lora_nmtune" in gk.index else "")
                + " points. "
                + ("LoRA's mean gap is smaller than LP's, but its 95 % interval includes zero: "
                   "no gap can be told from seed noise, so this neither confirms nor refutes the "
                   "paper." if abs(gk.loc["lora", "diff"]) <= gk.loc["lora", "err"] else
                   "LoRA's gap is smaller than LP's, as the paper reports." if smaller else
                   "LoRA's gap is **not** smaller than LP's here."))
    for t in tasks:
        kind = plots.task_label(t)
        diffs = [cell(bb, t, "lora_nmtune", nz)["mean"] - cell(bb, t, "lora", nz)["mean"]
                 for nz in sorted(per_task["noise"].unique())
                 if cell(bb, t, "lora", nz) is not None
                 and cell(bb, t, "lora_nmtune", nz) is not None]
        if diffs:
            lines.append(f"- **{name}, {kind}: LoRA + NMTune minus LoRA**, mean over the noise "
                         f"levels: {np.mean(diffs):+.1f} points (per level: "
                         + ", ".join(f"{d:+.1f}" for d in diffs) + "; differences of means, "
                         "to be read against the error bars of the figure above).")
display(Markdown("\n".join(lines)))

# %% [markdown]
# At the tiny scale the white-box runs are short (few epochs on at most a thousand synthetic
# images, see the captions), so these numbers test the code path more than the claim; the GPU
# scale's results, when stored, replace them under `scale="auto"`. To try another adapter rank
# or regulariser weight: `papermill notebooks/04_lora.ipynb out.ipynb -p lora_ratio 4 -p lam
# 0.03` computes only the units that change.
