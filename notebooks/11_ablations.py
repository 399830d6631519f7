# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
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
# # Ablations of NMTune
#
# The paper's appendix ablates black-box NMTune on its ID vision datasets with three ResNet-50
# models (clean, 5 % and 10 % pre-training noise; ICLR version, Appendix B.7):
#
# - the MLP (Table 15): "removing the non-linearity reduces the performance significantly.
#   Adding more layers only improves the performance slightly but introduces much more
#   parameters. Thus we adopt the 2-layer MLP architecture with ReLU activation";
# - the loss terms (Table 16): "the proposed covariance regularization $\mathcal{L}_{COV}$ in
#   general rectifies the effect of noise, improving the performance of clean pre-trained models
#   to achieve better results than noisy pre-trained models ... the dominant singular value
#   regularization $\mathcal{L}_{SVD}$ helps improve generalization".
#
# Its failure analysis (Appendix C.2) notes that NMTune "falls short to LP on Caltech101 on
# almost all backbones" and suggests that "the SVD regularization term ... might need to
# optimize the top-K singular values instead of just the largest one". The authors' public code
# differs from the paper in three places that this chapter also tests: a residual MLP
# ($Z = F + h(F)$), separate term weights (MSE 1.0, COV 0.04, SVD 0.001) and a top-K SVD term.
#
# This chapter changes **one factor at a time** from the paper's setting (2-layer MLP
# $D \to 4D \to D$ with ReLU, $Z = h(F)$, weights 1 / 1 / 1, $\lambda$ = 0.01, top-1 SVD term)
# and tunes each variant with three seeds on one backbone, on the scale's ablation tasks (the
# tiny scale: its ID and OOD tasks; the reduced CPU scale: the ID task only, since each task
# costs about 200 tuning runs there), for the clean and one noisy pre-trained model. Every variant is black-box tuning on cached
# features. Last, it checks that nml's fast (matrix-product) SVD term gives the same accuracy as
# the exact `svdvals` one, which the runtime chapter relies on.
#
# **Not run here:** the paper's detection and instance segmentation transfer (Section 4.4,
# COCO with Mask R-CNN): COCO cannot be fetched on this offline machine, and training a
# detector is far beyond a CPU session. This book covers classification transfer only.

# %% tags=["parameters", "hide-input"]
# auto: the best scale whose ablation units are all stored (cifar, then cpu_seeds, then cpu);
# otherwise the tiny scale, computed on the spot on any CPU (about 1 s per unit). Or name one:
# "tiny", "cpu", "cpu_seeds", "cifar".
scale = "auto"
# The noisy pre-trained model compared with the clean one (a fraction in [0, 1); the paper's
# ablations use 5 % and 10 %).
noise = 0.1
# None: the scale's first (convolutional) backbone; or one name, e.g. "vit_micro".
backbone = None
# None: every downstream task of the scale (its ID and OOD tasks); or one name.
task = None
# NMTune weight lambda of every variant except the lambda sweep (paper: 0.01).
lam = 0.01
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
from nml.chapters import (ABLATION_DEFAULT_LEVELS, AUTHORS_WEIGHTS_LEVEL, ChapterParams,
                          ablation_factor, chapter_grids, run_chapter)
from nml.data import TASKS

params = ChapterParams.from_dict(scale=scale, noise=noise, backbone=backbone, task=task, lam=lam,
                                 compute=compute, data_root=data_root, device=device)
pipe, results = run_chapter("11_ablations", params, progress=False)
grids = chapter_grids("11_ablations", params, pipe.scale.name)

# Each grid after the first (LP and MLP tuning, the references) is one NMTune variant: its
# tune_overrides say which factor it changes. The paper's setting belongs to every factor.
AUTHORS = AUTHORS_WEIGHTS_LEVEL        # the term weights of the authors' code
DEFAULT_LEVEL = ABLATION_DEFAULT_LEVELS  # the paper's setting as a level of each factor


