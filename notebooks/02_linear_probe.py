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
# # Linear probing: in-domain and out-of-domain transfer
#
# Linear probing (LP) freezes the pre-trained backbone and trains only a linear classifier on
# its features. The paper (journal version, Section 4.3.1, Fig. 3) trains it "for 30 epochs on
# each downstream dataset, using the AdamW optimizer with a cosine scheduler", no weight decay,
# learning rate 0.01, three seeds, on {10, 25, 50, 75, 100} % of each downstream training set,
# over 14 in-domain (ID) datasets and DomainNet as out-of-domain (OOD) transfer. From it come the
# paper's two headline observations:
#
# > - Proper noisy supervision in pre-training (e.g., 5% or 10%) can benefit the performance on
# >   ID downstream tasks, while more noise results in inferior results;
# > - The robustness of transferability on OOD downstream tasks constantly deteriorates as the
# >   noise increases, even with the improvement in ID tasks on 5% noisy pre-trained models.
#
# This chapter probes the models of chapter 1 in the same way at this book's scale (named under
# the parameters): ID accuracy and OOD accuracy (averaged over each OOD task's target domains or
# corruptions; tasks are never averaged together, since their trends can point opposite ways)
# against pre-training noise, one curve per backbone, task and data fraction, and tests both
# claims with confidence intervals. Every OOD figure draws the chance level of its tasks.

# %% tags=["parameters", "hide-input"]
# auto: the best scale whose results are all stored (cifar, then cpu_seeds, then cpu); otherwise
# the tiny scale, computed on the spot on any CPU. Or name one: "tiny", "cpu", "cpu_seeds",
# "cifar".
scale = "auto"
# One more pre-training noise ratio to include (a fraction in [0, 1)); it joins the scale's own
# levels (0, 10, 30 % at the tiny and cpu scales; 0, 5, 10, 20, 30 % at cifar) unless already one.
noise = 0.1
# None: every backbone of the scale; or one name, e.g. "resnet18_cifar".
backbone = None
# None: every downstream task of the scale; or one name, e.g. "cifar10" or "pacs_photo".
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
from nml.chapters import ChapterParams, run_chapter
from nml.data import TASKS

params = ChapterParams.from_dict(scale=scale, noise=noise, backbone=backbone, task=task,
                                 compute=compute, data_root=data_root, device=device)
pipe, results = run_chapter("02_linear_probe", params, progress=False)
result = results[0]
accuracy = result.metric("accuracy")
id_tasks = [t for t in accuracy["task"].unique() if TASKS[t].kind == "id"]
ood_tasks = [t for t in accuracy["task"].unique() if TASKS[t].kind == "ood"]
n_pretrain, n_tune = len(pipe.scale.pretrain_seeds), len(pipe.scale.tune_seeds)
full = max(accuracy["fraction"])
display(Markdown(
    f"**Scale:** {result.description}. Pre-training on {plots.human_label(pipe.scale.upstream)}; "
    f"backbones {', '.join(plots.human_label(b) for b in accuracy['backbone'].unique())}; LP for "
    f"{pipe.scale.tune_epochs} epochs on "
    f"{', '.join(f'{f * 100:g} %' for f in sorted(accuracy['fraction'].unique()))} of each "
    f"training set; {n_pretrain} pre-training seed{'s' if n_pretrain > 1 else ''} x {n_tune} "
    f"LP seed{'s' if n_tune > 1 else ''} = "
    f"{n_pretrain * n_tune} runs per point.\n\n"
    + "\n".join(f"- {plots.task_label(t)} (`{t}`): {TASKS[t].description}"
                for t in id_tasks + ood_tasks)))

# %% tags=["remove-input"]
# One row set per task: an average over tasks would hide trends of opposite sign.
id_rows = accuracy[accuracy["task"].isin(id_tasks)] if id_tasks else None
ood_rows = accuracy[accuracy["task"].isin(ood_tasks) & (accuracy["test_set"] == "mean")] \
    if ood_tasks else None
id_groups = ("backbone", "task", "fraction") if len(id_tasks) > 1 else ("backbone", "fraction")
seeds = f"{n_pretrain} pre-training x {n_tune} LP"
spread = ("the spread is over LP seeds only (1 pre-training seed)" if n_pretrain == 1
          else "the spread is over pre-training and LP seeds")


def lp_caption(tasks):
    return plots.caption(scale=result.scale,
                         data=f"{plots.human_label(pipe.scale.upstream)} → "
                              f"{', '.join(plots.task_label(t) for t in tasks)}",
                         model=", ".join(plots.human_label(b) for b in accuracy["backbone"].unique())
                         + " (frozen) + linear",
                         epochs=pipe.scale.tune_epochs, seeds=seeds, extra=spread)


# %% [markdown]
# ## Accuracy against pre-training noise (the Fig. 3 analogue)
#
# {numref}`fig-2-1` (ID): one curve per backbone and fraction of the downstream training data.
# {numref}`fig-2-2` (OOD): one curve per backbone and OOD task with all of the training data
# (every fraction is in Table 2.1), over dotted lines at chance. Each point is the mean over
# runs; the error bar is the half-width of a 95 % t-interval of that mean.

