"""The public loaders: :func:`load_images` (one dispatcher over every source) and the registry of
named downstream tasks (:data:`TASKS`, :func:`load_task`).

Used by every chapter.
"""

from __future__ import annotations

import collections.abc
import os
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch

from ..errors import DataError
from .archives import from_groups, load_tarball
from .core import (DATASETS, DOMAINS, TARBALL_DATASETS, TORCHVISION_DATASETS, ImageData,
                   check_split, seeded_split)
from .external import load_imagefolder, load_torchvision
from .synthetic import SYNTHETIC_SIZES, make_synthetic


@dataclass
class Task:
    """A downstream task: a training set and named test sets.

    ID tasks have ``tests == {"test": ...}``; OOD tasks have one entry per target domain (or per
    ``corruption@severity`` for ``cifar10c``, computed lazily on access). Used by chapters
    02_linear_probe, 03_feature_spectrum, 04_lora, 05_full_finetune, 06_nmtune, 08_asymmetric_noise,
    09_noisy_downstream.
    """

    name: str
    kind: Literal["id", "ood"]
    train: ImageData
    tests: collections.abc.Mapping = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes


@dataclass(frozen=True)
class TaskSpec:
    """How a named task is built: the dataset, the training domain (if any) and a description."""

    kind: Literal["id", "ood"]
    dataset: str
    train_domain: str | None
    description: str
    num_classes: int                  # the classes a head chooses among (chance = 1 / this)
    # Leave one domain out: tune on the seeded train splits of every other domain, test on all
    # of this one (the domain-generalisation protocol; ``train_domain`` is then None).
    held_out: str | None = None


TASKS: dict[str, TaskSpec] = {
    "cifar10": TaskSpec("id", "cifar10", None, "CIFAR-10: train split -> test split", 10),
    "caltech101": TaskSpec("id", "caltech101", None, "Caltech-101 (64 px crops): train -> test", 101),
    "pacs_photo": TaskSpec("ood", "pacs", "photo",
                           "PACS: tune on a seeded 70 % of photo; test on art_painting, cartoon, sketch", 7),
    "pacs_sketch": TaskSpec("ood", "pacs", "sketch",
                            "PACS: tune on a seeded 70 % of sketch; test on photo, art_painting, cartoon", 7),
    "pacs_heldout_sketch": TaskSpec(
        "ood", "pacs", None, "PACS, sketch held out: tune on the seeded 70 % train splits of photo, "
        "art_painting and cartoon; test on all of sketch", 7, held_out="sketch"),
    "cifar10c": TaskSpec("ood", "cifar10", None,
                         "CIFAR-10 train -> CIFAR-10 test under each corruption@severity (nml.corruptions)", 10),
    "synthetic_id": TaskSpec("id", "synthetic_id", None, "synthetic ID: 10 new classes, train -> test", 10),
    "synthetic_ood_photo": TaskSpec("ood", "synthetic_ood", "photo",
                                    "synthetic OOD: tune on 70 % of photo; test on the other 3 domains", 10),
    "synthetic_ood_sketch": TaskSpec("ood", "synthetic_ood", "sketch",
                                     "synthetic OOD: tune on 70 % of sketch; test on the other 3 domains", 10),
}
"""Named downstream tasks (see :func:`load_task`)."""


