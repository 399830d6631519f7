"""Backbones: timm ResNets with a CIFAR stem, small timm ViTs, open_clip image towers; LoRA.

Every backbone is a :class:`Backbone`: a feature extractor (``trunk``) that maps a normalised
float image batch to pooled penultimate features (N x D), plus a linear ``head`` used during
pre-training. Downstream tuning only ever uses :meth:`Backbone.features`.

The architectures (all built from timm / open_clip classes, no hand-written layers):

==========================  ======================================================================
``resnet18_cifar``          timm ResNet-18 (BasicBlock [2, 2, 2, 2], channels 64/128/256/512) with
                            the CIFAR stem: one 3x3 stride-1 conv, no max-pool (32 px in -> 4 x 4
                            before pooling); D = 512. The book's GPU-scale convolutional model.
``resnet18_cifar_narrow``   the same at quarter width (channels 16/32/64/128, D = 128), for the
                            reduced CPU scale.
``resnet_micro``            BasicBlock [1, 1, 1, 1], channels 8/16/32/64 (D = 64), CIFAR stem;
                            the tiny scale.
``vit_small_cifar``         timm VisionTransformer, patch 4, embed 192, depth 6, 3 heads,
                            MLP ratio 4 (D = 192); the book's GPU-scale transformer.
``vit_narrow_cifar``        patch 4, embed 128, depth 4, 4 heads, MLP ratio 4 (D = 128); CPU scale.
``vit_micro``               patch 4, embed 64, depth 2, 2 heads, MLP ratio 4 (D = 64); tiny scale.
``openclip:<model>``        the image tower of an open_clip model (``open_clip.list_models()``);
                            D = the tower's output (embedding) dimension.
``clip_vit_micro`` / ...    whole small open_clip CLIP models (image and text tower), built from
                            the open_clip configs in ``nml/clip_configs`` and pre-trained on
                            image-caption pairs by :mod:`nml.clip`; D = the joint embedding.
==========================  ======================================================================

The ViTs pool by averaging the patch tokens (timm ``global_pool="avg"``, no class token,
LayerNorm after pooling), the choice of "Better plain ViT baselines" (Beyer et al., 2022) for
ViTs trained from scratch on small data, where it trains more reliably than a class token.
The ViT ``image_size`` is the timm ``img_size`` (16 and 32 px both work with patch 4).

Used by chapters 01_noisy_pretraining (pre-training), 04_lora (:func:`lora_wrap`) and
05_full_finetune (the backbone that is fine-tuned).
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from .clip import CLIP_BACKBONES
from .errors import ConfigError

__all__ = ["Backbone", "BACKBONES", "build_backbone", "lora_wrap", "lora_target_ranks"]

# name -> (family, architecture keyword arguments)
_RESNETS: dict[str, dict] = {
    "resnet18_cifar": dict(layers=(2, 2, 2, 2), channels=(64, 128, 256, 512)),
    "resnet18_cifar_narrow": dict(layers=(2, 2, 2, 2), channels=(16, 32, 64, 128)),
    "resnet_micro": dict(layers=(1, 1, 1, 1), channels=(8, 16, 32, 64)),
}
_VITS: dict[str, dict] = {
    "vit_small_cifar": dict(patch_size=4, embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0),
    "vit_narrow_cifar": dict(patch_size=4, embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0),
    "vit_micro": dict(patch_size=4, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4.0),
}
OPENCLIP_PREFIX = "openclip:"
_CLIPS = tuple(CLIP_BACKBONES)   # whole CLIP models, pre-trained by nml.clip
BACKBONES: tuple[str, ...] = (*_RESNETS, *_VITS, *_CLIPS, OPENCLIP_PREFIX + "<model>")


class Backbone(nn.Module):
    """A feature extractor plus the linear head it was pre-trained with.

    Attributes: ``name`` (the :func:`build_backbone` name), ``family`` ("resnet", "vit" or
    "openclip"), ``feature_dim`` (D), ``trunk`` (the timm model with its classifier removed, or
    the open_clip image tower), ``head`` (``nn.Linear(D, num_classes)``), ``mlp_linear_names``
    (qualified names of the transformer MLP linear layers, the LoRA targets; empty for
    convolutional nets) and ``input_mean`` / ``input_std`` (the normalisation the weights expect
    when it is fixed by the model, as for pretrained open_clip towers; ``None`` when it comes from
    the pre-training data, see ``nml.data.CHANNEL_STATS``).

    Used by chapters 01_noisy_pretraining, 04_lora and 05_full_finetune.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, num_classes: int, *, name: str,
                 family: str, mlp_linear_names: Sequence[str] = (),
                 input_mean: tuple[float, ...] | None = None,
                 input_std: tuple[float, ...] | None = None):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.feature_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.name = name
        self.family = family
        self.mlp_linear_names = tuple(mlp_linear_names)
        self.input_mean = input_mean
        self.input_std = input_std

    @property
    def is_vit(self) -> bool:
        """True for transformers (timm ViTs and open_clip ViT towers): LoRA applies."""
        return bool(self.mlp_linear_names)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features, N x D, of a normalised float batch N x 3 x H x W."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the pre-training head: ``head(features(x))``."""
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, feature_dim={self.feature_dim}"


