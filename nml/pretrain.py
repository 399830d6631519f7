"""Supervised pre-training on noisy labels: one config in, one pre-trained backbone out.

:func:`pretrain` trains a :mod:`nml.models` backbone on an upstream dataset (CIFAR-100 at the
book's scales, the synthetic upstream set at the tiny scale) whose training labels were
corrupted by :mod:`nml.noise` with the config's seed (each seed draws its own noisy labels),
and reports the accuracy on the *clean* test labels.

How it runs:

- the decoded uint8 images live on the device; each batch is augmented there
  (:func:`nml.data.augment`) and normalised (:func:`nml.data.to_float`), so no data-loader
  workers are needed; bf16 autocast and channels-last memory on CUDA (and on a CPU with native
  bf16 when ``precision="bf16"``); ``torch.compile``
  optional (off by default);
- a linear warm-up then cosine learning-rate schedule, stepped every batch;
- a checkpoint after every epoch, written atomically (temporary file + ``os.replace``) under
  ``checkpoint_dir/<cfg.hash()>/last.pt`` with the model, optimizer and scheduler state and the
  history; a later call resumes from it, and returns at once when the final epoch is there.
  Every random stream (the data order, the augmentation, dropout) is re-seeded at the start of
  each epoch from ``(seed, epoch[, rank])``, so the checkpoint needs no generator state and a
  resumed run is bitwise the run that was never stopped (CPU, same seed);
- the same function runs data-parallel under ``torchrun --nproc_per_node N``: the process group
  comes from the environment (gloo on CPU, NCCL on CUDA), every rank draws the same epoch
  permutation and takes its own strided shard (the ``DistributedSampler`` scheme: pad by
  wrapping around to a multiple of the world size), the model is wrapped in
  ``DistributedDataParallel``, ``batch_size`` is the global batch, and only rank 0 writes.

Used by chapter 01_noisy_pretraining (and, through the pre-trained models, every later chapter).
"""

from __future__ import annotations

import contextlib
import math
import os
import time

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, DataError
from .guards import check_loss, check_parameters
from .training import (AUGMENT_STREAM, ORDER_STREAM, TORCH_STREAM, PretrainConfig,
                       PretrainResult, TrainStep, checkpoint_path, channel_stats,
                       cpu_supports_bf16, default_optimizer, load_upstream, make_optimizer,
                       make_scheduler, resolve_device, resume_checkpoint, stream_seed, use_bf16,
                       write_checkpoint)

# The config, result and device helpers live in nml.training (shared with nml.clip); they are
# re-exported here, where a reader of chapter 01 looks for them.
__all__ = ["PretrainConfig", "PretrainResult", "pretrain", "resolve_device", "use_bf16",
           "cpu_supports_bf16", "default_optimizer", "checkpoint_path"]


def _noisy_labels(cfg: PretrainConfig, clean: torch.Tensor, num_classes: int) -> np.ndarray:
    clean_np = clean.cpu().numpy().astype(np.int64)
    if cfg.noise == 0.0:
        return clean_np.copy()
    from . import noise as noise_mod

    if cfg.noise_type == "symmetric":
        return np.asarray(noise_mod.symmetric_noise(clean_np, cfg.noise, num_classes, cfg.seed))
    if max(cfg.noise_classes) >= num_classes:
        raise ConfigError(f"noise_classes {cfg.noise_classes} name classes beyond the "
                          f"{num_classes} of {cfg.dataset}")
    return np.asarray(noise_mod.asymmetric_noise(clean_np, cfg.noise, cfg.noise_classes, cfg.seed))



# ------------------------------------------------------------------------------------------
# Distributed
# ------------------------------------------------------------------------------------------

def _distributed(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call created the process group)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if world <= 1:
        return 0, 1, False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def _shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """DistributedSampler's scheme: wrap around to a multiple of ``world``, take every world-th."""
    if world == 1:
        return order
    total = math.ceil(len(order) / world) * world
    if total > len(order):
        order = torch.cat([order, order[:total - len(order)]])
    return order[rank::world]



# ------------------------------------------------------------------------------------------
# pretrain
# ------------------------------------------------------------------------------------------

