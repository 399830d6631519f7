"""The scorecard's fixed rules: the paper's constants it scores against, the verdicts and the
rule that decides them, and the 95 % t-interval over replicates.

Used by book/scorecard.md and the chapters' verdicts (:func:`nml.scorecard.verdict_block`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..chapters import ASYMMETRIC_NOISE_LEVELS, AUTO_ORDER, DOWNSTREAM_NOISE_LEVELS
from ..vocab import (EXPERIMENT_OF, NOISE_TYPE_EXPERIMENTS, PAPER_LAMBDA,  # noqa: F401 (re-exported)
                     PAPER_NOISE, SLIGHT_NOISE, VARIANT_EXPERIMENTS, VARIANT_KNOBS)

#: Asymmetric pre-training noise ratios (paper 7.3, {0, 2.5, 5, 10} %; their home is
#: nml.chapters) and the ones the scorecard counts as "slight" there: 2.5 and 5 %. The paper's
#: slight levels under random noise are 5 and 10 % (SLIGHT_NOISE), but 10 % is the highest
#: asymmetric ratio, where it finds that "performance degrades earlier" on related tasks.
ASYMMETRIC_NOISE = tuple(ASYMMETRIC_NOISE_LEVELS)
SLIGHT_ASYMMETRIC = (0.025, 0.05)
#: Downstream label-noise ratios eta > 0 (paper 7.4; home: nml.chapters), split where the
#: paper splits its NMTune claim: "light, e.g., smaller than 40%" and heavier.
NOISY_ETA = tuple(e for e in DOWNSTREAM_NOISE_LEVELS if e > 0)
LIGHT_ETA = tuple(e for e in NOISY_ETA if e < 0.4)
HEAVY_ETA = tuple(e for e in NOISY_ETA if e >= 0.4)
#: The practical-model claims (chapter 07_practical_models, nml.practical; paper 7.2 pairs
#: GLUE's SST-2 with GLUE-X's IMDB): text units are tuned on task ``sst2`` and tested on the
#: test sets ``test`` (SST-2 test, ID), ``dev`` (SST-2 dev, ID; not used here) and ``imdb``
#: (IMDB test, OOD); vision units (nml.practical_vision) on ``cifar10`` / ``caltech101``
#: (test set ``test``, ID) and ``pacs_photo`` (test sets: the other PACS domains, OOD).
PRACTICAL_TASKS = ("sst2", "cifar10", "caltech101", "pacs_photo")
PRACTICAL_ID_SETS = ("test",)
PRACTICAL_OOD_SETS = ("imdb", "art_painting", "cartoon", "sketch")
#: Scales in the order the page shows them (best first): the chapters' own order.
SCALE_ORDER = AUTO_ORDER
#: Fewest pre-training seeds per noise level at which a claim about pre-training noise can be
#: scored better than "untestable" (issue: one seed hides the between-run spread).
MIN_PRETRAIN_SEEDS = 3
#: An OOD task enters a verdict only when its clean model's linear probe beats chance by at
#: least this many points: below it, a task at chance mixes noise into the average.
OOD_SIGNAL_MARGIN = 10.0
def _scale_labels() -> dict[str, str]:
    """Each scale's description, from its one home (:data:`nml.experiments.SCALES`)."""
    from ..experiments import SCALES
    return {name: scale.description for name, scale in SCALES.items()}


SCALE_LABELS = _scale_labels()

VERDICTS = ("reproduced", "partly", "inconclusive", "untestable",
            "not reproduced at this scale", "not run")

#: One line per verdict: what it means (the chapters print it beside each verdict).
VERDICT_MEANING = {
    "reproduced": "the claimed sign, with a 95 % interval that excludes 0",
    "partly": "holds on some tasks and significantly fails or points the other way on others",
    "inconclusive": "the claimed sign, but the interval includes 0: no effect this scale can "
                    "detect",
    "untestable": "this scale cannot test it (one replicate and no interval; or a claim about "
                  "pre-training noise measured over fewer than "
                  f"{MIN_PRETRAIN_SEEDS} pre-training seeds; or nothing to rectify)",
    "not reproduced at this scale": "the opposite sign (or exactly 0)",
    "not run": "no complete set of rows at this scale",
}