frames, references = [], None
for grid, result in zip(grids, results):
    rows = result.metric("accuracy")
    if grid.methods != ("nmtune",):
        references = rows
        continue
    if grid.lambdas:
        part = rows.copy()
        part["factor"], part["level"] = "λ", part["lam"].map(lambda x: f"{x:g}")
        frames.append(part)
        continue
    label = ablation_factor(grid.tune_overrides)
    if label is None:           # the paper's setting: the default level of every factor
        for factor, level in DEFAULT_LEVEL.items():
            if factor != "λ":   # the λ sweep has its own runs at every λ
                frames.append(rows.assign(factor=factor, level=level))
        default_rows = rows
        continue
    frames.append(rows.assign(factor=label[0], level=label[1]))
# One row of panels per task, named in words; tasks are never averaged together, so that two
# effects of opposite sign cannot cancel (each OOD task keeps its own chance line).
ablation = plots.headline_by_task(pd.concat(frames, ignore_index=True))
ablation = ablation.drop_duplicates(["factor", "level", "task", "noise", "pretrain_seed", "seed"])
refs = plots.headline_by_task(references)
task_chance = plots.chance_by_task_label(pd.concat(frames)["task"].unique())
ref_summary = plots.summarize_over_seeds(refs, ["task", "noise", "method"])
summary = plots.summarize_over_seeds(ablation, ["factor", "level", "task", "noise"])
LEVELS = {"depth (layers)": ["1", "2", "3"], "width (hidden = k D)": ["1", "2", "4", "8"],
          "non-linearity": ["identity", "relu", "gelu", "tanh"],
          "form of Z": ["Z = h(F)", "Z = F + h(F)"],
          "loss terms": ["all 1/1/1", "no MSE", "no COV", "no SVD", AUTHORS],
          "λ": [f"{x:g}" for x in pipe.scale.lambdas],
          "top-K of L_SVD": [str(k) for k in range(1, 11)], "SVD term": ["fast", "exact"]}
n_units = sum(len(r.rows[["method", "noise", "seed", "task", "lam"]].drop_duplicates())
              for r in results)
noise_text = ", ".join(f"{x * 100:g}%" for x in sorted(ablation["noise"].unique()))
caption = plots.scale_caption(pipe.scale, default_rows, extra=f"pre-training noise {noise_text}")
task_text = ", ".join(plots.task_label(t) for t in sorted(default_rows["task"].unique()))
display(Markdown(
    f"**Scale:** {results[0].description}. Backbone "
    f"{plots.human_label(default_rows['backbone'].iloc[0])}; "
    f"tasks {task_text}; pre-training noise {noise_text}; "
    f"{pipe.scale.tune_epochs} tuning epochs; tuning seeds "
    f"{sorted(int(x) for x in default_rows['seed'].unique())}; {n_units} tuning runs in all. Accuracy is the "
    f"ID test accuracy, and for OOD the mean over the target domains. Every interval in this "
    f"chapter is over tuning seeds on "
    f"{default_rows.groupby('noise')['pretrain_seed'].nunique().max()} pre-trained model(s) per "
    f"noise level: it does not cover the variation between pre-training runs."))

# %% [markdown]
# ## Every variant against the paper's setting
#
# Each cell: accuracy of the variant minus that of the paper's setting, paired by seed (same
# pre-trained model, same tuning seed), mean ± the half-width of a 95 % t-interval over the
# seeds. A difference whose interval excludes 0 is marked with `*` (here and in the text).

# %% tags=["remove-input"]
base = ablation[ablation["level"] == ablation["factor"].map(DEFAULT_LEVEL)]
base = base[base["factor"] == "depth (layers)"][["task", "noise", "pretrain_seed", "seed",
                                                 "value"]]
paired = ablation.merge(base, on=["task", "noise", "pretrain_seed", "seed"],
                        suffixes=("", "_default"))
