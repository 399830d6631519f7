"""``python -m nml bench pretrain``: pre-training throughput, nml's path against a plain loop.

nml's pre-training keeps the decoded uint8 images on the device and augments whole batches
there (:func:`nml.data.augment`), with bf16 autocast and channels-last memory on CUDA
(:mod:`nml.pretrain`). The textbook alternative decodes PIL images in DataLoader workers and
applies torchvision's ``RandomCrop`` / ``RandomHorizontalFlip`` / ``ToTensor`` / ``Normalize``
per image, then trains in float32. This benchmark times both on the same images, the same
backbone, optimizer and batch size, on the same device, side by side in one run, and reports
training images per second for each and their ratio.

Used by chapter 10_runtime (and to size the reduced CPU-scale runs of chapter 01_noisy_pretraining).
"""

from __future__ import annotations

import math
import os
import time

import torch
import torch.nn.functional as nnf

__all__ = ["run"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _images(dataset: str | None, count: int, image_size: int, seed: int, root):
    """uint8 images, labels, class count and normalisation for the benchmark."""
    if dataset is None:
        # Throughput does not depend on pixel values: random CIFAR-shaped images, 100 classes.
        gen = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (count, 3, image_size, image_size), dtype=torch.uint8,
                               generator=gen)
        labels = torch.randint(0, 100, (count,), generator=gen)
        return images, labels, 100, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    from ..data import load_images
    from ..training import channel_stats

    data = load_images(dataset, "train", root=root, image_size=image_size)
    n = min(count, len(data))
    mean, std = channel_stats(dataset, data.images)
    return data.images[:n], data.labels[:n], len(data.classes), mean, std


