"""Backbones (timm ResNets with a CIFAR stem, timm ViTs, open_clip towers) and peft LoRA."""

import json

import pytest
import torch
from torch import nn

from nml.errors import ConfigError
from nml.models import BACKBONES, Backbone, build_backbone, lora_target_ranks, lora_wrap

torch.set_num_threads(1)

# The classifiers (CLIP backbones have no head; tests/test_clip.py covers them).
CIFAR_MODELS = [name for name in BACKBONES if not name.startswith(("openclip:", "clip_"))]
EXPECTED_DIM = {"resnet18_cifar": 512, "resnet18_cifar_narrow": 128, "resnet_micro": 64,
                "vit_small_cifar": 192, "vit_narrow_cifar": 128, "vit_micro": 64}


@pytest.mark.parametrize("name", CIFAR_MODELS)
@pytest.mark.parametrize("size", [16, 32])
def test_features_and_logits_shapes(name, size):
    model = build_backbone(name, 7, image_size=size).eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    assert model.feature_dim == EXPECTED_DIM[name]
    assert feats.shape == (3, EXPECTED_DIM[name])
    assert logits.shape == (3, 7)
    torch.testing.assert_close(logits, model.head(feats))


def test_resnet18_cifar_stem_keeps_resolution():
    model = build_backbone("resnet18_cifar", 10)
    conv = model.trunk.conv1
    assert (conv.kernel_size, conv.stride, conv.out_channels) == ((3, 3), (1, 1), 64)
    assert isinstance(model.trunk.maxpool, nn.Identity)
    with torch.no_grad():
        fmap = model.trunk.forward_features(torch.randn(2, 3, 32, 32))
    assert fmap.shape == (2, 512, 4, 4)       # 32 -> 32 -> 16 -> 8 -> 4: no stem downsampling
    # Same layout as torchvision's CIFAR ResNet-18: about 11.2 M parameters with a 10-way head.
    assert 11.1e6 < sum(p.numel() for p in model.parameters()) < 11.2e6


def test_narrow_resnet_is_the_same_net_at_quarter_width():
    wide = build_backbone("resnet18_cifar", 10)
    narrow = build_backbone("resnet18_cifar_narrow", 10)
    wide_convs = [m for m in wide.trunk.modules() if isinstance(m, nn.Conv2d)]
    narrow_convs = [m for m in narrow.trunk.modules() if isinstance(m, nn.Conv2d)]
    assert len(wide_convs) == len(narrow_convs)
    for w, n in zip(wide_convs, narrow_convs):
        assert (w.kernel_size, w.stride) == (n.kernel_size, n.stride)
        assert w.out_channels == 4 * n.out_channels
    with torch.no_grad():
        assert narrow.trunk.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 128, 4, 4)


def test_vit_shapes_and_pooling():
    model = build_backbone("vit_small_cifar", 100)
    trunk = model.trunk
    assert trunk.patch_embed.patch_size == (4, 4)
    assert trunk.patch_embed.num_patches == 64
    assert (trunk.embed_dim, len(trunk.blocks), trunk.blocks[0].attn.num_heads) == (192, 6, 3)
    assert trunk.blocks[0].mlp.fc1.out_features == 4 * 192
    assert trunk.global_pool == "avg" and trunk.cls_token is None
    micro = build_backbone("vit_micro", 5, image_size=16)
    assert micro.trunk.patch_embed.num_patches == 16


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ConfigError, match="resnet18_cifar.*vit_micro"):
        build_backbone("resnet50", 10)
    with pytest.raises(ConfigError, match="open_clip.list_models"):
        build_backbone("openclip:NoSuchModel-B-99", 10)
    with pytest.raises(ConfigError, match="no published weights"):
        build_backbone("resnet_micro", 10, pretrained=True)
    with pytest.raises(ConfigError, match="patch size"):
        build_backbone("vit_micro", 10, image_size=18)
    with pytest.raises(ConfigError, match="num_classes"):
        build_backbone("vit_micro", -1)


