"""Tests of nml.data: synthetic sets, tarball checks and cache, torchvision / ImageFolder paths, tasks,
augment and normalisation. Tarball, torchvision and ImageFolder tests build tiny files in the real
on-disk formats; the real-data test runs only where $NML_DATA (or /work/shared/data) holds pacs.tar.xz."""

import hashlib
import io
import math
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nml import data
from nml.data import archives
from nml.data import (CHANNEL_STATS, DATASETS, DOMAINS, TASKS, ImageData, augment, channel_stats,
                      load_images, load_task, to_float)
from nml.errors import DataError

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own decode cache and forgets what earlier tests verified or decoded."""
    monkeypatch.setenv("NML_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NML_DATA", raising=False)
    monkeypatch.setattr(archives, "_VERIFIED", {})
    monkeypatch.setattr(archives, "_DECODED", {})


# ------------------------------------------------------------------------------------ synthetic

def test_synthetic_shapes_and_determinism():
    up = load_images("synthetic_upstream")
    assert up.images.shape == (4000, 3, 16, 16) and up.images.dtype == torch.uint8
    assert up.labels.dtype == torch.int64 and up.num_classes == 40
    assert torch.bincount(up.labels).tolist() == [100] * 40
    again = load_images("synthetic_upstream")
    assert torch.equal(up.images, again.images) and torch.equal(up.labels, again.labels)
    test = load_images("synthetic_upstream", "test")
    assert len(test) == 1000 and not torch.equal(test.images[:10], up.images[:10])
    big = load_images("synthetic_id", "test", image_size=32)
    assert big.images.shape == (500, 3, 32, 32)
    assert len(load_images("synthetic_id", "all")) == 1500


def test_synthetic_id_classes_are_new():
    world = data.synthetic_world()
    key = lambda p: tuple(sorted(zip(p["shape"].tolist(), p["colour"].tolist())))  # noqa: E731
    upstream = {key(p) for p in world["synthetic_upstream"]}
    downstream = {key(p) for p in world["synthetic_id"]}
    assert len(upstream) == 40 and len(downstream) == 10 and not upstream & downstream
    # ... but built from the same vocabulary: every downstream part also occurs upstream.
    up_parts = {part for k in upstream for part in k}
    assert all(part in up_parts for k in downstream for part in k)


def test_synthetic_ood_domains_and_split():
    parts = {}
    for d in DOMAINS["synthetic_ood"]:
        full = load_images("synthetic_ood", "all", domain=d)
        train = load_images("synthetic_ood", "train", domain=d, seed=0)
        test = load_images("synthetic_ood", "test", domain=d, seed=0)
        assert len(full) == 600 and len(train) == 420 and len(test) == 180
        assert train.domain == d and full.num_classes == 10
        parts[d] = full.images.float()
    other = load_images("synthetic_ood", "train", domain="photo", seed=1)
    assert not torch.equal(other.images, load_images("synthetic_ood", "train", domain="photo").images)
    sketch = parts["sketch"]
    assert torch.equal(sketch[:, 0], sketch[:, 1]) and torch.equal(sketch[:, 1], sketch[:, 2])  # gray
    assert not torch.equal(parts["photo"][:, 0], parts["photo"][:, 1])
    with pytest.raises(DataError, match="domain"):
        load_images("synthetic_ood", "train")


def _hue_histogram(images: torch.Tensor, bins: int = 12) -> np.ndarray:
    """Saturation-weighted histogram of hue (fractions) over all pixels of uint8 images."""
    x = images.float().div(255)
    mx, mn = x.max(1).values, x.min(1).values
    chroma = mx - mn
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    hue = torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)  # angle about the grey axis
    hist = torch.histc(hue[chroma > 0.15], bins, -math.pi, math.pi).numpy()
    return hist / hist.sum()


def test_synthetic_ood_domain_styles():
    """Each target domain differs from photo in the intended way and keeps the class colours."""
    from nml.data import SYNTHETIC_VERSION, make_synthetic, synthetic_version, synthetic_world

    assert synthetic_version() == f"synthetic-v{SYNTHETIC_VERSION}-seed0" and SYNTHETIC_VERSION >= 2
    dom = {d: make_synthetic("synthetic_ood", domain=d).images for d in DOMAINS["synthetic_ood"]}
    for d, images in dom.items():  # deterministic, and the domains really differ
        assert torch.equal(images, make_synthetic("synthetic_ood", domain=d).images), d
        if d != "photo":
            assert not torch.equal(images, dom["photo"])
    # Sketch is grayscale, and its paper brightness varies per image (not a constant background).
    sketch = dom["sketch"].float()
    assert torch.equal(sketch[:, 0], sketch[:, 1]) and torch.equal(sketch[:, 1], sketch[:, 2])
    paper = sketch[:, 0].flatten(1).quantile(0.9, dim=1)
    assert paper.std() > 15, "sketch paper brightness should vary between images"
    # Art keeps the palette: its hue histogram stays close to photo's (a hue rotation that
    # permutes the palette moves the mass to other bins: total variation > 0.5).
    tv = 0.5 * np.abs(_hue_histogram(dom["art_painting"]) - _hue_histogram(dom["photo"])).sum()
    assert tv < 0.25, f"art_painting hue histogram is {tv:.2f} (total variation) from photo's"
    # ... and has more high-frequency texture than photo (brush strokes).
    def roughness(x):
        x = x.float()
        return (x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    assert roughness(dom["art_painting"]) > 1.15 * roughness(dom["photo"])
    # Cartoon is posterised: three levels per channel.
    assert set(dom["cartoon"].unique().tolist()) <= {0, 128, 255}
    # Class identity survives in every domain: per-class mean images of a domain are nearer (in
    # absolute correlation) to the same class's photo mean than to other classes' (shape + layout).
    labels = make_synthetic("synthetic_ood", domain="photo").labels
    def class_means(x):
        g = x.float().mean(1).flatten(1)
        m = torch.stack([g[labels == k].mean(0) for k in range(10)])
        m = m - m.mean(0)
        return m / m.norm(dim=1, keepdim=True)
    photo = class_means(dom["photo"])
    # (Sketch is not checked here: its mean images do not match photo's; see the OOD LP numbers.)
    for d in ("art_painting", "cartoon"):
        sim = (class_means(dom[d]) @ photo.T).abs()
        assert (sim.argmax(1) == torch.arange(10)).sum() >= 6, d  # chance: 1
    assert len(synthetic_world()["synthetic_ood"]) == 10


def test_synthetic_linear_probe_on_pixels_is_hard_but_informative():
    """Logistic regression on raw pixels: far above chance (2.5 %), far below perfect."""
    train, test = load_images("synthetic_upstream"), load_images("synthetic_upstream", "test")
    x = lambda d: d.images.reshape(len(d), -1).double() / 255  # noqa: E731
    xtr, xte = x(train), x(test)
    mean = xtr.mean(0)
    xtr, xte = xtr - mean, xte - mean
    w = torch.zeros(xtr.shape[1], 40, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xtr @ w + b, train.labels) + 1e-2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    acc = ((xte @ w + b).argmax(1) == test.labels).double().mean().item()
    print(f"logistic regression on raw pixels: {acc:.3f}")
    assert 0.3 < acc < 0.9, acc


@pytest.mark.parametrize("name", ["synthetic_upstream", "synthetic_id"])
def test_channel_stats_match_data(name):
    mean, std = channel_stats(load_images(name).images)
    assert np.allclose(mean, CHANNEL_STATS[name][0], atol=2e-3)
    assert np.allclose(std, CHANNEL_STATS[name][1], atol=2e-3)


def test_channel_stats_synthetic_ood():
    images = torch.cat([load_images("synthetic_ood", "all", domain=d).images for d in DOMAINS["synthetic_ood"]])
    mean, std = channel_stats(images)
    assert np.allclose(mean, CHANNEL_STATS["synthetic_ood"][0], atol=2e-3)
    assert np.allclose(std, CHANNEL_STATS["synthetic_ood"][1], atol=2e-3)


def test_imagedata_subset_and_validation():
    d = load_images("synthetic_id", "test")
    sub = d.subset(torch.arange(5))
    assert len(sub) == 5 and torch.equal(sub.images, d.images[:5]) and sub.classes == d.classes
    assert len(d.subset(d.labels == 3)) == 50
    assert len(d.subset(np.array([1, 2]))) == 2
    with pytest.raises(DataError, match="uint8"):
        ImageData(d.images.float(), d.labels, d.classes, "x")
    with pytest.raises(DataError, match="labels"):
        ImageData(d.images, d.labels[:3], d.classes, "x")


# ------------------------------------------------------------------------------------ tarballs

def jpeg_bytes(rng, size=(32, 32)):
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_tarball(root: Path, name: str, groups, classes, per_class=3, size=(32, 32), sums=True,
                  sizes=None):
    """A {name}.tar.xz in the data folder's layout: name/<group>/<class>/<i>.jpg, plus SHA256SUMS."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    path = root / f"{name}.tar.xz"
    with tarfile.open(path, "w:xz") as tf:
        for g in groups:
            for ci, c in enumerate(classes):
                for i in range(per_class):
                    blob = jpeg_bytes(rng, sizes[(ci + i) % len(sizes)] if sizes else size)
                    info = tarfile.TarInfo(f"{name}/{g}/{c}/{i:04d}.jpg")
                    info.size = len(blob)
                    tf.addfile(info, io.BytesIO(blob))
    if sums:
        with open(root / "SHA256SUMS", "a") as f:
            f.write(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return path


def test_tarball_roundtrip_and_cache(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_tarball(root, "cifar10", ["train", "test"], ["cat", "airplane", "dog"], per_class=4)
    monkeypatch.setattr(data.Decoder, "CHUNK", 5)  # several chunks through the process pool
    monkeypatch.setenv("NML_DECODE_WORKERS", "2")
    train = load_images("cifar10", "train", root=root)
    assert train.images.shape == (12, 3, 32, 32) and train.classes == ["airplane", "cat", "dog"]
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(load_images("cifar10", "test", root=root)) == 12
    assert len(load_images("cifar10", "all", root=root)) == 24
    cached = list(Path(os.environ["NML_CACHE"]).glob("cifar10-*-native.pt"))
    assert len(cached) == 1

    # A second process would find the cache: forget the in-memory copy and forbid decoding.
    monkeypatch.setattr(archives, "_DECODED", {})
    decode = archives._decode_tarball
    monkeypatch.setattr(archives, "_decode_tarball", lambda *a: pytest.fail("decoded twice"))
    again = load_images("cifar10", "train", root=root)
    assert torch.equal(again.images, train.images)
    monkeypatch.setattr(archives, "_decode_tarball", decode)

    monkeypatch.setenv("NML_DATA", str(root))
    small = load_images("cifar10", "train", image_size=16)  # root from $NML_DATA, new cache key
    assert small.images.shape == (12, 3, 16, 16)


def test_pil_decode_matches_single_process(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_tarball(root, "caltech101", ["train", "test"], ["a", "b"], per_class=3, size=(20, 12))
    monkeypatch.setenv("NML_DECODE_WORKERS", "1")
    one = load_images("caltech101", "train", root=root)
    assert one.images.shape == (6, 3, 12, 20)
    arr = np.asarray(Image.open(io.BytesIO(jpeg_bytes(np.random.default_rng(0), (20, 12)))).convert("RGB"))
    assert torch.equal(one.images[0], torch.from_numpy(arr.copy()).permute(2, 0, 1))


def test_mixed_sizes_need_image_size(tmp_path):
    root = tmp_path / "data"
    write_tarball(root, "caltech101", ["train", "test"], ["a", "b"], sizes=[(32, 32), (40, 24)])
    with pytest.raises(DataError, match="image_size"):
        load_images("caltech101", "train", root=root)
    assert load_images("caltech101", "train", root=root, image_size=24).images.shape == (6, 3, 24, 24)


def test_checksum_mismatch_and_truncation(tmp_path):
    good = tmp_path / "good"
    path = write_tarball(good, "cifar10", ["train", "test"], ["a", "b"])
    blob = path.read_bytes()

    flipped = tmp_path / "flipped"
    flipped.mkdir()
    (flipped / "SHA256SUMS").write_text((good / "SHA256SUMS").read_text())
    (flipped / "cifar10.tar.xz").write_bytes(blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:])
    with pytest.raises(DataError, match="cifar10.tar.xz is corrupt or truncated"):
        load_images("cifar10", root=flipped)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "SHA256SUMS").write_text((good / "SHA256SUMS").read_text())
    (truncated / "cifar10.tar.xz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_images("cifar10", root=truncated)

    # A truncated archive whose checksum was (wrongly) recorded: the decoder reports it, no traceback.
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "cifar10.tar.xz").write_bytes(blob[: len(blob) // 2])
    (recorded / "SHA256SUMS").write_text(
        f"{hashlib.sha256(blob[: len(blob) // 2]).hexdigest()}  cifar10.tar.xz\n")
    with pytest.raises(DataError, match="could not be read"):
        load_images("cifar10", root=recorded)

    nosums = tmp_path / "nosums"
    write_tarball(nosums, "cifar10", ["train"], ["a"], sums=False)
    with pytest.raises(DataError, match="SHA256SUMS"):
        load_images("cifar10", root=nosums)
    assert len(load_images("cifar10", root=good)) == 6


def test_missing_root_and_tarball(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="NML_DATA"):
        load_images("cifar10")
    monkeypatch.setenv("NML_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="NML_DATA"):
        load_images("cifar10")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"cifar100\.tar\.xz.*NML_DATA"):
        load_images("cifar100", root=tmp_path / "empty")


def test_unknown_names():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*cifar100"):
        load_images("imagenet")
    with pytest.raises(DataError, match="unknown task 'mnist'.*pacs_photo"):
        load_task("mnist")
    with pytest.raises(DataError, match="split"):
        load_images("synthetic_id", "val")
    with pytest.raises(DataError, match="torchvision dataset 'MNIST'"):
        load_images("torchvision:MNIST")
    assert set(DATASETS) >= {"cifar100", "cifar10", "caltech101", "pacs", "synthetic_ood"}


def test_pacs_layout_split_and_tasks(tmp_path):
    root = tmp_path / "data"
    write_tarball(root, "pacs", DOMAINS["pacs"], ["dog", "elephant"], per_class=10, size=(16, 16))
    train = load_images("pacs", "train", root=root, domain="photo", seed=0)
    test = load_images("pacs", "test", root=root, domain="photo", seed=0)
    assert len(train) == 14 and len(test) == 6 and train.domain == "photo"
    with pytest.raises(DataError, match="art_painting"):
        load_images("pacs", "train", root=root)
    task = load_task("pacs_sketch", root=root)
    assert task.kind == "ood" and task.train.domain == "sketch" and len(task.train) == 14
    assert sorted(task.tests) == ["art_painting", "cartoon", "photo"]
    assert all(len(t) == 20 for t in task.tests.values())
    # sketch held out: the three other domains' train splits together, every sketch image
    held = load_task("pacs_heldout_sketch", root=root)
    assert held.kind == "ood" and held.num_classes == 2 and list(held.tests) == ["sketch"]
    assert len(held.train) == 3 * 14 and len(held.tests["sketch"]) == 20
    assert held.train.domain == "photo+art_painting+cartoon"
    photo_part = held.train.images[[i for i in range(len(held.train)) if i < 14]]
    assert torch.equal(photo_part, load_images("pacs", "train", root=root, domain="photo").images)
    assert torch.equal(held.tests["sketch"].images,
                       load_images("pacs", "all", root=root, domain="sketch").images)


def test_cifar10c_task_is_lazy(tmp_path):
    from nml.corruptions import CORRUPTIONS

    root = tmp_path / "data"
    write_tarball(root, "cifar10", ["train", "test"], ["a", "b"], per_class=3)
    task = load_task("cifar10c", root=root)
    assert task.kind == "ood" and len(task.tests) == len(CORRUPTIONS) * 5
    assert "gaussian_noise@3" in task.tests
    noisy = task.tests["gaussian_noise@3"]
    clean = load_images("cifar10", "test", root=root)
    assert noisy.images.shape == clean.images.shape and not torch.equal(noisy.images, clean.images)
    assert torch.equal(noisy.labels, clean.labels)


# ------------------------------------------------------------------------------- other sources

def write_fake_cifar10(root: Path, per_batch=4):
    """torchvision's on-disk CIFAR-10 format: pickled dicts in cifar-10-batches-py/."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, size=per_batch).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return folder


def test_torchvision_cifar10_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    folder = write_fake_cifar10(tmp_path)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # our files, not the real md5s
    train = load_images("torchvision:CIFAR10", "train", root=tmp_path, download=False)
    test = load_images("torchvision:CIFAR10", "test", root=tmp_path, download=False)
    assert train.images.shape == (20, 3, 32, 32) and len(test) == 4 and train.classes[3] == "c3"
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f)
    assert torch.equal(test.images[1], torch.from_numpy(entry["data"][1].reshape(3, 32, 32)))
    assert test.labels.tolist() == entry["labels"]
    assert load_images("torchvision:CIFAR10", "test", root=tmp_path, download=False,
                       image_size=16).images.shape == (4, 3, 16, 16)


def test_torchvision_missing_files(tmp_path):
    with pytest.raises(DataError, match="download"):
        load_images("torchvision:CIFAR10", "train", root=tmp_path, download=False)


def write_image_tree(base: Path, domains, classes, per_class=5, size=(12, 12)):
    rng = np.random.default_rng(1)
    for d in domains:
        for c in classes:
            folder = base / d / c if d else base / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}.jpg").write_bytes(jpeg_bytes(rng, size))


def test_imagefolder_domainnet_layout(tmp_path):
    base = tmp_path / "domainnet"
    write_image_tree(base, ["clipart", "real"], ["apple", "zebra", "bee"], per_class=10)
    name = f"imagefolder:{base}"
    train = load_images(name, "train", domain="real")
    assert train.classes == ["apple", "bee", "zebra"] and len(train) == 21 and train.domain == "real"
    assert len(load_images(name, "all", domain="clipart")) == 30
    with pytest.raises(DataError, match="clipart, real"):
        load_images(name, "train")


def test_imagefolder_class_and_split_layouts(tmp_path):
    flat = tmp_path / "flat"
    write_image_tree(flat, [None], ["a", "b"], per_class=10)
    assert len(load_images(f"imagefolder:{flat}", "test")) == 6
    split = tmp_path / "split"
    write_image_tree(split, ["train", "test"], ["x", "y"], per_class=4)
    d = load_images(f"imagefolder:{split}", "train", image_size=8)
    assert d.images.shape == (8, 3, 8, 8) and d.labels.tolist() == [0] * 4 + [1] * 4
    with pytest.raises(DataError, match="does not exist"):
        load_images(f"imagefolder:{tmp_path / 'nope'}")


def test_imagefolder_empty_class_in_one_split_is_refused(tmp_path):
    split = tmp_path / "split"
    write_image_tree(split, ["train", "test"], ["x", "y"], per_class=4)
    (split / "test" / "z").mkdir()                      # an empty class folder in one split
    write_image_tree(split / "train", [None], ["z"], per_class=4)
    for which in ("train", "test"):
        with pytest.raises(DataError, match=r"class 'z' has no images in .*test.*empty"):
            load_images(f"imagefolder:{split}", which if which == "test" else "all")
    flat = tmp_path / "flat"
    write_image_tree(flat, [None], ["a", "b"], per_class=10)
    (flat / "c").mkdir()
    with pytest.raises(DataError, match="class 'c' has no images"):
        load_images(f"imagefolder:{flat}", "train")


# ------------------------------------------------------------------------------------- tasks

def test_synthetic_tasks():
    assert set(TASKS) == {"cifar10", "caltech101", "pacs_photo", "pacs_sketch", "cifar10c",
                          "pacs_heldout_sketch", "synthetic_id", "synthetic_ood_photo", "synthetic_ood_sketch"}
    t = load_task("synthetic_id")
    assert t.kind == "id" and list(t.tests) == ["test"] and t.num_classes == 10
    o = load_task("synthetic_ood_photo")
    assert o.kind == "ood" and o.train.domain == "photo" and len(o.train) == 420
    assert sorted(o.tests) == ["art_painting", "cartoon", "sketch"]
    assert torch.equal(o.train.images, load_task("synthetic_ood_photo").train.images)


# ---------------------------------------------------------------------------- tensor helpers

def test_augment_is_crop_and_flip_and_deterministic():
    x = load_images("synthetic_id", "test").images[:16]
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    c = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    pad = 2  # 4 px at 32 px -> 2 px at 16 px
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(len(x)):
        candidates = [crop.flip(-1) if flip else crop
                      for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                      for crop in [padded[i, :, dy:dy + 16, dx:dx + 16]] for flip in (False, True)]
        assert any(torch.equal(a[i], cand) for cand in candidates)


def test_to_float_normalises():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    y = to_float(x, (0.5, 0.5, 0.5), (0.5, 0.25, 0.5))
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, 0], torch.full((2, 2), -1.0)) and torch.allclose(y[1, 1], torch.full((2, 2), 2.0))
    with pytest.raises(DataError):
        to_float(x.float(), (0.5,) * 3, (0.5,) * 3)


# ---------------------------------------------------------------------------------- real data

def real_root():
    for candidate in (os.environ.get("NML_REAL_DATA"), "/work/shared/data"):
        if candidate and (Path(candidate) / "pacs.tar.xz").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(real_root() is None, reason="real PACS tarball not present")
def test_real_pacs():
    root = real_root()
    domains = {d: load_images("pacs", "all", root=root, domain=d) for d in DOMAINS["pacs"]}
    assert {d: len(v) for d, v in domains.items()} == {
        "photo": 1670, "art_painting": 2048, "cartoon": 2344, "sketch": 3929}
    photo = domains["photo"]
    assert photo.images.shape[1:] == (3, 64, 64) and photo.num_classes == 7
    assert photo.classes == sorted(photo.classes)
    mean, std = channel_stats(torch.cat([v.images for v in domains.values()]))
    assert np.allclose(mean, CHANNEL_STATS["pacs"][0], atol=2e-3)
    assert np.allclose(std, CHANNEL_STATS["pacs"][1], atol=2e-3)