def chance_accuracy(task: str) -> float:
    """Accuracy (%) of guessing among a task's classes: the floor every OOD figure draws and
    the scorecard's test of whether an OOD task carries signal. Used by chapters 02, 03, 06."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return 100.0 / TASKS[task].num_classes


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------

def load_images(name: str, split: str = "train", *, root: str | os.PathLike | None = None,
                domain: str | None = None, image_size: int | None = None, seed: int = 0,
                download: bool = True) -> ImageData:
    """Load a dataset split as decoded uint8 images.

    ``name``: one of :data:`DATASETS`, ``torchvision:<Name>`` (:data:`TORCHVISION_DATASETS`) or
    ``imagefolder:<path>``. ``split``: ``"train"``, ``"test"`` or ``"all"``. ``domain``: required for
    multi-domain sets (``pacs``, ``synthetic_ood``, DomainNet-style folders), whose train/test split is
    a seeded per-class 70/30 split chosen by ``seed``. ``image_size``: resize to a square of that many
    pixels (needed when source images differ in size; the synthetic sets are rendered at that size,
    default 16). ``download`` only matters for torchvision sets.

    Used by chapters 01_noisy_pretraining (upstream sets) and, through :func:`load_task`, 02-09.
    """
    if not isinstance(name, str):
        raise DataError(f"dataset name must be a string, got {name!r}")
    check_split(name, split)
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool)
                                   or image_size < 4):
        raise DataError(f"image_size must be an int >= 4 (pixels) or None, got {image_size!r}")
    if name.startswith("torchvision:"):
        return load_torchvision(name.split(":", 1)[1], split, root, image_size, seed, download)
    if name.startswith("imagefolder:"):
        return load_imagefolder(name.split(":", 1)[1], split, domain, image_size, seed)
    if name in SYNTHETIC_SIZES:
        if name == "synthetic_ood":
            full = make_synthetic(name, domain=domain, image_size=image_size)
            return full.subset(seeded_split(full.labels, split, seed))
        if split == "all":
            parts = [make_synthetic(name, s, domain=domain, image_size=image_size) for s in ("train", "test")]
            return ImageData(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                             parts[0].classes, name)
        return make_synthetic(name, split, domain=domain, image_size=image_size)
    if name in TARBALL_DATASETS:
        if name not in DOMAINS and domain is not None:
            raise DataError(f"dataset '{name}' has no domains; drop domain=")
        data = load_tarball(name, root, image_size)
        return from_groups(data, name, split, domain, seed)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, "
                    f"torchvision:<{'|'.join(TORCHVISION_DATASETS)}>, imagefolder:<path>")


class CorruptedTests(collections.abc.Mapping):
    """``{"corruption@severity": ImageData}`` computed on access (all 50 at once would not fit in
    memory at full CIFAR scale). Keeps the most recent entry. Used by ``cifar10c`` (chapters 02-06)."""

    def __init__(self, clean: ImageData, seed: int, corrupt_fn: Callable, keys: Sequence[str]):
        self.clean, self.seed, self._corrupt, self._keys = clean, seed, corrupt_fn, list(keys)
        self._last: tuple[str, ImageData] | None = None

    def __getitem__(self, key: str) -> ImageData:
        if key not in self._keys:
            raise KeyError(key)
        if self._last is None or self._last[0] != key:
            corruption, severity = key.split("@")
            images = self._corrupt(self.clean.images, corruption, int(severity), self.seed)
            self._last = (key, ImageData(images, self.clean.labels, list(self.clean.classes),
                                         f"{self.clean.name}-c", key))
        return self._last[1]

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def load_task(name: str, *, root: str | os.PathLike | None = None, image_size: int | None = None,
              seed: int = 0) -> Task:
    """Build a named downstream task from :data:`TASKS`.

    OOD tasks on a multi-domain set train on the seeded train split of their domain and test on
    every image of each other domain, or (``held_out``) train on the seeded train splits of
    every other domain together and test on every image of the held-out one; ``cifar10c`` trains on CIFAR-10 train and tests on the
    CIFAR-10 test set under every corruption and severity of :mod:`nml.corruptions` (computed lazily,
    corruption noise seeded by ``seed``). Used by chapters 02_linear_probe, 03_feature_spectrum,
    04_lora, 05_full_finetune, 06_nmtune, 08_asymmetric_noise, 09_noisy_downstream.
    """
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    spec = TASKS[name]
    kw = {"root": root, "image_size": image_size, "seed": seed}
    if spec.train_domain is not None:
        train = load_images(spec.dataset, "train", domain=spec.train_domain, **kw)
        tests = {d: load_images(spec.dataset, "all", domain=d, **kw)
                 for d in DOMAINS[spec.dataset] if d != spec.train_domain}
    elif spec.held_out is not None:
        sources = [d for d in DOMAINS[spec.dataset] if d != spec.held_out]
        parts = [load_images(spec.dataset, "train", domain=d, **kw) for d in sources]
        train = ImageData(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                          list(parts[0].classes), spec.dataset, "+".join(sources))
        tests = {spec.held_out: load_images(spec.dataset, "all", domain=spec.held_out, **kw)}
    elif name == "cifar10c":
        from ..corruptions import CORRUPTIONS, SEVERITIES, corrupt

        train = load_images(spec.dataset, "train", **kw)
        clean = load_images(spec.dataset, "test", **kw)
        keys = [f"{c}@{s}" for c in CORRUPTIONS for s in SEVERITIES]
        tests = CorruptedTests(clean, seed, corrupt, keys)
    else:
        train = load_images(spec.dataset, "train", **kw)
        tests = {"test": load_images(spec.dataset, "test", **kw)}
    return Task(name, spec.kind, train, tests)
