"""Tensor helpers on decoded uint8 images: channel statistics, normalisation and GPU augmentation.

Used by every trainer (chapters 01, 05, 06, 11).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import DataError

# --------------------------------------------------------------------------------------------
# Tensor helpers
# --------------------------------------------------------------------------------------------

def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units (how :data:`CHANNEL_STATS` was made)."""
    x = images.to(torch.float64).div(255).transpose(0, 1).reshape(3, -1)
    return tuple(round(v, 4) for v in x.mean(1).tolist()), tuple(round(v, 4) for v in x.std(1).tolist())


def to_float(x_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N x 3 x H x W (any device) -> float32 ``(x / 255 - mean) / std`` per channel.

    ``mean``/``std`` come from :data:`CHANNEL_STATS`. Used by every chapter's training and feature code.
    """
    if x_uint8.dtype != torch.uint8:
        raise DataError(f"to_float expects uint8 images, got {x_uint8.dtype}; pass the ImageData.images")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x_uint8.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x_uint8.device).view(1, -1, 1, 1)
    return (x_uint8.float().div_(255) - mean_t).div_(std_t)


def augment(x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding (4 px at 32 px, scaled with the size) and horizontal flip.

    Batched on the tensor's device; all randomness from ``generator`` (on any device), so a seeded
    generator gives the same batch. Returns uint8 of the same shape. Used by chapters
    01_noisy_pretraining and 05_full_finetune.
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4:
        raise DataError(f"augment expects uint8 N x C x H x W, got {x_uint8.dtype} {tuple(x_uint8.shape)}")
    n, c, h, w = x_uint8.shape
    pad = max(1, round(4 * h / 32))
    dev = x_uint8.device
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=generator.device).to(dev)
    flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(dev)
    padded = F.pad(x_uint8, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=dev)                 # n x h
    cols = offsets[:, 1, None] + torch.arange(w, device=dev)                 # n x w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # n x h x w x c
    return out.permute(0, 3, 1, 2).contiguous()


def augment_resized_crop(x_uint8: torch.Tensor, generator: torch.Generator, *,
                         scale: tuple[float, float] = (0.8, 1.0),
                         ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """The authors' training augmentation: random resized crop (area ``scale`` of the image,
    aspect ``ratio``) resized back to H x W, then a horizontal flip with probability 1/2.

    The crop box is drawn as torchvision's ``RandomResizedCrop.get_params`` draws it (ten tries
    for a box that fits, else the whole image), batched; the resampling is bicubic (torchvision
    on a PIL image, as the authors' ``timm_load`` transform), here by ``grid_sample`` on the
    tensor without antialiasing (a crop of 80-100 % is a mild upscale, where antialiasing does
    nothing). All randomness from ``generator``. Returns uint8 of the same shape.

    Used by chapters 06_nmtune and 11_ablations (``TuneConfig(variant="authors")``).
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4:
        raise DataError(f"augment_resized_crop expects uint8 N x C x H x W, got {x_uint8.dtype} "
                        f"{tuple(x_uint8.shape)}")
    n, _, h, w = x_uint8.shape
    dev, gdev = x_uint8.device, generator.device
    tries = 10
    area = h * w * torch.empty(n, tries, device=gdev).uniform_(*scale, generator=generator)
    log_r = torch.empty(n, tries, device=gdev).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                        generator=generator)
    aspect = torch.exp(log_r)
    cw = torch.round(torch.sqrt(area * aspect))
    ch = torch.round(torch.sqrt(area / aspect))
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1, device=gdev))
    pick = first.clamp_min(0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), float(w), device=gdev))
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), float(h), device=gdev))
    u = torch.rand(n, 2, device=gdev, generator=generator)
    top = torch.floor(u[:, 0] * (h - ch + 1))
    left = torch.floor(u[:, 1] * (w - cw + 1))
    flip = torch.rand(n, device=gdev, generator=generator) < 0.5
    # affine grid: output pixel centres -> input coordinates in [-1, 1] (align_corners=False)
    sx, sy = cw / w, ch / h
    tx = (2 * left + cw) / w - 1
    ty = (2 * top + ch) / h - 1
    sx = torch.where(flip, -sx, sx)
    theta = torch.zeros(n, 2, 3, device=gdev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = F.affine_grid(theta.to(dev), [n, 3, h, w], align_corners=False)
    out = F.grid_sample(x_uint8.float(), grid, mode="bicubic", padding_mode="border",
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)
