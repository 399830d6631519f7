"""Frozen features: extracted once per (pre-trained model, dataset), cached on disk.

Black-box tuning (LP, MLP, NMTune) and the spectrum analysis only ever see the frozen
extractor's features, so running the backbone on every tuning step (as the authors' code does)
repeats the same work 30 times. Here a feature matrix is computed once, saved in the cache
folder (``$NML_CACHE/features``, never committed) under a key made from the pre-training
config, the weights' fingerprint (:func:`weights_fingerprint`), the dataset and the extraction
settings, and reloaded afterwards. The fingerprint matters on a CPU, where training is not
bit-reproducible: a model trained again from the same config gets its own features instead of
silently replaying those of the earlier run.

Long extractions (a released model at 224 px on a CPU, chapter 07_practical_models) go
through :func:`cached_extraction`: the features are written chunk by chunk, so an interrupted
run resumes where it stopped, with a progress bar and the images per second it measured.

Used by chapters 02_linear_probe, 03_feature_spectrum, 06_nmtune, 07_practical_models, 08-11.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import config_hash
from .errors import ConfigError
from .storage import atomic_write_bytes, default_cache_root

__all__ = ["extract_features", "cached_features", "cached_extraction", "weights_fingerprint"]


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


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A 16-hex-digit hash of ``model``'s state dict (names, shapes, dtypes and exact values).

    Part of every feature cache key (:meth:`nml.experiments.Pipeline.features`): two runs of one
    pre-training config give different weights on a CPU, and their features must not share a
    cache entry. Memory layout (channels-last) does not change it.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _cache_path(key_payload: dict, cache_root: str | Path | None) -> Path:
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    return root / "features" / f"{config_hash(key_payload)}.pt"


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in tensors.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def cached_features(key_payload: dict, compute, *, cache_root: str | Path | None = None
                    ) -> dict[str, torch.Tensor]:
    """Load the tensors cached under ``key_payload``, or compute them once and save them.

    ``compute()`` returns a dict of tensors; the file is written atomically.
    """
    path = _cache_path(key_payload, cache_root)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    tensors = compute()
    _save(path, tensors)
    return tensors


def cached_extraction(key_payload: dict, backbone, load_images, mean, std, *,
                      chunk_size: int = 256, batch_size: int = 64,
                      cache_root: str | Path | None = None, progress: bool = True,
                      desc: str = "features", reverse: bool = False) -> dict[str, torch.Tensor]:
    """Frozen features of a long image set, cached under ``key_payload`` and resumable.

    ``load_images()`` gives ``(uint8 images N x 3 x H x W, labels)``; it is called only when the
    features are not cached yet. The features are computed ``chunk_size`` images at a time
    (:func:`extract_features`) and each chunk is written atomically beside the final file, so
    a run killed midway resumes at the first missing chunk. When all chunks exist they are
    joined into one cached file (``x``, ``y`` and ``seconds``, the extraction time summed over
    the chunks, so the rate survives a resume) and the chunks are deleted. A
    tqdm bar counts images and shows the rate. Several processes may share one extraction:
    each skips the chunks already written, and one started with ``reverse=True`` works from
    the last chunk backwards.
    """
    path = _cache_path(key_payload, cache_root)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    images, labels = load_images()
    parts = path.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    n = len(images)
    starts = list(range(0, n, chunk_size))
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for start in (starts[::-1] if reverse else starts):
            part = parts / f"{start:08d}-{chunk_size}.pt"
            if part.exists():
                bar.update(min(chunk_size, n - start))
                continue
            began = time.perf_counter()
            x = extract_features(backbone, images[start:start + chunk_size], mean, std,
                                 batch_size=batch_size)
            _save(part, {"x": x, "seconds": torch.tensor(time.perf_counter() - began,
                                                         dtype=torch.float64)})
            bar.update(len(x))
    try:
        chunks = [torch.load(parts / f"{s:08d}-{chunk_size}.pt", map_location="cpu",
                             weights_only=True) for s in starts]
    except FileNotFoundError:
        if path.exists():   # another process sharing the work joined the chunks first
            return torch.load(path, map_location="cpu", weights_only=True)
        raise
    tensors = {"x": torch.cat([c["x"] for c in chunks]), "y": torch.as_tensor(labels),
               "seconds": torch.stack([c["seconds"] for c in chunks]).sum()}
    _save(path, tensors)
    shutil.rmtree(parts, ignore_errors=True)
    return tensors