paired["diff"] = paired["value"] - paired["value_default"]
diffs = plots.summarize_over_seeds(paired, ["factor", "level", "task", "noise"], value="diff")
diffs = diffs[diffs["level"] != diffs["factor"].map(DEFAULT_LEVEL)]
diffs["significant"] = (diffs["mean"].abs() > diffs["err"]) & (diffs["n"] > 1)
diffs["cell"] = [f"{m:+.2f} ± {e:.2f}{' *' if s else ''}"
                 for m, e, s in zip(diffs["mean"], diffs["err"], diffs["significant"])]
diffs["column"] = diffs["task"] + ", noise " + (diffs["noise"] * 100).map("{:g}%".format)
table = diffs.pivot_table(index=["factor", "level"], columns="column", values="cell",
                          aggfunc="first")
table = table.reindex([(f, lv) for f, lvs in LEVELS.items() for lv in lvs
                       if (f, lv) in table.index])
base_summary = summary[(summary["factor"] == "depth (layers)") & (summary["level"] == "2")]
display(Markdown("The paper's setting itself: " + "; ".join(
    f"{r.task}, noise {r.noise * 100:g} %: {r.mean:.2f} ± {r.err:.2f} %"
    for r in base_summary.itertuples()) + "."))
display(table.style.set_caption(
    f"Table 11.1: accuracy difference (points) of each NMTune variant to the paper's setting; "
    f"{results[0].description}"))

# %% [markdown]
# ## The MLP (Table 15 analogue)
#
# {numref}`fig-11-1`: depth, width, non-linearity and the residual form of the MLP $h$, one
# factor at a time.

# %% tags=["hide-input"]
fig = plots.factor_panels(
    summary, levels={k: LEVELS[k] for k in ("depth (layers)", "width (hidden = k D)",
                                            "non-linearity", "form of Z")},
    references=ref_summary, row="task", chance=task_chance,
    title="Figure 11.1: NMTune accuracy vs the MLP h (one factor at a time)",
    caption=caption)
fig.update_yaxes(showticklabels=True)  # each panel its own numbers: a phone stacks them
plots.show(fig)


# %% tags=["remove-input"]
def effect(factor: str, level: str) -> str:
    """The variant's paired difference to the paper's setting in every (task, noise) cell,
    then a count: better / worse in how many cells, how many outside the seed interval."""
    part = diffs[(diffs["factor"] == factor) & (diffs["level"] == level)]
    cells = "; ".join(f"{r.task} at {r.noise * 100:g} % noise {r.mean:+.2f} ± {r.err:.2f}"
                      + (" *" if r.significant else "") for r in part.itertuples())
    up, down = int((part["mean"] > 0).sum()), int((part["mean"] < 0).sum())
    return (f"{cells} (higher in {up}, lower in {down} of {len(part)} cells; "
            f"{int(part['significant'].sum())} outside the seed interval)")


display(Markdown("\n".join([
    f"- **No non-linearity** (identity instead of ReLU): {effect('non-linearity', 'identity')}. "
    "The paper finds that removing the non-linearity 'reduces the performance significantly'.",
    f"- **One layer** (a linear map $D \\to D$): {effect('depth (layers)', '1')}.",
    f"- **Three layers**: {effect('depth (layers)', '3')}. The paper finds more layers help "
    "'only slightly'.",
    f"- **Width 8D** instead of 4D: {effect('width (hidden = k D)', '8')}; "
    f"**width 1D**: {effect('width (hidden = k D)', '1')}.",
    f"- **GELU** / **tanh** instead of ReLU: {effect('non-linearity', 'gelu')} / "
    f"{effect('non-linearity', 'tanh')}.",
    f"- **Residual form** $Z = F + h(F)$ (the authors' code): "
    f"{effect('form of Z', 'Z = F + h(F)')}.",
])))

# %% [markdown]
# ## The loss terms and their weight (Table 16 analogue)
#
# "no MSE" sets $w_{MSE} = 0$ and keeps the other two terms at weight 1, and so on; "authors'"
# uses the weights of the authors' code. The $\lambda$ panel scales all three terms together;
# $\lambda = 0$ is MLP tuning under another name ({numref}`fig-11-2`).

