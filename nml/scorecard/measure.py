"""Measuring a claim at one scale (:func:`measure`, :func:`score`) and the chapters' verdict
sentences (:func:`claim_sentences`, :func:`verdict_block`).

Used by book/scorecard.md and chapters 01, 02, 03 and 06.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import NMLError
from .claims import CLAIMS
from .rules import (MIN_PRETRAIN_SEEDS, OOD_SIGNAL_MARGIN, VERDICT_MEANING, Interval,
                    opposite_signs, t_interval, verdict)
from .select import Claim, arm_text, gather, per_cell, task_kinds, unit_columns_read
from .source import load_index

# -- measuring ------------------------------------------------------------------------------------

@dataclass
class Measurement:
    """A claim measured at one scale: per-cell and headline effects, and their sources."""

    claim: Claim
    scale: str
    cells: dict[str, pd.Series]                 # cell -> replicate -> effect
    headline: pd.Series                          # replicate -> mean effect over cells
    secondary: dict[str, pd.Series]              # label -> replicate -> headline of that quantity
    rows: pd.DataFrame                           # the index rows used
    replicate: str
    duplicates: int
    missing: str = ""                            # why nothing could be measured
    excluded: dict[str, str] = field(default_factory=dict)  # cell -> why it does not enter
    control: pd.Series | None = None             # replicate -> headline of Claim.control
    pretrain_seeds: int = 0                      # pre-training seeds behind the replicates


def _headline(cells: dict[str, pd.Series]) -> pd.Series:
    if not cells:
        return pd.Series(dtype=float)
    common = None
    for s in cells.values():
        common = set(s.index) if common is None else common & set(s.index)
    reps = sorted(common or ())
    if not reps:
        return pd.Series(dtype=float)
    return pd.concat([s.loc[reps] for s in cells.values()], axis=1).mean(axis=1)


def measure(index: pd.DataFrame, claim: Claim | str, scale: str) -> Measurement:
    """Measure one claim at one scale from the result index (see the module docstring).

    Used by the scorecard page; ``measure(index, "C1", "cpu").rows`` are the exact index rows
    behind a number on the page.
    """
    if isinstance(claim, str):
        by_id = {c.id: c for c in CLAIMS}
        if claim not in by_id:
            raise NMLError(f"unknown claim {claim!r}; known claims: {', '.join(by_id)}")
        claim = by_id[claim]
    extra = [spec for spec in (claim.control, claim.precondition) if spec is not None]
    methods = tuple(dict.fromkeys(claim.methods + tuple(
        m for _, ms, _ in (*claim.secondary, *extra) for m in ms)))
    rows = gather(index, scale, claim, claim.kind, methods)
    cells = per_cell(rows.frames, claim.methods, claim.cell_effect)
    excluded = {}
    for name, why in _weak_ood_cells(index, scale, claim, cells).items():
        excluded[name] = why
        cells.pop(name)
    # only beside measured cells: a claim with none under this preprocessing stays "not run"
    for name, why in (_unmigrated_cells(index, scale, claim, cells) if cells else {}).items():
        excluded.setdefault(name, why)
    if claim.precondition is not None:
        label, ms, fn = claim.precondition
        before = per_cell(rows.frames, ms, fn)
        for name in list(cells):
            if name in before and before[name].mean() >= 0:
                excluded[name] = (f"nothing to rectify: the clean model is already best there "
                                  f"({label}: {before[name].mean():+.{claim.digits}f})")
                cells.pop(name)
    secondary = {label: _headline(per_cell(rows.frames, ms, fn))
                 for label, ms, fn in claim.secondary}
    control = None
    if claim.control is not None:
        _, ms, fn = claim.control
        control = _headline({k: v for k, v in per_cell(rows.frames, ms, fn).items()
                             if k not in excluded})
    pretrain_seeds = int(rows.used["pretrain_seed"].nunique()) if not rows.used.empty else 0
    missing = ""
    if not cells and excluded:
        missing = "no cell enters: " + "; ".join(f"{k} ({v})" for k, v in excluded.items())
    elif not cells:
        absent = [arm_text(m) for m in claim.methods if rows.frames[m].empty]
        missing = (f"no rows for {', '.join(absent)}" if absent else
                   "rows present but no complete comparison (a noise level or a method is "
                   "missing for every backbone and task)")
        if absent and claim.experiment:
            missing += f" in experiment {claim.experiment}"
        lacking = [c for c in unit_columns_read(claim) if c not in index]
        if absent and lacking:
            missing += (f" (the index has no {' or '.join(lacking)} column: it predates "
                        "them; `python -m nml store rebuild` or nml.scorecard.load_index adds "
                        "them from the unit configs)")
    return Measurement(claim, scale, cells, _headline(cells), secondary, rows.used, rows.replicate,
                       rows.duplicates, missing, excluded, control, pretrain_seeds)


def _unmigrated_cells(index: pd.DataFrame, scale: str, claim: Claim,
                      cells: dict[str, pd.Series]) -> dict[str, str]:
    """Cells a claim under the authors' spectrum preprocessing (``<id>A``) lacks although its
    paper-definition twin has them: units stored before that preprocessing existed, which no
    re-run reproduced (scripts/migrate_spectrum_authors.py). Listed as left out, so that the
    two twins are never read as measured on the same cells."""
    from dataclasses import replace

    from ..spectrum import METRIC_NAMES
    paper = {v: k for k, v in METRIC_NAMES["authors"].items()}.get(claim.metric)
    if paper is None:
        return {}
    twin = replace(claim, metric=paper)
    rows = gather(index, scale, twin, twin.kind, claim.methods)
    return {name: "not stored under the authors' preprocessing: its units predate it and a "
                  "re-run did not reproduce them"
            for name in per_cell(rows.frames, claim.methods, claim.cell_effect)
            if name not in cells}


def _weak_ood_cells(index: pd.DataFrame, scale: str, claim: Claim,
                    cells: dict[str, pd.Series]) -> dict[str, str]:
    """Cells of OOD tasks whose clean model's linear probe does not beat chance by
    :data:`OOD_SIGNAL_MARGIN` points (or has no such probe stored): cell -> why.

    The probe is the claim's experiment's (``linear_probe`` for the main claims) at noise 0,
    full data, clean labels, mean over the task's targets, averaged over every seed. Claims
    that name their own test sets (the practical models) are not gated.
    """
    if claim.test_sets is not None or not cells:
        return {}
    from ..data import TASKS, chance_accuracy
    at = index[(index["scale"] == scale)]
    kinds = task_kinds(at)
    probe = at[(at["method"] == "lp") & (at["experiment"] == (claim.experiment or "linear_probe"))
               & (at["metric"] == "accuracy") & (at["test_set"].astype(str) == "mean")
               & np.isclose(at["noise"].astype(float), 0.0)]
    if "fraction" in probe:
        probe = probe[probe["fraction"].isna() | np.isclose(probe["fraction"].astype(float), 1)]
    if "label_noise" in probe:
        probe = probe[probe["label_noise"].isna() | (probe["label_noise"].astype(float) == 0)]
    out = {}
    for name in cells:
        backbone, task = name.split(" / ")[:2]
        if kinds.get(task) != "ood" or task not in TASKS:
            continue
        values = probe[(probe["backbone"] == backbone) & (probe["task"] == task)]["value"]
        chance = chance_accuracy(task)
        if values.empty:
            out[name] = "OOD task without a stored clean linear probe to show it carries signal"
        elif values.mean() < chance + OOD_SIGNAL_MARGIN:
            out[name] = (f"OOD task near chance: clean LP {values.mean():.1f} % against chance "
                         f"{chance:.1f} % (needs +{OOD_SIGNAL_MARGIN:g} points)")
    return out


@dataclass
class ScoreRow:
    """One line of the scorecard: a claim at a scale, its interval and verdict."""

    measurement: Measurement
    headline: Interval | None
    cells: dict[str, Interval]
    secondary: dict[str, Interval]
    verdict: str
    reason: str = ""                 # why the verdict is what it is, in words
    control: Interval | None = None  # Claim.control's headline, when the claim has one


def score(index: pd.DataFrame, claim: Claim | str, scale: str) -> ScoreRow:
    """Measure ``claim`` at ``scale`` and give it its verdict (:data:`VERDICT_RULE`, caps
    included). Used by the scorecard page and, through :func:`claim_sentences`, every chapter.
    """
    m = measure(index, claim, scale)
    claim = m.claim
    cells = {name: t_interval(s.to_numpy()) for name, s in m.cells.items()}
    headline = t_interval(m.headline.to_numpy()) if m.cells else None
    if headline is not None and headline.n == 0:
        # Cells without a shared replicate: no headline interval, the mean of cell means.
        headline = Interval(float(np.mean([c.mean for c in cells.values()])), None, None, 0)
    secondary = {k: t_interval(v.to_numpy()) for k, v in m.secondary.items() if len(v)}
    control = t_interval(m.control.to_numpy()) if m.control is not None and len(m.control) \
        else None
    result = verdict(headline, cells, claim.direction)
    reason = VERDICT_MEANING[result]
    if result == "untestable":
        reason = f"one replicate ({m.replicate}): no interval"
    if result == "not run" and m.excluded:
        result, reason = "untestable", m.missing
    if opposite_signs(cells):
        reason = "opposite signs across tasks, judged per task: " + reason
    by_model = m.replicate.startswith("pre-training seed")
    # The seeds that enter the effect: a seed stored at one noise level only pairs with nothing.
    seeds = m.pretrain_seeds if not by_model or headline is None else \
        min(m.pretrain_seeds, max([headline.n] + [iv.n for iv in cells.values()]))
    if claim.about_pretraining and result in ("reproduced", "partly", "inconclusive") and (
            not by_model or seeds < MIN_PRETRAIN_SEEDS):
        result = "untestable"
        reason = (f"a claim about pre-training noise, measured over {seeds} "
                  f"pre-training seed{'s' if seeds != 1 else ''} (needs "
                  f"{MIN_PRETRAIN_SEEDS}); replicate = {m.replicate}")
    return ScoreRow(m, headline, cells, secondary, result, reason, control)


def claim_sentences(claim_ids, scale: str, index: pd.DataFrame | None = None, *,
                    link: str = "../book/scorecard.html") -> str:
    """Markdown verdicts for ``claim_ids`` at ``scale``: one bullet per claim with the effect,
    its 95 % interval, the replicates, the verdict and why, and a link to the scorecard row.

    The chapters print their verdicts with this, so a chapter and the scorecard can never
    disagree: both come from :func:`score`. Used by chapters 01, 02, 03 and 06.
    """
    index = load_index() if index is None else index
    lines = []
    for cid in claim_ids:
        r = score(index, cid, scale)
        c, m = r.measurement.claim, r.measurement
        # The verdict first, then why, then the numbers behind it.
        text = f"- **{c.id}** {c.title}: **{r.verdict}**, {r.reason}."
        if r.headline is None:
            if m.missing and m.missing not in r.reason:
                text += f" Not measured here ({m.missing})."
        names = list(r.cells) + list(m.excluded)
        with_model = len({n.split(" / ", 1)[0] for n in names}) > 1
        per_task = "; ".join(f"{readable_cell(name, with_model)} {iv.format(c.digits)}"
                             for name, iv in r.cells.items())
        if r.headline is not None:
            effect = c.effect[0].upper() + c.effect[1:]
            replicate = "" if m.replicate in r.reason else f"; replicate = {m.replicate}"
            if opposite_signs(r.cells):
                text += (f" {effect}, per task (opposite signs, so not averaged): "
                         f"{per_task}{replicate}.")
            else:
                text += f" {effect}: {r.headline.format(c.digits)}{replicate}."
                if len(r.cells) > 1:
                    text += f" Per task: {per_task}."
        left = {name: why for name, why in m.excluded.items() if why not in r.reason}
        if left:
            text += " Left out: " + "; ".join(
                f"{readable_cell(name, with_model)} ({why})" for name, why in left.items()) + "."
        if c.control is not None:
            text += (f" Control, {c.control[0]}: " + (r.control.format(c.digits)
                     if r.control is not None else "not stored at this scale") + control_note(r))
        lines.append(text + f" (Paper: {c.source}.) <a href=\"{link}#"
                     f"{claim_anchor(c.id, scale)}\">Scorecard row</a>.")
    return "\n".join(lines)


def headline_text(r: ScoreRow) -> str:
    """The effect as the scorecard's table prints it: the headline interval, or, when the
    cells point opposite ways, each cell's (no average of opposite signs)."""
    digits = r.measurement.claim.digits
    if r.headline is None:
        return "not measured"
    if opposite_signs(r.cells):
        with_model = len({name.split(" / ", 1)[0] for name in r.cells}) > 1
        return "opposite signs, not averaged: " + "; ".join(
            f"{readable_cell(name, with_model)} {iv.format(digits)}"
            for name, iv in r.cells.items())
    return r.headline.format(digits)


