"""The paper's claims as data: the main claims (T, C), CLIP (K), asymmetric noise (A), noisy
downstream labels (N), practical models (P) and the NMTune ablations (B), and those not run or
not scored.

Used by book/scorecard.md and the chapters' verdicts.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from .rules import (ASYMMETRIC_NOISE, HEAVY_ETA, LIGHT_ETA, NOISY_ETA, PRACTICAL_ID_SETS,
                    PRACTICAL_OOD_SETS, PRACTICAL_TASKS, SLIGHT_ASYMMETRIC)
from .select import Claim, arm, clean_best, endpoint, gap, mean_diff, slight_benefit, slope


def _trend_claim(cid, title, quote, source, metric, kind, method, effect, unit_word,
                 direction, note="", digits=2, top="30 %, or the highest present",
                 **rows) -> Claim:
    """A claim that ``metric`` rises (direction +1) or falls (-1) with pre-training noise.

    ``rows``: the optional :class:`Claim` fields that say where its rows come from.
    """
    sign = -1 if direction < 0 else 1
    return Claim(cid, title, quote, source,
                 measure_text=(f"{unit_word} at the highest noise ratio ({top}) compared "
                               f"with 0 %, per replicate; the least-squares slope over all noise "
                               f"levels (per 10 points of noise) is given as well."),
                 effect=effect, direction=1, metric=metric, kind=kind, methods=(method,),
                 cell_effect=lambda df: endpoint(df, sign), digits=digits,
                 secondary=(("slope per 10 points of noise", (method,), slope),), note=note,
                 **rows)


#: The control beside every "NMTune beats LP" claim: the same MLP head without the three
#: terms. When it gains as much, the gain belongs to the head, not to NMTune's regularisers.
_MLP_CONTROL = ("MLP tuning minus LP (the control: the same head without the terms)",
                ("mlp", "lp"), mean_diff)
#: The precondition of a rectification claim: the clean model was not already best under LP.
_LP_RECTIFY = ("clean minus best noisy under LP", ("lp",), clean_best)

MAIN_CLAIMS: tuple[Claim, ...] = (
    _trend_claim(
        "T1", "Pre-training accuracy falls with noise",
        "as the noise ratio in the pre-training dataset increases, the pre-training "
        "performance ... degrades", "Sec. 4.2, Table 1",
        "accuracy", None, "pretrain",
        "clean test accuracy of the pre-training task, 0 % minus 30 % noise (points)",
        "Upstream test accuracy (clean test labels)", -1,
        note="The replicate is the pre-training seed; with one seed there is no interval. Only "
             "symmetric-noise models enter: chapter 08's asymmetric-noise models, stored in "
             "the same experiment, are told apart by the noise type of their unit configs."),
    Claim(
        "C1", "Slight noise helps ID (LP)",
        "Proper noisy supervision in pre-training (e.g., 5% or 10%) can benefit the "
        "performance on ID downstream tasks", "Sec. 4.3.1, Fig. 3",
        measure_text=("Linear probing on ID tasks with all downstream data: accuracy of the "
                      "better of the 5 % and 10 % models (chosen per cell by its mean over "
                      "replicates) minus the 0 % model, paired by seed. Choosing the better of "
                      "two levels favours a positive effect slightly; scales without a 5 % "
                      "level use 10 % only."),
        effect="ID accuracy, best slight noise minus clean (points)", direction=1,
        metric="accuracy", kind="id", methods=("lp",), cell_effect=slight_benefit),
    _trend_claim(
        "C2", "OOD harm grows with noise (LP)",
        "The robustness of transferability on OOD downstream tasks constantly deteriorates "
        "as the noise increases", "Sec. 4.3.1, Fig. 3",
        "accuracy", "ood", "lp",
        "OOD accuracy (mean over target domains), 0 % minus 30 % noise (points)",
        "Linear-probe OOD accuracy (mean over the task's target domains or corruptions)", -1,
        note="A negative slope is the claimed trend."),
    Claim(
        "C3a", "Gap shrinks from LP to LoRA",
        "With pre-trained parameters and representations being modified by LoRA, the "
        "differences between the noisy and the clean pre-trained models ... become smaller",
        "Sec. 4.3.2, Fig. 4",
        measure_text=("Gap of a method = mean over the noisy levels of abs(accuracy(noise) - "
                      "accuracy(0 %)), on ID (test) and OOD (mean) tasks, per replicate. Effect "
                      "= gap(LP) - gap(LoRA), paired by seed, on the ViT backbones that have "
                      "LoRA. The absolute value adds seed noise to both gaps."),
        effect="gap(LP) minus gap(LoRA) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "lora"),
        cell_effect=lambda a, b: gap(a).sub(gap(b)).dropna()),
    Claim(
        "C3b", "Gap shrinks from LoRA to FT",
        "The differences between noisy and clean pre-trained model are further reduced "
        "with FT", "Sec. 4.3.3, Fig. 4",
        measure_text="As C3a with gap(LoRA) - gap(FT), on the backbones that have both.",
        effect="gap(LoRA) minus gap(FT) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lora", "ft"),
        cell_effect=lambda a, b: gap(a).sub(gap(b)).dropna()),
    Claim(
        "C3c", "Gap shrinks from LP to FT",
        "As more pre-trained parameters are modified on downstream tasks, i.e., from LP (to "
        "LoRA) to FT, the difference ... between noisy pre-trained models becomes smaller",
        "Fig. 4 caption",
        measure_text="As C3a with gap(LP) - gap(FT), on every backbone that has FT.",
        effect="gap(LP) minus gap(FT) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "ft"),
        cell_effect=lambda a, b: gap(a).sub(gap(b)).dropna()),
    _trend_claim(
        "C4", "SVE rises with noise (ID)",
        "as the noise ratio slightly increases, the learned representation usually presents "
        "slightly higher SVE ... as the noise ratio further increases, the increased SVE",
        "Sec. 5, Fig. 5", "sve", "id", "frozen",
        "SVE of frozen features on the ID test set, 30 % minus 0 % noise (nats)",
        "Singular value entropy of the frozen features of the ID test images", 1, digits=4,
        note="Spectra depend only on the pre-trained model: the replicate is the pre-training "
             "seed."),
    _trend_claim(
        "C5", "LSVR rises with noise (OOD)",
        "As the noise ratio increases, the LSVR increases consistently with the decreasing "
        "largest singular value", "Sec. 5 text",
        "lsvr", "ood", "frozen",
        "LSVR of frozen features, mean over the OOD target sets, 30 % minus 0 % noise",
        "LSVR = -log(s1 / sum s) of the frozen features of each OOD target set, averaged "
        "over targets", 1, digits=4,
        note="The paper's Fig. 5 caption says the opposite (\"the LSVR drops significantly\"); "
             "the scorecard follows the Sec. 5 text, which matches the definition "
             "(a smaller largest singular value gives a larger LSVR)."),
    Claim(
        "C6a", "NMTune beats LP (ID)",
        "Our method presents better SVE and LSVR on both ID and OOD tasks with better "
        "generalization performance", "Sec. 6.2, Fig. 7 caption",
        measure_text=("ID accuracy of black-box NMTune (lambda 0.01) minus LP, averaged over "
                      "the noise levels, paired by seed. The paper plots F1; the index holds "
                      "both and the scorecard uses accuracy."),
        effect="ID accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
        kind="id", methods=("nmtune", "lp"), cell_effect=mean_diff, control=_MLP_CONTROL),
    Claim(
        "C6b", "NMTune beats MLP tuning (ID)",
        "Further introducing our method can rectify the effect of noise on ID tasks",
        "Sec. 6.2, Fig. 7",
        measure_text=("ID accuracy of NMTune minus MLP tuning (the same MLP without the three "
                      "terms), averaged over the noise levels, paired by seed."),
        effect="ID accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
        kind="id", methods=("nmtune", "mlp"), cell_effect=mean_diff),
    Claim(
        "C6c", "NMTune beats LP (OOD)",
        "one can observe significantly better generalization performance deploying NMTune, "
        "compared to the MLP and LP", "Sec. 6.2, Fig. 7",
        measure_text="As C6a on OOD tasks (mean over target domains).",
        effect="OOD accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
        kind="ood", methods=("nmtune", "lp"), cell_effect=mean_diff, control=_MLP_CONTROL),
    Claim(
        "C6d", "NMTune beats MLP tuning (OOD)",
        "one can observe significantly better generalization performance deploying NMTune, "
        "compared to the MLP and LP", "Sec. 6.2, Fig. 7",
        measure_text="As C6b on OOD tasks (mean over target domains).",
        effect="OOD accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
        kind="ood", methods=("nmtune", "mlp"), cell_effect=mean_diff),
    Claim(
        "C7", "NMTune makes the clean model best (ID)",
        "leading the clean pre-trained feature extractor to achieve the best results",
        "Sec. 6.2, Fig. 7",
        measure_text=("ID accuracy under NMTune of the 0 % model minus the best noisy model "
                      "(the noisy level with the highest mean), paired by seed. The same "
                      "quantity under LP and MLP tuning is shown for contrast (the paper: "
                      "there the clean model is not best)."),
        effect="NMTune ID accuracy, clean minus best noisy (points)", direction=1,
        metric="accuracy", kind="id", methods=("nmtune",), cell_effect=clean_best,
        secondary=(("same under LP", ("lp",), clean_best),
                   ("same under MLP", ("mlp",), clean_best)),
        precondition=_LP_RECTIFY,
        note="Only cells where the clean model was not already best under LP count: "
             "elsewhere there is nothing to rectify."),
    Claim(
        "C8a", "LoRA + NMTune makes the clean model best (ID)",
        "Parameter-efficient NMTune can rectify the behavior of noisy pre-trained models, "
        "whereas LoRA alone cannot", "Sec. 6.2, Fig. 8",
        measure_text=("As C7 for LoRA + NMTune (lambda 0.01); the same quantity under plain "
                      "LoRA is shown for contrast."),
        effect="LoRA+NMTune ID accuracy, clean minus best noisy (points)", direction=1,
        metric="accuracy", kind="id", methods=("lora_nmtune",), cell_effect=clean_best,
        secondary=(("same under LoRA", ("lora",), clean_best),),
        precondition=("clean minus best noisy under LoRA", ("lora",), clean_best),
        note="As for C7, against plain LoRA: only cells where LoRA alone left a noisy model "
             "best count."),
    Claim(
        "C8b", "LoRA + NMTune beats LoRA (ID)",
        "NMTune also improves the generalization performance in general on both ID and OOD "
        "downstream tasks", "Sec. 6.2, Fig. 8",
        measure_text=("ID accuracy of LoRA + NMTune minus LoRA, averaged over the noise "
                      "levels, paired by seed."),
        effect="ID accuracy, LoRA+NMTune minus LoRA (points)", direction=1, metric="accuracy",
        kind="id", methods=("lora_nmtune", "lora"), cell_effect=mean_diff),
    Claim(
        "C8c", "LoRA + NMTune beats LoRA (OOD)",
        "NMTune also improves the generalization performance in general on both ID and OOD "
        "downstream tasks", "Sec. 6.2, Fig. 8",
        measure_text="As C8b on OOD tasks (mean over target domains).",
        effect="OOD accuracy, LoRA+NMTune minus LoRA (points)", direction=1,
        metric="accuracy", kind="ood", methods=("lora_nmtune", "lora"),
        cell_effect=mean_diff),
    Claim(
        "C9a", "NMTune's features have a larger SVE than LP's (ID)",
        "our method provides a larger and flatter SVE, compared to LP", "Sec. 6.2, Fig. 7b",
        measure_text=("SVE of the features the classifier sees, on the ID test set: NMTune's "
                      "transformed features Z minus the frozen features of LP, averaged over "
                      "the noise levels, paired by replicate."),
        effect="ID SVE, NMTune minus LP (nats)", direction=1, metric="sve", kind="id",
        methods=("nmtune", "lp"), cell_effect=mean_diff, digits=4),
    Claim(
        "C9b", "NMTune's features have a larger SVE than MLP tuning's (ID)",
        "only adding an MLP to LP can result in a smaller SVE ... In contrast, our method "
        "provides a larger and flatter SVE", "Sec. 6.2, Fig. 7b",
        measure_text="As C9a with NMTune minus MLP tuning (the same head without the terms).",
        effect="ID SVE, NMTune minus MLP (nats)", direction=1, metric="sve", kind="id",
        methods=("nmtune", "mlp"), cell_effect=mean_diff, digits=4),
    Claim(
        "C9c", "NMTune's features have a smaller LSVR than MLP tuning's (OOD)",
        "MLP tuning usually imposes larger LSVR compared to LP ... corresponding to the "
        "smaller relative values of the LSVR in noisy pre-trained models for NMTune",
        "Sec. 6.2, Fig. 7d",
        measure_text=("LSVR of the tuned features on the OOD target sets (mean over targets): "
                      "NMTune minus MLP tuning, averaged over the noise levels, paired by "
                      "replicate; the paper claims a negative effect."),
        effect="OOD LSVR, NMTune minus MLP", direction=-1, metric="lsvr", kind="ood",
        methods=("nmtune", "mlp"), cell_effect=mean_diff, digits=4),
)


def _on(base: Claim, cid: str, title: str, source: str, rows_text: str, **changes) -> Claim:
    """``base`` measured on another experiment's rows: same effect function, same direction."""
    return replace(base, id=cid, title=title, source=source,
                   measure_text=f"{base.measure_text} {rows_text}", **changes)