# %% tags=["hide-input"]
fig = plots.factor_panels(
    summary, levels={k: LEVELS[k] for k in ("loss terms", "λ")}, references=ref_summary, row="task", chance=task_chance,
    title="Figure 11.2: NMTune accuracy vs its loss terms and their weight λ",
    caption=caption)
fig.update_yaxes(showticklabels=True)  # each panel its own numbers: a phone stacks them
plots.show(fig)

# %% tags=["remove-input"]
clean_gap = plots.summarize_over_seeds(
    ablation[ablation["factor"] == "loss terms"].pivot_table(
        index=["level", "task", "pretrain_seed", "seed"], columns="noise", values="value")
    .pipe(lambda t: (t[t.columns.min()] - t[t.columns.max()]).rename("value")).reset_index(),
    ["level", "task"])
gap_table = clean_gap.assign(cell=[f"{m:+.2f} ± {e:.2f}" for m, e in
                                   zip(clean_gap["mean"], clean_gap["err"])]).pivot_table(
    index="level", columns="task", values="cell", aggfunc="first")
gap_table = gap_table.reindex([lv for lv in LEVELS["loss terms"] if lv in gap_table.index])
noisy = max(ablation["noise"])
display(gap_table.style.set_caption(
    f"Table 11.2: clean minus {noisy * 100:g} %-noise pre-trained model, accuracy points, per "
    "loss-term variant (positive: the clean model is better; mean ± 95 % t-interval over seeds)"))
lam_part = summary[summary["factor"] == "λ"].copy()
lam_part["lam"] = lam_part["level"].astype(float)
best_lam = lam_part.loc[lam_part.groupby(["task", "noise"])["mean"].idxmax()]
small = diffs[(diffs["factor"] == "loss terms") | (
    (diffs["factor"] == "λ") & (diffs["level"].astype(str).map(
        lambda x: float(x) if x.replace(".", "").isdigit() else 1.0) <= 0.01))]
terms_max = float(small["mean"].abs().max())
no_cov = clean_gap[clean_gap["level"] == "no COV"].set_index("task")
full = clean_gap[clean_gap["level"] == "all 1/1/1"].set_index("task")
lines = [f"- **Rectifying** (the paper: $\\mathcal{{L}}_{{COV}}$ makes the clean model beat the "
         f"noisy one): with all three terms the clean model is "
         + "; ".join(f"{k} {full.loc[k, 'mean']:+.2f} ± {full.loc[k, 'err']:.2f}"
                     for k in full.index)
         + " points ahead; without the covariance term "
         + "; ".join(f"{k} {no_cov.loc[k, 'mean']:+.2f} ± {no_cov.loc[k, 'err']:.2f}"
                     for k in no_cov.index) + ".",
         f"- **Size of the regulariser's effect**: over every loss-term variant and λ ≤ 0.01, "
         f"the largest mean change is {terms_max:.2f} points; at this scale and λ = 0.01 the "
         f"three terms together are small next to the cross-entropy.",
         f"- **Dropping one term**: no MSE {effect('loss terms', 'no MSE')}; no COV "
         f"{effect('loss terms', 'no COV')}; no SVD {effect('loss terms', 'no SVD')}.",
         "- **The authors' weights** (1 / 0.04 / 0.001): "
         + effect("loss terms", AUTHORS) + ".",
         "- **λ**: the best mean is at " + "; ".join(
             f"{r.task}, noise {r.noise * 100:g} %: λ = {r.lam:g} ({r.mean:.2f} ± {r.err:.2f})"
             for r in best_lam.itertuples()) + "."]
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Top-K singular values in $\mathcal{L}_{SVD}$ (Appendix C.2)
#
# With top-K the SVD term rewards the mean of the K largest singular values of $Z$ (each divided
# by their sum) instead of the largest alone. {numref}`fig-11-3` shows accuracy for K = 1 to 10, the
# table the LSVR ($-\log s_1 / \sum s$) of the tuned features $Z$ on the ID test set, to see
# whether the term changes the spectrum it targets.

