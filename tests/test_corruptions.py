"""Tests of nml.corruptions: shape, dtype, determinism, distortion grows with severity."""

import pytest
import torch

from nml.corruptions import CORRUPTIONS, SEVERITIES, corrupt, psnr
from nml.data import make_synthetic
from nml.errors import DataError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def images():
    return make_synthetic("synthetic_id", "test", image_size=32).images[:64]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_shape_determinism_monotone(images, name):
    outs = [corrupt(images, name, s, seed=0) for s in SEVERITIES]
    for out in outs:
        assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(outs[2], corrupt(images, name, 3, seed=0))
    scores = [psnr(images, out) for out in outs]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert scores[0] < 60  # even severity 1 visibly changes the images


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "fog"])
def test_seed_changes_random_corruptions(images, name):
    assert not torch.equal(corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=1))


def test_small_images(images):
    small = make_synthetic("synthetic_id", "test").images[:16]
    for name in CORRUPTIONS:
        assert corrupt(small, name, 5, seed=0).shape == small.shape


def test_bad_arguments(images):
    with pytest.raises(DataError, match="unknown corruption"):
        corrupt(images, "snow", 1)
    with pytest.raises(DataError, match="severity"):
        corrupt(images, "contrast", 6)
    with pytest.raises(DataError, match="uint8"):
        corrupt(images.float(), "contrast", 1)