def _both_preprocessings(claims: tuple[Claim, ...]) -> tuple[Claim, ...]:
    """Each spectral claim (metric sve / lsvr) twice, each labelled: under the paper's
    definition (raw features) and, as ``<id>A``, under the authors' preprocessing (rows
    L2-normalised and centred, metrics ``sve_authors`` / ``lsvr_authors``; nml.spectrum)."""
    from ..spectrum import METRIC_NAMES
    out = []
    for c in claims:
        if c.metric not in METRIC_NAMES["authors"]:
            out.append(c)
            continue
        out.append(replace(c, title=f"{c.title}, paper's definition (raw features)"))
        out.append(replace(
            c, id=f"{c.id}A", title=f"{c.title}, authors' preprocessing",
            metric=METRIC_NAMES["authors"][c.metric],
            measure_text=(f"{c.measure_text} Spectrum under the authors' preprocessing: each "
                          f"feature row L2-normalised and centred over its dimensions before "
                          f"the SVD, as the authors' code (and so the paper's Fig. 5) does."),
            note=(f"{c.note} Units stored before nml stored this preprocessing carry no such "
                  f"rows: a scale whose units were not migrated "
                  f"(scripts/migrate_spectrum_authors.py) shows 'not run' (not stored), never a "
                  f"zero.").strip()))
    return tuple(out)


