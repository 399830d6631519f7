"""Singular-value spectrum of a feature matrix: SVE, LSVR and the paper's spectrum groups.

The paper (journal version, Section 5) takes the frozen features ``F`` (``M x D``: ``M``
samples of a downstream set, ``D`` feature dimensions) of a pre-trained model, computes the SVD
``F = U S V^T`` of the raw matrix (no centring, no normalisation) and summarises the singular
values ``s_1 >= s_2 >= ...`` by two numbers:

* singular value entropy ``SVE = -sum_i p_i log p_i`` with ``p_i = s_i / sum_j s_j``
  (Definition 5.1; natural logarithm, so ``0 <= SVE <= log min(M, D)``);
* largest singular value ratio ``LSVR = -log(s_1 / sum_j s_j)`` (Definition 5.2;
  ``0 <= LSVR <= log min(M, D)``).

When ``M < D`` the matrix has only ``M`` non-zero singular values; the remaining ``D - M`` are
zero and add nothing to either sum (``0 log 0 = 0``), so this module returns the ``min(M, D)``
values of the thin SVD.

**Two preprocessings** (``preprocess=``): ``"paper"`` is the raw matrix above, as the paper's
Definitions 5.1-5.2 read. ``"authors"`` is what the authors' public spectrum code does
(Hhhhhhao/Noisy-Model-Learning, ``src/models/svd.py`` and ``pca.py``): L2-normalise each
feature row, subtract each row's mean over its ``D`` dimensions, then take the singular values
(their ``TruncatedSVD`` keeps all ``D`` components, i.e. the full spectrum; here the exact
thin SVD). The paper's spectrum figures were made with that code. The two give different
numbers (LSVR in particular: the row normalisation removes the norm differences between
samples and the row centring the common offset that makes ``s_1`` large), so every spectrum
unit of the book stores both: metrics ``sve`` / ``lsvr`` (paper) and ``sve_authors`` /
``lsvr_authors`` (:data:`METRIC_NAMES`), arrays ``<test set>`` and ``authors/<test set>``.

Degenerate inputs raise :class:`~nml.errors.DataError` (nothing is silently defined): a
non-2-D or empty matrix, non-finite entries, and an all-zero matrix (``sum_j s_j = 0`` leaves
``p`` undefined). A rank-1 matrix is not degenerate: its SVE and LSVR are 0.

Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["singular_values", "singular_value_entropy", "largest_singular_value_ratio",
           "spectrum_groups", "spectrum_summary", "SPECTRUM_GROUP_EDGES", "PREPROCESSINGS",
           "METRIC_NAMES", "ARRAY_PREFIX", "preprocess_features", "spectrum_rows"]

#: ``"paper"``: the raw matrix (Definitions 5.1-5.2); ``"authors"``: each row L2-normalised,
#: then centred over its dimensions (the authors' svd.py / pca.py).
PREPROCESSINGS: tuple[str, ...] = ("paper", "authors")
#: The result-row metric names of SVE and LSVR under each preprocessing.
METRIC_NAMES: dict[str, dict[str, str]] = {
    "paper": {"sve": "sve", "lsvr": "lsvr"},
    "authors": {"sve": "sve_authors", "lsvr": "lsvr_authors"},
}
#: A stored unit's array of test set ``t`` is ``ARRAY_PREFIX[p] + t`` under preprocessing ``p``.
ARRAY_PREFIX: dict[str, str] = {"paper": "", "authors": "authors/"}

# Appendix A.4 of the ICLR version splits the spectrum "into three groups: the top 20, 20-500,
# and the remaining" to show the head (where LSVR lives) apart from the long tail (SVE).
SPECTRUM_GROUP_EDGES: tuple[int, int] = (20, 500)


def _as_matrix(features) -> np.ndarray:
    """A float64 numpy copy of a 2-D tensor / array, with the degenerate cases rejected."""
    try:
        import torch
        if isinstance(features, torch.Tensor):
            features = features.detach().to("cpu", torch.float64).numpy()
    except ImportError:  # torch is a dependency, but numpy input must not need it
        pass
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"features must be a 2-D matrix (samples x dimensions), got shape "
                        f"{arr.shape}; flatten or pool the features to M x D first")
    if arr.size == 0:
        raise DataError(f"features matrix is empty (shape {arr.shape}); the spectrum needs at "
                        f"least one sample and one dimension")
    if not np.isfinite(arr).all():
        raise DataError("features contain NaN or inf; check the feature extractor "
                        "(e.g. a diverged checkpoint) before computing the spectrum")
    return arr


def _check_preprocess(preprocess: str) -> None:
    if preprocess not in PREPROCESSINGS:
        raise DataError(f"preprocess must be one of {PREPROCESSINGS}, got {preprocess!r}")


def preprocess_features(features, preprocess: str = "paper") -> np.ndarray:
    """The float64 matrix whose singular values the spectrum is: the raw ``M x D`` features
    (``"paper"``), or each row divided by its L2 norm (a zero row stays zero, as
    ``torch.nn.functional.normalize``) and then minus its mean over the ``D`` dimensions
    (``"authors"``).

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    _check_preprocess(preprocess)
    arr = _as_matrix(features)
    if preprocess == "authors":
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        arr = arr / np.maximum(norms, 1e-12)
        arr = arr - arr.mean(axis=1, keepdims=True)
    return arr


