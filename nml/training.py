"""What every trainer of nml shares: the pre-training config, device and precision, the optimiser
and schedule, the training step, the upstream data, and checkpoints.

:mod:`nml.pretrain` (supervised pre-training on noisy labels) and :mod:`nml.clip` (image-text
pre-training with swapped captions) both build on this module, and nothing here imports
either of them, so the trainers never import each other. The random streams, the schedule
and the checkpoint format are described in :mod:`nml.pretrain`'s docstring.

Used by chapter 01_noisy_pretraining (and, through the pre-trained models, every later chapter).
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from .config import MAX_LR, MAX_WEIGHT_DECAY, Config, check_range
from .errors import ConfigError, NMLError
from .guards import check_loss, peak_lr, pick_device

__all__ = ["PretrainConfig", "PretrainResult", "resolve_device", "use_bf16", "cpu_supports_bf16",
           "default_optimizer", "checkpoint_path", "stream_seed", "ORDER_STREAM",
           "AUGMENT_STREAM", "TORCH_STREAM", "make_optimizer", "make_scheduler", "TrainStep",
           "channel_stats", "load_upstream", "write_checkpoint", "resume_checkpoint"]


@dataclass(frozen=True)
class PretrainConfig(Config):
    """One pre-training run. ``None`` in ``lr`` / ``weight_decay`` / ``optimizer="auto"`` means
    the backbone family's default (see :func:`default_optimizer`).

    Used by chapter 01_noisy_pretraining.
    """

    scale: str = "tiny"                  # book scale this run belongs to (tiny | cpu | cifar): a label for the store
    dataset: str = "synthetic_upstream"  # upstream dataset (nml.data.load_images name)
    backbone: str = "resnet_micro"       # nml.models.build_backbone name
    noise: float = 0.0                   # fraction of training labels flipped, in [0, 1)
    noise_type: Literal["symmetric", "asymmetric"] = "symmetric"  # paper: symmetric; 7.3: asymmetric
    noise_classes: tuple[int, ...] = ()  # asymmetric only: the related classes labels flip among
    seed: int = 0                        # model init, noisy-label draw, data order, augmentation
    epochs: int = 6                      # passes over the training set
    batch_size: int = 128                # global batch (split evenly across data-parallel ranks)
    optimizer: Literal["auto", "sgd", "adamw"] = "auto"  # auto: SGD for ResNets, AdamW for ViTs
    lr: float | None = None              # peak learning rate; None: the optimizer's default
    weight_decay: float | None = None    # None: the optimizer's default
    warmup_epochs: int = 1               # linear warm-up before the cosine decay (stabilises early steps)
    label_smoothing: float = 0.0         # 0: plain cross-entropy, so noise acts on the labels as drawn
    image_size: int | None = None        # resize images to this side (px); None: the dataset's own
    train_fraction: float = 1.0          # seeded subset of the training set, in (0, 1]
    augment: bool = True                 # random crop (pad 4 at 32 px) + horizontal flip on the device
    precision: Literal["auto", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; bf16: bf16 autocast + channels-last on any device (CPU: 2.0-2.4x faster where it has AVX512-BF16/AMX, measured by `nml bench pretrain`)

    # Fields added after results were stored: left out of the key at their default.
    added_fields: ClassVar[tuple[str, ...]] = ("precision",)

    def validate(self) -> None:
        super().validate()
        check_range("noise", self.noise, 0.0, 1.0, hi_inclusive=False)
        check_range("epochs", self.epochs, 1, None)
        check_range("batch_size", self.batch_size, 1, None)
        check_range("warmup_epochs", self.warmup_epochs, 0, self.epochs - 1)
        check_range("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_inclusive=False)
        check_range("train_fraction", self.train_fraction, 0.0, 1.0, lo_inclusive=False)
        check_range("seed", self.seed, 0, 2**32 - 1)
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, MAX_LR, lo_inclusive=False)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, 0.0, MAX_WEIGHT_DECAY)
        if self.image_size is not None:
            check_range("image_size", self.image_size, 8, None)
        if self.noise_type == "asymmetric":
            if len(set(self.noise_classes)) < 2:
                raise ConfigError("noise_type 'asymmetric' flips labels inside a set of related "
                                  "classes; set noise_classes to at least two class indices")
            if min(self.noise_classes) < 0:
                raise ConfigError(f"noise_classes must be class indices >= 0, got "
                                  f"{self.noise_classes}")
        elif self.noise_classes:
            raise ConfigError("noise_classes only applies to noise_type 'asymmetric'; leave it "
                              "empty for symmetric noise")


def default_optimizer(cfg: PretrainConfig) -> tuple[str, float, float]:
    """(optimizer, lr, weight decay) that ``cfg`` trains with, filling its ``auto`` / ``None``s.

    ResNets: SGD, momentum 0.9, Nesterov, lr 0.1 per 128 images of batch (linear scaling) and
    weight decay 5e-4, the standard CIFAR ResNet recipe. ViTs (and open_clip towers): AdamW,
    lr 1e-3, weight decay 0.05, because transformers trained from scratch with plain SGD
    converge far more slowly. CLIP models (``clip_*``): AdamW, lr 1e-3, weight decay 0.1, the
    paper's CLIP ResNet-50 setting (journal version, Sec. 4.1). Used by chapter 01_noisy_pretraining.
    """
    family = "resnet" if cfg.backbone.startswith("resnet") else "vit"
    if cfg.backbone.startswith("clip_") and cfg.optimizer in ("auto", "adamw"):
        return ("adamw", 1e-3 if cfg.lr is None else cfg.lr,
                0.1 if cfg.weight_decay is None else cfg.weight_decay)
    name = cfg.optimizer if cfg.optimizer != "auto" else ("sgd" if family == "resnet" else "adamw")
    if name == "sgd":
        lr = 0.1 * cfg.batch_size / 128 if cfg.lr is None else cfg.lr
        wd = 5e-4 if cfg.weight_decay is None else cfg.weight_decay
    else:
        lr = 1e-3 if cfg.lr is None else cfg.lr
        wd = 0.05 if cfg.weight_decay is None else cfg.weight_decay
    return name, lr, wd


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    ``backbone`` is in eval mode on the training device; ``test_accuracy`` is in percent on the
    clean test labels; ``train_noise_rate`` is the realised fraction of flipped training labels;
    ``history`` has one dict per epoch (``epoch``, ``loss``, ``train_acc`` in percent against the
    noisy training labels, ``lr`` at the epoch's end, ``seconds``, ``images_per_second``) for
    every epoch trained so far, including those of earlier, resumed calls; ``epochs_run`` counts
    the epochs trained by this call (0 when the final checkpoint was already there) and
    ``seconds`` its wall time. ``mean`` / ``std`` are the input normalisation the backbone was
    trained with.

    Used by chapter 01_noisy_pretraining.
    """

    backbone: nn.Module
    config: PretrainConfig
    test_accuracy: float
    train_noise_rate: float
    history: list[dict] = field(default_factory=list)
    epochs_run: int = 0
    start_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    world_size: int = 1
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    checkpoint: str | None = None
    extra: dict = field(default_factory=dict)   # objective-specific measurements (CLIP: caption mismatch)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; ``None`` picks CUDA when visible, else the CPU.

    Under torchrun on CUDA each rank gets ``cuda:$LOCAL_RANK``. Used by chapter 01_noisy_pretraining.
    """
    device = pick_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast
    pays; elsewhere oneDNN emulates it and it is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:   # not Linux: ask oneDNN through torch
        return bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()) and \
            bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def use_bf16(cfg: PretrainConfig, device: torch.device) -> bool:
    """Whether ``cfg`` trains under bf16 autocast (and channels-last) on ``device``.

    ``precision="auto"``: on CUDA only. ``"bf16"``: on any device; on a CPU without native
    bf16 it is refused, since emulated bf16 is slower than float32 and would also give other
    numbers. Used by chapter 01_noisy_pretraining.
    """
    if cfg.precision == "auto":
        return device.type == "cuda"
    if device.type == "cpu" and not cpu_supports_bf16():
        raise ConfigError("precision 'bf16' on this CPU would be emulated (no AVX512-BF16 / AMX); "
                          "run with precision='auto' (float32) or on a GPU")
    return True


def checkpoint_path(cfg: PretrainConfig, checkpoint_dir: str | os.PathLike) -> Path:
    """Where :func:`pretrain` keeps the latest checkpoint of ``cfg``. Used by chapter 01_noisy_pretraining."""
    return Path(checkpoint_dir) / cfg.hash() / "last.pt"


# ------------------------------------------------------------------------------------------
# Pieces shared with nml.benchmarks.pretrain_speed
# ------------------------------------------------------------------------------------------

def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, stream, rank): independent streams per part."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


ORDER_STREAM, AUGMENT_STREAM, TORCH_STREAM = 0, 1, 2   # stream ids for stream_seed


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float):
    # No weight decay on biases and norm parameters (1-D tensors): decaying them only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def make_scheduler(optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TrainStep:
    """One optimisation step on a uint8 batch that is already on the device.

    Augment (optional) -> normalise -> channels-last and forward under bf16 autocast (when bf16)
    -> cross-entropy -> backward -> optimizer and scheduler step. Loss and correct-count sums are
    kept on the device so that a step never waits for the GPU.
    """

    def __init__(self, model: nn.Module, optimizer, scheduler, *, mean, std, device: torch.device,
                 augment: bool, label_smoothing: float, bf16: bool | None = None,
                 check_each_step: bool = False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.mean, self.std, self.device = mean, std, device
        self.augment, self.label_smoothing = augment, label_smoothing
        self.bf16 = device.type == "cuda" if bf16 is None else bf16
        # On a CPU reading the loss costs nothing, so a diverged step stops the run at once; on
        # a GPU that read would stall every step, and the epoch's loss sum is checked instead.
        self.check_each_step = check_each_step
        self.reset()

    def reset(self, epoch: int = 0) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.seen = 0
        self.epoch, self.steps = epoch, 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator | None) -> None:
        from .data import augment, to_float

        if self.augment:
            images = augment(images, generator)
        x = to_float(images, self.mean, self.std)
        if self.bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x)
        loss = nnf.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        self.steps += 1
        if self.check_each_step:
            check_loss(float(loss.detach()), what="pre-training", epoch=self.epoch,
                       step=self.steps, lr=peak_lr(self.optimizer))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.loss_sum += loss.detach() * len(labels)
        self.correct += (logits.detach().argmax(1) == labels).sum()
        self.seen += len(labels)



def channel_stats(dataset: str, images: torch.Tensor):
    from . import data

    if dataset in data.CHANNEL_STATS:
        mean, std = data.CHANNEL_STATS[dataset]
    else:   # a dataset without stored statistics (torchvision:, imagefolder:): measure them
        mean, std = data.channel_stats(images)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def load_upstream(cfg: PretrainConfig, root):
    from .data import load_images

    train = load_images(cfg.dataset, "train", root=root, image_size=cfg.image_size, seed=cfg.seed)
    test = load_images(cfg.dataset, "test", root=root, image_size=cfg.image_size, seed=cfg.seed)
    if cfg.train_fraction < 1.0:
        keep = max(1, round(cfg.train_fraction * len(train)))
        gen = torch.Generator().manual_seed(cfg.seed)
        idx = torch.randperm(len(train), generator=gen)[:keep].sort().values
        train = train.subset(idx)
    return train, test



# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------

def _save(path: Path, payload: dict) -> None:
    from .storage import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_checkpoint(path: Path, cfg, epoch: int, model: nn.Module, optimizer, scheduler,
                      history: list[dict], noise_rate: float, mean, std,
                      accuracy: float | None) -> None:
    """The checkpoint after ``epoch`` (atomic), and the config beside it on the first write.
    Shared by supervised and CLIP pre-training (:mod:`nml.clip`)."""
    payload = {"config": cfg.to_dict(), "epoch": epoch, "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
               "history": history, "train_noise_rate": noise_rate, "mean": mean, "std": std}
    if accuracy is not None:
        payload["test_accuracy"] = accuracy
    _save(path, payload)
    config_file = path.parent / "config.json"
    if not config_file.exists():
        from .storage import atomic_write_bytes
        atomic_write_bytes(config_file, json.dumps(cfg.to_dict(), indent=1).encode())


def resume_checkpoint(path: Path | None, cfg, device: torch.device, model: nn.Module, optimizer,
            scheduler) -> tuple[int, list[dict], float | None]:
    """Load the latest checkpoint of ``cfg`` (if any) into model, optimizer and scheduler;
    returns (epochs done, history, final test accuracy or None). Shared with :mod:`nml.clip`."""
    state = _load(path, cfg, device) if path is not None else None
    if state is None:
        return 0, [], None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["history"]), state.get("test_accuracy")


def _load(path: Path, cfg: PretrainConfig, device: torch.device) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:   # a truncated or foreign file: say which, do not guess
        raise NMLError(f"checkpoint {path} cannot be read ({exc}); delete it to retrain") from exc
    if state.get("config") != cfg.to_dict():
        raise NMLError(f"checkpoint {path} belongs to another config; delete it to retrain")
    return state


