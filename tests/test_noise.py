"""Tests of nml.noise: exact symmetric rates through cleanlab, subset noise, caption swaps."""

import numpy as np
import pytest
import torch

from nml.errors import ConfigError, DataError
from nml.noise import (asymmetric_noise, realised_noise_rate, swap_captions, symmetric_noise,
                       symmetric_noise_matrix)


def balanced(num_classes, per_class):
    return np.repeat(np.arange(num_classes), per_class)


def test_plain_cleanlab_truncates_counts():
    """Why nml.noise rounds the matrix itself: cleanlab floors noise_matrix * p(y) * N per entry,
    so CIFAR-100's 500 images per class at 10 % noise (50 / 99 = 0.505 flips per entry) get none."""
    from cleanlab.benchmarking.noise_generation import generate_noisy_labels

    y = balanced(100, 500)
    np.random.seed(0)
    noisy = generate_noisy_labels(y, symmetric_noise_matrix(100, 0.1))
    assert (noisy != y).sum() == 0
    np.random.seed(0)
    noisy = generate_noisy_labels(y, symmetric_noise_matrix(100, 0.3))  # 150 / 99 -> 1 per entry
    assert (noisy != y).sum() == 100 * 99


@pytest.mark.parametrize("num_classes,per_class,ratio", [
    (100, 500, 0.05), (100, 500, 0.1), (100, 500, 0.2), (100, 500, 0.3),
    (10, 100, 0.1), (10, 97, 0.37), (40, 100, 0.5), (7, 13, 0.2), (2, 5, 0.5)])
def test_symmetric_rate_exact(num_classes, per_class, ratio):
    y = balanced(num_classes, per_class)
    noisy = symmetric_noise(y, ratio, num_classes, seed=1)
    flips = int((noisy != y).sum())
    assert flips == round(ratio * len(y))
    assert abs(realised_noise_rate(y, noisy) - ratio) <= 0.5 / len(y)
    assert noisy.min() >= 0 and noisy.max() < num_classes


def test_symmetric_is_symmetric():
    """Each class loses round(r n_k) (+-1) labels, spread evenly (+-1) over every other class."""
    k, per, r = 10, 200, 0.3
    y = balanced(k, per)
    noisy = symmetric_noise(y, r, k, seed=3)
    joint = np.zeros((k, k), dtype=int)
    np.add.at(joint, (noisy, y), 1)
    flips_per_class = per - np.diag(joint)
    assert np.all(np.abs(flips_per_class - r * per) <= 1)
    off = joint[~np.eye(k, dtype=bool)].reshape(k, k - 1)
    assert off.max() - off.min() <= 1


def test_symmetric_unbalanced_and_torch_input():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 13, size=3001)
    noisy = symmetric_noise(torch.as_tensor(y), 0.17, 13, seed=0)
    assert isinstance(noisy, np.ndarray) and noisy.dtype == np.int64
    assert int((noisy != y).sum()) == round(0.17 * 3001)


def test_symmetric_deterministic_and_leaves_global_state():
    y = balanced(10, 100)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = symmetric_noise(y, 0.2, 10, seed=5)
    assert np.array_equal(np.random.get_state()[1], before)
    b = symmetric_noise(y, 0.2, 10, seed=5)
    c = symmetric_noise(y, 0.2, 10, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(symmetric_noise(y, 0.0, 10, seed=5), y)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.1", None, True, float("nan")])
def test_bad_ratio_is_config_error(bad):
    with pytest.raises(ConfigError, match="noise ratio"):
        symmetric_noise(balanced(3, 4), bad, 3, seed=0)


def test_labels_out_of_range():
    with pytest.raises(DataError, match="num_classes"):
        symmetric_noise(np.array([0, 1, 5]), 0.1, 3, seed=0)


def test_asymmetric_only_inside_subset():
    y = balanced(20, 50)
    subset = [2, 5, 7, 11]
    noisy = asymmetric_noise(y, 0.25, subset, seed=0)
    inside = np.isin(y, subset)
    assert np.array_equal(noisy[~inside], y[~inside])
    assert np.isin(noisy[inside], subset).all()
    assert int((noisy[inside] != y[inside]).sum()) == round(0.25 * inside.sum())
    assert np.array_equal(noisy, asymmetric_noise(y, 0.25, subset, seed=0))
    with pytest.raises(ConfigError, match="at least 2 classes"):
        asymmetric_noise(y, 0.1, [3], seed=0)


@pytest.mark.parametrize("n,ratio", [(100, 0.1), (101, 0.3), (7, 0.5), (10, 0.0), (1000, 0.05)])
def test_swap_captions_counts(n, ratio):
    captions = [f"a photo of thing {i}" for i in range(n)]
    swapped, mask = swap_captions(captions, ratio, seed=0)
    expected = int(round(ratio * n))
    expected -= expected % 2
    assert mask.sum() == expected and mask.sum() % 2 == 0
    changed = np.array([a != b for a, b in zip(captions, swapped)])
    assert np.array_equal(changed, mask)
    assert sorted(swapped) == sorted(captions)
    again, mask2 = swap_captions(captions, ratio, seed=0)
    assert again == swapped and np.array_equal(mask, mask2)


def test_realised_noise_rate():
    assert realised_noise_rate([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    with pytest.raises(DataError):
        realised_noise_rate([0, 1], [0])
