"""``python -m nml bench blackbox-cache``: cached features against backbone-in-the-loop tuning.

The authors' code runs the frozen backbone on every black-box tuning step. nml extracts the
features once (:mod:`nml.features`) and tunes on them. This benchmark times both on the same
data, the same head and the same number of epochs, side by side in one run, and checks that
the two paths see the same features (so the speed-up is not bought with different numbers).

Used by chapter 10_runtime.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = ["run"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(device: str | None = None, steps: int | None = None, *, backbone: str | None = None,
        dataset: str | None = None, epochs: int = 3, batch_size: int = 256, images: int = 4096,
        seed: int = 0) -> dict:
    """Time LP tuning with cached features vs the frozen backbone run on every step.

    Defaults: ResNet-18 (CIFAR stem) on CIFAR-10 on a GPU; the micro ResNet on the embedded
    synthetic data on a CPU (where the full model would take minutes per epoch). ``steps``
    caps the optimisation steps per path (default: ``epochs`` passes over ``images``).
    """
    from ..data import CHANNEL_STATS, load_images, to_float
    from ..features import extract_features
    from ..models import build_backbone

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = dev.type == "cuda"
    dataset = dataset or ("cifar10" if on_gpu else "synthetic_id")
    backbone = backbone or ("resnet18_cifar" if on_gpu else "resnet_micro")
    data = load_images(dataset, "train")
    n = min(images, len(data))
    x_uint8, y = data.images[:n].to(dev), data.labels[:n].to(dev)
    mean, std = CHANNEL_STATS.get(dataset, CHANNEL_STATS[data.name])
    torch.manual_seed(seed)
    model = build_backbone(backbone, num_classes=len(data.classes),
                           image_size=x_uint8.shape[-1]).to(dev).eval()
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps or epochs * steps_per_epoch

    def train(features_of_batch) -> float:
        torch.manual_seed(seed)
        head = nn.Linear(model.feature_dim, len(data.classes)).to(dev)
        opt = torch.optim.AdamW(head.parameters(), lr=0.01, weight_decay=0.0)
        gen = torch.Generator().manual_seed(seed)
        done = 0
        _sync(dev)
        start = time.perf_counter()
        while done < total_steps:
            order = torch.randperm(n, generator=gen).to(dev)
            for s in range(0, n, batch_size):
                if done >= total_steps:
                    break
                idx = order[s:s + batch_size]
                loss = nnf.cross_entropy(head(features_of_batch(idx)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
        _sync(dev)
        return time.perf_counter() - start

    @torch.no_grad()
    def in_the_loop(idx):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on_gpu):
            return model.features(to_float(x_uint8[idx], mean, std)).float()

    # Warm up both paths (kernel selection, allocator) before timing.
    in_the_loop(torch.arange(min(batch_size, n), device=dev))
    _sync(dev)
    start = time.perf_counter()
    cached = extract_features(model, x_uint8, mean, std, batch_size=1024, device=dev).to(dev)
    _sync(dev)
    extract_s = time.perf_counter() - start
    cached_tune_s = train(lambda idx: cached[idx])
    loop_s = train(in_the_loop)

    probe = torch.arange(min(64, n), device=dev)
    max_abs_diff = float((in_the_loop(probe) - cached[probe]).abs().max())
    cached_total = extract_s + cached_tune_s
    return {"benchmark": "blackbox-cache", "device": str(dev),
            "gpu": torch.cuda.get_device_name(0) if on_gpu else None,
            "backbone": backbone, "dataset": dataset, "images": n, "steps": total_steps,
            "batch_size": batch_size, "extract_s": extract_s, "cached_tune_s": cached_tune_s,
            "cached_total_s": cached_total, "backbone_in_loop_s": loop_s,
            "speedup": loop_s / cached_total, "speedup_tuning_only": loop_s / cached_tune_s,
            "feature_max_abs_diff": max_abs_diff, "torch": torch.__version__}
