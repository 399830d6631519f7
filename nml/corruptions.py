"""CIFAR-10-C style image corruptions in torch, on uint8 batches.

A re-implementation in the spirit of Hendrycks & Dietterich (ICLR 2019, "Benchmarking Neural Network
Robustness to Common Corruptions"): ten corruptions from their noise, blur, weather and digital
families, five severities each. Severity parameters are the CIFAR-10-C ones from the authors' code
where the operation is the same (gaussian, shot and impulse noise, defocus blur, contrast,
brightness, fog, pixelate, JPEG quality); spatial parameters are given for 32 px and scaled up with
the image size for larger images (smaller ones, such as the 16 px synthetic set, use the 32 px values,
since halving them would make the blurs sub-pixel and invisible). Motion blur uses a straight line kernel at a random angle instead of ImageMagick's, and
fog uses octave (value) noise instead of the diamond-square plasma fractal, so the numbers are
comparable in kind, not identical to the published CIFAR-10-C files.

Every corruption is deterministic given ``seed`` and keeps shape (N x 3 x H x W) and dtype (uint8).
The random draws do not depend on the severity, so a higher severity is the same perturbation made
stronger. Used by the ``cifar10c`` task of :func:`nml.data.load_task` (chapters 02_linear_probe,
03_feature_spectrum, 04_lora, 05_full_finetune, 06_nmtune).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "psnr"]

SEVERITIES = (1, 2, 3, 4, 5)

# CIFAR-10-C severity parameters (Hendrycks & Dietterich's make_cifar_c.py), per corruption.
_GAUSSIAN_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
_SHOT_PHOTONS = (500, 250, 100, 75, 50)
_IMPULSE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
_DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # disk radius, alias sigma (px @32)
_MOTION_LENGTH = (2.0, 3.0, 4.0, 5.0, 6.5)  # line length in px at 32 px (our kernel, see docstring)
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
_FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # strength, octave decay
_PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
_JPEG_QUALITY = (80, 65, 58, 50, 40)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _gaussian_noise(x, s, g):
    return x + _GAUSSIAN_STD[s - 1] * torch.randn(x.shape, generator=g)


def _shot_noise(x, s, g):
    lam = _SHOT_PHOTONS[s - 1]
    # Photon counting: exact Poisson draws with the seeded generator (no normal approximation,
    # which is biased at the low counts of dark pixels).
    return torch.poisson(x * lam, generator=g) / lam


def _impulse_noise(x, s, g):
    u = torch.rand(x.shape, generator=g)
    salt = torch.rand(x.shape, generator=g) < 0.5
    hit = u < _IMPULSE_AMOUNT[s - 1]
    return torch.where(hit, salt.to(x.dtype), x)


def _blur(x, kernel):
    k = kernel / kernel.sum()
    c = x.shape[1]
    kh, kw = k.shape[-2:]
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    weight = k.expand(c, 1, kh, kw) if k.ndim == 2 else k
    return F.conv2d(xp, weight.to(x.dtype), groups=c)


def _gaussian_kernel(sigma):
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k1 = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return k1[:, None] * k1[None, :]


def _spatial_scale(x) -> float:
    return max(1.0, x.shape[-1] / 32)


def _defocus_blur(x, s, g):
    scale = _spatial_scale(x)
    radius, alias = _DEFOCUS[s - 1]
    radius, alias = radius * scale, max(alias * scale, 1e-3)
    r = max(1, math.ceil(radius + 3 * alias))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    # Disk of the given radius, supersampled so sub-pixel radii still give a graded kernel.
    sub = (torch.arange(4, dtype=torch.float32) + 0.5) / 4 - 0.5
    inside = ((xx[..., None, None] + sub[:, None]) ** 2 + (yy[..., None, None] + sub[None, :]) ** 2
              <= radius ** 2).float().mean((-1, -2))
    inside[r, r] = max(float(inside[r, r]), 1e-6)
    disk = _blur(inside[None, None], _gaussian_kernel(alias))[0, 0] if alias > 0.05 else inside
    return _blur(x, disk)


def _motion_blur(x, s, g):
    n, c, h, w = x.shape
    length = _MOTION_LENGTH[s - 1] * _spatial_scale(x)
    angles = torch.rand(n, generator=g) * math.pi  # the same angles at every severity
    r = math.ceil(length / 2) + 1
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    # One kernel per image: distance from the line through the centre, cut at +-length/2.
    ca, sa = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    along, across = xx * ca + yy * sa, -xx * sa + yy * ca
    k = torch.clamp(1 - across.abs(), min=0) * (along.abs() <= length / 2).float()
    k = k / k.sum((-1, -2), keepdim=True)
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    weight = k[:, None].repeat_interleave(c, 0)  # (n*c) x 1 x kh x kw
    out = F.conv2d(xp.reshape(1, n * c, h + 2 * r, w + 2 * r), weight, groups=n * c)
    return out.reshape(n, c, h, w)


def _contrast(x, s, g):
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * _CONTRAST[s - 1] + mean


def _brightness(x, s, g):
    # Add to HSV value with hue and saturation kept: scale RGB by (V + c) / V, clip V at 1.
    v = x.amax(1, keepdim=True)
    new_v = (v + _BRIGHTNESS[s - 1]).clamp(max=1.0)
    scaled = x * new_v / v.clamp(min=1e-6)
    return torch.where(v > 1e-6, scaled, new_v.expand_as(x))


def _octave_noise(n, h, w, decay, g):
    """Low-frequency noise in [0, 1]: octaves of upsampled Gaussian noise, amplitude / decay each."""
    octaves = max(1, int(math.log2(max(h, w))))
    field = torch.zeros(n, 1, h, w)
    amp = 1.0
    for o in range(octaves):
        cells = 2 ** (o + 1)
        coarse = torch.randn(n, 1, cells + 1, cells + 1, generator=g)
        field += amp * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
        amp /= decay
    lo = field.amin((2, 3), keepdim=True)
    hi = field.amax((2, 3), keepdim=True)
    return (field - lo) / (hi - lo).clamp(min=1e-6)


def _fog(x, s, g):
    strength, decay = _FOG[s - 1]
    n, _, h, w = x.shape
    max_val = x.amax((1, 2, 3), keepdim=True)
    fog = _octave_noise(n, h, w, decay, g)
    return (x + strength * fog) * max_val / (max_val + strength)


def _pil_map(images_uint8: torch.Tensor, fn) -> torch.Tensor:
    """Apply a PIL image -> PIL image function to every image of a uint8 N x 3 x H x W batch."""
    from PIL import Image

    arr = images_uint8.permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i, a in enumerate(arr):
        out[i] = np.asarray(fn(Image.fromarray(a)).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _pixelate(images_uint8: torch.Tensor, s: int) -> torch.Tensor:
    # PIL's BOX filter down and up, as in the original; nearest-neighbour upsampling instead is not
    # monotone in severity because the pixel grid aliases differently at each size.
    from PIL import Image

    h, w = images_uint8.shape[-2:]
    small = (max(1, int(w * _PIXELATE[s - 1])), max(1, int(h * _PIXELATE[s - 1])))
    return _pil_map(images_uint8, lambda im: im.resize(small, Image.BOX).resize((w, h), Image.BOX))


def _jpeg_compression(images_uint8: torch.Tensor, s: int) -> torch.Tensor:
    from PIL import Image

    def encode_decode(im):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=_JPEG_QUALITY[s - 1])
        return Image.open(io.BytesIO(buf.getvalue()))

    return _pil_map(images_uint8, encode_decode)


_FLOAT_CORRUPTIONS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "fog": _fog,
}
_PIL_CORRUPTIONS = {"pixelate": _pixelate, "jpeg_compression": _jpeg_compression}

CORRUPTIONS: tuple[str, ...] = tuple(_FLOAT_CORRUPTIONS) + tuple(_PIL_CORRUPTIONS)
"""Corruption names, in the order of the cifar10c task's test sets."""