# %% tags=["hide-input"]
if id_rows is not None:
    plots.show(plots.accuracy_vs_noise(
        id_rows, group_by=id_groups, y_title="ID test accuracy (%)",
        title="Figure 2.1: in-domain linear-probing accuracy vs pre-training noise",
        caption=lp_caption(id_tasks)))
else:
    display(Markdown("*No ID task in this run (`task` selects an OOD task): no Figure 2.1.*"))

# %% tags=["hide-input"]
if ood_rows is not None:
    plots.show(plots.accuracy_vs_noise(
        ood_rows[ood_rows["fraction"] == full], group_by=("backbone", "task"),
        y_title="OOD accuracy (%), mean over targets",
        title="Figure 2.2: out-of-domain linear-probing accuracy vs pre-training noise",
        caption=lp_caption(ood_tasks) + f" · {full * 100:g} % of the training data",
        chance=plots.chance_levels(ood_tasks)))
else:
    display(Markdown("*No OOD task in this run (`task` selects an ID task): no Figure 2.2.*"))

# %% [markdown]
# The same numbers as a table (accuracy in %, mean ± 95 % interval half-width):

# %% tags=["hide-input"]
tables = []
for kind, rows in (("ID", id_rows), ("OOD", ood_rows)):
    if rows is not None:
        tables.append(rows.assign(kind=kind))
both = pd.concat(tables, ignore_index=True)
display(plots.mean_ci_table(both, ["kind", "backbone", "task", "fraction"], "noise").style.set_caption(
    f"Table 2.1: linear-probing accuracy (%); {result.description}"))

# %% [markdown]
# ## OOD accuracy per target domain
#
# The OOD mean hides how each target moves. With all of the downstream training data, each
# target domain (or corruption severity, averaged over CIFAR-10-C's corruptions) separately
# ({numref}`fig-2-3`):

# %% tags=["hide-input"]
if ood_tasks:
    targets = accuracy[accuracy["task"].isin(ood_tasks) & (accuracy["test_set"] != "mean")
                       & (accuracy["fraction"] == full)]
    targets = plots.collapse_corruptions(targets)
    plots.show(plots.accuracy_vs_noise(
        targets, group_by=("backbone", "task", "test_set"), y_title="target accuracy (%)",
        title="Figure 2.3: OOD linear-probing accuracy per target domain vs pre-training noise",
        caption=lp_caption(ood_tasks) + f" · {full * 100:g} % of the training data",
        chance=plots.chance_levels(ood_tasks)))

# %% [markdown]
# ## Do the paper's two observations show at this scale?
#
# For each backbone and fraction, the difference of each noisy model's mean accuracy from the
# clean model's, with Welch's 95 % interval (positive: noise helped). Welch treats the clean and
# the noisy runs as independent samples; the verdicts below pair each noisy model with the
# clean model of the same pre-training seed (the scorecard's rule: with 3 seeds, a t-interval
# on 2 degrees of freedom), so their intervals can be wider than this table's. Only the verdicts
# are scored.

# %% tags=["hide-input"]
effects = []
for kind, rows in (("ID", id_rows), ("OOD", ood_rows)):
    if rows is not None:
        effects.append(plots.noise_effect(rows, ["backbone", "task", "fraction"])
                       .assign(kind=kind))
effects = pd.concat(effects, ignore_index=True)
effects["effect"] = [plots.format_effect(r, compact=True) for r in effects.to_dict("records")]
# the task's label says ID / OOD; the backbone is a row level only where the scale has several
index = ["backbone"] * (effects["backbone"].nunique() > 1) + ["task", "fraction"]
display(plots.readable_table(effects.pivot_table(
    index=index, columns="noise", values="effect", aggfunc="first")).style.set_caption(
    "Table 2.2: accuracy difference from the clean pre-trained model, points, with Welch's 95 % "
    "interval in brackets (positive: the noisy model is better)"))


# %% [markdown]
# ## Verdicts
#
# The two observations as the scorecard scores them, from the same rows and by the same rule
# (full training data; OOD tasks whose clean model probes at chance are left out and listed).
# Then the power of this grid: the smallest ID benefit of slight noise that its replicates would
# detect 80 % of the time, given their measured spread, so that a "not reproduced" or an
# "inconclusive" reads as what it is.

# %% tags=["remove-input"]
from nml import scorecard

display(Markdown(scorecard.verdict_block(("C1", "C2"), pipe.scale.name)))
c1 = scorecard.score(scorecard.load_index(), "C1", pipe.scale.name)
mde = scorecard.minimum_detectable_effect(c1)
display(Markdown(
    "**Power.** " + (
        f"With {c1.headline.n} replicates ({c1.measurement.replicate}) and their measured "
        f"spread, this grid detects (80 % power, 95 % two-sided) an ID benefit of slight noise of "
        f"**{mde:.2f} points** or more; a true bump smaller than that can hide in an "
        f"\"inconclusive\"." if mde is not None else
        "One replicate: no spread to size the smallest detectable effect.")))