def run(device: str | None = None, backbone: str = "resnet18_cifar", steps: int | None = None,
        batch_size: int | None = None, *, dataset: str | None = None, image_size: int = 32,
        num_workers: int | None = None, warmup_steps: int | None = None, plain_amp: bool = False,
        compile: bool = False, seed: int = 0, root=None) -> dict:
    """Images per second of :mod:`nml.pretrain`'s training step and of a plain PyTorch loop.

    Defaults: 100 timed steps of batch 512 on a GPU after 3 untimed warm-up steps (kernel
    selection, DataLoader worker start-up); 10 steps of batch 128 after 1 on a CPU. ``dataset=None``
    uses random 32 px uint8 images (throughput does not depend on their content); a dataset name
    loads it with :func:`nml.data.load_images`. The plain loop uses a torchvision DataLoader
    with ``num_workers`` processes (default: all cores but one, at most 8), pinned memory on
    CUDA, float32 and NCHW (``plain_amp=True`` gives it bf16 autocast too, to separate the
    data-pipeline gain from the precision gain). Both use SGD with Nesterov momentum at
    the same learning rate and the same initial weights.

    Used by chapter 10_runtime.
    """
    # long: three timed loops (nml's step in float32 and bf16, a plain PyTorch loop) share one
    # setup; apart they would hide what is compared
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from torch.utils.data import DataLoader, Dataset

    from ..models import build_backbone
    from ..training import (TrainStep, cpu_supports_bf16, make_optimizer, make_scheduler,
                            resolve_device)

    dev = resolve_device(device)
    on_gpu = dev.type == "cuda"
    steps = steps if steps is not None else (100 if on_gpu else 10)
    batch_size = batch_size if batch_size is not None else (512 if on_gpu else 128)
    warmup_steps = warmup_steps if warmup_steps is not None else (3 if on_gpu else 1)
    if num_workers is None:
        num_workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    total = (steps + warmup_steps) * batch_size
    images, labels, num_classes, mean, std = _images(dataset, min(total, 50_000), image_size,
                                                     seed, root)
    n = len(labels)
    size = images.shape[-1]
    pad = max(1, round(4 * size / 32))   # the same padding as nml.data.augment

    def fresh_model():
        torch.manual_seed(seed)
        return build_backbone(backbone, num_classes, image_size=size).to(dev).train()

    def fresh_optim(model):
        opt = make_optimizer(model, "sgd", 0.1 * batch_size / 128, 5e-4)
        return opt, make_scheduler(opt, total, 0)

    # ---- nml: uint8 images on the device, batched augmentation there ------------------------
    # On a CPU with native bf16, nml's float32 path and its bf16 + channels-last path
    # (PretrainConfig.precision="bf16") are both timed, side by side with the plain loop.
    dev_images, dev_labels = images.to(dev), labels.to(dev)
    precisions = ["bf16"] if on_gpu else (["fp32", "bf16"] if cpu_supports_bf16() else ["fp32"])

    def time_nml(bf16: bool) -> float:
        model = fresh_model()
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        opt, sched = fresh_optim(model)
        train_model = torch.compile(model) if compile else model
        step = TrainStep(train_model, opt, sched, mean=mean, std=std, device=dev, augment=True,
                         label_smoothing=0.0, bf16=bf16)
        aug_gen = torch.Generator(device=dev).manual_seed(seed)
        order_gen = torch.Generator().manual_seed(seed)
        order, position = torch.randperm(n, generator=order_gen).to(dev), 0

        def nml_step():
            nonlocal order, position
            if position + batch_size > n:
                order, position = torch.randperm(n, generator=order_gen).to(dev), 0
            batch = order[position:position + batch_size]
            position += batch_size
            step(dev_images[batch], dev_labels[batch], aug_gen)

        for _ in range(warmup_steps):
            nml_step()
        _sync(dev)
        start = time.perf_counter()
        for _ in range(steps):
            nml_step()
        float(step.loss_sum)   # wait for the last step
        _sync(dev)
        return time.perf_counter() - start

    nml_seconds_by = {p: time_nml(p == "bf16") for p in precisions}
    nml_seconds = nml_seconds_by[precisions[-1]]   # nml's fastest path on this device
    del dev_images

    # ---- plain: PIL images through a torchvision DataLoader ---------------------------------
    class PILImages(Dataset):
        def __init__(self):
            self.images = [TF.to_pil_image(img) for img in images]
            self.labels = labels.tolist()
            self.transform = T.Compose([T.RandomCrop(size, padding=pad), T.RandomHorizontalFlip(),
                                        T.ToTensor(), T.Normalize(mean, std)])

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.transform(self.images[i]), self.labels[i]

    loader = DataLoader(PILImages(), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=num_workers, pin_memory=on_gpu,
                        persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed))

    def batches():
        while True:
            yield from loader

    model = fresh_model()
    opt, _ = fresh_optim(model)
    stream = batches()

    def plain_step():
        x, y = next(stream)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=plain_amp and on_gpu):
            loss = nnf.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup_steps):
        plain_step()
    _sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        loss = plain_step()
    float(loss.detach())
    _sync(dev)
    plain_seconds = time.perf_counter() - start
    del stream, loader

    nml_rate = steps * batch_size / nml_seconds
    plain_rate = steps * batch_size / plain_seconds
    result = {"benchmark": "pretrain-speed", "device": str(dev),
              "gpu": torch.cuda.get_device_name(dev) if on_gpu else None,
              "backbone": backbone, "dataset": dataset or "random uint8 images",
              "image_size": size, "batch_size": batch_size, "steps": steps,
              "num_workers": num_workers, "torch_threads": torch.get_num_threads(),
              "plain_amp": plain_amp, "compile": compile,
              "nml_images_per_s": nml_rate, "plain_images_per_s": plain_rate,
              "speedup": nml_rate / plain_rate,
              "nml_seconds_per_epoch_50k": 50_000 / nml_rate, "torch": torch.__version__,
              "nml_images_per_s_by_precision": {p: steps * batch_size / t
                                                for p, t in nml_seconds_by.items()}}
    if "fp32" in nml_seconds_by and "bf16" in nml_seconds_by:
        result["bf16_over_fp32"] = nml_seconds_by["fp32"] / nml_seconds_by["bf16"]
    print(f"pre-training throughput, {backbone} at {size} px, batch {batch_size}, {dev}: "
          f"nml {nml_rate:,.0f} img/s, plain DataLoader loop {plain_rate:,.0f} img/s "
          f"({num_workers} workers), ratio {nml_rate / plain_rate:.2f}"
          + (f"; nml bf16 + channels-last / nml float32: {result['bf16_over_fp32']:.2f}x"
             if "bf16_over_fp32" in result else ""))
    if not math.isfinite(result["speedup"]):
        raise RuntimeError("pretrain_speed measured a zero time; raise steps")
    return result
