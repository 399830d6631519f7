"""Label noise for pre-training and downstream data: symmetric, asymmetric (class subset), caption swaps.

Symmetric noise uses cleanlab's ``generate_noisy_labels`` (``cleanlab.benchmarking.noise_generation``)
with a symmetric noise matrix, i.e. diagonal ``1 - r`` and off-diagonal ``r / (K - 1)``. cleanlab turns
the matrix into flip counts by *truncating* ``noise_matrix * p(y) * N`` entry by entry. With the plain
real-valued matrix that loses up to ``K - 1`` flips per class; for CIFAR-100 (500 images per class) at
``r = 0.1`` every entry is ``50 / 99 = 0.505`` and truncates to 0, so *no* label would flip. We therefore
hand cleanlab the same symmetric matrix rounded to whole flips: ``round(r * N)`` flips in total, split
over the classes by largest remainder (``r * n_k`` each), and each class's flips spread as evenly as
possible over the other classes (the ``m_k mod (K - 1)`` extra flips go to seeded random targets).
Each entry is nudged by 1e-3 of a flip so cleanlab's truncation gives exactly that count. The realised
rate is then ``round(r * N) / N``: within ``0.5 / N`` of the request.

cleanlab draws from NumPy's global random state; we seed it from ``seed`` and restore it afterwards,
so results are deterministic and callers' random streams are untouched.

Used by chapters 01_noisy_pretraining (symmetric pre-training noise), 08_asymmetric_noise and
09_noisy_downstream; caption swapping models the noisy image-text pairs of CLIP pre-training (paper 4.2).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["symmetric_noise", "asymmetric_noise", "swap_captions", "realised_noise_rate",
           "symmetric_noise_matrix"]


def _check_ratio(ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not np.isfinite(ratio):
        raise ConfigError(f"noise ratio must be a number in [0, 1), got {ratio!r} "
                          f"({type(ratio).__name__}); pass e.g. noise=0.1 for 10 % noisy labels")
    if not 0 <= ratio < 1:
        raise ConfigError(f"noise ratio {ratio!r} is out of range [0, 1); it is a fraction of labels, "
                          f"e.g. 0.1 for 10 %")
    return float(ratio)


def _as_labels(labels) -> np.ndarray:
    if hasattr(labels, "detach"):  # torch tensor on any device
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"labels must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64)


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (ties: lower index first)."""
    raw = weights / weights.sum() * total if weights.sum() > 0 else np.zeros_like(weights)
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return base


def symmetric_noise_matrix(num_classes: int, ratio: float) -> np.ndarray:
    """The symmetric noise matrix P(noisy=i | true=j): ``1 - r`` on the diagonal, ``r / (K - 1)`` off it."""
    ratio = _check_ratio(ratio)
    if num_classes < 2:
        raise DataError(f"symmetric noise needs at least 2 classes, got {num_classes}")
    m = np.full((num_classes, num_classes), ratio / (num_classes - 1))
    np.fill_diagonal(m, 1 - ratio)
    return m


