"""Pre-training: config checks, noisy labels, learning, exact resume, data-parallel runs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nml.errors import ConfigError, DataError
from nml.pretrain import (PretrainConfig, _noisy_labels, checkpoint_path, default_optimizer,
                          pretrain)

torch.set_num_threads(1)

# 400 of the synthetic upstream images, batches of 64: a few steps per epoch.
SMALL = dict(backbone="resnet_micro", train_fraction=0.1, batch_size=64, warmup_epochs=0)


@pytest.mark.parametrize("bad", [dict(noise=1.0), dict(noise=-0.1), dict(epochs=0),
                                 dict(train_fraction=0.0), dict(label_smoothing=1.0),
                                 dict(lr=0.0), dict(warmup_epochs=6), dict(noise="0.1"),
                                 dict(optimizer="lamb"), dict(noise_type="asymmetric"),
                                 dict(noise_classes=(1, 2)), dict(image_size=4)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        PretrainConfig.from_dict(bad)


def test_config_unknown_key_and_hash():
    with pytest.raises(ConfigError, match="valid keys"):
        PretrainConfig.from_dict({"nosie": 0.1})
    assert PretrainConfig(noise=0.1).hash() != PretrainConfig(noise=0.2).hash()
    assert PretrainConfig(noise=0.1).hash() == PretrainConfig.from_dict({"noise": 0.1}).hash()


def test_default_optimizers():
    assert default_optimizer(PretrainConfig(backbone="resnet18_cifar", batch_size=256)) == \
        ("sgd", 0.2, 5e-4)
    assert default_optimizer(PretrainConfig(backbone="vit_small_cifar")) == ("adamw", 1e-3, 0.05)
    assert default_optimizer(PretrainConfig(optimizer="adamw", lr=3e-4, weight_decay=0.0)) == \
        ("adamw", 3e-4, 0.0)


def test_noisy_labels_rate_and_seeds():
    clean = torch.arange(1000) % 10
    a = _noisy_labels(PretrainConfig(noise=0.2, seed=0), clean, 10)
    b = _noisy_labels(PretrainConfig(noise=0.2, seed=0), clean, 10)
    c = _noisy_labels(PretrainConfig(noise=0.2, seed=1), clean, 10)
    assert abs(np.mean(a != clean.numpy()) - 0.2) <= 10 / 1000
    assert np.array_equal(a, b) and not np.array_equal(a, c)    # each seed its own draw
    assert np.array_equal(_noisy_labels(PretrainConfig(), clean, 10), clean.numpy())
    asym = _noisy_labels(PretrainConfig(noise=0.3, noise_type="asymmetric",
                                        noise_classes=(0, 1, 2)), clean, 10)
    flipped = asym != clean.numpy()
    assert flipped.any() and set(clean.numpy()[flipped]) <= {0, 1, 2}
    assert set(asym[flipped]) <= {0, 1, 2}


def test_learns_and_noise_is_realised(tmp_path):
    cfg = PretrainConfig(backbone="resnet_micro", noise=0.2, epochs=3, batch_size=128)
    result = pretrain(cfg, checkpoint_dir=None, device="cpu", progress=False)
    assert result.train_noise_rate == pytest.approx(0.2, abs=0.01)
    assert not result.backbone.training
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.test_accuracy > 3 * 100 / 40        # 40 synthetic classes: chance is 2.5 %
    assert result.epochs_run == 3 and result.checkpoint is None


def _weights(result):
    return {k: v.clone() for k, v in result.backbone.state_dict().items()}


def test_resume_is_bitwise_identical(tmp_path):
    cfg = PretrainConfig(**SMALL, noise=0.1, epochs=2, seed=3)
    straight = pretrain(cfg, checkpoint_dir=tmp_path / "a", device="cpu", progress=False)

    first = pretrain(cfg, checkpoint_dir=tmp_path / "b", device="cpu", progress=False,
                     stop_after_epoch=1)
    assert first.epochs_run == 1 and len(first.history) == 1
    state = torch.load(checkpoint_path(cfg, tmp_path / "b"), weights_only=False)
    assert state["epoch"] == 1 and "test_accuracy" not in state
    resumed = pretrain(cfg, checkpoint_dir=tmp_path / "b", device="cpu", progress=False)
    assert (resumed.start_epoch, resumed.epochs_run) == (1, 1)

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    assert straight.test_accuracy == resumed.test_accuracy

    # The final checkpoint is there: no training, the same model and accuracy.
    start = time.perf_counter()
    replay = pretrain(cfg, checkpoint_dir=tmp_path / "b", device="cpu", progress=False)
    assert replay.epochs_run == 0 and replay.test_accuracy == straight.test_accuracy
    assert all(torch.equal(v, _weights(replay)[k]) for k, v in a.items())
    assert time.perf_counter() - start < 10


def test_other_seed_other_model(tmp_path):
    a = pretrain(PretrainConfig(**SMALL, epochs=1, seed=0), checkpoint_dir=None, device="cpu",
                 progress=False)
    b = pretrain(PretrainConfig(**SMALL, epochs=1, seed=1), checkpoint_dir=None, device="cpu",
                 progress=False)
    assert not torch.equal(a.backbone.head.weight, b.backbone.head.weight)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    cfg = PretrainConfig(**SMALL, epochs=1)
    other = PretrainConfig(**SMALL, epochs=1, seed=5)
    pretrain(other, checkpoint_dir=tmp_path, device="cpu", progress=False)
    target = checkpoint_path(cfg, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(checkpoint_path(other, tmp_path).read_bytes())
    with pytest.raises(Exception, match="another config"):
        pretrain(cfg, checkpoint_dir=tmp_path, device="cpu", progress=False)


def test_batch_larger_than_data_is_an_error():
    with pytest.raises(DataError, match="batch"):
        pretrain(PretrainConfig(train_fraction=0.01, batch_size=256), checkpoint_dir=None,
                 device="cpu", progress=False)


def test_data_parallel_two_ranks(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # Own session, so that a hung run is killed with its worker processes, not just torchrun.
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(worker), str(tmp_path), str(tmp_path / "ckpt")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("torchrun with 2 ranks did not finish within 120 s")
    assert proc.returncode == 0, stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["accuracy"] == rank1["accuracy"]
    for h0, h1 in zip(rank0["history"], rank1["history"], strict=True):   # all-reduced sums
        assert (h0["loss"], h0["train_acc"]) == (h1["loss"], h1["train_acc"])
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
    checkpoints = list((tmp_path / "ckpt").rglob("last.pt"))
    assert len(checkpoints) == 1
    assert torch.load(checkpoints[0], weights_only=False)["epoch"] == 1


def test_speed_benchmark_runs_both_paths():
    from nml.benchmarks.pretrain_speed import run

    result = run(device="cpu", backbone="resnet_micro", steps=2, batch_size=32, image_size=16,
                 num_workers=0, warmup_steps=1)
    assert result["nml_images_per_s"] > 0 and result["plain_images_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["nml_images_per_s"] / result["plain_images_per_s"])
    assert (result["image_size"], result["batch_size"], result["steps"]) == (16, 32, 2)