_BATCH = 2048  # keeps float copies of a CIFAR test set small


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to uint8 images N x 3 x H x W.

    Deterministic in ``seed`` (the batch is processed in fixed chunks with one generator), returns
    uint8 of the same shape on the input's device (the work runs on the CPU). Used by the
    ``cifar10c`` task (chapters 02-06) and the corruption figures.
    """
    if name not in CORRUPTIONS:
        raise DataError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise DataError(f"corruption severity must be one of {SEVERITIES}, got {severity!r}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise DataError(f"corrupt expects uint8 N x 3 x H x W, got {images.dtype} {tuple(images.shape)}")
    device = images.device
    cpu = images.cpu()
    if name in _PIL_CORRUPTIONS:
        return _PIL_CORRUPTIONS[name](cpu, severity).to(device)
    fn = _FLOAT_CORRUPTIONS[name]
    g = _gen(seed)
    out = torch.empty_like(cpu)
    for i in range(0, len(cpu), _BATCH):
        x = cpu[i:i + _BATCH].float() / 255
        out[i:i + _BATCH] = (fn(x, severity, g).clamp(0, 1) * 255).round().to(torch.uint8)
    return out.to(device)


def psnr(clean: torch.Tensor, distorted: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 batches (inf when identical)."""
    mse = (clean.double() - distorted.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)
