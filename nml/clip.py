"""CLIP pre-training with noisy captions (paper Sec. 4.2): open_clip models, caption swapping.

The paper pre-trains CLIP ResNet-50s on YFCC15M whose captions were swapped between random
image-text pairs at {0, 5, 10, 20, 30} %, and reports their zero-shot ImageNet accuracy (the
CLIP column of its Table 1 / App. Table 3) and the same LP, spectrum and NMTune analysis on their
image features. Here the image-text pairs are the upstream images (CIFAR-100, or the synthetic
upstream set at the tiny scale) with captions written from prompt templates over the class
names (``"a photo of the large maple tree."``; at the tiny scale the class names are their
parts in words, :func:`nml.data.synthetic_class_descriptions`); the noise swaps captions between
random pairs with :func:`nml.noise.swap_captions`.

The models are open_clip's own ``CLIP`` class (image tower: open_clip's ViT; text tower: its
transformer with the standard BPE tokenizer), built from JSON files in open_clip's model-config
format that ship in ``nml/clip_configs`` and are registered with ``open_clip.add_model_config``:

=====================  ====================  ===============================================
nml backbone           open_clip config       towers (image / text), embedding D
=====================  ====================  ===============================================
``clip_vit_micro``     nml-clip-vit-micro     ViT 16 px, patch 4, width 64, 2 layers / width
                                              64, 2 layers; D = 64 (tiny scale)
``clip_vit_narrow``    nml-clip-vit-narrow    ViT 32 px, patch 4, width 96, 3 layers / width
                                              96, 2 layers; D = 96 (reduced CPU scale: about
                                              230 images/s on one CPU core)
``clip_vit_small``     nml-clip-vit-small     ViT 32 px, patch 4, width 192, 6 layers / width
                                              256, 4 layers; D = 256 (CIFAR scale, GPU)
=====================  ====================  ===============================================

The loss is open_clip's ``ClipLoss`` (symmetric InfoNCE with the learned temperature); zero-shot
classification uses open_clip's ``build_zero_shot_classifier`` with the same templates, averaged
(prompt ensembling). Downstream, a CLIP model is a :class:`~nml.models.Backbone` whose features
are the image tower's embedding (the image side of the joint space), so every chapter's LP,
spectrum and NMTune code runs on it unchanged.

The training loop follows :func:`nml.pretrain.pretrain` (which hands ``clip_*`` backbones to
:func:`pretrain_clip`): uint8 images and caption indices on the device, augmentation there,
a warm-up then cosine schedule, AdamW, a checkpoint after every epoch with exact resume, every
random stream re-seeded per epoch. One process only (no data-parallel run: the CLIP models here
are small).

Used by chapters 01_noisy_pretraining (zero-shot accuracy), 03_feature_spectrum and
06_nmtune (the CLIP sections).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, DataError
from .guards import check_loss, check_parameters, peak_lr

__all__ = ["CLIP_BACKBONES", "is_clip_backbone", "build_clip_backbone", "ClipBackbone",
           "caption_templates", "class_texts", "caption_table", "pretrain_clip",
           "zero_shot_accuracy"]

#: nml backbone name -> the open_clip model-config name (``nml/clip_configs/<name>.json``).
CLIP_BACKBONES = {"clip_vit_micro": "nml-clip-vit-micro",
                  "clip_vit_narrow": "nml-clip-vit-narrow",
                  "clip_vit_small": "nml-clip-vit-small"}

_CONFIG_DIR = Path(__file__).resolve().parent / "clip_configs"
_registered = False


def is_clip_backbone(name: str) -> bool:
    """True for the CLIP backbones (pre-trained by :func:`pretrain_clip`). Used by every chapter."""
    return name in CLIP_BACKBONES


def _register_configs() -> None:
    global _registered
    if not _registered:
        import open_clip
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True


def model_config(name: str) -> dict:
    """The open_clip model config (JSON) of CLIP backbone ``name``. Used by chapter 01."""
    if name not in CLIP_BACKBONES:
        raise ConfigError(f"unknown CLIP backbone {name!r}; choose one of {tuple(CLIP_BACKBONES)}")
    return json.loads((_CONFIG_DIR / f"{CLIP_BACKBONES[name]}.json").read_text())


class ClipBackbone(nn.Module):
    """A whole open_clip ``CLIP`` model seen as a backbone: ``features`` is the image embedding.

    Quacks like :class:`nml.models.Backbone` (``name``, ``family="clip"``, ``feature_dim``,
    ``trunk`` = the image tower, ``head`` = identity, ``features``, ``mlp_linear_names``) and
    keeps the text tower in ``clip`` for training and zero-shot classification.

    Used by chapters 01_noisy_pretraining, 03_feature_spectrum and 06_nmtune.
    """

    family = "clip"

    def __init__(self, clip_model: nn.Module, name: str):
        super().__init__()
        self.clip = clip_model
        self.name = name
        self.feature_dim = int(clip_model.visual.output_dim)
        self.num_classes = 0
        self.head = nn.Identity()
        self.input_mean = None   # normalisation comes from the upstream data, as for nml's models
        self.input_std = None
        # open_clip's transformer blocks name their MLP linears c_fc / c_proj (LoRA targets).
        self.mlp_linear_names = tuple(
            n for n, m in clip_model.visual.named_modules()
            if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in ("c_fc", "c_proj"))

    @property
    def trunk(self) -> nn.Module:
        return self.clip.visual

    @property
    def is_vit(self) -> bool:
        return bool(self.mlp_linear_names)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Image embeddings (N x D, not normalised) of a normalised float batch."""
        return self.clip.encode_image(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_clip_backbone(name: str, image_size: int) -> ClipBackbone:
    """Build CLIP backbone ``name`` (random weights) from its open_clip config at ``image_size``.

    Used by chapter 01_noisy_pretraining.
    """
    import open_clip

    config = model_config(name)
    if image_size != config["vision_cfg"]["image_size"]:
        raise ConfigError(f"CLIP backbone {name!r} is configured for "
                          f"{config['vision_cfg']['image_size']} px images, got {image_size} px; "
                          f"use the scale's CLIP backbone (clip_vit_micro at 16 px, "
                          f"clip_vit_narrow / clip_vit_small at 32 px)")
    _register_configs()
    # open_clip warns through the root logger that no pretrained weights were loaded: here that
    # is the point (the model is pre-trained by pretrain_clip), so the warning is held back.
    logging.disable(logging.WARNING)
    try:
        model = open_clip.create_model(CLIP_BACKBONES[name], pretrained=None, load_weights=False)
    finally:
        logging.disable(logging.NOTSET)
    return ClipBackbone(model, name)


def tokenizer_for(name: str):
    """open_clip's tokenizer for CLIP backbone ``name`` (BPE, the config's context length)."""
    import open_clip

    model_config(name)
    _register_configs()
    return open_clip.get_tokenizer(CLIP_BACKBONES[name])


def caption_templates() -> tuple:
    """The prompt templates: open_clip's ``SIMPLE_IMAGENET_TEMPLATES`` (7 of them), used both to
    write the pre-training captions and, averaged, for zero-shot classification."""
    from open_clip import SIMPLE_IMAGENET_TEMPLATES
    return tuple(SIMPLE_IMAGENET_TEMPLATES)


def class_texts(dataset: str, classes: list[str]) -> list[str]:
    """What each upstream class is called in captions: folder names with ``_`` as spaces
    (``"maple tree"``), or the synthetic classes' parts in words. Used by chapter 01."""
    if dataset.startswith("synthetic"):
        from .data import synthetic_class_descriptions
        return synthetic_class_descriptions(dataset)
    return [c.replace("_", " ") for c in classes]


def caption_table(texts: list[str]) -> list[str]:
    """Every caption there can be: row ``k * T + t`` is template ``t`` over class ``k``."""
    return [template(text) for text in texts for template in caption_templates()]


def _captions(labels: np.ndarray, num_templates: int, noise: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Caption ids (rows of :func:`caption_table`) of the training images, swapped as the paper
    does, and the mask of moved captions. The template of each image is drawn with ``seed``."""
    from .noise import swap_captions

    rng = np.random.default_rng([seed, 17])
    clean = labels * num_templates + rng.integers(0, num_templates, size=len(labels))
    swapped, moved = swap_captions(clean.tolist(), noise, seed)
    return np.asarray(swapped, dtype=np.int64), moved


@torch.no_grad()
def zero_shot_accuracy(backbone: ClipBackbone, images: torch.Tensor, labels: torch.Tensor,
                       texts: list[str], *, mean, std, device: torch.device,
                       batch_size: int = 1024) -> float:
    """Percent of ``images`` whose nearest class prompt (ensembled over the templates) is right.

    Used by chapter 01_noisy_pretraining (the CLIP column of the paper's Table 1).
    """
    import open_clip

    from .data import to_float

    backbone.eval()
    classifier = open_clip.build_zero_shot_classifier(
        backbone.clip, tokenizer_for(backbone.name), texts, caption_templates(),
        num_classes_per_batch=max(1, len(texts)), device=device)
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = to_float(images[start:start + batch_size].to(device), mean, std)
        emb = backbone.clip.encode_image(x, normalize=True)
        correct += int(((emb @ classifier).argmax(1).cpu() == labels[start:start + batch_size]
                        .cpu()).sum())
    return 100.0 * correct / max(1, len(labels))


def pretrain_clip(cfg, *, root=None, checkpoint_dir=None, device=None, progress: bool = True,
                  stop_after_epoch: int | None = None):
    """CLIP pre-training of ``cfg.backbone`` on ``cfg.dataset`` with ``cfg.noise`` of its
    captions swapped; returns a :class:`nml.pretrain.PretrainResult` whose ``test_accuracy`` is
    the zero-shot accuracy on the clean upstream test set and whose ``train_noise_rate`` is the
    fraction of swapped captions (``extra["caption_mismatch_rate"]``: the fraction whose caption
    names another class, lower because a swap inside a class changes nothing).

    Called by :func:`nml.pretrain.pretrain` for ``clip_*`` backbones (same arguments).
    Used by chapter 01_noisy_pretraining.
    """
    # long: the training loop (data, schedule, steps, checkpoints, resumption) in the order it runs,
    # as nml.pretrain.pretrain
    import open_clip
    from tqdm.auto import tqdm

    from .data import augment, to_float
    from .training import (AUGMENT_STREAM, ORDER_STREAM, TORCH_STREAM, PretrainResult,
                           channel_stats, checkpoint_path, default_optimizer, load_upstream,
                           make_optimizer, make_scheduler, resolve_device, resume_checkpoint,
                           stream_seed, write_checkpoint)

    if cfg.noise_type != "symmetric" or cfg.noise_classes:
        raise ConfigError("CLIP pre-training noise is caption swapping between random pairs; "
                          "leave noise_type 'symmetric' and noise_classes empty for clip_* backbones")
    if cfg.label_smoothing:
        raise ConfigError("label_smoothing does not apply to CLIP pre-training; leave it 0")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("CLIP pre-training runs in one process; launch it without torchrun")
    wall_start = time.perf_counter()
    device = resolve_device(device)
    train, test = load_upstream(cfg, root)
    texts = class_texts(cfg.dataset, train.classes)
    num_templates = len(caption_templates())
    caption_ids, moved = _captions(train.labels.numpy(), num_templates, cfg.noise, cfg.seed)
    noise_rate = float(moved.mean()) if len(moved) else 0.0
    mismatch = float(np.mean(caption_ids // num_templates != train.labels.numpy()))
    mean, std = channel_stats(cfg.dataset, train.images)
    image_size = int(train.images.shape[-1])

    torch.manual_seed(cfg.seed)
    backbone = build_clip_backbone(cfg.backbone, image_size).to(device)
    tokens = tokenizer_for(cfg.backbone)(caption_table(texts)).to(device)
    if bool((tokens[:, -1] != 0).any()):
        raise DataError(f"a caption of {cfg.dataset} is longer than the text tower's context "
                        f"({tokens.shape[1]} tokens); raise context_length in its config")
    opt_name, lr, wd = default_optimizer(cfg)
    optimizer = make_optimizer(backbone, opt_name, lr, wd)
    steps_per_epoch = len(train) // cfg.batch_size
    if steps_per_epoch == 0:
        raise DataError(f"{cfg.dataset} has {len(train)} training images, fewer than one batch "
                        f"of {cfg.batch_size}; lower batch_size or raise train_fraction")
    scheduler = make_scheduler(optimizer, cfg.epochs * steps_per_epoch,
                                cfg.warmup_epochs * steps_per_epoch)
    loss_fn = open_clip.ClipLoss()

    ckpt_file = checkpoint_path(cfg, checkpoint_dir) if checkpoint_dir is not None else None
    start_epoch, history, final_accuracy = resume_checkpoint(ckpt_file, cfg, device, backbone, optimizer,
                                                   scheduler)
    end_epoch = cfg.epochs if stop_after_epoch is None else max(stop_after_epoch, start_epoch)

    def evaluate() -> float:
        return zero_shot_accuracy(backbone, test.images, test.labels, texts, mean=mean, std=std,
                                  device=device)

    def result(accuracy: float, epochs_run: int) -> PretrainResult:
        backbone.eval()
        return PretrainResult(
            backbone=backbone, config=cfg, test_accuracy=accuracy, train_noise_rate=noise_rate,
            history=history, epochs_run=epochs_run, start_epoch=start_epoch,
            seconds=time.perf_counter() - wall_start, device=str(device), world_size=1,
            mean=mean, std=std, checkpoint=str(ckpt_file) if ckpt_file is not None else None,
            extra={"caption_mismatch_rate": mismatch})

    if final_accuracy is not None and start_epoch == cfg.epochs:
        return result(float(final_accuracy), 0)
    images = train.images.to(device)
    captions = torch.as_tensor(caption_ids, device=device)
    cuda = device.type == "cuda"
    epochs = tqdm(range(start_epoch, end_epoch), desc=f"CLIP {cfg.backbone} noise={cfg.noise:g}",
                  disable=not progress, leave=False)
    top_lr = peak_lr(optimizer)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        backbone.train()
        torch.manual_seed(stream_seed(cfg.seed, epoch, TORCH_STREAM))
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            stream_seed(cfg.seed, epoch, ORDER_STREAM))).to(device)
        aug_gen = torch.Generator(device=device).manual_seed(
            stream_seed(cfg.seed, epoch, AUGMENT_STREAM))
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            batch = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = images[batch]
            if cfg.augment:
                x = augment(x, aug_gen)
            x = to_float(x, mean, std)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                out = backbone.clip(x, tokens[captions[batch]])
            if isinstance(out, dict):
                image_f, text_f, scale = (out["image_features"], out["text_features"],
                                          out["logit_scale"])
            else:
                image_f, text_f, scale = out[:3]
            loss = loss_fn(image_f.float(), text_f.float(), scale.float())
            if not cuda:   # free on a CPU; on a GPU the epoch's sum is checked below
                check_loss(float(loss.detach()), what="CLIP pre-training", epoch=epoch + 1,
                           step=i + 1, lr=top_lr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():   # CLIP's own practice: the temperature stays below 100
                backbone.clip.logit_scale.clamp_(0, np.log(100))
            loss_sum += loss.detach()
        check_loss(float(loss_sum), what="CLIP pre-training", epoch=epoch + 1,
                   lr=top_lr)
        check_parameters([backbone], what="CLIP pre-training", epoch=epoch + 1,
                         lr=top_lr)
        seconds = time.perf_counter() - epoch_start
        seen = steps_per_epoch * cfg.batch_size
        history.append({"epoch": epoch + 1, "loss": float(loss_sum) / steps_per_epoch,
                        "logit_scale": float(backbone.clip.logit_scale.detach().exp()),
                        "lr": float(scheduler.get_last_lr()[0]), "seconds": seconds,
                        "images_per_second": seen / seconds})
        epochs.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        accuracy = evaluate() if epoch + 1 == cfg.epochs else None
        if ckpt_file is not None:
            write_checkpoint(ckpt_file, cfg, epoch + 1, backbone, optimizer, scheduler,
                              history, noise_rate, mean, std, accuracy)
        if accuracy is not None:
            final_accuracy = accuracy
    if final_accuracy is None or end_epoch < cfg.epochs:
        final_accuracy = evaluate()
    return result(float(final_accuracy), end_epoch - start_epoch)