MAIN_CLAIMS = _both_preprocessings(MAIN_CLAIMS)
_MAIN = {c.id: c for c in MAIN_CLAIMS}
_CLIP_ROWS = ("Rows: experiment clip, the CLIP image encoder pre-trained with captions swapped "
              "between random image-text pairs at each noise ratio (its image features are "
              "what LP, MLP tuning, NMTune and the spectra see).")
_CLIP_QUOTE = ("the noise in pre-training can have certain benevolent effects on downstream "
               "tasks that is agnostic to model architectures, proxy pre-training objectives "
               "(FS and CLIP)")
_CLIP_SPECTRUM_QUOTE = ("For both ResNet-50 and ViT-B-16 and FS and CLIP pre-training "
                        "objectives, the trends of the SVE change in ID tasks and the LSVR "
                        "change in OOD tasks are similar")

#: CLIP pre-training with noisy captions (paper 4.2-6.2, the CLIP columns and panels).
CLIP_CLAIMS: tuple[Claim, ...] = (
    _trend_claim(
        "K1", "CLIP zero-shot accuracy falls with caption noise",
        "as the noise ratio in the pre-training dataset increases, the pre-training "
        "performance ... degrades",
        "Sec. 4.2, Table 1 (CLIP: zero-shot 32.64 % at 0 %, 26.53 % at 30 %, ResNet-50 YFCC15M)",
        "zero_shot_accuracy", None, "pretrain",
        "zero-shot accuracy of the CLIP model, 0 % minus 30 % caption noise (points)",
        "Zero-shot accuracy of the pre-trained CLIP model on the upstream test set (class "
        "prompts, prompt ensembling)", -1, experiment="clip",
        note="The replicate is the pre-training seed; with one seed there is no interval."),
    _on(_MAIN["C1"], "K2", "Slight caption noise helps ID (LP, CLIP)",
        "Sec. 4.3.1, Fig. 3 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_QUOTE, experiment="clip"),
    _on(_MAIN["C2"], "K3", "OOD harm grows with caption noise (LP, CLIP)",
        "Sec. 4.3.1, Fig. 3 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C4"], "K4", "SVE rises with caption noise (ID, CLIP), paper's definition",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C5"], "K5", "LSVR rises with caption noise (OOD, CLIP), paper's definition",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C4A"], "K4A", "SVE rises with caption noise (ID, CLIP), authors' preprocessing",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C5A"], "K5A", "LSVR rises with caption noise (OOD, CLIP), authors' preprocessing",
        "Sec. 5, Fig. 5 (CLIP panels)", _CLIP_ROWS, quote=_CLIP_SPECTRUM_QUOTE,
        experiment="clip"),
    _on(_MAIN["C6a"], "K6a", "NMTune beats LP (ID, CLIP)", "Sec. 6.2, Fig. 7 (CLIP panels)",
        _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6b"], "K6b", "NMTune beats MLP tuning (ID, CLIP)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6c"], "K6c", "NMTune beats LP (OOD, CLIP)", "Sec. 6.2, Fig. 7 (CLIP panels)",
        _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C6d"], "K6d", "NMTune beats MLP tuning (OOD, CLIP)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS, experiment="clip"),
    _on(_MAIN["C7"], "K7", "NMTune makes the clean CLIP model best (ID)",
        "Sec. 6.2, Fig. 7 (CLIP panels)", _CLIP_ROWS,
        quote="Further introducing our method can rectify the effect of noise on ID tasks, "
              "leading the clean pre-trained feature extractor to achieve the best results for "
              "both models and pre-training paradigms", experiment="clip"),
)

