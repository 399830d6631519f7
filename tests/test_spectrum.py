"""Tests for nml.spectrum: singular values, SVE, LSVR, spectrum groups."""

import math

import numpy as np
import pytest
import torch

from nml.errors import DataError
from nml.spectrum import (largest_singular_value_ratio, singular_value_entropy, singular_values,
                          spectrum_groups, spectrum_summary)

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(30, 12), (12, 30)])
def test_singular_values_match_numpy_svd(shape):
    rng = np.random.default_rng(0)
    f = rng.normal(size=shape) + 0.3          # raw, not centred: the mean must stay in
    s = singular_values(f)
    ref = np.linalg.svd(f, compute_uv=False)
    assert s.dtype == np.float64
    assert s.shape == (min(shape),)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(s, ref, rtol=1e-12)


def test_singular_values_accept_torch_and_do_not_centre():
    f = torch.ones(5, 3, dtype=torch.float32)     # centred, this would be all zeros
    s = singular_values(f)
    np.testing.assert_allclose(s, [math.sqrt(15), 0, 0], atol=1e-6)
    g = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(singular_values(g), singular_values(g.numpy()), rtol=1e-12)


def test_hand_computed_two_values():
    s = np.array([3.0, 1.0])                   # p = (3/4, 1/4)
    assert singular_value_entropy(s) == pytest.approx(-(0.75 * math.log(0.75) +
                                                        0.25 * math.log(0.25)))
    assert largest_singular_value_ratio(s) == pytest.approx(-math.log(0.75))
    assert singular_value_entropy([1.0, 3.0]) == pytest.approx(singular_value_entropy(s))


def test_rank_one_has_zero_sve_and_lsvr():
    rng = np.random.default_rng(1)
    f = np.outer(rng.normal(size=40), rng.normal(size=10))
    s = singular_values(f)
    assert singular_value_entropy(s) == pytest.approx(0.0, abs=1e-9)
    assert largest_singular_value_ratio(s) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("rows", [16, 40])
def test_orthonormal_columns_give_log_d(rows):
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(rows, 16)))
    s = singular_values(q)
    assert singular_value_entropy(s) == pytest.approx(math.log(16), rel=1e-9)
    assert largest_singular_value_ratio(s) == pytest.approx(math.log(16), rel=1e-9)


def test_scale_invariance():
    f = np.random.default_rng(3).normal(size=(50, 20))
    a, b = spectrum_summary(f), spectrum_summary(37.5 * f)
    assert b["sve"] == pytest.approx(a["sve"], rel=1e-12)
    assert b["lsvr"] == pytest.approx(a["lsvr"], rel=1e-12)
    np.testing.assert_allclose(b["singular_values"], 37.5 * a["singular_values"], rtol=1e-12)


def test_zero_singular_values_are_ignored():
    # M < D: the D - M missing values are zero; appending zeros changes nothing
    s = np.array([2.0, 1.0, 0.5])
    padded = np.concatenate([s, np.zeros(5)])
    assert singular_value_entropy(padded) == pytest.approx(singular_value_entropy(s))
    assert largest_singular_value_ratio(padded) == pytest.approx(largest_singular_value_ratio(s))


def test_spectrum_groups_follow_the_paper():
    s = np.arange(600, 0, -1, dtype=float)
    g = spectrum_groups(s)
    assert [len(g[k]) for k in ("top20", "mid", "rest")] == [20, 480, 100]
    assert g["top20"][0] == 600 and g["mid"][0] == 580 and g["rest"][0] == 100
    short = spectrum_groups(np.linspace(1, 2, 64))
    assert len(short["top20"]) == 20 and len(short["mid"]) == 44 and len(short["rest"]) == 0
    assert short["top20"][0] == 2.0          # sorted descending even if given ascending


def test_summary_keys():
    out = spectrum_summary(np.random.default_rng(4).normal(size=(10, 6)))
    assert set(out) == {"singular_values", "sve", "lsvr"}
    assert 0 <= out["lsvr"] <= math.log(6) and 0 <= out["sve"] <= math.log(6)


@pytest.mark.parametrize("bad", [np.zeros((4, 3)), np.zeros((0, 3)), np.ones(5),
                                 np.array([[1.0, np.nan], [0.0, 1.0]])])
def test_degenerate_features_raise(bad):
    with pytest.raises(DataError):
        spectrum_summary(bad)


@pytest.mark.parametrize("bad", [[], [0.0, 0.0], [1.0, -1.0], [[1.0, 2.0]]])
def test_degenerate_spectra_raise(bad):
    with pytest.raises(DataError):
        singular_value_entropy(bad)
    with pytest.raises(DataError):
        largest_singular_value_ratio(bad)


def test_authors_preprocessing_normalises_then_centres_each_row():
    from nml.spectrum import (METRIC_NAMES, preprocess_features, spectrum_rows,
                              spectrum_summary)
    f = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    # by hand: rows / norms, then minus the row mean
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    want = unit - unit.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(preprocess_features(f, "authors"), want, rtol=1e-12)
    np.testing.assert_allclose(preprocess_features(f, "paper"), f)
    s = singular_values(f, preprocess="authors")
    np.testing.assert_allclose(s, np.linalg.svd(want, compute_uv=False), rtol=1e-12)
    # the constant row [1, 1, 1] becomes zero: the authors' spectrum ignores it
    assert np.allclose(want[3], 0)
    # invariant to a positive scale per row (the paper's raw spectrum is not)
    scaled = f * np.array([[1.0], [10.0], [0.1], [3.0]])
    assert spectrum_summary(scaled, "authors")["lsvr"] == pytest.approx(
        spectrum_summary(f, "authors")["lsvr"], rel=1e-10)
    assert spectrum_summary(scaled, "paper")["lsvr"] != pytest.approx(
        spectrum_summary(f, "paper")["lsvr"], rel=1e-3)
    rows, arrays = spectrum_rows(f, "test")
    assert {r["metric"] for r in rows} == {"sve", "lsvr", "sve_authors", "lsvr_authors"}
    assert set(arrays) == {"test", "authors/test"}
    assert METRIC_NAMES["authors"] == {"sve": "sve_authors", "lsvr": "lsvr_authors"}
    with pytest.raises(DataError, match="preprocess"):
        singular_values(f, preprocess="centred")
