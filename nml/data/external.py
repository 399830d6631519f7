"""Datasets from outside the data folder: torchvision's (``torchvision:<Name>``, ``download=True``)
and ImageFolder trees (``imagefolder:<path>``, DomainNet-style).

The paper's full-size setting, one config away (see :func:`nml.data.load_images`).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .archives import Decoder, to_tensor_nchw
from .core import (DATA_ENV, IMAGE_SUFFIXES, TORCHVISION_DATASETS, ImageData, atomic_torch_save,
                   cache_dir, check_domain, seeded_split)

# --------------------------------------------------------------------------------------------
# torchvision and ImageFolder
# --------------------------------------------------------------------------------------------

# How each torchvision dataset names its splits: None = no split (seeded 70/30 like PACS);
# "train_bool" = the ``train=`` flag; otherwise (kwarg name, {our split: theirs}).
_TV_SPLITS: dict[str, object] = {
    "CIFAR10": "train_bool", "CIFAR100": "train_bool",
    "Flowers102": ("split", {"train": "train", "test": "test"}),
    "Food101": ("split", {"train": "train", "test": "test"}),
    "OxfordIIITPet": ("split", {"train": "trainval", "test": "test"}),
    "StanfordCars": ("split", {"train": "train", "test": "test"}),
    "FGVCAircraft": ("split", {"train": "trainval", "test": "test"}),
    "SVHN": ("split", {"train": "train", "test": "test"}),
    "DTD": ("split", {"train": "train", "test": "test"}),
    "PCAM": ("split", {"train": "train", "test": "test"}),
    "RenderedSST2": ("split", {"train": "train", "test": "test"}),
    "Caltech101": None, "EuroSAT": None,
}


def _resize_uint8(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    if image_size is None or tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    out = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                        antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def _torchvision_pieces(tv_name: str, split: str, root: Path, download: bool) -> list:
    import torchvision.datasets as tvd

    spec = _TV_SPLITS[tv_name]
    cls = getattr(tvd, tv_name)
    wanted = ["train", "test"] if (split == "all" and spec is not None) else [split]
    out = []
    for s in wanted:
        if spec is None:
            kwargs = {}
        elif spec == "train_bool":
            kwargs = {"train": s == "train"}
        else:
            kwarg, names = spec
            kwargs = {kwarg: names[s]}
        try:
            out.append(cls(root=str(root), download=download, **kwargs))
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"torchvision:{tv_name} could not be loaded from {root} ({exc}); with "
                            f"internet use download=True, else place its files under that root") from None
    return out


def load_torchvision(tv_name: str, split: str, root, image_size: int | None, seed: int,
                      download: bool) -> ImageData:
    """A torchvision dataset (``download`` allowed) as decoded uint8 images, cached under
    ``$NML_CACHE``; sets without a split get the seeded 70/30 split. Used by :func:`nml.data.load_images`."""
    if tv_name not in _TV_SPLITS:
        raise DataError(f"torchvision dataset {tv_name!r} is not supported; use one of "
                        f"{', '.join(TORCHVISION_DATASETS)}")
    if root is None and os.environ.get(DATA_ENV):
        root = os.environ[DATA_ENV]
    root = Path(root).expanduser() if root is not None else cache_dir() / "torchvision"
    root.mkdir(parents=True, exist_ok=True)
    name = f"torchvision:{tv_name}"
    cache_file = cache_dir() / (f"tv-{tv_name}-{split}-{image_size or 'native'}-"
                                f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}.pt")
    if cache_file.is_file() and _TV_SPLITS[tv_name] not in ("train_bool",):
        data = torch.load(cache_file, weights_only=True)
        images, labels, classes = data["images"], data["labels"], data["classes"]
    else:
        images_parts, label_parts, classes = [], [], None
        for ds in _torchvision_pieces(tv_name, split, root, download):
            classes = classes or list(getattr(ds, "classes", None) or getattr(ds, "categories", None) or [])
            data_attr = getattr(ds, "data", None)
            if isinstance(data_attr, np.ndarray) and data_attr.ndim == 4 and data_attr.dtype == np.uint8:
                # In-memory arrays (CIFAR: N x H x W x 3, SVHN: N x 3 x H x W): no per-image loop.
                arr = torch.from_numpy(data_attr)
                arr = arr if arr.shape[1] == 3 else arr.permute(0, 3, 1, 2)
                images_parts.append(_resize_uint8(arr.contiguous(), image_size))
                targets = getattr(ds, "targets", None)
                targets = targets if targets is not None else getattr(ds, "labels")
                label_parts.append(torch.as_tensor(np.asarray(targets), dtype=torch.int64))
                continue
            from tqdm.auto import tqdm

            decoder_items, labels_list = [], []
            for i in tqdm(range(len(ds)), desc=f"decoding {name}", disable=None):
                img, target = ds[i]
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
                decoder_items.append(buf.getvalue())
                labels_list.append(int(target))
            dec = Decoder(image_size, name)
            for blob in decoder_items:
                dec.add(blob)
            images_parts.append(to_tensor_nchw(dec.finish()))
            label_parts.append(torch.tensor(labels_list, dtype=torch.int64))
        images, labels = torch.cat(images_parts), torch.cat(label_parts)
        if not classes:
            classes = [str(i) for i in range(int(labels.max()) + 1)]
        if _TV_SPLITS[tv_name] != "train_bool":
            atomic_torch_save({"images": images, "labels": labels, "classes": classes}, cache_file)
    if _TV_SPLITS[tv_name] is None:
        idx = seeded_split(labels, split, seed)
        images, labels = images[idx], labels[idx]
    return ImageData(images, labels, list(classes), name)


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_imagefolder(path_text: str, split: str, domain: str | None, image_size: int | None,
                      seed: int) -> ImageData:
    """An ImageFolder tree (DomainNet-style domains, a plain class tree or train/test folders) as
    decoded uint8 images. Used by :func:`nml.data.load_images`."""
    base = Path(path_text).expanduser()
    name = f"imagefolder:{path_text}"
    if not base.is_dir():
        raise DataError(f"ImageFolder root {str(base)!r} does not exist; pass imagefolder:<folder> with "
                        f"<folder>/<class>/<image> or <folder>/<domain>/<class>/<image>")
    subdirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"ImageFolder root {base} has no class or domain folders")
    has_split_dirs = {"train", "test"} <= {p.name for p in subdirs}
    domain_layout = (not has_split_dirs and
                     all(not any(q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES for q in d.iterdir())
                         for d in subdirs))
    if domain_layout:
        domain = check_domain(name, domain, [d.name for d in subdirs])
        group_dirs = {d.name: d for d in subdirs}
        wanted = [domain]
        class_names = sorted({c.name for d in subdirs for c in d.iterdir() if c.is_dir()})
    elif has_split_dirs:
        if domain is not None:
            raise DataError(f"{name} has train/test folders, not domains; drop domain=")
        group_dirs = {s: base / s for s in ("train", "test")}
        wanted = ["train", "test"] if split == "all" else [split]
        class_names = sorted({c.name for s in ("train", "test") for c in (base / s).iterdir() if c.is_dir()})
    else:
        if domain is not None:
            raise DataError(f"{name} is a <class>/<image> tree without domains; drop domain=")
        group_dirs = {"all": base}
        wanted = ["all"]
        class_names = [d.name for d in subdirs]
    files: list[tuple[str, str, Path]] = []
    for g in wanted:
        for c in class_names:
            cdir = group_dirs[g] / c
            found = _list_images(cdir) if cdir.is_dir() else []
            if not found:   # a class with no images in one split would be silently unlearnable
                raise DataError(f"{name}: class {c!r} has no images in {group_dirs[g]} (folder "
                                f"{cdir} is {'empty' if cdir.is_dir() else 'missing'}); add its "
                                f"images there or remove the class folder everywhere")
            files += [(g, c, p) for p in found]
    if not files:
        raise DataError(f"{name} has no images under the folders for {wanted}")
    fingerprint = hashlib.sha256()
    for g, c, p in files:
        st = p.stat()
        fingerprint.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache_file = cache_dir() / f"imagefolder-{fingerprint.hexdigest()[:16]}-{image_size or 'native'}.pt"
    if cache_file.is_file():
        data = torch.load(cache_file, weights_only=True)
    else:
        decoder = Decoder(image_size, name)
        try:
            for _, _, p in files:
                decoder.add(p.read_bytes())
            arr = decoder.finish()
        finally:
            decoder.close()
        index = {c: i for i, c in enumerate(class_names)}
        data = {"images": to_tensor_nchw(arr),
                "labels": torch.tensor([index[c] for _, c, _ in files], dtype=torch.int64)}
        atomic_torch_save(data, cache_file)
    images, labels = data["images"], data["labels"]
    if not has_split_dirs:
        idx = seeded_split(labels, split, seed)
        images, labels = images[idx], labels[idx]
    return ImageData(images, labels, class_names, name, domain if domain_layout else None)