_ASYM = dict(experiment="asymmetric", noise_levels=ASYMMETRIC_NOISE)
_ASYM_ROWS = ("Rows: experiment asymmetric, pre-training noise flipped only among the upstream "
              "classes related to the downstream ID task's (ratios 0, 2.5, 5 and 10 %, the "
              "rate within those classes); the 0 % model is the shared clean one. Every task of "
              "the claim's kind enters, related to the noisy classes or not (cpu scale: CIFAR-10 "
              "related, Caltech-101 unrelated, PACS partly related; tiny scale: both tasks "
              "related); the per-cell line shows each.")
_RECTIFY = ("black-box NMTune can also facilitate downstream performance and rectify the "
            "malicious behaviors of models")

#: Asymmetric pre-training noise (paper 7.3, Fig. 10).
ASYMMETRIC_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "A1", "Slight asymmetric noise helps ID (LP)",
        "With asymmetric noise, slight noise still benefits ID performance, even on noise "
        "related tasks", "Sec. 7.3, Fig. 10 caption",
        measure_text=("Linear probing on ID tasks: accuracy of the better of the 2.5 % and 5 % "
                      "models (the scorecard's slight asymmetric levels: the paper's grid is "
                      "0 / 2.5 / 5 / 10 %, and it finds that on related tasks performance "
                      "'degrades earlier'; chosen per cell by the mean over replicates) minus "
                      "the 0 % model, paired by replicate. " + _ASYM_ROWS),
        effect="ID accuracy, best slight asymmetric noise minus clean (points)", direction=1,
        metric="accuracy", kind="id", methods=("lp",),
        cell_effect=partial(slight_benefit, levels=SLIGHT_ASYMMETRIC), **_ASYM),
    _trend_claim(
        "A2", "OOD harm grows with asymmetric noise (LP)",
        "For OOD tasks, asymmetric noise consistently hurts performance", "Sec. 7.3, Fig. 10b",
        "accuracy", "ood", "lp",
        "OOD accuracy (mean over target domains), 0 % minus 10 % asymmetric noise (points)",
        "Linear-probe OOD accuracy (mean over the task's target domains) under asymmetric "
        "pre-training noise", -1, top="10 %, the highest asymmetric ratio",
        note=_ASYM_ROWS + " A negative slope is the claimed trend.", **_ASYM),
    _on(_MAIN["C6a"], "A3a", "NMTune beats LP under asymmetric noise (ID)", "Sec. 7.3, Fig. 10a",
        _ASYM_ROWS, quote=_RECTIFY, **_ASYM),
    _on(_MAIN["C6c"], "A3b", "NMTune beats LP under asymmetric noise (OOD)", "Sec. 7.3, Fig. 10b",
        _ASYM_ROWS, quote=_RECTIFY, **_ASYM),
    Claim(
        "A4", "NMTune makes the clean model best under asymmetric noise (ID)", _RECTIFY,
        "Sec. 7.3, Fig. 10a",
        measure_text=("As C7 (NMTune ID accuracy of the 0 % model minus the best noisy model, "
                      "paired by replicate; the same under LP for contrast). " + _ASYM_ROWS),
        effect="NMTune ID accuracy, clean minus best asymmetric-noisy model (points)",
        direction=1, metric="accuracy", kind="id", methods=("nmtune",),
        cell_effect=clean_best, secondary=(("same under LP", ("lp",), clean_best),),
        precondition=_LP_RECTIFY, **_ASYM),
    Claim(
        "A5", "NMTune narrows the clean-noisy gap under asymmetric noise",
        "Our method presents better performance with smaller difference between the clean and "
        "noisy pre-trained models", "Sec. 7.3, Fig. 10 caption",
        measure_text=("As C3a with gap(LP) - gap(NMTune): the gap of a method is the mean over "
                      "the noisy levels of abs(accuracy(noise) - accuracy(0 %)), on ID (test) "
                      "and OOD (mean) tasks, paired by replicate. " + _ASYM_ROWS),
        effect="gap(LP) minus gap(NMTune) (points)", direction=1, metric="accuracy",
        kind=("id", "ood"), methods=("lp", "nmtune"),
        cell_effect=lambda a, b: gap(a).sub(gap(b)).dropna(), **_ASYM),
)