def singular_values(features, preprocess: str = "paper") -> np.ndarray:
    """Singular values of the ``M x D`` feature matrix, float64, descending.

    Accepts a torch tensor (any dtype or device) or anything ``numpy.asarray`` takes. With
    ``preprocess="paper"`` the matrix is used as the paper defines it: not centred, not
    normalised; ``"authors"`` applies the authors' row normalisation and row centring first
    (:func:`preprocess_features`). Returns the ``min(M, D)`` singular values of the thin SVD
    (the rest are zero). Raises ``DataError`` for a non-2-D, empty or non-finite matrix.

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    arr = preprocess_features(features, preprocess)
    s = np.linalg.svd(arr, compute_uv=False)
    return np.sort(s)[::-1].astype(np.float64, copy=True)


def _as_spectrum(s) -> np.ndarray:
    """Validate singular values: 1-D, finite, >= 0, not all zero; returned sorted descending."""
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"singular values must be a non-empty 1-D array, got shape {arr.shape}; "
                        f"compute them with nml.spectrum.singular_values(features)")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise DataError("singular values must be finite and >= 0; compute them with "
                        "nml.spectrum.singular_values(features)")
    if arr.sum() <= 0:
        raise DataError("all singular values are zero (the features are an all-zero matrix), so "
                        "the normalised spectrum p = s / sum(s) is undefined; check the features")
    return np.sort(arr)[::-1]


def singular_value_entropy(s) -> float:
    """SVE: entropy (natural log) of the normalised singular values ``p = s / sum(s)``.

    0 for a rank-1 matrix, ``log n`` when all ``n`` singular values are equal (an orthogonal
    matrix). Scale invariant. Zero singular values contribute nothing (``0 log 0 = 0``). Raises
    ``DataError`` when every singular value is zero.

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    arr = _as_spectrum(s)
    p = arr / arr.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def largest_singular_value_ratio(s) -> float:
    """LSVR: ``-log(s_1 / sum(s))``, 0 for rank 1 and ``log n`` for ``n`` equal values.

    Scale invariant. Raises ``DataError`` when every singular value is zero.

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    arr = _as_spectrum(s)
    return float(-np.log(arr[0] / arr.sum()))


def spectrum_groups(s) -> dict[str, np.ndarray]:
    """The paper's three spectrum groups (App. A.4): ``top20`` = s[:20], ``mid`` = s[20:500],
    ``rest`` = s[500:] (1-based: values 1-20, 21-500, 501-D), sorted descending.

    A group is an empty array when the spectrum is shorter than its start (e.g. ``rest`` for
    ``D <= 500``).

    Used by chapters 03_feature_spectrum and 06_nmtune (through :func:`nml.plots.spectrum_figure`).
    """
    arr = _as_spectrum(s)
    lo, hi = SPECTRUM_GROUP_EDGES
    return {"top20": arr[:lo].copy(), "mid": arr[lo:hi].copy(), "rest": arr[hi:].copy()}


def spectrum_summary(features, preprocess: str = "paper") -> dict:
    """``{"singular_values": s, "sve": SVE, "lsvr": LSVR}`` of an ``M x D`` feature matrix
    under ``preprocess`` (:data:`PREPROCESSINGS`).

    Raises ``DataError`` for a non-2-D, empty, non-finite or all-zero matrix.

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    s = singular_values(features, preprocess)
    return {"singular_values": s, "sve": singular_value_entropy(s),
            "lsvr": largest_singular_value_ratio(s)}


def spectrum_rows(features, test_set: str,
                  preprocessings: tuple[str, ...] = PREPROCESSINGS
                  ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Result rows and arrays of one feature matrix under each preprocessing.

    Rows: ``{"test_set", "metric", "value"}`` with the metric names of :data:`METRIC_NAMES`;
    arrays: the singular values keyed ``ARRAY_PREFIX[p] + test_set``. The one home of how a
    spectrum unit stores its spectra (``nml.experiments.Pipeline.spectrum``, the tuning units of
    ``nml.tune`` and ``scripts/migrate_spectrum_authors.py``).

    Used by chapters 03_feature_spectrum, 06_nmtune and 11_ablations.
    """
    rows, arrays = [], {}
    for p in preprocessings:
        s = singular_values(features, p)
        arrays[ARRAY_PREFIX[p] + test_set] = s
        rows += [{"test_set": test_set, "metric": METRIC_NAMES[p]["sve"],
                  "value": singular_value_entropy(s)},
                 {"test_set": test_set, "metric": METRIC_NAMES[p]["lsvr"],
                  "value": largest_singular_value_ratio(s)}]
    return rows, arrays