# %% tags=["hide-input"]
fig = plots.factor_panels(
    summary, levels={"top-K of L_SVD": LEVELS["top-K of L_SVD"]}, references=ref_summary, row="task", chance=task_chance,
    title="Figure 11.3: NMTune accuracy vs K, the number of singular values in L_SVD",
    caption=caption)
fig.update_yaxes(showticklabels=True)  # each panel its own numbers: a phone stacks them
plots.show(fig)

lsvr = []
for grid, result in zip(grids, results):
    label = ablation_factor(grid.tune_overrides) if grid.methods == ("nmtune",) else None
    if grid.methods == ("nmtune",) and not grid.lambdas and (
            label is None or label[0] == "top-K of L_SVD"):
        part = result.metric("lsvr")
        part = part[part["task"].map(lambda t: TASKS[t].kind) == "id"]
        part = part[part["test_set"] == "test"]
        lsvr.append(part.assign(K=int(label[1]) if label else 1))
lsvr = pd.concat(lsvr, ignore_index=True)
display(plots.mean_ci_table(lsvr, "K", "noise", digits=3).style.set_caption(
    "Table 11.3: LSVR of the tuned features Z on the ID test set vs K (mean ± 95 % t-interval "
    "over seeds)"))

# %% tags=["remove-input"]
topk = summary[summary["factor"] == "top-K of L_SVD"].copy()
topk["K"] = topk["level"].astype(int)
lines = []
for (task_name, nz), part in topk.groupby(["task", "noise"]):
    best = part.loc[part["mean"].idxmax()]
    k1 = part[part["K"] == 1].iloc[0]
    lp = ref_summary[(ref_summary["task"] == task_name) & (ref_summary["noise"] == nz)
                     & (ref_summary["method"] == "lp")]
    lp_text = (f"; LP reaches {lp['mean'].iloc[0]:.2f} ± {lp['err'].iloc[0]:.2f}"
               if len(lp) else "")
    lines.append(f"- {task_name}, noise {nz * 100:g} %: K = 1 gives {k1['mean']:.2f} ± "
                 f"{k1['err']:.2f}, the best K is {int(best['K'])} with {best['mean']:.2f} ± "
                 f"{best['err']:.2f}{lp_text}.")
spread = topk.groupby(["task", "noise"])["mean"].agg(lambda v: v.max() - v.min())
lines.append(f"\nAcross K the mean accuracy moves by at most {spread.max():.2f} points, against "
             f"a typical seed interval of ±{topk['err'].median():.2f}: "
             + ("K matters more than the seeds here." if spread.max() > 2 * topk["err"].median()
                else "at this scale the choice of K is within the seed spread, so this run "
                     "neither supports nor refutes the C.2 hypothesis.")
             + (lambda k: f" Paired with K = 1 seed by seed (Table 11.1), {int(k['significant'].sum())} "
                f"of {len(k)} (K, task, noise) differences have an interval that excludes 0 "
                f"(chance alone would give about {len(k) / 20:.1f}), and no difference exceeds "
                f"{k['mean'].abs().max():.2f} points.")(
                 diffs[diffs["factor"] == "top-K of L_SVD"]))
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Fast against exact SVD term
#
# nml's default SVD term replaces `torch.linalg.svdvals` with matrix products (power iteration
# and a Newton-Schulz polar factor; {mod}`nml.losses`), which is what makes NMTune cheap on a GPU
# (chapter 10). {numref}`fig-11-4` and the table compare tuning with each, seed by seed: if the fast term
# is a faithful substitute, the accuracy difference is within the seed-to-seed spread.

# %% tags=["hide-input"]
fig = plots.factor_panels(
    summary, levels={"SVD term": LEVELS["SVD term"]}, references=ref_summary, row="task", chance=task_chance,
    title="Figure 11.4: NMTune accuracy with the fast and the exact SVD term",
    caption=caption)
fig.update_yaxes(showticklabels=True)  # each panel its own numbers: a phone stacks them
plots.show(fig)