_ETA_ROWS = ("Rows: experiment noisy_downstream (symmetric flips of a share eta of the "
             "downstream training labels; test labels clean), ID tasks, pre-training noise at "
             "the scale's levels. A cell is one backbone, task and eta, so the headline "
             "averages over the eta levels that enter: {}. The eta = 0 rows of this experiment "
             "(the clean-label setting of the main claims) do not enter.")


def _eta_text(levels) -> str:
    return ", ".join(f"{e * 100:g} %" for e in levels)


#: Noisy pre-training and noisy downstream labels (paper 7.4, Fig. 9; ICLR App. B.5).
NOISY_DOWNSTREAM_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "N1", "Slight noise helps LP on noisy downstream labels",
        "the 5% and 10% noisy pre-trained models usually outperform the clean pre-trained "
        "model on downstream tasks, even the tasks contain different levels of downstream "
        "noise", "Sec. 7.4, Fig. 9",
        measure_text=("As C1 (LP accuracy of the better of the 5 % and 10 % models minus the "
                      "0 % model, paired by seed). " + _ETA_ROWS.format(_eta_text(NOISY_ETA))),
        effect="ID accuracy under noisy labels, best slight noise minus clean (points)",
        direction=1, metric="accuracy", kind="id", methods=("lp",),
        cell_effect=slight_benefit, experiment="noisy_downstream", label_noise=NOISY_ETA),
    Claim(
        "N2", "NMTune makes the clean model best on noisy downstream labels",
        "The NMTune results show that the clean pre-trained models now produce superior "
        "performance compared to noisy pre-trained models", "Sec. 7.4, Fig. 9",
        measure_text=("As C7 (NMTune accuracy of the 0 % model minus the best noisy model, "
                      "paired by seed; the same under LP for contrast). "
                      + _ETA_ROWS.format(_eta_text(NOISY_ETA))),
        effect="NMTune ID accuracy under noisy labels, clean minus best noisy (points)",
        direction=1, metric="accuracy", kind="id", methods=("nmtune",),
        cell_effect=clean_best, secondary=(("same under LP", ("lp",), clean_best),),
        precondition=_LP_RECTIFY, experiment="noisy_downstream", label_noise=NOISY_ETA,
        note="The paper adds that this holds even where NMTune falls short of LP (N4)."),
    Claim(
        "N3", "NMTune beats LP at light downstream label noise",
        "It also improves the general performance when the noise ratio in downstream tasks is "
        "light, e.g., smaller than 40%", "Sec. 7.4, Fig. 9",
        measure_text=("As C6a (NMTune minus LP accuracy, averaged over the pre-training noise "
                      "levels, paired by seed). " + _ETA_ROWS.format(_eta_text(LIGHT_ETA))),
        effect="ID accuracy, NMTune minus LP at eta below 40 % (points)", direction=1,
        metric="accuracy", kind="id", methods=("nmtune", "lp"), cell_effect=mean_diff,
        experiment="noisy_downstream", label_noise=LIGHT_ETA),
    Claim(
        "N4", "NMTune falls short of LP at heavy downstream label noise",
        "When the noise ratio in downstream tasks further increases, the performance of NMTune "
        "falls short of LP", "Sec. 7.4, Fig. 9",
        measure_text=("As N3 at the heavier levels; the paper claims a negative effect here. "
                      + _ETA_ROWS.format(_eta_text(HEAVY_ETA))),
        effect="ID accuracy, NMTune minus LP at eta of 40 % and more (points)", direction=-1,
        metric="accuracy", kind="id", methods=("nmtune", "lp"), cell_effect=mean_diff,
        experiment="noisy_downstream", label_noise=HEAVY_ETA),
)

