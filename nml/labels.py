"""How the book names things on figures: scale labels, backbone, method and task names, and the
one caption format (scale, data, model, epochs, seeds).

Used by every chapter (through :mod:`nml.plots`, which re-exports these names).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .errors import NMLError
from .vocab import WHITEBOX_METHODS

#: How each scale is named on figures (see book/intro.md).
__all__ = ["SCALE_LABELS", "ERROR_KINDS", "caption", "add_caption", "figure_caption", "error_label",
           "check_columns", "noise_percent", "nth_color", "palette_color", "noise_label",
           "log_ticks", "METRIC_TITLES", "BACKBONE_LABELS", "METHOD_LABELS", "TASK_LABELS",
           "human_label", "task_label", "seeds_text", "method_order", "scale_caption",
           "COLUMN_LABELS", "task_panel_title", "tasks_in_order", "retrained_text"]

SCALE_LABELS = {
    "tiny": "tiny scale (embedded synthetic data, CPU)",
    "cpu": "reduced CPU scale (real data)",
    "cpu_seeds": "CPU scale (real data, 3 pre-training seeds)",
    "cifar": "GPU scale (CIFAR-100 pre-training)",
}

#: Error-bar kinds: half-width of a 95% Student-t interval of the mean, or the sample std.
ERROR_KINDS = ("ci95", "std")

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


# --------------------------------------------------------------------------------------------
# Captions: every figure states its scale
# --------------------------------------------------------------------------------------------

def caption(*, scale: str, data: str, model: str, epochs: int | str | None = None,
            seeds: int | str | None = None, error: str | None = None,
            extra: str | None = None) -> str:
    """One line saying at which scale a figure was measured.

    Example: ``caption(scale="cifar", data="CIFAR-100 -> CIFAR-10", model="ResNet-18",
    epochs=30, seeds=3, error="ci95")`` gives
    ``"GPU scale (CIFAR-100 pre-training) · data: CIFAR-100 -> CIFAR-10 · model: ResNet-18 ·
    30 epochs · 3 seeds · error bars: 95% t-interval of the mean"``.

    Used by every chapter (pass the result to the figure helpers' ``caption=`` or to
    :func:`add_caption`).
    """
    if scale not in SCALE_LABELS:
        raise NMLError(f"unknown scale {scale!r}; use one of {', '.join(SCALE_LABELS)}")
    parts = [SCALE_LABELS[scale], f"data: {data}", f"model: {model}"]
    if epochs is not None:
        parts.append(f"{epochs} epoch{'' if str(epochs) == '1' else 's'}")
    if seeds is not None:
        # "1 seed", "1 pre-training seed", "3 pre-training seeds"
        # singular only when every count in it is 1 ("1 pre-training x 3 LP" is 3 seeds)
        counts = re.findall(r"\d+", str(seeds))
        one = bool(counts) and all(c == "1" for c in counts)
        parts.append(f"{seeds} seed{'' if one else 's'}")
    if error is not None:
        parts.append("error bars: " + error_label(error))
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def add_caption(fig: go.Figure, text: str) -> go.Figure:
    """Attach ``text`` to the figure as its caption; :func:`show` prints it under the figure.

    The caption travels with the figure in ``fig.layout.meta["nml_caption"]`` (not drawn inside
    the plot, where it was small grey text that phones clipped): the book renders it as a real,
    numbered figure caption at body-text size, a live notebook as a ``<figcaption>``. A second
    call appends a sentence. Read it back with :func:`figure_caption`.

    Used by every chapter (the figure helpers call it for their ``caption=`` argument).
    """
    meta = dict(fig.layout.meta) if isinstance(fig.layout.meta, Mapping) else {}
    old = meta.get("nml_caption")
    meta["nml_caption"] = f"{old} · {text}" if old else str(text)
    fig.update_layout(meta=meta)
    return fig


def figure_caption(fig: go.Figure | Mapping) -> str:
    """The caption :func:`add_caption` attached to ``fig`` ("" when it has none).

    Used by :func:`show` (every chapter) and the tests.
    """
    layout = fig.layout if isinstance(fig, go.Figure) else (fig.get("layout") or {})
    meta = layout.meta if isinstance(fig, go.Figure) else layout.get("meta")
    return str(meta.get("nml_caption", "")) if isinstance(meta, Mapping) else ""


# --------------------------------------------------------------------------------------------
# Summaries over seeds
# --------------------------------------------------------------------------------------------

def error_label(error: str) -> str:
    """What an error-bar kind means, in words (captions and hover text). Used by every figure."""
    if error == "ci95":
        return "95% t-interval of the mean over seeds"
    if error == "std":
        return "standard deviation over seeds"
    raise NMLError(f"unknown error-bar kind {error!r}; use one of {', '.join(ERROR_KINDS)}")


def check_columns(df: pd.DataFrame, needed: Iterable[str], what: str) -> None:
    """A one-line NMLError unless ``df`` is a non-empty table with the ``needed`` columns.
    Used by every figure and table helper."""
    if not isinstance(df, pd.DataFrame):
        raise NMLError(f"{what} takes a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise NMLError(f"{what}: the table lacks column(s) {missing}; it has {list(df.columns)}. "
                       "Pass rows in the result-index shape (see nml.plots' module docstring)")
    if df.empty:
        raise NMLError(f"{what}: the table is empty; check the filter that selected the rows")


def noise_percent(noise: pd.Series | np.ndarray) -> np.ndarray:
    """Noise ratios in [0, 1) as percent (a ratio outside is a one-line NMLError). Used by
    every figure against pre-training noise."""
    values = np.asarray(noise, dtype=float)
    if np.any(values < 0) or np.any(values >= 1):
        raise NMLError("noise values must be ratios in [0, 1) (0.05 for 5%); got "
                       f"{sorted(set(values.tolist()))}")
    return values * 100.0


def nth_color(i: int) -> str:
    """The ``i``-th colour of the book's palette (cycled). Used by every figure."""
    return _PALETTE[i % len(_PALETTE)]