def _count_matrix(counts: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Whole-flip counts C[noisy, true] of a symmetric matrix: round(r N) flips in total."""
    k = len(counts)
    flips_per_class = _largest_remainder(counts.astype(float), int(round(ratio * counts.sum())))
    flips_per_class = np.minimum(flips_per_class, counts)
    c = np.zeros((k, k), dtype=np.int64)
    for j in range(k):
        others = np.array([i for i in range(k) if i != j])
        even, extra = divmod(int(flips_per_class[j]), k - 1)
        c[others, j] = even
        c[rng.choice(others, size=extra, replace=False), j] += 1
    return c


def _flip_with_cleanlab(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Symmetric noise among the classes present in ``labels`` (which must be 0..K-1 compact)."""
    from cleanlab.benchmarking.noise_generation import generate_noisy_labels

    counts = np.bincount(labels)
    k = len(counts)
    rng = np.random.default_rng(seed)
    count_joint = _count_matrix(counts, ratio, rng)
    # noise_matrix * p(y) * N == count + 1e-3, so cleanlab's astype(int) returns the count exactly.
    noise_matrix = (count_joint + 1e-3) / counts[None, :]
    np.fill_diagonal(noise_matrix, 0.0)
    np.fill_diagonal(noise_matrix, 1.0 - noise_matrix.sum(0))
    state = np.random.get_state()
    try:
        np.random.seed(int(rng.integers(0, 2 ** 32 - 1)))
        noisy = generate_noisy_labels(labels, noise_matrix)
    finally:
        np.random.set_state(state)
    return np.asarray(noisy, dtype=np.int64)


def symmetric_noise(labels, ratio: float, num_classes: int, seed: int) -> np.ndarray:
    """Flip ``round(ratio * N)`` labels uniformly to other classes, with cleanlab (see module docstring).

    Returns new int64 labels; the input is not modified. A class absent from ``labels`` receives no
    flips (cleanlab's noise matrix covers the classes it sees), which only matters for tiny subsets.
    Used by chapters 01_noisy_pretraining and 09_noisy_downstream.
    """
    ratio = _check_ratio(ratio)
    y = _as_labels(labels)
    if len(y) == 0 or ratio == 0:
        return y.copy()
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]; "
                        f"pass the dataset's number of classes as num_classes")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError("symmetric noise needs labels of at least 2 classes to flip between")
    compact = np.searchsorted(present, y)
    return present[_flip_with_cleanlab(compact, ratio, seed)]


def asymmetric_noise(labels, ratio: float, classes: Sequence[int], seed: int) -> np.ndarray:
    """Noise restricted to a subset of related classes (paper Section 7.3).

    Only samples whose label is in ``classes`` may change, and only to another class of ``classes``:
    ``round(ratio * n_subset)`` of them flip, uniformly among the subset (cleanlab, as
    :func:`symmetric_noise`). Labels outside the subset are untouched; ``ratio`` is the rate within
    the subset. Used by chapter 08_asymmetric_noise.
    """
    ratio = _check_ratio(ratio)
    y = _as_labels(labels)
    subset = np.unique(np.asarray(list(classes), dtype=np.int64))
    if len(subset) < 2:
        raise ConfigError(f"asymmetric noise needs at least 2 classes in the subset, got {list(classes)}; "
                          f"pass the related classes whose labels may be confused")
    inside = np.isin(y, subset)
    out = y.copy()
    if ratio == 0 or not inside.any():
        return out
    out[inside] = symmetric_noise(np.searchsorted(subset, y[inside]), ratio, len(subset), seed)
    out[inside] = subset[out[inside]]
    return out


def swap_captions(captions: list[str], ratio: float, seed: int) -> tuple[list[str], np.ndarray]:
    """Swap captions between random pairs of items: noisy image-text pairs (paper Section 4.2).

    ``round(ratio * N)`` items move (rounded down to an even count, since each swap moves two); the
    mask marks them. Pairs are disjoint, so every swapped item gets another item's caption (captions
    that happen to be identical strings stay identical). Used by chapter 01_noisy_pretraining (CLIP).
    """
    ratio = _check_ratio(ratio)
    n = len(captions)
    moved = int(round(ratio * n))
    moved -= moved % 2
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n, size=moved, replace=False) if moved else np.empty(0, np.int64)
    out = list(captions)
    for a, b in zip(chosen[0::2], chosen[1::2]):
        out[a], out[b] = captions[b], captions[a]
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return out, mask


def realised_noise_rate(clean, noisy) -> float:
    """Fraction of labels that differ between ``clean`` and ``noisy``. Used by chapters 01, 08, 09."""
    a, b = _as_labels(clean), _as_labels(noisy)
    if a.shape != b.shape:
        raise DataError(f"clean and noisy labels differ in length ({len(a)} vs {len(b)})")
    return float((a != b).mean()) if len(a) else 0.0