@pytest.mark.parametrize("ratio", [8, 4])
def test_lora_only_on_vit_mlp_layers(ratio):
    model = build_backbone("vit_narrow_cifar", 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = lora_wrap(model, ratio=ratio)

    adapted = {name: m for name, m in model.named_modules() if hasattr(m, "lora_A")}
    expected = {f"trunk.blocks.{i}.mlp.{fc}" for i in range(4) for fc in ("fc1", "fc2")}
    assert set(adapted) == expected
    for name, module in adapted.items():
        rank = module.lora_A["default"].out_features
        assert rank == module.in_features // ratio      # fc1: 128 // r, fc2: 512 // r
        assert module.lora_B["default"].in_features == rank
        assert module.scaling["default"] == 1.0
    assert lora_target_ranks(model, ratio)["trunk.blocks.0.mlp.fc2"] == 512 // ratio

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if ".lora_" in n or n.startswith("head.")}
    assert {"head.weight", "head.bias"} <= trainable
    assert len(trainable) == 2 * len(expected) + 2

    # LoRA starts as the identity (B = 0), and disable_adapter gives the frozen features.
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        with_lora = model.features(x)
        with peft_model.disable_adapter():
            without = model.features(x)
    torch.testing.assert_close(with_lora, without)
    for key, value in before.items():
        assert torch.equal(peft_model.get_base_model().state_dict()[key.replace(
            ".mlp.fc1.", ".mlp.fc1.base_layer.").replace(".mlp.fc2.", ".mlp.fc2.base_layer.")],
            value)


def test_lora_trains_only_adapters_and_head():
    model = build_backbone("vit_micro", 5, image_size=16)
    lora_wrap(model)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.arange(4))
    loss.backward()
    opt.step()
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name


def test_lora_refuses_convnets():
    with pytest.raises(ConfigError, match="ViT"):
        lora_wrap(build_backbone("resnet_micro", 10, image_size=16))
    with pytest.raises(ConfigError, match="rank 0"):
        lora_wrap(build_backbone("vit_micro", 10, image_size=16), ratio=128)


def test_openclip_tower_from_a_small_config(tmp_path):
    import open_clip

    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                             "patch_size": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2,
                           "layers": 1}}
    (tmp_path / "nml-test-tiny-vit.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path)
    model = build_backbone("openclip:nml-test-tiny-vit", 3, image_size=32)
    assert isinstance(model, Backbone) and model.family == "openclip"
    assert model.feature_dim == 32
    with torch.no_grad():
        assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 32)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert model.input_mean is not None and len(model.input_std) == 3
    lora_wrap(model, ratio=8)
    adapted = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {f"trunk.transformer.resblocks.{i}.mlp.{fc}" for i in range(2)
                       for fc in ("c_fc", "c_proj")}
    with pytest.raises(ConfigError, match="tag"):
        build_backbone("openclip:nml-test-tiny-vit", 3, pretrained=True)


def test_weights_fingerprint_tells_runs_apart_but_not_layouts():
    """The feature cache's identity of a model: equal weights (in any memory layout) give one
    fingerprint, one changed value another."""
    import copy

    from nml.features import weights_fingerprint
    torch.manual_seed(0)
    model = build_backbone("resnet_micro", 10)
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert weights_fingerprint(twin) == weights_fingerprint(model)
    assert len(weights_fingerprint(model)) == 16
    with torch.no_grad():
        first = next(twin.parameters())
        first[(0,) * first.dim()] += 1e-6
    assert weights_fingerprint(twin) != weights_fingerprint(model)
    # buffers count too: BatchNorm running statistics are part of the model
    other = copy.deepcopy(model)
    next(b for n, b in other.named_buffers() if n.endswith("running_mean")).add_(1.0)
    assert weights_fingerprint(other) != weights_fingerprint(model)