def palette_color(i: int) -> str:
    """The book's ``i``-th trace colour (cycled). Used by chapter 06_nmtune's live figure."""
    return nth_color(i)


def noise_label(key) -> str:
    """A spectrum's legend name: ``noise 10%`` for a noise ratio, else the key as text. Used by
    chapters 03_feature_spectrum and 06_nmtune."""
    if isinstance(key, (float, np.floating)) and 0 <= key < 1:
        return f"noise {key * 100:g}%"
    return str(key)


def log_ticks(lo: float, hi: float) -> dict:
    """Ticks of a log axis over ``[lo, hi]`` (data units) written out in full: ``{"tickvals",
    "ticktext"}`` for ``fig.update_yaxes(**log_ticks(lo, hi))``.

    plotly labels the minor ticks of a short log axis with their leading digit only ("2", "5"
    between 10 and 100 read as values 2 and 5), and a tall one with a label at every digit,
    which crowds a phone's 250 px panel. Here: 1-2-5 steps over up to about two decades, 1-3
    steps over up to four, one tick per decade beyond; every label the value itself ("200").

    Used by :func:`spectrum_figure` and :func:`lambda_slider_figure` (chapters 03_feature_spectrum,
    06_nmtune).
    """
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= 0:
        return {}
    lo, hi = min(lo, hi), max(lo, hi)
    span = math.log10(hi / lo) if hi > lo else 0.0
    for mantissas in ([1, 2, 5], [1, 3], [1]) if span > 1.2 else ([1, 2, 3, 5], [1, 2, 5]):
        vals = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1,
                                             math.ceil(math.log10(hi)) + 1) for m in mantissas]
        vals = [v for v in vals if lo <= v * (1 + 1e-9) and v <= hi * (1 + 1e-9)]
        if len(vals) <= 7:
            break
    if len(vals) < 2:  # less than a 1-2-5 step apart: the two ends, rounded
        vals = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})

    def text(v: float) -> str:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-") if (v >= 1e5 or v < 1e-3) \
            else f"{v:g}"
    return {"tickvals": vals, "ticktext": [text(v) for v in vals]}