@torch.no_grad()
def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, mean, std,
              device: torch.device, rank: int, world: int, bf16: bool,
              batch_size: int = 1024) -> float:
    """Percent correct; each rank scores its strided share, the counts are summed."""
    from .data import to_float

    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    idx = torch.arange(rank, len(labels), world, device=images.device)
    for start in range(0, len(idx), batch_size):
        part = idx[start:start + batch_size]
        x = to_float(images[part].to(device, non_blocking=True), mean, std)
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(x).argmax(1)
        correct += (pred == labels[part].to(device)).sum()
    if world > 1:
        import torch.distributed as dist
        dist.all_reduce(correct)
    return 100.0 * float(correct) / max(1, len(labels))


def pretrain(cfg: PretrainConfig, *, root: str | os.PathLike | None = None,
             checkpoint_dir: str | os.PathLike | None = "checkpoints",
             device: str | torch.device | None = None, progress: bool = True,
             compile: bool = False, stop_after_epoch: int | None = None) -> PretrainResult:
    """Pre-train ``cfg.backbone`` on ``cfg.dataset`` with ``cfg.noise`` label noise (CLIP
    backbones, ``clip_*``: image-text pre-training with swapped captions, :mod:`nml.clip`).

    ``root`` is the data root (see :func:`nml.data.data_root`); ``checkpoint_dir=None`` turns
    checkpoints (and resuming) off; ``device=None`` uses CUDA when visible; ``compile`` wraps
    the model in ``torch.compile``; ``stop_after_epoch=k`` trains only up to epoch ``k`` of
    the ``cfg.epochs`` schedule, checkpoints and returns (a later call resumes). See the module
    docstring for the schedule, checkpoints and data-parallel runs.

    Used by chapter 01_noisy_pretraining.
    """
    # long: the training loop (data on the device, schedule, steps, checkpoints, resumption) in the
    # order it runs
    if not isinstance(cfg, PretrainConfig):
        raise ConfigError(f"pretrain needs a PretrainConfig, got {type(cfg).__name__}")
    if stop_after_epoch is not None and not 1 <= stop_after_epoch <= cfg.epochs:
        raise ConfigError(f"stop_after_epoch must lie in [1, {cfg.epochs}], got {stop_after_epoch}")
    from .clip import is_clip_backbone
    if is_clip_backbone(cfg.backbone):
        from .clip import pretrain_clip
        return pretrain_clip(cfg, root=root, checkpoint_dir=checkpoint_dir, device=device,
                             progress=progress, stop_after_epoch=stop_after_epoch)
    from tqdm.auto import tqdm

    from .models import build_backbone

    wall_start = time.perf_counter()
    device = resolve_device(device)
    rank, world, created_group = _distributed(device)
    try:
        train, test = load_upstream(cfg, root)
        num_classes = len(train.classes)
        noisy = _noisy_labels(cfg, train.labels, num_classes)
        noise_rate = float(np.mean(noisy != train.labels.cpu().numpy()))
        mean, std = channel_stats(cfg.dataset, train.images)
        image_size = int(train.images.shape[-1])

        torch.manual_seed(cfg.seed)   # same initial weights on every rank
        backbone = build_backbone(cfg.backbone, num_classes, image_size=image_size).to(device)
        bf16 = use_bf16(cfg, device)
        if bf16:
            backbone = backbone.to(memory_format=torch.channels_last)
        backbone.input_mean, backbone.input_std = mean, std

        opt_name, lr, wd = default_optimizer(cfg)
        optimizer = make_optimizer(backbone, opt_name, lr, wd)
        if cfg.batch_size % world:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the "
                              f"{world} data-parallel processes")
        local_batch = cfg.batch_size // world
        local_count = math.ceil(len(train) / world)
        steps_per_epoch = local_count // local_batch   # drop the last partial batch (BatchNorm)
        if steps_per_epoch == 0:
            raise DataError(f"{cfg.dataset} has {len(train)} training images, fewer than one "
                            f"batch of {cfg.batch_size}; lower batch_size or raise train_fraction")
        scheduler = make_scheduler(optimizer, cfg.epochs * steps_per_epoch,
                                    cfg.warmup_epochs * steps_per_epoch)

        ckpt_file = checkpoint_path(cfg, checkpoint_dir) if checkpoint_dir is not None else None
        start_epoch, history, final_accuracy = resume_checkpoint(ckpt_file, cfg, device, backbone,
                                                       optimizer, scheduler)
        end_epoch = cfg.epochs if stop_after_epoch is None else max(stop_after_epoch, start_epoch)

        def result(accuracy: float, epochs_run: int) -> PretrainResult:
            backbone.eval()
            return PretrainResult(
                backbone=backbone, config=cfg, test_accuracy=accuracy,
                train_noise_rate=noise_rate, history=history, epochs_run=epochs_run,
                start_epoch=start_epoch, seconds=time.perf_counter() - wall_start,
                device=str(device), world_size=world, mean=mean, std=std,
                checkpoint=str(ckpt_file) if ckpt_file is not None else None)

        test_images = test.images.to(device)
        test_labels = test.labels.to(device)
        if final_accuracy is not None and start_epoch == cfg.epochs:
            return result(float(final_accuracy), 0)

        model: nn.Module = backbone
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel
            model = DistributedDataParallel(
                backbone, device_ids=[device.index] if device.type == "cuda" else None)
        if compile:
            model = torch.compile(model)
        images = train.images.to(device)
        labels = torch.as_tensor(noisy, dtype=torch.long).to(device)
        step = TrainStep(model, optimizer, scheduler, mean=mean, std=std, device=device,
                          augment=cfg.augment, label_smoothing=cfg.label_smoothing, bf16=bf16,
                          check_each_step=device.type == "cpu" and world == 1)

        epochs = tqdm(range(start_epoch, end_epoch), desc=f"pretrain {cfg.backbone} "
                      f"noise={cfg.noise:g}", disable=(not progress) or rank != 0, leave=False)
        for epoch in epochs:
            epoch_start = time.perf_counter()
            backbone.train()
            torch.manual_seed(stream_seed(cfg.seed, epoch, TORCH_STREAM, rank))
            order_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, epoch, ORDER_STREAM))
            aug_gen = torch.Generator(device=device).manual_seed(
                stream_seed(cfg.seed, epoch, AUGMENT_STREAM, rank))
            order = _shard(torch.randperm(len(train), generator=order_gen), rank, world)
            order = order.to(device)
            step.reset(epoch + 1)
            for i in range(steps_per_epoch):
                batch = order[i * local_batch:(i + 1) * local_batch]
                step(images[batch], labels[batch], aug_gen)
            loss_sum, correct, seen = step.loss_sum, step.correct, step.seen
            if world > 1:
                import torch.distributed as dist
                totals = torch.stack([loss_sum.float(), correct.float(),
                                      torch.tensor(float(seen), device=device)])
                dist.all_reduce(totals)
                loss_sum, correct, seen = totals[0], totals[1], float(totals[2])
            # Every rank sees the same all-reduced sum, so every rank stops together.
            check_loss(float(loss_sum), what="pre-training", epoch=epoch + 1, lr=lr)
            check_parameters([backbone], what="pre-training", epoch=epoch + 1, lr=lr)
            seconds = time.perf_counter() - epoch_start
            history.append({"epoch": epoch + 1, "loss": float(loss_sum) / seen,
                            "train_acc": 100.0 * float(correct) / seen,
                            "lr": float(scheduler.get_last_lr()[0]), "seconds": seconds,
                            "images_per_second": seen / seconds})
            epochs.set_postfix(loss=f"{history[-1]['loss']:.3f}",
                               acc=f"{history[-1]['train_acc']:.1f}")
            if world > 1:
                # BatchNorm running statistics are per rank; rank 0's become everyone's, as
                # DDP itself does before each forward, so that every rank ends identical.
                import torch.distributed as dist
                for buffer in backbone.buffers():
                    dist.broadcast(buffer, 0)
            accuracy = None
            if epoch + 1 == cfg.epochs:
                accuracy = _accuracy(backbone, test_images, test_labels, mean=mean, std=std,
                                     device=device, rank=rank, world=world, bf16=bf16)
            if ckpt_file is not None and rank == 0:
                write_checkpoint(ckpt_file, cfg, epoch + 1, backbone, optimizer, scheduler,
                                  history, noise_rate, mean, std, accuracy)
            if accuracy is not None:
                final_accuracy = accuracy
        if world > 1:
            import torch.distributed as dist
            dist.barrier()   # no rank leaves (and maybe resumes) before rank 0's last write
        if final_accuracy is None or end_epoch < cfg.epochs:
            final_accuracy = _accuracy(backbone, test_images, test_labels, mean=mean, std=std,
                                       device=device, rank=rank, world=world, bf16=bf16)
        return result(float(final_accuracy), end_epoch - start_epoch)
    finally:
        if created_group:
            import torch.distributed as dist
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
