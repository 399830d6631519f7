"""The embedded synthetic world of the ``tiny`` scale (see :mod:`nml.data` for what it draws and
why it is a fair miniature).

Used by every chapter at the ``tiny`` scale.
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F

from ..errors import DataError
from .core import DOMAINS, ImageData, check_domain

# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------

SYNTHETIC_WORLD_SEED = 0
"""Seed of the synthetic world (vocabulary, class prototypes, samples). Fixed, like a real dataset."""

SHAPES = ("blob", "bar", "ring", "square", "cross")
PALETTE = torch.tensor([[0.90, 0.15, 0.15], [0.15, 0.75, 0.20], [0.20, 0.30, 0.95],
                         [0.95, 0.85, 0.10], [0.85, 0.20, 0.85], [0.10, 0.85, 0.85]])
_PARTS_PER_CLASS = 3
SYNTHETIC_SIZES = {  # classes, train per class, test per class (per domain for synthetic_ood)
    "synthetic_upstream": (40, 100, 25),
    "synthetic_id": (10, 100, 50),
    "synthetic_ood": (10, 60, 0),
}
_RENDER_CHUNK = 500
SYNTHETIC_VERSION = 2
"""Version of the synthetic generator; bumped whenever any synthetic image changes (v2: fairer
OOD domains). Part of :func:`synthetic_version`, the data checksum of the synthetic sets."""
ART_HUE_JITTER_DEG = 20.0  # art_painting's per-image hue shift, uniform in +-this (palette: 60 deg apart)


def _stream_seed(*parts) -> int:
    return zlib.crc32("/".join(str(p) for p in (SYNTHETIC_WORLD_SEED,) + parts).encode())


def _prototypes(num_classes: int, g: torch.Generator, exclude: set) -> list[dict]:
    """Class prototypes: distinct multisets of (shape, colour) parts with a layout each."""
    protos = []
    while len(protos) < num_classes:
        shape = torch.randint(0, len(SHAPES), (_PARTS_PER_CLASS,), generator=g)
        colour = torch.randint(0, len(PALETTE), (_PARTS_PER_CLASS,), generator=g)
        pos = torch.rand(_PARTS_PER_CLASS, 2, generator=g) * 1.1 - 0.55
        angle = torch.rand(_PARTS_PER_CLASS, generator=g) * math.pi
        size = 0.30 + 0.15 * torch.rand(_PARTS_PER_CLASS, generator=g)
        key = tuple(sorted(zip(shape.tolist(), colour.tolist())))
        if key in exclude:
            continue  # a new class must differ from every other in its parts, not only its layout
        exclude.add(key)
        protos.append({"shape": shape, "colour": colour, "pos": pos, "angle": angle, "size": size})
    return protos


def synthetic_world() -> dict[str, list[dict]]:
    """The class prototypes of every synthetic dataset (fixed world seed): ``{name: [prototype]}``,
    each prototype's parts as ``shape``, ``colour``, ``pos``, ``angle`` and ``size`` tensors.
    Used by chapter 08_asymmetric_noise (the related-class subset) and the synthetic renderers."""
    g = torch.Generator().manual_seed(_stream_seed("prototypes"))
    used: set = set()
    upstream = _prototypes(SYNTHETIC_SIZES["synthetic_upstream"][0], g, used)
    downstream = _prototypes(SYNTHETIC_SIZES["synthetic_id"][0], g, used)
    return {"synthetic_upstream": upstream, "synthetic_id": downstream, "synthetic_ood": downstream}


def _part_masks(shape, pos, angle, size, size_px: int, hard: bool) -> torch.Tensor:
    """Alpha masks n x P x H x W of parts given per-part shape ids and geometry in [-1, 1] units."""
    lin = (torch.arange(size_px) + 0.5) / size_px * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    dx = xx - pos[..., 0, None, None]
    dy = yy - pos[..., 1, None, None]
    c, s = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    u, v = c * dx + s * dy, -s * dx + c * dy
    r = size[..., None, None]
    soft = (0.5 if hard else 2.0) / size_px  # edge width: about one pixel, sharper for cartoons

    def box(a, b, ha, hb):
        return torch.sigmoid((ha - a.abs()) / soft) * torch.sigmoid((hb - b.abs()) / soft)

    rad = (u ** 2 + v ** 2).sqrt()
    masks = torch.stack([
        torch.sigmoid((0.7 * r - rad) / soft) if hard else torch.exp(-rad ** 2 / (2 * (0.6 * r) ** 2)),
        box(u, v, r, 0.3 * r),
        torch.sigmoid((0.25 * r - (rad - 0.8 * r).abs()) / soft),
        box(u, v, 0.75 * r, 0.75 * r),
        torch.maximum(box(u, v, r, 0.22 * r), box(v, u, r, 0.22 * r)),
    ], 2)
    return masks.gather(2, shape[:, :, None, None, None].expand(-1, -1, 1, size_px, size_px))[:, :, 0]


_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance weights


def _hue_shift(rgb: torch.Tensor, radians: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """Rotate colours ``... x 3`` about the grey axis by ``radians`` and scale their saturation.

    A rotation of a few tens of degrees keeps each palette colour nearer to itself than to any
    other palette colour (neighbours are about 60 degrees apart), so class colours stay recognisable.
    """
    grey = rgb.mean(-1, keepdim=True)
    d = rgb - grey
    k = torch.full((3,), 3 ** -0.5)
    cross = torch.linalg.cross(k.expand_as(d), d, dim=-1)
    c, s = torch.cos(radians)[..., None], torch.sin(radians)[..., None]
    return (grey + saturation[..., None] * (d * c + cross * s)).clamp(0, 1)


def _edges(alpha: torch.Tensor) -> torch.Tensor:
    """Outline strength (0-1) of masks ``n x 1 x H x W``: absolute finite differences."""
    gx = alpha[..., :, 1:] - alpha[..., :, :-1]
    gy = alpha[..., 1:, :] - alpha[..., :-1, :]
    return (F.pad(gx.abs(), (0, 1, 0, 0)) + F.pad(gy.abs(), (0, 0, 0, 1))).clamp(0, 1)


def _render(protos: list[dict], labels: torch.Tensor, size_px: int, domain: str,
            g: torch.Generator) -> torch.Tensor:
    """Render one chunk of samples: prototype + jitter + distractor, styled for ``domain``.

    The draws shared by all domains come first and in a fixed order, so ``photo`` (and the
    upstream / ID sets, which are rendered as photos) do not depend on the other domains' styles.
    """
    # long: one seeded pass over the four domains; reordering its draws would change every synthetic
    # image
    n, P = len(labels), _PARTS_PER_CLASS
    shape = torch.stack([protos[k]["shape"] for k in labels.tolist()])
    colour = PALETTE[torch.stack([protos[k]["colour"] for k in labels.tolist()])]
    pos = torch.stack([protos[k]["pos"] for k in labels.tolist()])
    angle = torch.stack([protos[k]["angle"] for k in labels.tolist()])
    size = torch.stack([protos[k]["size"] for k in labels.tolist()])
    # Per-sample jitter: what a CNN must be invariant to and a linear model on pixels is not.
    shift = (torch.rand(n, 1, 2, generator=g) * 2 - 1) * 0.30
    scale = 0.8 + 0.4 * torch.rand(n, 1, 1, generator=g)
    pos = pos * scale + shift + 0.08 * torch.randn(n, P, 2, generator=g)
    angle = angle + 0.3 * torch.randn(n, P, generator=g)
    size = size * scale[..., 0] * (1 + 0.15 * torch.randn(n, P, generator=g)).clamp(0.6, 1.4)
    colour = (colour + 0.12 * torch.randn(n, P, 3, generator=g)).clamp(0, 1)
    # A distractor part from the same vocabulary, anywhere: present in 70 % of samples.
    shape = torch.cat([shape, torch.randint(0, len(SHAPES), (n, 1), generator=g)], 1)
    colour = torch.cat([colour, PALETTE[torch.randint(0, len(PALETTE), (n, 1), generator=g)]], 1)
    pos = torch.cat([pos, torch.rand(n, 1, 2, generator=g) * 1.6 - 0.8], 1)
    angle = torch.cat([angle, torch.rand(n, 1, generator=g) * math.pi], 1)
    size = torch.cat([size, 0.25 + 0.1 * torch.rand(n, 1, generator=g)], 1)
    present = torch.ones(n, P + 1)
    present[:, P] = (torch.rand(n, generator=g) < 0.7).float()
    background = 0.35 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    low_freq = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=(size_px, size_px),
                             mode="bilinear", align_corners=False)
    pixel_noise = torch.randn(n, 3, size_px, size_px, generator=g)
    hard = domain in ("cartoon", "sketch")
    alpha = _part_masks(shape, pos, angle, size, size_px, hard) * present[..., None, None]

    def paint(img, colours, masks):
        for p in range(P + 1):
            a = masks[:, p:p + 1]
            img = img * (1 - a) + a * colours[:, p, :, None, None]
        return img

    if domain == "photo":
        img = paint((background + 0.08 * low_freq).clamp(0, 1), colour, alpha)
        img = img + 0.03 * pixel_noise
    elif domain == "art_painting":
        # Same objects and palette, painted: a mild per-image hue shift and saturation change
        # (not a palette permutation), a tinted canvas with strong low-frequency texture, parts
        # smeared by a brush, oriented brush strokes, and a global contrast / brightness change.
        hue = (ART_HUE_JITTER_DEG * math.pi / 180) * (2 * torch.rand(n, 1, generator=g) - 1)
        saturation = 0.7 + 0.5 * torch.rand(n, 1, generator=g)
        colour = _hue_shift(colour, hue.expand(n, P + 1), saturation.expand(n, P + 1))
        canvas = _hue_shift(background[..., 0, 0], hue[:, 0], saturation[:, 0])
        img = (canvas[..., None, None] + 0.15 * low_freq).clamp(0, 1)
        smear = F.avg_pool2d(alpha, 3, stride=1, padding=1, count_include_pad=False)
        img = paint(img, colour, 0.35 * smear + 0.65 * alpha)
        horizontal = torch.rand(n, generator=g) < 0.5
        grain = torch.randn(n, 1, size_px, size_px, generator=g)
        strokes = torch.where(horizontal[:, None, None, None],
                              F.avg_pool2d(grain, (1, 5), stride=1, padding=(0, 2)),
                              F.avg_pool2d(grain, (5, 1), stride=1, padding=(2, 0)))
        img = img * (1 + 0.2 * strokes) + 0.03 * pixel_noise
        contrast = 0.7 + 0.5 * torch.rand(n, 1, 1, 1, generator=g)
        brightness = 0.12 * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
        img = (img - 0.5) * contrast + 0.5 + brightness
    elif domain == "cartoon":
        img = paint(background.expand(n, 3, size_px, size_px).clone(), colour,
                    (alpha > 0.5).float())
        img = (img * 2).round() / 2  # posterise to 3 levels per channel
    elif domain == "sketch":
        # Pencil on paper: dark part outlines plus hatching inside each part whose darkness
        # follows the part's luminance (the only trace of its colour), on paper whose brightness
        # and grain vary per image (not a constant flip of the photo background).
        luma = colour @ _LUMA
        paper = 0.5 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
        pressure = 0.6 + 0.35 * torch.rand(n, 1, 1, 1, generator=g)
        lin = torch.arange(size_px, dtype=torch.float32)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        diagonal = torch.where(torch.rand(n, 1, 1, 1, generator=g) < 0.5, xx + yy, xx - yy)
        hatch = 0.5 + 0.5 * torch.cos(diagonal * (2 * math.pi / 3))
        ink = torch.zeros(n, 1, size_px, size_px)
        for p in range(P + 1):
            a = alpha[:, p:p + 1]
            shade = (1 - luma[:, p, None, None, None]) * (0.7 + 0.3 * hatch)
            ink = torch.maximum(ink, torch.maximum(0.6 * _edges(a), a * shade))
        grain = 0.04 * pixel_noise.mean(1, keepdim=True) + 0.05 * low_freq.mean(1, keepdim=True)
        img = (paper * (1 - pressure * ink) + grain).expand(n, 3, size_px, size_px)
    else:
        raise DataError(f"synthetic domain {domain!r} is unknown; use one of {', '.join(DOMAINS['synthetic_ood'])}")
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


COLOUR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")  # the PALETTE rows, in order
_NUMBER_WORDS = {2: "two ", 3: "three "}


def synthetic_class_descriptions(name: str) -> list[str]:
    """What each class of a synthetic dataset shows, in words: its parts, e.g. "two red rings
    and blue cross" (label ``k`` is item ``k``). The captions of CLIP pre-training at the tiny
    scale, where the synthetic classes have no other names.

    Used by chapter 01_noisy_pretraining (CLIP at the tiny scale).
    """
    if name not in SYNTHETIC_SIZES:
        raise DataError(f"synthetic dataset {name!r} is unknown; use one of {', '.join(SYNTHETIC_SIZES)}")
    out = []
    for proto in synthetic_world()[name]:
        counts: dict[tuple[str, str], int] = {}
        for s, c in zip(proto["shape"].tolist(), proto["colour"].tolist()):
            key = (COLOUR_NAMES[c], SHAPES[s])
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{_NUMBER_WORDS.get(n, '')}{colour} {shape if n == 1 else shape + ('es' if shape.endswith('s') else 's')}"
                 for (colour, shape), n in sorted(counts.items())]
        out.append(parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])
    return out


def synthetic_version() -> str:
    """Identifier of the synthetic data (``"synthetic-v<SYNTHETIC_VERSION>-seed<world seed>"``): record
    it as the data checksum of results and key caches of the ``tiny`` scale on it.

    Used by every chapter at the ``tiny`` scale (through the result store's provenance).
    """
    return f"synthetic-v{SYNTHETIC_VERSION}-seed{SYNTHETIC_WORLD_SEED}"


def make_synthetic(name: str, split: str = "train", *, domain: str | None = None,
                   image_size: int | None = None) -> ImageData:
    """Generate a synthetic dataset split (deterministic; see the module docstring for the design).

    ``synthetic_ood`` gives every image of a domain here (``split`` is ignored; :func:`load_images`
    applies the seeded split). Used by every chapter at the ``tiny`` scale.
    """
    if name not in SYNTHETIC_SIZES:
        raise DataError(f"synthetic dataset {name!r} is unknown; use one of {', '.join(SYNTHETIC_SIZES)}")
    size_px = int(image_size or 16)
    num_classes, n_train, n_test = SYNTHETIC_SIZES[name]
    if name == "synthetic_ood":
        domain = check_domain(name, domain, DOMAINS[name])
        per_class, stream = n_train, (name, domain)
    else:
        if domain not in (None, "photo"):
            raise DataError(f"dataset '{name}' has no domains; drop domain= (or use synthetic_ood)")
        per_class, stream = (n_train if split == "train" else n_test), (name, split)
        domain = None
    protos = synthetic_world()[name]
    labels = torch.arange(num_classes).repeat(per_class)  # interleaved: every chunk has all classes
    g = torch.Generator().manual_seed(_stream_seed(*stream))
    chunks = [_render(protos, labels[i:i + _RENDER_CHUNK], size_px, domain or "photo", g)
              for i in range(0, len(labels), _RENDER_CHUNK)]
    classes = [f"{'u' if name == 'synthetic_upstream' else 'd'}{k:02d}" for k in range(num_classes)]
    return ImageData(torch.cat(chunks), labels, classes, name, domain)