# --------------------------------------------------------------------------------------------
# Lambda slider (NMTune)
# --------------------------------------------------------------------------------------------

#: Axis titles of the metrics the chapters plot (values in percent are stored in percent).
METRIC_TITLES = {"accuracy": "accuracy (%)", "f1": "macro-F1 (%)"}


# --------------------------------------------------------------------------------------------
# Chapter helpers (04_lora, 05_full_finetune, 06_nmtune): captions from a scale, multi-panel
# noise plots, gaps to the clean model, spectra picked out of a grid
# --------------------------------------------------------------------------------------------

#: Readable backbone names for captions, legends and tables (:func:`human_label`).
BACKBONE_LABELS = {
    "resnet18_cifar": "ResNet-18", "resnet18_cifar_narrow": "ResNet-18 ¼ width",
    "resnet_micro": "micro ResNet", "vit_small_cifar": "ViT-S", "vit_narrow_cifar": "ViT ¼ width",
    "vit_micro": "micro ViT", "clip_vit_micro": "micro CLIP ViT",
    "clip_vit_narrow": "CLIP ViT ¼ width", "clip_vit_small": "CLIP ViT-S",
    # chapter 07's released models
    "all-MiniLM-L6-v2": "MiniLM-L6", "efficientnet_lite0": "EfficientNet-Lite0",
}

#: Readable tuning-method names for legends, axes and tables (:func:`human_label`).
METHOD_LABELS = {
    "lp": "LP", "mlp": "MLP", "nmtune": "NMTune", "lora": "LoRA",
    "lora_nmtune": "LoRA + NMTune", "ft": "FT", "frozen": "frozen features",
}

#: Readable task names (the kind, ID or OOD, is added by :func:`task_label`).
TASK_LABELS = {
    "cifar10": "CIFAR-10", "caltech101": "Caltech-101", "cifar100": "CIFAR-100",
    "pacs_photo": "PACS photo → other domains", "pacs_sketch": "PACS sketch → other domains",
    "pacs_heldout_sketch": "PACS 3 domains → sketch",
    "cifar10c": "CIFAR-10 → CIFAR-10-C", "synthetic_id": "synthetic ID",
    "synthetic_upstream": "synthetic upstream set",
    "synthetic_ood_photo": "synthetic photo → other domains",
    "synthetic_ood_sketch": "synthetic sketch → other domains",
    "sst2": "SST-2 (→ IMDB)",
}


def human_label(value, column: str | None = None) -> str:
    """The one reader-facing name of an identifier, for every figure legend and table.

    Methods, backbones and tasks by :data:`METHOD_LABELS`, :data:`BACKBONE_LABELS`,
    :data:`TASK_LABELS`; with ``column`` "noise" / "label_noise" a ratio reads
    "10 % noise" / "10 % downstream noise"; with ``column`` "test_set" a target domain or
    corruption reads as words ("art painting", "all corruptions at severity 5"). Anything else
    is returned as text.

    Used by every chapter's figures and tables (through the figure helpers and
    :func:`readable_table`).
    """
    if column in ("noise", "label_noise") and isinstance(value, (int, float, np.number)):
        return f"{float(value) * 100:g} % {'noise' if column == 'noise' else 'downstream noise'}"
    if column == "fraction" and isinstance(value, (int, float, np.number)):
        return f"{float(value) * 100:g} % of the training data"
    if column == "test_set" and isinstance(value, str):
        # "art_painting" -> "art painting"; collapse_corruptions' "corrupted @ 5" -> severity
        severity = re.fullmatch(r"corrupted @ (\d+)", value)
        if severity:
            return f"all corruptions at severity {severity.group(1)}"
        if "@" in value:
            name, level = value.split("@", 1)
            return f"{name.replace('_', ' ')} at severity {level}"
        return {"mean": "mean over targets"}.get(value, value.replace("_", " "))
    if isinstance(value, str):
        for table in (METHOD_LABELS, BACKBONE_LABELS, TASK_LABELS):
            if value in table:
                return table[value]
    return str(value)