svd = paired[(paired["factor"] == "SVD term") & (paired["level"] == "exact")].copy()
svd["fast - exact"] = -svd["diff"]
fast_rows = ablation[(ablation["factor"] == "SVD term") & (ablation["level"] == "fast")]
sd = fast_rows.groupby(["task", "noise"])["value"].std(ddof=1).rename("seed sd (fast)")
cmp = plots.summarize_over_seeds(svd, ["task", "noise"], value="fast - exact").set_index(
    ["task", "noise"]).join(sd)
cmp["max |fast - exact| over seeds"] = svd.groupby(["task", "noise"])["fast - exact"].apply(
    lambda v: v.abs().max())
cmp["within seed spread"] = (cmp["mean"].abs() <= cmp["seed sd (fast)"]) | (
    cmp["mean"].abs() <= cmp["err"])
cmp.index = [f"{k}, noise {nz * 100:g}%" for k, nz in cmp.index]
cmp = cmp.rename(columns={"mean": "mean fast - exact", "err": "± 95 % CI", "n": "seeds"})[
    ["mean fast - exact", "± 95 % CI", "max |fast - exact| over seeds", "seed sd (fast)",
     "seeds", "within seed spread"]]
display(cmp.style.format({c: "{:.3f}" for c in cmp.columns
                          if c not in ("seeds", "within seed spread")}).set_caption(
    "Table 11.4: accuracy (points) with the fast SVD term minus the exact one, paired by seed, "
    "against the seed-to-seed standard deviation of the fast runs"))
ok = bool(cmp["within seed spread"].all())
no_svd_max = float(diffs[(diffs["factor"] == "loss terms")
                         & (diffs["level"] == "no SVD")]["mean"].abs().max())
display(Markdown(
    f"Over {len(cmp)} (task, noise) cells and {int(cmp['seeds'].max())} seeds, the fast "
    f"term changes accuracy by at most {cmp['max |fast - exact| over seeds'].max():.2f} points "
    f"in a single run, while seeds alone move it by a standard deviation of up to "
    f"{cmp['seed sd (fast)'].max():.2f}. "
    + ("**Every mean difference is within the seed spread**: with "
       f"{int(cmp['seeds'].max())} seeds no accuracy difference between the two terms is "
       "detectable at this scale (the widest interval above bounds what could hide: "
       f"±{cmp['± 95 % CI'].max():.2f} points)."
       if ok else "**Not every mean difference is within the seed spread** (see the last column): "
       "the fast term is not shown to be accuracy-neutral at this scale.")
    + f" A caveat on the strength of this evidence: dropping the SVD term altogether changes "
    f"accuracy by at most {no_svd_max:.2f} points here, so equal accuracy shows that the two "
    f"terms are interchangeable where the term matters little. The direct check of the fast "
    f"term is its value against `svdvals` on real training batches (chapter 10, Table 10.1)."))

# %% [markdown]
# ## The paper's NMTune against the authors' code
#
# The variants above change one factor at a time. The authors' public code
# (Hhhhhhao/Noisy-Model-Learning) differs from the paper in several at once, and some of them
# (BatchNorm in the head, a learnable residual scale, two augmented views per image, no λ, an
# MSE averaged over the $M \cdot D$ entries) are not among the factors above. Here the two
# whole set-ups meet: the paper's NMTune (nml's default) and `TuneConfig.authors_code("nmtune")`
# (every difference is listed in the method page's table "The paper and the authors' code"),
# on the same pre-trained models and tuning seeds ({numref}`fig-11-5`). Accuracy first, then the spectrum of the
# tuned features $Z$ under both spectrum preprocessings (chapter 3). These runs resolve the
# scale on their own: the caption names it. Each cell: mean ± 95 % t-interval over seeds (n
# runs); the difference is paired by pre-trained model and seed, `*` where its interval
# excludes 0.

