"""The offline tarballs of the data folder: checksum verification against ``SHA256SUMS``, streamed
decoding in a process pool (PIL), and the decoded-tensor cache under ``$NML_CACHE``.

Used by every chapter that runs at the ``cpu`` or ``cifar`` scale (through :func:`nml.data.load_images`).
"""

from __future__ import annotations

import io
import lzma
import multiprocessing
import os
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .core import (DATA_ENV, DOMAINS, IMAGE_SUFFIXES, TARBALL_DATASETS, WORKERS_ENV, ImageData,
                   atomic_torch_save, cache_dir, check_domain, data_root, file_sha256, seeded_split)

# --------------------------------------------------------------------------------------------
# Decoding (PIL, process pool)
# --------------------------------------------------------------------------------------------

def _decode_batch(args) -> tuple[np.ndarray | None, str | None]:
    """Decode encoded images to one uint8 array B x H x W x 3; (None, message) on failure."""
    from PIL import Image

    blobs, image_size = args
    out = None
    for i, blob in enumerate(blobs):
        try:
            im = Image.open(io.BytesIO(blob))
            if image_size is not None and im.format == "JPEG":
                im.draft("RGB", (image_size, image_size))  # DCT-domain downscale: exact and fast
            im = im.convert("RGB")
            if image_size is not None and im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.BILINEAR)
            arr = np.asarray(im)
        except Exception as exc:  # PIL raises many types for a bad image
            return None, f"item {i} could not be decoded ({type(exc).__name__}: {exc})"
        if out is None:
            out = np.empty((len(blobs),) + arr.shape, np.uint8)
        elif arr.shape != out.shape[1:]:
            return None, (f"images have different sizes ({out.shape[2]}x{out.shape[1]} and "
                          f"{arr.shape[1]}x{arr.shape[0]}); pass image_size=<pixels> to resize them")
        out[i] = arr
    return out, None


def _decode_workers() -> int:
    env = os.environ.get(WORKERS_ENV)
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