_WHITEBOX = WHITEBOX_METHODS


def task_label(task: str) -> str:
    """``"CIFAR-10 (ID)"``: a task's readable name (:data:`TASK_LABELS`) with its kind.

    A name that is not a downstream task (e.g. the upstream set) gets no kind.

    Used by chapters 06_nmtune, 08_asymmetric_noise and 09_noisy_downstream, and by
    :func:`scale_caption` and :func:`gap_bars_figure` (04_lora, 05_full_finetune).
    """
    from .data import TASKS

    name = TASK_LABELS.get(task, str(task))
    return f"{name} ({TASKS[task].kind.upper()})" if task in TASKS else name


def task_panel_title(task: str, what: str) -> str:
    """Two short lines over a per-task panel: the task (an ID task with its kind, an OOD task
    named by where it goes) and what the panel plots, e.g. ``"CIFAR-10 (ID)<br>accuracy (%)"``.
    Two lines keep three panels in a row from overprinting each other's titles.

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune and 11_ablations.
    """
    from .data import TASKS

    name = task_label(task) if task in TASKS and TASKS[task].kind == "id" else human_label(task)
    return f"{name}<br>{what}"


def tasks_in_order(tasks) -> list[str]:
    """Distinct task names, ID tasks first, each kind alphabetically: the panel order of every
    per-task figure. Used by chapters 04_lora, 05_full_finetune, 06_nmtune and 11_ablations."""
    from .data import TASKS

    return sorted(set(tasks), key=lambda t: (t not in TASKS or TASKS[t].kind != "id", t))


def seeds_text(df: pd.DataFrame, *, by: Sequence[str] = ("backbone", "task", "noise")) -> str:
    """How many runs each plotted point averages, per method: "LP 3 seeds (1 pre-training x 3
    tuning); FT 1 seed: no spread".

    A run is one distinct (``pretrain_seed``, ``seed``) pair inside a cell of ``by`` (and of
    ``method``, when the table has that column); ``df`` should hold one metric of one test set
    per cell. Where cells of one method differ, the range is given.

    Used by :func:`scale_caption` (chapters 04_lora to 11_ablations).
    """
    check_columns(df, ["pretrain_seed", "seed"], "seeds_text")
    by = [c for c in by if c in df.columns]
    methods = sorted(df["method"].unique(), key=method_order) if "method" in df.columns \
        else [None]
    texts = {}
    for method in methods:
        part = df if method is None else df[df["method"] == method]
        groups = [g for _, g in part.groupby(by, dropna=False)] if by else [part]
        runs = [len(g[["pretrain_seed", "seed"]].drop_duplicates()) for g in groups]
        pre = max(g["pretrain_seed"].nunique() for g in groups)
        tune = max(g["seed"].nunique() for g in groups)
        lo, hi = min(runs), max(runs)
        if hi == 1:
            texts[method] = "1 seed: no spread"
        elif lo == hi:
            texts[method] = f"{hi} seeds ({pre} pre-training x {tune} tuning)"
        else:
            texts[method] = f"{lo}-{hi} seeds per point" + (" (1 seed: no spread)" if lo == 1
                                                             else "")
    if len(set(texts.values())) == 1:  # every method has the same seeds: say it once
        return next(iter(texts.values()))
    return "; ".join(f"{METHOD_LABELS.get(m, m)} {t}" for m, t in texts.items())