def _resnet_cifar(layers: tuple[int, ...], channels: tuple[int, ...]) -> nn.Module:
    """A timm ResNet (BasicBlock) with the CIFAR stem and stage widths ``channels``.

    timm's ResNet fixes its stem at 64 channels, so the stages are rebuilt with timm's own
    ``make_blocks`` starting from ``channels[0]`` (a narrow net then has no 64-channel stem and no
    extra downsample projection in its first block, exactly the wide net scaled down).
    """
    from timm.models.resnet import BasicBlock, ResNet, make_blocks

    model = ResNet(BasicBlock, layers, channels=channels, num_classes=0)
    stem = channels[0]
    # CIFAR stem: a 3x3 stride-1 conv and no max-pool keep 32 px inputs at 32 x 32 in stage 1
    # (the ImageNet 7x7 stride-2 conv + max-pool would shrink them to 8 x 8 at once).
    model.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    model.maxpool = nn.Identity()
    stages, _ = make_blocks((BasicBlock,) * len(channels), channels, layers, stem,
                            cardinality=1, base_width=64, output_stride=32, reduce_first=1,
                            avg_down=False, down_kernel_size=1, act_layer=nn.ReLU,
                            norm_layer=nn.BatchNorm2d, aa_layer=None)
    for stage_name, stage in stages:
        setattr(model, stage_name, stage)
    model.init_weights(zero_init_last=True)
    return model


def _openclip_tower(model_name: str, image_size: int, pretrained: bool | str):
    import open_clip

    known = open_clip.list_models()
    if model_name not in known:
        raise ConfigError(f"unknown open_clip model {model_name!r}; use 'openclip:<model>' with "
                          f"<model> one of open_clip.list_models(): {', '.join(known)}")
    tag = None
    if pretrained is True:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ConfigError(f"pretrained=True is ambiguous for open_clip model {model_name!r}; pass "
                          f"the weights' tag as pretrained='<tag>', one of {tags}")
    if isinstance(pretrained, str):
        tag = pretrained
    clip = open_clip.create_model(model_name, pretrained=tag, force_image_size=image_size)
    visual = clip.visual
    mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
    std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
    mlp_names = []
    for name, module in visual.named_modules():
        # open_clip's transformer blocks name their MLP linears c_fc / c_proj.
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("c_fc", "c_proj") \
                and ".mlp." in f".{name}":
            mlp_names.append(name)
    return visual, int(visual.output_dim), mlp_names, tuple(mean), tuple(std)


def build_backbone(name: str, num_classes: int, *, image_size: int = 32,
                   pretrained: bool | str = False) -> Backbone:
    """Build the backbone ``name`` (see the module docstring) with a ``num_classes`` head.

    ``image_size`` is the input side in pixels (16 or 32 for the CIFAR-style models; the ViTs
    build their position embeddings for it). ``pretrained`` only applies to ``openclip:``
    models, as the open_clip weights' tag (e.g. ``"laion2b_s34b_b79k"``; it needs the weights
    on disk or internet access); the CIFAR models have no published weights and are trained
    by :func:`nml.pretrain.pretrain`.

    Used by chapter 01_noisy_pretraining (and, through the pre-trained models, all others).
    """
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ConfigError(f"num_classes must be a non-negative int, got {num_classes!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ConfigError(f"image_size must be an int >= 8 pixels, got {image_size!r}")
    if name.startswith(OPENCLIP_PREFIX):
        visual, dim, mlp_names, mean, std = _openclip_tower(
            name[len(OPENCLIP_PREFIX):], image_size, pretrained)
        return Backbone(visual, dim, num_classes, name=name, family="openclip",
                        mlp_linear_names=mlp_names, input_mean=mean, input_std=std)
    if name in _CLIPS:
        from .clip import build_clip_backbone
        if pretrained:
            raise ConfigError(f"backbone {name!r} has no published weights; pre-train it with "
                              f"nml.pretrain.pretrain (pass pretrained=False)")
        if num_classes:
            raise ConfigError(f"CLIP backbone {name!r} learns from captions and has no "
                              f"classifier head; pass num_classes=0 (zero-shot classes come "
                              f"from nml.clip.zero_shot_accuracy)")
        return build_clip_backbone(name, image_size)
    if name not in _RESNETS and name not in _VITS:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)} "
                          f"(for open_clip: 'openclip:<model>' with <model> from "
                          f"open_clip.list_models())")
    if pretrained:
        raise ConfigError(f"backbone {name!r} has no published weights; pre-train it with "
                          f"nml.pretrain.pretrain (pass pretrained=False)")
    if name in _RESNETS:
        trunk = _resnet_cifar(**_RESNETS[name])
        return Backbone(trunk, trunk.num_features, num_classes, name=name, family="resnet")
    arch = _VITS[name]
    if image_size % arch["patch_size"]:
        raise ConfigError(f"image_size {image_size} is not a multiple of {name}'s patch size "
                          f"{arch['patch_size']}; use e.g. 16 or 32")
    from timm.models.vision_transformer import VisionTransformer

    trunk = VisionTransformer(img_size=image_size, num_classes=0, global_pool="avg",
                              class_token=False, **arch)
    mlp_names = [n for n, m in trunk.named_modules()
                 if isinstance(m, nn.Linear) and n.endswith((".mlp.fc1", ".mlp.fc2"))]
    return Backbone(trunk, trunk.num_features, num_classes, name=name, family="vit",
                    mlp_linear_names=mlp_names)