class Decoder:
    """Decodes chunks of encoded images as they arrive, in a process pool when workers > 1."""

    CHUNK = 1000

    def __init__(self, image_size: int | None, what: str):
        self.image_size, self.what = image_size, what
        workers = _decode_workers()
        self.pool = None
        if workers > 1:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(workers)
        self.pending: list[bytes] = []
        self.results: list = []

    def add(self, blob: bytes) -> None:
        self.pending.append(blob)
        if len(self.pending) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        job = (self.pending, self.image_size)
        self.results.append(self.pool.apply_async(_decode_batch, (job,)) if self.pool
                            else _decode_batch(job))
        self.pending = []

    def finish(self) -> np.ndarray:
        self._flush()
        try:
            parts = []
            for r in self.results:
                arr, err = r.get() if self.pool else r
                if err:
                    raise DataError(f"{self.what}: {err}")
                parts.append(arr)
        finally:
            self.close()
        if not parts:
            return np.empty((0, self.image_size or 0, self.image_size or 0, 3), np.uint8)
        if len({p.shape[1:] for p in parts}) > 1:
            raise DataError(f"{self.what}: images have different sizes ({parts[0].shape[1:3]} and "
                            f"others); pass image_size=<pixels> to resize them")
        return np.concatenate(parts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def to_tensor_nchw(arr: np.ndarray) -> torch.Tensor:
    """Decoded N x H x W x 3 uint8 images as an N x 3 x H x W tensor. Used by the tarball and
    ImageFolder loaders."""
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def _assemble(entries: list[tuple[str, str, str]], arr: np.ndarray) -> dict:
    """Group decoded images: entries are (group, class, sort key) in decode order."""
    classes = sorted({c for _, c, _ in entries})
    index = {c: i for i, c in enumerate(classes)}
    order = sorted(range(len(entries)), key=lambda i: (entries[i][0], entries[i][1], entries[i][2]))
    groups: dict[str, dict] = {}
    for g in sorted({e[0] for e in entries}):
        idx = [i for i in order if entries[i][0] == g]
        groups[g] = {
            "images": to_tensor_nchw(arr[idx]),
            "labels": torch.tensor([index[entries[i][1]] for i in idx], dtype=torch.int64),
        }
    return {"classes": classes, "groups": groups}


# --------------------------------------------------------------------------------------------
# Tarballs
# --------------------------------------------------------------------------------------------

_VERIFIED: dict[tuple, str] = {}   # (path, size, mtime) -> sha256, so a file is hashed once per process
_DECODED: dict[str, dict] = {}     # cache file path -> loaded groups (keeps train and test together)


def expected_checksum(root: Path, filename: str) -> str:
    """The SHA256 that ``SHA256SUMS`` in ``root`` lists for ``filename`` (a clear DataError when
    the file or its line is missing). Used by every loader of the data folder and by the provenance
    of :class:`nml.experiments.Pipeline` (every chapter)."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{sums} is missing; the data folder must hold SHA256SUMS next to the tarballs "
                        f"(from {DATA_ENV} or root=) so they can be verified before use")
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].lstrip("*") == filename:
            return parts[0].lower()
    raise DataError(f"{sums} has no checksum for {filename}; add its line ('sha256  {filename}')")


def verified_tarball(name: str, root: Path) -> tuple[Path, str]:
    """``root/<name>.tar.xz`` and its SHA256, checked against ``SHA256SUMS`` once per process.
    Used by the image and text loaders (every chapter at the ``cpu`` and ``cifar`` scales, 07)."""
    path = root / f"{name}.tar.xz"
    if not path.is_file():
        raise DataError(f"dataset '{name}' needs {path}, which is missing; set {DATA_ENV} (or pass "
                        f"root=) to the folder holding {name}.tar.xz and SHA256SUMS")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        expected = expected_checksum(root, path.name)
        actual = file_sha256(path)
        if actual != expected:
            raise DataError(f"{path} is corrupt or truncated: SHA256 {actual[:16]}... does not match "
                            f"SHA256SUMS ({expected[:16]}...); copy the file again")
        _VERIFIED[key] = actual
    return path, _VERIFIED[key]


def _decode_tarball(path: Path, name: str, image_size: int | None) -> dict:
    """Stream ``name/<group>/<class>/<file>`` images out of a .tar.xz and decode them."""
    decoder = Decoder(image_size, str(path))
    entries: list[tuple[str, str, str]] = []
    try:
        with tarfile.open(path, mode="r|xz") as tf:
            for member in tf:
                if not member.isfile() or not member.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                parts = Path(member.name).parts
                if len(parts) != 4 or parts[0] != name:
                    raise DataError(f"{path}: unexpected member {member.name!r}; expected "
                                    f"{name}/<split or domain>/<class>/<image>")
                f = tf.extractfile(member)
                decoder.add(f.read())
                entries.append((parts[1], parts[2], parts[3]))
        arr = decoder.finish()
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path} could not be read ({type(exc).__name__}: {exc}); the archive is "
                        f"corrupt or truncated, copy it again") from None
    finally:
        decoder.close()
    if not entries:
        raise DataError(f"{path} holds no images under {name}/<split or domain>/<class>/")
    return _assemble(entries, arr)


def load_tarball(name: str, root, image_size: int | None) -> dict:
    """A verified tarball's decoded groups (``{group: images, labels}`` and ``classes``), from the
    decoded-tensor cache or decoded once. Used by :func:`nml.data.load_images` (every chapter)."""
    root_path = data_root(root)
    path, sha = verified_tarball(name, root_path)
    cache_file = cache_dir() / f"{name}-{sha[:16]}-{image_size or 'native'}.pt"
    key = str(cache_file)
    if key in _DECODED:
        return _DECODED[key]
    data = None
    if cache_file.is_file():
        try:
            data = torch.load(cache_file, weights_only=True)
        except Exception:  # a stale or damaged cache entry is rebuilt, never trusted
            data = None
    if data is None:
        t0 = time.perf_counter()
        data = _decode_tarball(path, name, image_size)
        data["seconds"] = time.perf_counter() - t0
        data["sha256"] = sha
        atomic_torch_save(data, cache_file)
    _DECODED[key] = data
    return data


def from_groups(data: dict, name: str, split: str, domain: str | None, seed: int) -> ImageData:
    """One split (or one domain's seeded split) of a tarball's decoded groups as :class:`ImageData`.
    Used by :func:`nml.data.load_images` (every chapter)."""
    groups = data["groups"]
    if name in DOMAINS or domain is not None:
        domain = check_domain(name, domain, tuple(groups))
        g = groups[domain]
        idx = seeded_split(g["labels"], split, seed)
        return ImageData(g["images"][idx], g["labels"][idx], list(data["classes"]), name, domain)
    if split == "all":
        names = [s for s in ("train", "test") if s in groups]
        return ImageData(torch.cat([groups[s]["images"] for s in names]),
                         torch.cat([groups[s]["labels"] for s in names]), list(data["classes"]), name)
    if split not in groups:
        raise DataError(f"dataset '{name}' has no split {split!r}; it has {', '.join(groups)}")
    g = groups[split]
    return ImageData(g["images"], g["labels"], list(data["classes"]), name)


def image_checksum(name: str, root: str | os.PathLike | None = None) -> str:
    """The verified SHA256 of an image tarball (feature-cache keys of chapter
    07_practical_models)."""
    if name not in TARBALL_DATASETS:
        raise DataError(f"dataset {name!r} is not an image tarball; known: "
                        f"{', '.join(TARBALL_DATASETS)}")
    return verified_tarball(name, data_root(root))[1]