def retrained_text(retrained: Mapping, what: str) -> str:
    """The provenance sentence for models trained again after their checkpoint was lost
    (:attr:`nml.chapters.GridResult.retrained`): which models, the upstream test accuracy of
    each re-run and of the stored model, and what that means for ``what`` (e.g. "the sweep's
    points"). "" when no unit came from a re-run.

    Used by chapters 06_nmtune (the lambda explorer) and 11_ablations (paper vs authors' code).
    """
    if not retrained:
        return ""
    models = "; ".join(
        f"{noise:.0%} noise, seed {seed}: {note['this_run_test_accuracy']:.2f} % "
        f"(stored {note['stored_test_accuracy']:.2f} %)"
        for (_, noise, seed), note in sorted(retrained.items()))
    many = len(retrained) > 1
    return (f"**Provenance.** {len(retrained)} pre-trained model{'s' if many else ''} "
            f"{'were' if many else 'was'} trained again because {'their' if many else 'its'} "
            f"checkpoint{'s' if many else ''} did not survive a change of machine; CPU training "
            f"is not bit-reproducible, so {what} come from sibling models of one configuration. "
            f"Upstream test accuracy of each re-run against the stored model: {models}.")


def method_order(method: str) -> int:
    """A method's place in :data:`METHOD_LABELS` (LP first); unknown methods last. Used by
    captions and legends of every chapter."""
    order = list(METHOD_LABELS)
    return order.index(method) if method in order else len(order)


def scale_caption(scale, df: pd.DataFrame, *, extra: str | None = None) -> str:
    """A figure caption from the scale preset and the rows the figure shows.

    States the data (upstream dataset -> the tasks in ``df``), the models (the backbones in
    ``df``), the epochs (pre-training; black-box tuning and / or LoRA / FT, as the methods in
    ``df`` need, with the white-box train-image cap when the scale has one) and the seeds of
    each method (:func:`seeds_text`). ``scale``: a :class:`nml.experiments.Scale` (e.g.
    ``pipe.scale``). Nothing is hard-coded: a rerun at another scale gets its own caption.

    Used by chapters 04_lora, 05_full_finetune, 06_nmtune, 08_asymmetric_noise,
    09_noisy_downstream and 11_ablations.
    """
    check_columns(df, ["backbone", "pretrain_seed", "seed"], "scale_caption")
    tasks = sorted(df["task"].unique()) if "task" in df.columns else []
    data = human_label(scale.upstream) + (" → " + ", ".join(task_label(t) for t in tasks)
                                          if tasks else "")
    model = ", ".join(BACKBONE_LABELS.get(b, b) for b in sorted(df["backbone"].unique()))
    methods = set(df["method"].unique()) if "method" in df.columns else set()
    backbones = set(df["backbone"].unique())
    clip_epochs = dict(scale.clip_overrides).get("epochs", scale.pretrain_epochs)
    if backbones and all(b.startswith("clip_") for b in backbones):
        epochs = [f"CLIP pre-training {clip_epochs}"]
    else:
        epochs = [f"pre-training {scale.pretrain_epochs}"]
    # Name only the methods the figure shows ("LP 10" beside FT, not "LP / MLP / NMTune 10").
    def named(group):
        return " / ".join(METHOD_LABELS.get(m, m) for m in sorted(group, key=method_order))
    blackbox = methods - set(_WHITEBOX) - {"pretrain", "frozen"}
    if blackbox:
        epochs.append(f"{named(blackbox)} {scale.tune_epochs}")
    if methods & set(_WHITEBOX):
        cap = (f" on <= {scale.whitebox_train_limit} train images"
               if scale.whitebox_train_limit else "")
        epochs.append(f"{named(methods & set(_WHITEBOX))} {scale.whitebox_epochs}{cap}")
    parts = ["epochs: " + ", ".join(epochs), seeds_text(df)]
    if extra:
        parts.append(extra)
    return caption(scale=scale.name, data=data, model=model, extra=" · ".join(parts))


COLUMN_LABELS = {"method": "tuning method", "backbone": "model", "task": "task",
                  "noise": "pre-training noise", "label_noise": "downstream noise",
                  "fraction": "training data", "test_set": "test set"}
