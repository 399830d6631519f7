"""The two text tarballs (SST-2, IMDB) of the language chapter.

Used by chapter 07_practical_models.
"""

from __future__ import annotations

import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from .archives import verified_tarball
from .core import data_root

# --------------------------------------------------------------------------------------------
# Text datasets (chapter 07_practical_models)
# --------------------------------------------------------------------------------------------

TEXT_DATASETS: dict[str, tuple[str, ...]] = {"sst2": ("train", "dev", "test"),
                                             "imdb": ("train", "test")}
"""The text tarballs of the data folder and their splits. Both are binary sentiment tasks with
labels 0 = negative, 1 = positive (:data:`TEXT_CLASSES`): SST-2 (GLUE; the in-domain text task)
and IMDB (the out-of-domain task GLUE-X pairs with SST-2)."""

TEXT_CLASSES: tuple[str, ...] = ("negative", "positive")

_TEXTS: dict[str, dict] = {}   # tarball sha256 -> {split: (texts, labels, ids)}, per process


@dataclass
class TextData:
    """Texts with labels (``int64``, 0 = negative, 1 = positive) and an id per text.

    ``ids``: ``"<split>:<line>"`` for SST-2 (line number in the TSV, header = line 1) and
    ``"<split>/<neg|pos>/<id>_<rating>"`` for IMDB, so a subset can be traced to its files.
    Used by chapter 07_practical_models.
    """

    texts: list[str]
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str
    ids: list[str]

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.labels) == len(self.ids)):
            raise DataError(f"TextData '{self.name}': {len(self.texts)} texts, {len(self.labels)} "
                            f"labels and {len(self.ids)} ids; they must match")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx) -> "TextData":
        """The texts at ``idx`` (a sequence or tensor of indices), in that order."""
        idx = [int(i) for i in torch.as_tensor(idx, dtype=torch.int64).tolist()]
        return TextData([self.texts[i] for i in idx], self.labels[idx], list(self.classes),
                        self.name, self.split, [self.ids[i] for i in idx])

    def __repr__(self) -> str:
        return f"TextData(name={self.name!r}, split={self.split!r}, n={len(self)})"


def _parse_sst2_tsv(raw: bytes, where: str) -> tuple[list[str], list[int], list[str]]:
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8 text ({exc}); the archive is corrupt, copy it "
                        f"again") from None
    if not lines or lines[0].strip().split("\t") != ["label", "sentence"]:
        raise DataError(f"{where}: the first line must be the header 'label<TAB>sentence', got "
                        f"{lines[0][:60] if lines else '(empty file)'!r}")
    texts, labels, ids = [], [], []
    split = Path(where.rsplit(":", 1)[-1]).stem
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        label, tab, sentence = line.partition("\t")
        if not tab or label.strip() not in ("0", "1") or not sentence.strip():
            raise DataError(f"{where} line {number}: expected '<0 or 1><TAB><sentence>', got "
                            f"{line[:60]!r}")
        texts.append(sentence.strip())
        labels.append(int(label))
        ids.append(f"{split}:{number}")
    return texts, labels, ids


def _imdb_text(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8 text ({exc}); the archive is corrupt, copy it "
                        f"again") from None
    # The reviews keep the HTML line breaks of the web pages they were scraped from.
    return " ".join(text.replace("<br />", " ").replace("<br/>", " ").split())


def _read_text_tarball(path: Path, name: str) -> dict:
    """Every split of a text tarball: ``{split: (texts, labels, ids)}``, streamed, never extracted."""
    splits: dict[str, list] = {}
    try:
        with tarfile.open(path, mode="r|xz") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                parts = Path(member.name).parts
                if parts[0] != name:
                    raise DataError(f"{path}: unexpected member {member.name!r}; expected "
                                    f"{name}/...")
                raw = tf.extractfile(member).read()
                where = f"{path}:{member.name}"
                if name == "sst2":
                    if len(parts) != 2 or not parts[1].endswith(".tsv"):
                        raise DataError(f"{path}: unexpected member {member.name!r}; expected "
                                        f"sst2/<train|dev|test>.tsv")
                    splits[parts[1][:-4]] = list(_parse_sst2_tsv(raw, where))
                else:
                    if (len(parts) != 4 or parts[2] not in ("neg", "pos")
                            or not parts[3].endswith(".txt")):
                        raise DataError(f"{path}: unexpected member {member.name!r}; expected "
                                        f"imdb/<train|test>/<neg|pos>/<id>_<rating>.txt")
                    stem = parts[3][:-4]
                    review_id, _, rating = stem.partition("_")
                    if not review_id.isdigit() or not rating.isdigit():
                        raise DataError(f"{path}: review file {member.name!r} is not named "
                                        f"<id>_<rating>.txt")
                    entry = splits.setdefault(parts[1], [])
                    entry.append((parts[2], int(review_id), _imdb_text(raw, where),
                                  f"{parts[1]}/{parts[2]}/{stem}"))
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path} could not be read ({type(exc).__name__}: {exc}); the archive is "
                        f"corrupt or truncated, copy it again") from None
    if name == "imdb":
        for split, entries in list(splits.items()):
            entries.sort(key=lambda e: (e[0], e[1]))  # class folder, then review id
            splits[split] = [[e[2] for e in entries],
                             [TEXT_CLASSES.index("negative" if e[0] == "neg" else "positive")
                              for e in entries],
                             [e[3] for e in entries]]
    if not splits:
        raise DataError(f"{path} holds no texts under {name}/")
    return splits


def load_texts(name: str, split: str = "train", *,
               root: str | os.PathLike | None = None) -> TextData:
    """A split of a text dataset of the data folder: ``sst2`` (train / dev / test) or ``imdb``
    (train / test).

    The tarball (``root``, else ``$NML_DATA``) is checked against ``SHA256SUMS`` before its first
    read, exactly as the image tarballs are, then streamed once per process (SST-2 takes well
    under a second, IMDB's 50,000 reviews a few seconds). SST-2 comes from
    ``sst2/<split>.tsv`` (header ``label<TAB>sentence``); IMDB from
    ``imdb/<split>/<neg|pos>/<id>_<rating>.txt``, ordered by class then review id, with the
    reviews' HTML line breaks (``<br />``) turned into spaces. A missing, corrupt or malformed
    file raises :class:`~nml.errors.DataError` naming it and the fix.

    Used by chapter 07_practical_models (through :mod:`nml.practical`).
    """
    if name not in TEXT_DATASETS:
        raise DataError(f"unknown text dataset {name!r}; known: {', '.join(TEXT_DATASETS)}")
    if split not in TEXT_DATASETS[name]:
        raise DataError(f"text dataset '{name}' has no split {split!r}; use one of "
                        f"{', '.join(TEXT_DATASETS[name])}")
    path, sha = verified_tarball(name, data_root(root))
    if sha not in _TEXTS:
        _TEXTS[sha] = _read_text_tarball(path, name)
    splits = _TEXTS[sha]
    if split not in splits:
        raise DataError(f"{path} has no {split!r} split (it holds {', '.join(sorted(splits))}); "
                        f"copy the archive again")
    texts, labels, ids = splits[split]
    return TextData(list(texts), torch.tensor(labels, dtype=torch.int64), list(TEXT_CLASSES),
                    name, split, list(ids))


def text_checksum(name: str, root: str | os.PathLike | None = None) -> str:
    """The verified SHA256 of a text tarball (provenance and feature-cache keys)."""
    if name not in TEXT_DATASETS:
        raise DataError(f"unknown text dataset {name!r}; known: {', '.join(TEXT_DATASETS)}")
    return verified_tarball(name, data_root(root))[1]