_PRACTICAL = dict(experiment="practical", noise_levels=None, pool_noise=True,
                  tasks=PRACTICAL_TASKS)
_PRACTICAL_ROWS = ("Rows: experiment practical, black-box tuning on the frozen features of a "
                   "released model (a cell per model and task): a sentence encoder tuned on "
                   "SST-2 train and tested on SST-2 test (ID; the SST-2 dev rows are not used) "
                   "and on IMDB test (OOD); an ImageNet-1K EfficientNet-Lite0 tuned on CIFAR-10 "
                   "(and Caltech-101 when run; ID, their test sets) and on PACS photo (OOD, the "
                   "mean over art painting, cartoon and sketch). Pre-training noise is not "
                   "controlled, so all of a model's rows form one noise level whatever their noise label (the paper's Tables 4-5 "
                   "have no noise axis either); pairs are downstream seeds.")
_BEST = "In Table 5, NMTune consistently achieves the best generalization performance"

#: NMTune on practical pre-trained models (paper 7.1-7.2, Tables 3-5).
PRACTICAL_CLAIMS: tuple[Claim, ...] = (
    Claim("P1", "NMTune beats LP on a practical model (ID)", _BEST, "Sec. 7.2, Table 5",
          measure_text="ID test accuracy of black-box NMTune minus LP. " + _PRACTICAL_ROWS,
          effect="ID accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
          kind="id", methods=("nmtune", "lp"), cell_effect=mean_diff, control=_MLP_CONTROL,
          test_sets=PRACTICAL_ID_SETS, **_PRACTICAL),
    Claim("P2", "NMTune beats LP on a practical model (OOD)",
          "It presents superior performance gain, especially on OOD tasks of GLUE-X",
          "Sec. 7.2, Table 5",
          measure_text=("OOD accuracy (IMDB test; the mean over the PACS target domains) "
                        "of black-box NMTune minus LP. " + _PRACTICAL_ROWS),
          effect="OOD accuracy, NMTune minus LP (points)", direction=1, metric="accuracy",
          kind="ood", methods=("nmtune", "lp"), cell_effect=mean_diff, control=_MLP_CONTROL,
          test_sets=PRACTICAL_OOD_SETS, **_PRACTICAL),
    Claim("P3", "NMTune beats MLP tuning on a practical model (ID)", _BEST, "Sec. 7.2, Table 5",
          measure_text="As P1 with NMTune minus MLP tuning. " + _PRACTICAL_ROWS,
          effect="ID accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
          kind="id", methods=("nmtune", "mlp"), cell_effect=mean_diff,
          test_sets=PRACTICAL_ID_SETS, **_PRACTICAL),
    Claim("P4", "NMTune beats MLP tuning on a practical model (OOD)", _BEST,
          "Sec. 7.2, Table 5",
          measure_text="As P2 with NMTune minus MLP tuning. " + _PRACTICAL_ROWS,
          effect="OOD accuracy, NMTune minus MLP (points)", direction=1, metric="accuracy",
          kind="ood", methods=("nmtune", "mlp"), cell_effect=mean_diff,
          test_sets=PRACTICAL_OOD_SETS, **_PRACTICAL),
)

