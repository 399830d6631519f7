"""The datasets' names, the image container, the data and cache folders and the seeded split.

Shared by every loader of :mod:`nml.data`; used by every chapter.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import DataError

DATASETS: tuple[str, ...] = (
    "synthetic_upstream", "synthetic_id", "synthetic_ood", "cifar100", "cifar10", "caltech101", "pacs")
"""Named datasets; also accepted: ``torchvision:<Name>`` and ``imagefolder:<path>``."""

TORCHVISION_DATASETS: tuple[str, ...] = (
    "CIFAR10", "CIFAR100", "Flowers102", "Food101", "OxfordIIITPet", "StanfordCars", "FGVCAircraft",
    "SVHN", "DTD", "Caltech101", "EuroSAT", "PCAM", "RenderedSST2")
"""The paper's downstream datasets that torchvision can download (``torchvision:<Name>``)."""

DOMAINS: dict[str, tuple[str, ...]] = {
    "pacs": ("photo", "art_painting", "cartoon", "sketch"),
    "synthetic_ood": ("photo", "art_painting", "cartoon", "sketch"),
}
"""Visual domains of the multi-domain datasets (the order of PACS' paper)."""

TARBALL_DATASETS = ("cifar100", "cifar10", "caltech101", "pacs")
_SPLITS = ("train", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DATA_ENV = "NML_DATA"
CACHE_ENV = "NML_CACHE"
WORKERS_ENV = "NML_DECODE_WORKERS"
SPLIT_TRAIN_FRACTION = 0.7  # seeded split of datasets without one (PACS domains, ImageFolder, ...)

# Published normalisation constants (ImageNet: torchvision's; CLIP: OpenAI's preprocessing) and
# per-dataset statistics measured on the train split (all domains for the multi-domain sets) with
# :func:`channel_stats`; tests/test_data.py re-measures the synthetic ones and the PACS one.
CHANNEL_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "cifar100": ((0.5067, 0.4864, 0.441), (0.2649, 0.2553, 0.274)),
    "cifar10": ((0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)),
    "caltech101": ((0.5387, 0.5162, 0.4881), (0.2977, 0.2924, 0.3049)),
    "pacs": ((0.7624, 0.7431, 0.7143), (0.2921, 0.3025, 0.3308)),
    "synthetic_upstream": ((0.4954, 0.5076, 0.5026), (0.1455, 0.127, 0.1421)),
    "synthetic_id": ((0.5201, 0.4882, 0.4971), (0.1368, 0.1312, 0.1405)),
    "synthetic_ood": ((0.5446, 0.5244, 0.5294), (0.1713, 0.1674, 0.1742)),
}


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------

@dataclass
class ImageData:
    """Decoded images with labels. ``classes[i]`` names label ``i`` (sorted class-folder names).

    Used by every chapter.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    domain: str | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"ImageData '{self.name}': images must be uint8 N x 3 x H x W, got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DataError(f"ImageData '{self.name}': {len(self.images)} images but labels of shape "
                            f"{tuple(self.labels.shape)}")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx) -> "ImageData":
        """The images at ``idx`` (indices, a boolean mask or a slice), same classes and domain."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(idx)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().flatten()
            idx = idx.to(torch.int64)
        return ImageData(self.images[idx.to(self.images.device) if torch.is_tensor(idx) else idx],
                         self.labels[idx.to(self.labels.device) if torch.is_tensor(idx) else idx],
                         list(self.classes), self.name, self.domain)

    def __repr__(self) -> str:
        h, w = self.images.shape[-2:]
        dom = f", domain={self.domain!r}" if self.domain else ""
        return (f"ImageData(name={self.name!r}{dom}, n={len(self)}, {h}x{w}, "
                f"classes={self.num_classes})")


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------

def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the dataset tarballs and ``SHA256SUMS``: ``root`` if given, else ``$NML_DATA``.

    Raises DataError naming the environment variable when neither is set or the folder is missing.
    Used by every chapter that runs at the ``cpu`` or ``cifar`` scale.
    """
    source = "root argument"
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise DataError(
                f"no data folder: pass root=<folder> or set the environment variable {DATA_ENV} to the "
                f"folder holding cifar100.tar.xz, cifar10.tar.xz, caltech101.tar.xz, pacs.tar.xz (and, "
                f"for the text chapter, sst2.tar.xz, imdb.tar.xz) and SHA256SUMS (or use the "
                f"synthetic datasets, which need no data)")
        root, source = env, f"${DATA_ENV}"
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {str(path)!r} (from the {source}) does not exist; set {DATA_ENV} "
                        f"or pass root= to the folder holding the dataset tarballs and SHA256SUMS")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"data folder {str(path)!r} (from the {source}) cannot be read by this user; "
                        f"make it readable (chmod u+rx) or point {DATA_ENV} / root= elsewhere")
    return path


def cache_dir() -> Path:
    """Where decoded tensors are cached: ``$NML_CACHE``, default ``~/.cache/nml`` (created)."""
    path = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "nml").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cache folder {str(path)!r} cannot be created ({err.strerror}); set "
                        f"{CACHE_ENV} to a folder this user may write") from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise DataError(f"cache folder {str(path)!r} is not writable by this user; set "
                        f"{CACHE_ENV} to a folder this user may write")
    return path


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then an atomic rename (a crash never leaves half a
    cache file). Used by the decoded-tensor caches of :mod:`nml.data`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seeded_split(labels: torch.Tensor, split: str, seed: int,
                 train_fraction: float = SPLIT_TRAIN_FRACTION) -> torch.Tensor:
    """Indices of a seeded, per-class stratified train/test split (``"all"``: every index).

    Each class keeps ``round(train_fraction * n_class)`` images for train. Used for PACS and
    synthetic OOD domains (chapters 02-06), ImageFolder trees and torchvision sets without a split.
    """
    labels = torch.as_tensor(labels)
    if split == "all":
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_train = int(round(train_fraction * len(idx)))
        chosen.append(idx[:n_train] if split == "train" else idx[n_train:])
    return torch.sort(torch.cat(chosen)).values


def check_split(name: str, split: str) -> None:
    """A DataError unless ``split`` is train, test or all. Used by :func:`nml.data.load_images`."""
    if split not in _SPLITS:
        raise DataError(f"split {split!r} for '{name}' is unknown; use one of {', '.join(_SPLITS)}")


def check_domain(name: str, domain: str | None, domains: Sequence[str]) -> str:
    """``domain`` if ``name`` has it, else a DataError listing ``domains``. Used by the loaders of
    multi-domain datasets (PACS, synthetic OOD, ImageFolder trees; chapters 02-09)."""
    if domain is None or domain not in domains:
        what = "needs a domain" if domain is None else f"has no domain {domain!r}"
        raise DataError(f"dataset '{name}' {what}; pass domain= one of {', '.join(domains)}")
    return domain