def lora_target_ranks(backbone: Backbone, ratio: int = 8, *,
                      rank: int | None = None) -> dict[str, int]:
    """LoRA rank of each transformer MLP linear layer: ``in_features // ratio``, keyed by the
    layer's qualified name inside ``backbone`` (e.g. ``trunk.blocks.0.mlp.fc1``). With
    ``rank`` every layer gets that rank instead (the authors' code: ``LoraConfig(r=8)``).

    Used by chapter 04_lora.
    """
    if not isinstance(backbone, Backbone):
        raise ConfigError(f"lora_target_ranks needs an nml Backbone, got {type(backbone).__name__}")
    if not backbone.is_vit:
        raise ConfigError(f"LoRA in this book adapts the MLP layers of a ViT, but backbone "
                          f"{backbone.name!r} ({backbone.family}) has none; use a ViT backbone "
                          f"(vit_micro, vit_narrow_cifar, vit_small_cifar, openclip:ViT-...)")
    if not isinstance(ratio, int) or ratio < 1:
        raise ConfigError(f"LoRA ratio must be an int >= 1, got {ratio!r}")
    if rank is not None and (not isinstance(rank, int) or rank < 1):
        raise ConfigError(f"LoRA rank must be an int >= 1, got {rank!r}")
    ranks = {}
    for name in backbone.mlp_linear_names:
        layer = backbone.trunk.get_submodule(name)
        r = rank if rank is not None else layer.in_features // ratio
        if r < 1:
            raise ConfigError(f"LoRA ratio {ratio} leaves rank 0 for {name} "
                              f"(in_features {layer.in_features}); use a smaller ratio")
        ranks[f"trunk.{name}"] = r
    return ranks


def lora_wrap(backbone: Backbone, ratio: int = 8, *, alpha_per_rank: float = 1.0,
              dropout: float = 0.0, rank: int | None = None):
    """Add peft LoRA adapters to the MLP linear layers (fc1 and fc2 of each block) of a ViT.

    The rank of each adapted layer is ``in_features // ratio`` (the paper's reduction ratio 8,
    set per layer through peft's ``rank_pattern``), its ``lora_alpha`` is
    ``alpha_per_rank * rank`` (so the LoRA scaling alpha / r is the same for every layer), and
    no other layer is adapted. The adapters are injected into ``backbone`` itself (so
    ``backbone.features`` runs through them); every original weight is frozen except the
    classifier ``head``. ``rank`` gives every layer that rank (the authors' ``r=8``, whose
    peft default ``lora_alpha = 8`` is ``alpha_per_rank = 1``). Returns the ``peft.PeftModel``
    (use its ``disable_adapter()`` context to get the frozen pre-trained features). A backbone
    without ViT MLP layers raises ConfigError.

    Used by chapter 04_lora.
    """
    from peft import LoraConfig, get_peft_model

    ranks = lora_target_ranks(backbone, ratio, rank=rank)
    # Full qualified names anchored at the end: peft matches rank_pattern keys as regexes
    # against each module's full name, so "blocks.1.mlp.fc1" must not also match "blocks.11...".
    rank_pattern = {f"^{re.escape(name)}$": r for name, r in ranks.items()}
    alpha_pattern = {f"^{re.escape(name)}$": alpha_per_rank * r for name, r in ranks.items()}
    config = LoraConfig(
        r=min(ranks.values()), lora_alpha=alpha_per_rank * min(ranks.values()),
        target_modules=list(ranks), rank_pattern=rank_pattern, alpha_pattern=alpha_pattern,
        lora_dropout=dropout, bias="none")
    peft_model = get_peft_model(backbone, config)
    # The head stays a plain trainable Linear (not a peft modules_to_save copy), so
    # backbone.head keeps working with or without the adapters.
    backbone.head.requires_grad_(True)
    return peft_model