# %% tags=["hide-input"]
authors_pipe, authors_results = run_chapter("11_authors", params, progress=False)
variants = {"paper": authors_results[0].rows, "authors' code": authors_results[1].rows}
comparison = plots.compare_variants(
    variants, ["accuracy", "sve", "lsvr", "sve_authors", "lsvr_authors"], reference="paper")
display(comparison.set_index(["metric", "task", "noise"]).style.set_caption(
    f"Table 11.5: the paper's NMTune and the authors' code; accuracy (%), and SVE / LSVR of the "
    f"tuned features Z (sve, lsvr: paper's definition; *_authors: authors' preprocessing); one "
    f"row per task (ID: test set, OOD: mean over its targets); "
    f"{authors_results[0].description}"))
authors_acc = plots.headline_rows(pd.concat(
    [df[df["metric"] == "accuracy"].assign(variant=name) for name, df in variants.items()],
    ignore_index=True))
authors_tasks = plots.tasks_in_order(authors_acc["task"])
plots.show(plots.noise_panels(
    {plots.task_panel_title(t, "accuracy (%)"): authors_acc[authors_acc["task"] == t]
     for t in authors_tasks},
    chance={plots.task_panel_title(t, "accuracy (%)"): plots.chance_levels([t])
            for t in authors_tasks if TASKS[t].kind == "ood"},
    group_by=["variant"], cols=2, legend_title="NMTune",
    title="Figure 11.5: NMTune as the paper describes it and as the authors' code runs it",
    caption=plots.scale_caption(authors_pipe.scale, authors_results[1].rows)))

# %% tags=["hide-input"]
acc_diff = comparison[(comparison["metric"] == "accuracy")]
diff_col = "authors' code − paper"
significant = acc_diff[acc_diff[diff_col].str.endswith("*")]
spectral = comparison[(comparison["metric"] != "accuracy")
                      & (comparison[diff_col] != "not stored")][diff_col]
display(Markdown(
    f"Accuracy, authors' code minus paper: "
    + "; ".join(f"{r['task']} at {r['noise']} noise {r[diff_col]}"
                for _, r in acc_diff.iterrows())
    + f". {len(significant)} of {len(acc_diff)} (task, noise) cells have an interval that "
    "excludes 0. The spectral rows of Table 11.5 compare the tuned features of the two set-ups "
    "under each spectrum preprocessing"
    + (f": the authors' set-up gives the larger value in {int(spectral.str.startswith('+').sum())} "
       f"of {len(spectral)} cells, {int(spectral.str.endswith('*').sum())} of them with an "
       "interval that excludes 0" if len(spectral) else "")
    + "; runs stored before nml kept the authors' preprocessing read 'not stored' there, "
    "never 0."
    + ("\n\n" + plots.retrained_text(
        {k: v for r in authors_results for k, v in r.retrained.items()},
        "both set-ups' runs (each pair on one and the same model)")
       if any(r.retrained for r in authors_results) else "")))

# %% [markdown]
# ## What this scale shows
#
# The tables above are the evidence; the summary below only counts what they say. The scale is
# the one named under the parameters and in every caption. At the two small scales (tiny:
# synthetic data and a micro network; cpu: a quarter-width ResNet-18 on reduced CIFAR, few
# epochs) small differences are expected to drown in seed spread; a factor that matters there is
# worth checking at the cifar scale (`python -m nml grid --scale cifar --chapter 11_ablations` on
# a GPU machine).

# %% tags=["remove-input"]
sig = diffs[diffs["significant"]]
display(Markdown(
    f"Of {len(diffs)} (variant, task, noise) comparisons with the paper's setting, "
    f"**{len(sig)}** have a 95 % interval that excludes zero"
    + (": " + "; ".join(f"{r.factor} = {r.level} ({r.task}, noise {r.noise * 100:g} %: "
                        f"{r.mean:+.2f})" for r in sig.sort_values("mean").itertuples())
       if len(sig) else "") + ". With three seeds and this many comparisons, a few such "
    "intervals are expected by chance alone (about 1 in 20); an effect counts when it repeats "
    "across tasks and noise levels."))
