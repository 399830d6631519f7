"""The result index as the scorecard reads it (:func:`load_index`) and the page's default path.

Used by book/scorecard.md and the chapters' verdicts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import NMLError
from ..vocab import DERIVED_COLUMNS, NOISE_TYPE_EXPERIMENTS, VARIANT_EXPERIMENTS

#: Columns of the index that the store derives from the unit configs (:mod:`nml.index_columns`):
#: the ablation variant of each row (``variant``) and the pre-training noise type of the model
#: each row measures (``noise_type``).
UNIT_COLUMNS = DERIVED_COLUMNS


def default_scorecard_path() -> Path:
    """``book/scorecard.md`` beside the ``nml`` package. Used by book/scorecard.md."""
    return Path(__file__).resolve().parents[2] / "book" / "scorecard.md"


def load_index(results: str | Path | None = None) -> pd.DataFrame:
    """The result index of the store at ``results`` (default: the repository's ``results/``),
    with its :data:`UNIT_COLUMNS` (an index written before they existed is rebuilt from the
    units); an ablation row at the paper's setting has variant ``''``.

    Used by ``python -m nml scorecard``, the chapters' verdicts and the scorecard test.
    """
    from ..results import ResultStore
    store = ResultStore(results)
    if not (store.root / "index.csv").exists() and not store.root.is_dir():
        raise NMLError(f"no result store at {store.root}; run the chapters first (e.g. "
                       f"`python -m nml grid --scale tiny`) or pass --results PATH")
    index = store.index().copy()
    if len(index):
        variant = index["experiment"].isin(VARIANT_EXPERIMENTS)
        index["variant"] = index["variant"].astype(object)
        index.loc[variant, "variant"] = index.loc[variant, "variant"].fillna("")
    return index


def unit_columns(results: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Column of :data:`UNIT_COLUMNS` -> store key -> value, for every unit that has one (read
    from the index)."""
    index = load_index(results)
    out: dict[str, dict[str, str]] = {}
    for column in UNIT_COLUMNS:
        rows = index.dropna(subset=[column]) if len(index) else index
        out[column] = dict(zip(rows["key"], rows[column].astype(str))) if len(rows) else {}
    return out


def unit_variants(results: str | Path | None = None) -> dict[str, str]:
    """Store key -> variant label (:func:`nml.index_columns.variant_label`) of every unit of the
    ablation experiments (:data:`~nml.vocab.VARIANT_EXPERIMENTS`)."""
    index = load_index(results)
    rows = index[index["experiment"].isin(VARIANT_EXPERIMENTS)] if len(index) else index
    return dict(zip(rows["key"], rows["variant"].astype(str))) if len(rows) else {}


def unit_noise_types(results: str | Path | None = None) -> dict[str, str]:
    """Store key -> pre-training noise type ("symmetric" | "asymmetric") of every unit of
    :data:`~nml.vocab.NOISE_TYPE_EXPERIMENTS` (the pre-trained models)."""
    index = load_index(results)
    rows = index[index["experiment"].isin(NOISE_TYPE_EXPERIMENTS)] if len(index) else index
    return dict(zip(rows["key"], rows["noise_type"].astype(str))) if len(rows) else {}
