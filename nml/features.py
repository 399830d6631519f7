"""Frozen features: extracted once per (pre-trained model, dataset), cached on disk.

Black-box tuning (LP, MLP, NMTune) and the spectrum analysis only ever see the frozen
extractor's features, so running the backbone on every tuning step (as the authors' code does)
repeats the same work 30 times. Here a feature matrix is computed once, saved in the cache
folder (``$NML_CACHE/features``, never committed) under a key made from the pre-training
config, the dataset and the extraction settings, and reloaded afterwards.

Used by chapters 02_linear_probe, 03_feature_spectrum, 06_nmtune, 08-11.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .config import config_hash
from .errors import ConfigError
from .results import atomic_write_bytes, default_cache_root

__all__ = ["extract_features", "cached_features"]


@torch.no_grad()
def extract_features(backbone, images: torch.Tensor, mean, std, *, batch_size: int = 512,
                     device: str | torch.device = "cpu", augment_seed: int | None = None,
                     augmentation: str = "pad_crop") -> torch.Tensor:
    """Features (N x D, float32, on the CPU) of uint8 ``images`` through ``backbone.features``.

    With ``augment_seed`` the images are first augmented (seeded), for users who want augmented
    features for black-box tuning: ``augmentation="pad_crop"`` (:func:`nml.data.augment`, padded
    random crop + flip) or ``"resized_crop"`` (:func:`nml.data.augment_resized_crop`, the
    authors' crop of 80-100 % of the image + flip).
    """
    from .data import augment, augment_resized_crop, to_float

    augmenters = {"pad_crop": augment, "resized_crop": augment_resized_crop}
    if augmentation not in augmenters:
        raise ConfigError(f"augmentation must be one of {tuple(augmenters)}, got "
                          f"{augmentation!r}")

    device = torch.device(device)
    backbone = backbone.to(device).eval()
    generator = None
    if augment_seed is not None:
        generator = torch.Generator(device=device).manual_seed(augment_seed)
    chunks = []
    use_bf16 = device.type == "cuda"
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device, non_blocking=True)
        if generator is not None:
            batch = augmenters[augmentation](batch, generator)
        x = to_float(batch, mean, std)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            feats = backbone.features(x)
        chunks.append(feats.float().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0, backbone.feature_dim)


def cached_features(key_payload: dict, compute, *, cache_root: str | Path | None = None
                    ) -> dict[str, torch.Tensor]:
    """Load the tensors cached under ``key_payload``, or compute them once and save them.

    ``compute()`` returns a dict of tensors; the file is written atomically.
    """
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    path = root / "features" / f"{config_hash(key_payload)}.pt"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    tensors = compute()
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in tensors.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return tensors