VERDICT_RULE = (
    "The verdict is decided by this rule alone, fixed before the results it scores were "
    "looked at and never tuned: "
    "**not run**: the index holds no complete set of rows for the claim at this scale. "
    "Each cell (backbone and task) gets its effect with a 95 % interval over replicates. "
    "When the cells' mean effects have opposite signs, no average is taken: "
    "**partly** if some cell holds with an interval that excludes 0, **not reproduced at this "
    "scale** if none holds and some cell fails significantly, else **inconclusive**. "
    "Otherwise the headline effect is the mean over cells: "
    "**untestable** with one replicate (no interval); "
    "**reproduced** when it has the claimed sign and its interval excludes 0; "
    "**inconclusive** when it has the claimed sign and its interval includes 0; "
    "**not reproduced at this scale** when it has the wrong sign (or is exactly 0). "
    "Two caps follow. A claim about pre-training noise (it compares models pre-trained at "
    f"different noise ratios) is at best **untestable** unless its replicates are at least "
    f"{MIN_PRETRAIN_SEEDS} pre-training seeds, since downstream seeds of one pre-trained model "
    "say nothing about another pre-training run. A rectification claim (the clean model "
    "becomes best) counts only the cells where the clean model was not already best under "
    "linear probing, and is **untestable** when there is none. "
    "OOD tasks whose clean model does not beat chance by "
    f"{OOD_SIGNAL_MARGIN:g} points under linear probing do not enter (they are listed), and "
    "neither do the cells of a claim under the authors' spectrum preprocessing whose units "
    "predate it (listed too; the table marks every row with a cell left out).")


# -- statistics ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """Mean of n replicate-level effects with its 95 % t-interval (None bounds when n < 2)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int

    def excludes_zero(self) -> bool:
        return self.lo is not None and (self.lo > 0 or self.hi < 0)

    def format(self, digits: int) -> str:
        if not np.isfinite(self.mean):
            return "n/a"
        mean = f"{self.mean:+.{digits}f}"
        if self.n == 0:
            return f"{mean} (cells share no replicate, no interval)"
        if self.lo is None:
            return f"{mean} (n={self.n}, no interval)"
        return f"{mean} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}] (n={self.n})"


def t_interval(values) -> Interval:
    """95 % Student-t interval of the mean of ``values`` (replicate-level effects).

    Used by the scorecard page: mean +- t(0.975, n-1) * sd(ddof=1) / sqrt(n).
    """
    from scipy import stats
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), None, None, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, None, None, 1)
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def opposite_signs(cells: dict[str, Interval]) -> bool:
    """Whether the cells (tasks) point opposite ways: their mean is then never reported or
    judged, only each cell. Used by the scorecard page and every chapter's verdicts."""
    return len({int(np.sign(iv.mean)) for iv in cells.values() if np.isfinite(iv.mean)}
               - {0}) > 1


def verdict(headline: Interval | None, cells: dict[str, Interval], direction: int) -> str:
    """The verdict of :data:`VERDICT_RULE` for a headline interval and per-cell intervals,
    before the caps that :func:`score` applies. ``direction`` is +1 when the paper claims a
    positive effect, -1 for a negative one. Used by the scorecard page and every chapter.
    """
    if headline is None or not np.isfinite(headline.mean):
        return "not run"

    def significant(iv: Interval, sign: int) -> bool:
        return iv.excludes_zero() and np.sign(iv.mean) == sign

    cell_right = any(significant(iv, direction) for iv in cells.values())
    cell_wrong = any(significant(iv, -direction) for iv in cells.values())
    if opposite_signs(cells):   # judged per cell, never averaged
        if cell_right:
            return "partly"
        if cell_wrong:
            return "not reproduced at this scale"
        # no cell with an interval (one replicate each): nothing to judge, not "inconclusive"
        return "inconclusive" if any(iv.lo is not None for iv in cells.values()) \
            else "untestable"
    if headline.lo is None:
        return "untestable"
    if np.sign(headline.mean) == direction:
        return "reproduced" if significant(headline, direction) else "inconclusive"
    return "not reproduced at this scale"
