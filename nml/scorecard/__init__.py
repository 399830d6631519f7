"""The reproduction scorecard: the paper's claims as data, measured from the result index.

Each :class:`Claim` quotes the paper (journal version), says how the claim is measured from
``results/index.csv`` and which sign of the effect the paper claims. :func:`measure` computes
the effect at one scale with a 95 % t-interval over seeds; :func:`verdict` applies the fixed
rule in :data:`VERDICT_RULE`; :func:`render_markdown` writes the book page ``book/scorecard.md``
and ``python -m nml scorecard`` regenerates it.

How an effect is computed (the same for every claim):

1. Select the claim's rows of one scale (store experiment, method, metric, task kind, test
   set; tuning rows at full data, clean downstream labels and, for NMTune, the paper's lambda
   0.01). The main claims (T, C) read each method's main experiment (:data:`EXPERIMENT_OF`);
   each other family reads one experiment for all its methods (``Claim.experiment``): CLIP
   (K, ``clip``), asymmetric noise (A, ``asymmetric``, its own noise ratios), noisy downstream
   labels (N, ``noisy_downstream``, only the eta levels the claim names), practical models
   (P, ``practical``, all rows of a model pooled as one noise level) and NMTune ablations
   (B, ``ablation``, each compared arm one variant, from the ``variant`` column that
   the store derives from the unit configs, :mod:`nml.index_columns`). Pre-training rows of
   experiment ``pretrain`` are kept at the claim's pre-training noise type
   (``Claim.noise_type``, symmetric unless said; the index's ``noise_type`` column, likewise),
   since chapter 08's asymmetric-noise models are stored there too.
2. Replicates: when the rows hold more than one pre-training seed, a replicate is a
   pre-training seed (values averaged over downstream seeds first); otherwise it is a
   downstream seed of the single pre-trained model, so the interval covers downstream
   variation only. Compared values are paired by replicate (same seed on both sides).
3. A *cell* is one backbone and one downstream task (and, for the N claims, one downstream
   label-noise ratio eta). The effect is computed per cell and replicate; the headline effect
   of a replicate is the mean over the claim's cells (the paper also averages over tasks),
   using the replicates that every cell has.
4. Interval: mean +- t(0.975, n-1) * sd / sqrt(n) over the n replicate-level effects; none
   for n = 1.

Used by the book page book/scorecard.md (reproduction scorecard) and ``python -m nml scorecard``.

Modules (every public name is also importable from ``nml.scorecard``):

* :mod:`nml.scorecard.rules`: the constants scored against, the verdicts, the rule, the t-interval;
* :mod:`nml.scorecard.source`: the result index as the scorecard reads it;
* :mod:`nml.scorecard.select`: :class:`Claim`, row selection and per-cell effects;
* :mod:`nml.scorecard.claims`: the paper's claims as data;
* :mod:`nml.scorecard.measure`: measuring and scoring a claim, the chapters' verdict sentences;
* :mod:`nml.scorecard.render`: the markdown page;
* :mod:`nml.scorecard.page`: writing the page and ``python -m nml scorecard``.
"""

from __future__ import annotations

from .rules import (EXPERIMENT_OF, NOISE_TYPE_EXPERIMENTS, PAPER_LAMBDA, PAPER_NOISE, SLIGHT_NOISE,
                    VARIANT_EXPERIMENTS, VARIANT_KNOBS, ASYMMETRIC_NOISE, SLIGHT_ASYMMETRIC,
                    NOISY_ETA, LIGHT_ETA, HEAVY_ETA, PRACTICAL_TASKS, PRACTICAL_ID_SETS,
                    PRACTICAL_OOD_SETS, SCALE_ORDER, MIN_PRETRAIN_SEEDS, OOD_SIGNAL_MARGIN,
                    SCALE_LABELS, VERDICTS, VERDICT_MEANING, VERDICT_RULE, Interval, t_interval,
                    opposite_signs, verdict)
from .source import (UNIT_COLUMNS, default_scorecard_path, load_index, unit_columns, unit_variants,
                     unit_noise_types)
from .select import (task_kinds, arm, arm_text, POOLED_NOISE, gather, endpoint, slope,
                     slight_benefit, clean_best, gap, mean_diff, per_cell, Claim, unit_columns_read,
                     variant_label)
from .claims import (MAIN_CLAIMS, CLIP_CLAIMS, ASYMMETRIC_CLAIMS, NOISY_DOWNSTREAM_CLAIMS,
                     PRACTICAL_CLAIMS, ABLATION_CLAIMS, FAMILIES, CLAIMS, NOT_RUN_CLAIMS,
                     NOT_SCORED_CLAIMS)
from .measure import (Measurement, measure, ScoreRow, score, claim_sentences, verdict_block,
                      minimum_detectable_effect, control_note, claim_anchor, headline_text)
from .render import (render_markdown)
from .page import (write_scorecard, main_cli, add_parser)

__all__ = ["Claim", "CLAIMS", "NOT_RUN_CLAIMS", "NOT_SCORED_CLAIMS", "FAMILIES", "CLIP_CLAIMS",
           "ASYMMETRIC_CLAIMS", "NOISY_DOWNSTREAM_CLAIMS", "PRACTICAL_CLAIMS", "ABLATION_CLAIMS",
           "arm", "variant_label", "unit_variants", "unit_noise_types", "unit_columns",
           "UNIT_COLUMNS", "NOISE_TYPE_EXPERIMENTS", "ASYMMETRIC_NOISE", "SLIGHT_ASYMMETRIC",
           "NOISY_ETA", "LIGHT_ETA", "HEAVY_ETA", "VARIANT_EXPERIMENTS", "VARIANT_KNOBS",
           "POOLED_NOISE", "Interval", "Measurement", "ScoreRow",
           "VERDICTS", "VERDICT_RULE", "EXPERIMENT_OF", "PAPER_LAMBDA", "PAPER_NOISE", "SLIGHT_NOISE", "SCALE_ORDER",
           "t_interval", "verdict", "measure", "score", "render_markdown", "load_index",
           "claim_sentences", "verdict_block", "minimum_detectable_effect", "headline_text", "opposite_signs", "VERDICT_MEANING", "MIN_PRETRAIN_SEEDS", "OOD_SIGNAL_MARGIN",
           "write_scorecard", "add_parser", "main_cli", "default_scorecard_path"]
