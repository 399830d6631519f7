"""The scorecard page as markdown (:func:`render_markdown`).

Used by book/scorecard.md.
"""

from __future__ import annotations

import pandas as pd

from .claims import CLAIMS, FAMILIES, MAIN_CLAIMS, NOT_RUN_CLAIMS, NOT_SCORED_CLAIMS
from .measure import claim_anchor, control_note, headline_text, score
from .rules import (ASYMMETRIC_NOISE, EXPERIMENT_OF, SCALE_LABELS, SCALE_ORDER, VERDICT_RULE,
                    VERDICTS)


def _cell_text(text: str) -> str:
    """Text safe inside a MyST pipe table (no pipes, no dollar math, no line breaks)."""
    return " ".join(text.replace("|", "/").replace("$", "").split())


def _units(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "none"
    counts = rows.groupby(["experiment", "method"])["key"].nunique()
    return ", ".join(f"{exp}/{method} ({n} units)" for (exp, method), n in counts.items())


def _scales_present(index: pd.DataFrame, scales) -> list[str]:
    present = set(index["scale"].dropna().astype(str)) if len(index) else set()
    ordered = [s for s in SCALE_ORDER if s in present] + sorted(present - set(SCALE_ORDER))
    return [s for s in ordered if scales is None or s in scales]


def _rows_used_text() -> str:
    """The page's "Rows used" bullet: which store experiment each claim family reads."""
    def ids(claims) -> str:   # "T1, C1-C8c": a range per leading letter
        runs: list[list[str]] = []
        for c in claims:
            if runs and runs[-1][0][0] == c.id[0]:
                runs[-1].append(c.id)
            else:
                runs.append([c.id])
        return ", ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    parts = [f"{ids(claims)}: `{claims[0].experiment}` ({what})" for claims, what in FAMILIES]
    return (f"Claims {ids(MAIN_CLAIMS)} take each method's rows from its main experiment of "
            "the store (" + ", ".join(f"{m}: `{e}`" for m, e in EXPERIMENT_OF.items())
            + "), at full downstream data, clean downstream labels and, for NMTune, lambda = "
            "0.01; ablation, slider and noisy-downstream runs are not mixed in, nor are the "
            "asymmetric-noise models of chapter 08 that share experiment `pretrain` (their noise "
            "type is read from the unit configs). The other "
            "families read one experiment for every method, with the same filters unless said: "
            + "; ".join(parts) + ".")


def render_markdown(index: pd.DataFrame, scales=None, *, source: str = "results/index.csv") -> str:
    """The scorecard page (MyST markdown for Jupyter Book 1.x) from a result index.

    ``scales``: the scales to show (default: every scale in the index, best first). Scales
    asked for but absent from the index are listed as not run. Used by book/scorecard.md.
    """
    index = index.copy()
    asked = list(scales) if scales is not None else None
    scored = {scale: [score(index, c, scale) for c in CLAIMS]
              for scale in _scales_present(index, asked)}
    # A scale whose rows serve no claim (a benchmark's own label, say) gets no table.
    other = [s for s, rows in scored.items() if all(r.verdict == "not run" for r in rows)]
    shown = [s for s in scored if s not in other]
    lines = _intro_lines(index, source)
    if not shown:
        lines += ["## Results", "", "The result index holds no results yet: every claim below "
                  "is **not run**.", ""]
    for scale in shown:
        lines += _scale_lines(scale, scored[scale], stored_models_line(index, scale))
    absent = [s for s in (asked or []) if s not in shown and s not in other]
    if other:
        lines += ["## Other scales in the index", ""]
        lines += [f"- `{s}`: rows of {_units(index[index['scale'] == s])}, none of which is "
                  f"used by a claim below." for s in other]
        lines.append("")
    if absent:
        lines += ["## Scales without results", ""]
        lines += [f"- {SCALE_LABELS.get(s, s)}: no rows in the index; every claim is "
                  f"**not run** at this scale." for s in absent]
        lines.append("")
    lines += _claim_lines()
    return "\n".join(lines)


def _intro_lines(index: pd.DataFrame, source: str) -> list[str]:
    """The page's title and "How to read it"."""
    return [
        "(scorecard)=",
        "# Reproduction scorecard",
        "",
        "Each claim of the paper (journal version) that this book measures, the effect the "
        "book measured, and a verdict. The page is generated from the result store by "
        "`python -m nml scorecard` (module `nml.scorecard`); every number below is recomputed "
        f"from `{source}` ({len(index)} rows, "
        f"{index['key'].nunique() if 'key' in index else 0} units) and nothing on it is "
        "typed by hand.",
        "",
        "## How to read it",
        "",
        "- **Scales.** One table per scale, best scale first. A claim can be reproduced at one "
        "scale and not at another: the small scales use far smaller data, models and epoch "
        "counts than the paper, so a verdict says what this scale shows, not whether the paper "
        "is right.",
        "- **Rows used.** " + _rows_used_text(),
        "- **Effect.** Each claim is turned into one number whose sign the paper predicts "
        "(column *claimed*). The effect is computed per backbone and downstream task (a "
        "*cell*) and per replicate, then averaged over cells. Accuracies are in percentage "
        "points; SVE and LSVR in nats. Only the paper's noise ratios (0, 5, 10, 20 and 30 %) "
        "enter; a scale without a 5 % or 20 % model uses the ratios it has. The asymmetric-noise "
        "claims use the paper's ratios for that study instead ("
        + ", ".join(f"{x * 100:g}" for x in ASYMMETRIC_NOISE) + " %), and the practical-model "
        "claims take every row of a model as one level.",
        "- **Replicates and interval.** When a scale has several pre-training seeds, a "
        "replicate is one pre-training seed (its downstream seeds averaged); with a single "
        "pre-trained model per noise level, a replicate is a downstream seed, and the interval "
        "then covers downstream variation only, not the variation between pre-training runs. "
        "Compared values are paired by seed. The interval is the 95 % Student-t interval of "
        "the mean of the replicate-level effects (mean plus or minus t(0.975, n-1) times the "
        "standard error); with one replicate there is none.",
        "- **Verdict.** " + VERDICT_RULE,
        "",
        "The exact rows behind any number: `nml.scorecard.measure(index, claim_id, "
        "scale).rows` with `index = nml.scorecard.load_index()` (the store's index; its "
        "`variant` and `noise_type` columns, the ablation variant and the pre-training noise "
        "type of each row, come from the unit configs).",
        "",
    ]


def stored_models_line(index: pd.DataFrame, scale: str) -> str:
    """A sentence when ``scale``'s grid is stored in part: how many of its pre-trained models
    (backbone x noise level x pre-training seed, symmetric noise) the index holds. Empty for a
    scale stored in full or unknown to :data:`nml.experiments.SCALES`."""
    from ..experiments import SCALES
    spec = SCALES.get(scale)
    if spec is None:
        return ""
    expected = {(b, float(n), int(s)) for b in spec.backbones for n in spec.noise_levels
                for s in spec.pretrain_seeds}
    pre = index[(index["experiment"] == "pretrain") & (index["scale"] == scale)
                & (index["metric"] == "accuracy")]
    if "noise_type" in pre.columns:
        pre = pre[pre["noise_type"].fillna("symmetric") == "symmetric"]
    stored = {(b, float(n), int(s)) for b, n, s in
              zip(pre["backbone"], pre["noise"], pre["pretrain_seed"])} & expected
    if len(stored) >= len(expected):
        return ""
    top = max((n for _, n, _ in stored), default=None)
    levels = sorted({n for _, n, _ in stored})
    heaviest = (f" Stored noise levels: {', '.join(f'{n * 100:g} %' for n in levels)}; a claim "
                f"worded \"0 % minus 30 %\" compares 0 % with the heaviest stored level "
                f"({top * 100:g} %) until 30 % is stored." if top is not None and top < max(
                    spec.noise_levels) else "")
    return (f"**Stored so far: {len(stored)} of the {len(expected)} pre-trained models of this "
            f"scale.** Its grid runs one model at a time (`python -m nml grid --by-model`); "
            f"the rows below score what is stored, and a claim that needs a missing model "
            f"reads \"not run\".{heaviest}")


def _scale_lines(scale: str, rows: list, progress: str = "") -> list[str]:
    """One scale's section: its verdict table, then one detail line per claim."""
    label = SCALE_LABELS.get(scale, f"scale {scale}")
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    lines = [f"## {label[0].upper() + label[1:]}", "", *([progress, ""] if progress else []),
             "Verdicts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
             "| Claim | Effect measured | Claimed | Our effect, 95 % interval (n) "
             "| Verdict |",
             "|---|---|---|---|---|"]
    for r in rows:
        c = r.measurement.claim
        effect = headline_text(r)
        if r.measurement.excluded and r.cells:
            left = len(r.measurement.excluded)
            effect += f" ({left} cell{'s' if left > 1 else ''} left out, see details)"
        lines.append("| " + " | ".join(_cell_text(t) for t in (
            f"**{c.id}** {c.title}", c.effect,
            "> 0" if c.direction > 0 else "< 0", effect, f"**{r.verdict}**")) + " |")
    lines += ["", f"### Details at the {scale} scale", ""]
    lines += [_detail_line(r, scale) for r in rows]
    lines.append("")
    return lines


def _detail_line(r, scale: str) -> str:
    """One claim's detail line: verdict, reason, cells, control, exclusions and units."""
    m = r.measurement
    c = m.claim
    head = (f"- <span id=\"{claim_anchor(c.id, scale)}\"></span>**{c.id}** "
            f"(\"{_cell_text(c.quote)}\", {c.source}): **{r.verdict}**, "
            f"{_cell_text(r.reason)}")
    if r.headline is None:
        return f"{head}."
    parts = [f"replicate = {m.replicate}"]
    if len(r.cells) > 1 or (r.headline.n == 0):
        parts.append("per cell: " + "; ".join(
            f"{name} {iv.format(c.digits)}" for name, iv in r.cells.items()))
    else:
        parts.append(f"cell: {next(iter(r.cells))}")
    for label, iv in r.secondary.items():
        parts.append(f"{label}: {iv.format(c.digits)}")
    if r.control is not None:
        parts.append(f"control, {c.control[0]}: {r.control.format(c.digits)}"
                     + control_note(r).rstrip("."))
    for name, why in m.excluded.items():
        parts.append(f"left out: {name} ({why})")
    if m.duplicates:
        parts.append(f"{m.duplicates} replicate values average more than one stored "
                     f"unit with the same labels")
    parts.append(f"units: {_units(m.rows)}")
    return f"{head}. " + _cell_text("; ".join(parts)) + "."


def _claim_lines() -> list[str]:
    """How each claim is measured, and the claims not run or not scored."""
    lines = ["## How each claim is measured", ""]
    for c in CLAIMS:
        text = f"- **{c.id} {c.title}** ({c.source}). {c.measure_text}"
        if c.note:
            text += f" {c.note}"
        lines.append(_cell_text(text))
    lines += ["", "## Claims not run", "",
              "These claims of the paper are **not run** at any scale of this book:", "",
              "| Claim | Paper | Why not run |", "|---|---|---|"]
    for claim, source, reason in NOT_RUN_CLAIMS:
        lines.append("| " + " | ".join(_cell_text(t) for t in (claim, source, reason)) + " |")
    lines += ["", "## Claims measured but not scored", "",
              "A chapter measures these, but the fixed rule above cannot give them a verdict:", "",
              "| Claim | Paper | Why not scored |", "|---|---|---|"]
    for claim, source, reason in NOT_SCORED_CLAIMS:
        lines.append("| " + " | ".join(_cell_text(t) for t in (claim, source, reason)) + " |")
    lines.append("")
    return lines