_ABLATION = dict(experiment="ablation", variants=True)
_ABLATION_ROWS = ("Rows: experiment ablation (chapter 11: one factor changed at a time from the "
                  "paper's setting, a 2-layer ReLU MLP with hidden width 4D and term weights "
                  "1/1/1 at lambda 0.01), ID tasks as in the paper's ablation. Which variant a row "
                  "belongs to comes from its unit config (the index's variant column, which the "
                  "store derives from it).")
_PAIRED = "averaged over the pre-training noise levels both variants have, paired by seed. "
_PAPER_SETTING = arm("nmtune")

#: NMTune ablations (ICLR version App. B.7, Tables 15-16).
ABLATION_CLAIMS: tuple[Claim, ...] = (
    Claim("B1", "The MLP's non-linearity matters",
          "removing the non-linearity reduces the performance significantly",
          "ICLR App. B.7, Table 15",
          measure_text=("ID accuracy of NMTune in the paper's setting minus NMTune with an "
                        "identity activation (no non-linearity), " + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, ReLU minus no non-linearity (points)", direction=1,
          metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", mlp_activation="identity")),
          cell_effect=mean_diff, **_ABLATION),
    Claim("B2", "A third MLP layer helps (slightly)",
          "Adding more layers only improves the performance slightly",
          "ICLR App. B.7, Table 15",
          measure_text=("ID accuracy of NMTune with a 3-layer MLP minus the paper's 2 layers, "
                        + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, 3 layers minus 2 (points)", direction=1, metric="accuracy",
          kind="id", methods=(arm("nmtune", mlp_layers=3), _PAPER_SETTING),
          cell_effect=mean_diff,
          note="Only the sign is scored: the fixed rule cannot test 'slightly'.", **_ABLATION),
    Claim("B3", "L_SVD helps generalisation",
          "the dominant singular value regularization L_SVD helps improve generalization",
          "ICLR App. B.7, Table 16",
          measure_text=("ID accuracy of NMTune in the paper's setting minus NMTune without the "
                        "SVD term (its weight 0, the other two at 1), " + _PAIRED + _ABLATION_ROWS),
          effect="ID accuracy, with minus without L_SVD (points)", direction=1,
          metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", w_svd=0.0)), cell_effect=mean_diff,
          **_ABLATION),
    Claim("B4", "L_COV makes the clean model best",
          "the proposed covariance regularization L_COV in general rectifies the effect of "
          "noise, improving the performance of clean pre-trained models to achieve better "
          "results than noisy pre-trained models", "ICLR App. B.7, Table 16",
          measure_text=("(clean minus best noisy model) under NMTune in the paper's setting "
                        "minus the same without the covariance term (its weight 0), ID accuracy, "
                        "paired by seed; each of the two is shown as well. " + _ABLATION_ROWS),
          effect="clean-minus-noisy ID accuracy, with minus without L_COV (points)",
          direction=1, metric="accuracy", kind="id",
          methods=(_PAPER_SETTING, arm("nmtune", w_cov=0.0)),
          cell_effect=lambda a, b: clean_best(a).sub(clean_best(b)).dropna(),
          secondary=(("clean minus best noisy, paper setting", (_PAPER_SETTING,), clean_best),
                     ("same without L_COV", (arm("nmtune", w_cov=0.0),), clean_best)),
          **_ABLATION),
)

#: Each family of claims beyond the main experiments, with what its experiment's rows are.
FAMILIES: tuple[tuple[tuple[Claim, ...], str], ...] = (
    (CLIP_CLAIMS, "CLIP pre-training with captions swapped between random pairs"),
    (ASYMMETRIC_CLAIMS, "asymmetric pre-training noise at "
                        + ", ".join(f"{x * 100:g}" for x in ASYMMETRIC_NOISE) + " %"),
    (NOISY_DOWNSTREAM_CLAIMS, "noisy downstream labels: only rows with label noise eta > 0 "
                              "enter, and eta is part of the cell, backbone / task / eta"),
    (PRACTICAL_CLAIMS, "a released sentence encoder on SST-2 and IMDB; pre-training noise "
                       "unknown, so all rows of a model are one noise level"),
    (ABLATION_CLAIMS, "NMTune variants, one factor at a time; each compared arm is one "
                      "variant, read from the unit configs"),
)

CLAIMS: tuple[Claim, ...] = (MAIN_CLAIMS + CLIP_CLAIMS + ASYMMETRIC_CLAIMS
                             + NOISY_DOWNSTREAM_CLAIMS + PRACTICAL_CLAIMS + ABLATION_CLAIMS)


#: Claims of the paper that no chapter of this book measures (yet), with the reason.
NOT_RUN_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("Slight noise also helps COCO detection and instance segmentation: \"slight pre-training "
     "noisy (up to 5% or 10%) pre-trained models can also benefit the downstream performance\"",
     "Sec. 4.4, Table 2",
     "Out of scope: COCO 2017 is not available on this project's machines and detection / "
     "segmentation heads (Mask R-CNN, FPN) are not part of this reproduction."),
    ("NMTune improves practical large vision models: \"Our method improves the quality of the "
     "noisy pre-trained features with better accuracy and F1 score on both ID and OOD vision "
     "tasks\" (EfficientNet-B3, ResNetv2-152x2, Swin-L, ViT-L, ConvNext-L)",
     "Sec. 7.1, Tables 3-4",
     "None of these five can be fetched on this project's offline machines; the "
     "practical-models chapter tunes a packaged ImageNet-1K EfficientNet-Lite0 (4.7 M "
     "parameters) on CIFAR-10 and PACS and a packaged sentence encoder on SST-2 / "
     "IMDB instead (claims P1-P4 per model)."),
)

#: Claims of the paper that a chapter measures but the fixed sign rule cannot score.
NOT_SCORED_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("\"the proposed NMTune introduces minimal computation, compared to MLP with exactly the "
     "same parameters\"", "Sec. 7.5, Table 6",
     "Measured in chapter 10 (experiment runtime): 'minimal' is a claim about the size of the "
     "extra cost, whose sign (NMTune costs more than the same MLP) is not in question, so the "
     "chapter reports the measured times and ratios instead of a verdict."),
    ("Asymmetric noise: \"compared to unrelated tasks, the beneficial noise ratio decreases in "
     "related tasks, and performance degrades earlier\"", "Sec. 7.3, Fig. 10a",
     "A comparison of where the benefit peaks on related and unrelated tasks, not a sign of one "
     "effect; the tiny scale has no unrelated ID task. A1 scores the benefit per task (its "
     "per-cell line at the cpu scale shows the related CIFAR-10 and the unrelated Caltech-101)."),
)