def readable_cell(name: str, with_model: bool = True) -> str:
    """A cell name (``"backbone / task[ / more]"``) in the reader's words ("ResNet-18 ¼ width /
    CIFAR-10"); without ``with_model`` the backbone is left out (every cell shares it)."""
    from ..labels import human_label
    parts = [human_label(p) for p in name.split(" / ")]
    return " / ".join(parts if with_model else parts[1:] or parts)


def verdict_block(claim_ids, scale: str, index: pd.DataFrame | None = None) -> str:
    """A chapter's verdict section: :func:`claim_sentences` under a line saying where the rule
    comes from. Used by chapters 01, 02, 03, 06, 07, 08 and 09."""
    return ("The verdicts below are computed by `nml.scorecard` with the same fixed rule and the "
            "same rows as the [reproduction scorecard](../book/scorecard.md) (a chapter and the "
            "scorecard cannot disagree):\n\n" + claim_sentences(claim_ids, scale, index))


def minimum_detectable_effect(row: ScoreRow, power: float = 0.8) -> float | None:
    """The smallest true effect this many replicates would detect with probability ``power``
    (two-sided 95 % t-test on the replicate-level effects, their measured spread taken as the
    truth): ``(t(0.975, n-1) + t(power, n-1)) * sd / sqrt(n)``. None with fewer than 2
    replicates. Used by chapter 02 (how small an ID bump the grid could see)."""
    from scipy import stats
    x = row.measurement.headline.to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    n, sd = len(x), float(np.std(x, ddof=1))
    return float((stats.t.ppf(0.975, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def control_note(r: ScoreRow) -> str:
    """What the MLP control says about an "NMTune beats LP" claim."""
    if r.control is not None and r.control.excludes_zero() and r.control.mean > 0:
        return (": the MLP head alone beats LP too, so this comparison says nothing about "
                "NMTune's regularisers; NMTune minus MLP tuning is the claim that tests them.")
    return "."


def claim_anchor(cid: str, scale: str) -> str:
    """The HTML id of a claim's row at a scale on the scorecard page (links from chapters)."""
    return f"{scale}-{cid}".lower().replace("_", "-")


# -- the page -------------------------------------------------------------------------------------
