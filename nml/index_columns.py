"""Columns of the result index that come from each unit's config, not from its rows: the
pre-training noise type of the model a unit uses (``noise_type``) and, for the ablation
experiments, the tuning knobs that differ from the paper's setting (``variant``).

:class:`nml.results.ResultStore` adds them to every row it indexes, so ``results/index.csv``
alone tells chapter 08's asymmetric-noise models from chapter 01's symmetric ones and chapter
11's ablation arms from each other. Used by the scorecard (book/scorecard.md) and chapters 08
and 11.
"""

from __future__ import annotations

from .vocab import DERIVED_COLUMNS, VARIANT_EXPERIMENTS, VARIANT_KNOBS

__all__ = ["derived_columns", "noise_type_of", "variant_of", "variant_label"]


def variant_label(knobs: dict) -> str:
    """Canonical text of the tuning knobs that differ from the paper's setting ('' if none)."""
    def text(v) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return f"{v:g}" if isinstance(v, (int, float)) else str(v)
    return ",".join(f"{k}={text(knobs[k])}" for k in sorted(knobs))


def variant_of(config: dict) -> str:
    """Variant label (:func:`variant_label`) of an ablation unit: the tuning knobs of
    :data:`~nml.vocab.VARIANT_KNOBS` that differ from :class:`nml.tune.TuneConfig`'s defaults
    (the paper's setting, label '')."""
    from .tune import TuneConfig
    default, tune = TuneConfig(), config.get("tune", {})
    return variant_label({k: tune[k] for k in VARIANT_KNOBS
                          if k in tune and tune[k] != getattr(default, k)})


def noise_type_of(config: dict) -> str | None:
    """Pre-training noise type of the model a unit uses: a pre-trained model's own config
    (``config_class`` PretrainConfig, or a top-level ``noise``) or the ``pretrain`` section of a
    downstream unit; :class:`nml.pretrain.PretrainConfig`'s default (symmetric) where that
    config predates ``noise_type``; None for units without a pre-trained model of this package
    (practical models, benchmarks)."""
    if config.get("config_class") == "PretrainConfig" or "noise" in config:
        pretrain = config
    elif isinstance(config.get("pretrain"), dict):
        pretrain = config["pretrain"]
    else:
        return None
    if pretrain.get("noise_type"):
        return str(pretrain["noise_type"])
    from .training import PretrainConfig
    return PretrainConfig().noise_type


def derived_columns(experiment: str, config: dict) -> dict[str, str | None]:
    """Every column of :data:`~nml.vocab.DERIVED_COLUMNS` for one unit (None: no value)."""
    values = {"noise_type": noise_type_of(config),
              "variant": variant_of(config) if experiment in VARIANT_EXPERIMENTS else None}
    return {column: values[column] for column in DERIVED_COLUMNS}
