"""Downstream tuning on features: paper defaults, learning, the NMTune path, bad input."""

import numpy as np
import pytest
import torch

from nml.errors import ConfigError, DataError
from nml.tune import (PAPER_LR, PAPER_WEIGHT_DECAY, FeatureMLP, TuneConfig, evaluate_logits,
                      tune_on_features)


def _blobs(n, dim=16, classes=4, seed=0, shift=3.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * shift
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_paper_defaults():
    assert TuneConfig(method="lp").learning_rate == 0.01 == PAPER_LR["lp"]
    assert TuneConfig(method="lp").decay == 0.0
    assert TuneConfig(method="nmtune").learning_rate == 1e-3
    assert TuneConfig(method="nmtune").decay == 1e-4 == PAPER_WEIGHT_DECAY["nmtune"]
    assert TuneConfig(method="lora").learning_rate == 2e-4
    assert TuneConfig(method="ft").learning_rate == 1e-4
    cfg = TuneConfig()
    assert (cfg.epochs, cfg.lam, cfg.mlp_hidden_mult, cfg.lora_ratio) == (30, 0.01, 4, 8)


@pytest.mark.parametrize("bad", [dict(method="svm"), dict(fraction=0.0), dict(fraction=1.5),
                                 dict(lam=-1.0), dict(label_noise=1.0), dict(svd_method="qr"),
                                 dict(epochs="3")])
def test_bad_configs(bad):
    with pytest.raises(ConfigError):
        TuneConfig.from_dict(bad)


def test_feature_mlp_shapes_and_residual():
    mlp = FeatureMLP(8, hidden_mult=4, layers=2)
    assert [m.weight.shape for m in mlp.net if hasattr(m, "weight")] == [(32, 8), (8, 32)]
    res = FeatureMLP(8, residual=True)
    with torch.no_grad():
        for p in res.parameters():
            p.zero_()
    f = torch.randn(5, 8)
    assert torch.equal(res(f), f)


def test_evaluate_logits_by_hand():
    logits = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [1., 0.]])
    labels = torch.tensor([0, 1, 1, 1])
    out = evaluate_logits(logits, labels, 2)
    assert out["accuracy"] == pytest.approx(50.0)
    # predictions [0, 0, 1, 0]; class 0: tp1 fp2 fn0 -> f1 2/4; class 1: tp1 fp0 fn2 -> f1 2/4
    assert out["f1"] == pytest.approx(50.0)
    skewed = evaluate_logits(torch.tensor([[1., 0.], [0., 1.], [0., 1.]]), torch.tensor([0, 1, 0]), 2)
    # class 0: tp1 fp0 fn1 -> 2/3; class 1: tp1 fp1 fn0 -> 2/3
    assert skewed["f1"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("method", ["lp", "mlp", "nmtune"])
def test_blackbox_methods_learn(method):
    torch.set_num_threads(1)
    xtr, ytr = _blobs(400, seed=0)
    xte, yte = _blobs(200, seed=1)
    cfg = TuneConfig(method=method, epochs=5, batch_size=64)
    res = tune_on_features(xtr, ytr, {"test": (xte, yte)}, 4, cfg, progress=False)
    metrics = {m["metric"]: m["value"] for m in res.metrics}
    assert metrics["accuracy"] > 90 and 0 <= metrics["f1"] <= 100
    assert np.isfinite(metrics["sve"]) and np.isfinite(metrics["lsvr"])
    assert res.singular_values["test"].shape == (16,)
    assert len(res.history) == 5
    if method == "nmtune":
        assert {"mse", "cov", "svd"} <= set(res.history[0])
        assert -1.0 <= res.history[-1]["svd"] < 0


def test_blackbox_is_deterministic_given_seed():
    xtr, ytr = _blobs(200)
    cfg = TuneConfig(method="mlp", epochs=2, batch_size=64, seed=3)
    a = tune_on_features(xtr, ytr, {"t": (xtr, ytr)}, 4, cfg, progress=False)
    b = tune_on_features(xtr, ytr, {"t": (xtr, ytr)}, 4, cfg, progress=False)
    assert a.metrics == b.metrics


def test_fraction_and_downstream_label_noise_change_the_run():
    xtr, ytr = _blobs(300)
    base = TuneConfig(method="lp", epochs=2, batch_size=64)
    full = tune_on_features(xtr, ytr, {"t": (xtr, ytr)}, 4, base, progress=False)
    noisy = tune_on_features(xtr, ytr, {"t": (xtr, ytr)}, 4, base.replace(label_noise=0.5),
                             progress=False)
    assert full.metrics != noisy.metrics


def test_too_small_fraction_is_a_clear_error():
    xtr, ytr = _blobs(3)
    with pytest.raises(DataError, match="raise `fraction`"):
        tune_on_features(xtr[:1], ytr[:1], {}, 4, TuneConfig(epochs=1), progress=False)


def test_whitebox_method_rejected_on_features():
    with pytest.raises(ConfigError, match="tune_backbone"):
        tune_on_features(*_blobs(10), {}, 4, TuneConfig(method="lora"), progress=False)


@pytest.fixture(scope="module")
def tiny_images():
    from nml.data import CHANNEL_STATS, load_images
    data = load_images("synthetic_id", "train", image_size=16)
    test = load_images("synthetic_id", "test", image_size=16)
    mean, std = CHANNEL_STATS["synthetic_upstream"]
    return data.subset(slice(0, 256)), test.subset(slice(0, 128)), mean, std


@pytest.mark.parametrize("method", ["lora", "lora_nmtune", "ft"])
def test_whitebox_methods(method, tiny_images):
    """LoRA trains adapters only (base weights untouched, original model untouched); FT all."""
    from nml.models import build_backbone
    from nml.tune import tune_backbone
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, test, mean, std = tiny_images
    backbone = build_backbone("vit_micro", num_classes=40, image_size=16)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    cfg = TuneConfig(method=method, epochs=1, batch_size=64)
    res = tune_backbone(backbone, train.images, train.labels, {"test": (test.images, test.labels)},
                        10, cfg, mean=mean, std=std, progress=False)
    metrics = {m["metric"]: m["value"] for m in res.metrics}
    assert set(metrics) == {"accuracy", "f1", "sve", "lsvr", "sve_authors", "lsvr_authors"}
    assert all(np.isfinite(v) for v in metrics.values())
    assert res.singular_values["test"].shape == (64,)
    assert res.singular_values["authors/test"].shape == (64,)
    # tuning works on a copy: the caller's pre-trained backbone is never modified
    after = backbone.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lora_leaves_base_weights_and_ft_changes_them(tiny_images, monkeypatch):
    import copy as copy_mod

    from nml.models import build_backbone
    from nml.tune import tune_backbone
    torch.set_num_threads(1)
    train, test, mean, std = tiny_images
    copies = []
    real_deepcopy = copy_mod.deepcopy

    def spy(obj, *a, **k):
        out = real_deepcopy(obj, *a, **k)
        copies.append(out)
        return out
    monkeypatch.setattr("nml.tune.copy.deepcopy", spy)
    torch.manual_seed(0)
    backbone = build_backbone("vit_micro", num_classes=40, image_size=16)
    base = {k: v.clone() for k, v in backbone.state_dict().items()}
    fc1 = "trunk.blocks.0.mlp.fc1.weight"
    assert fc1 in base
    for method, should_change in (("lora", False), ("ft", True)):
        copies.clear()
        tune_backbone(backbone, train.images, train.labels, {}, 10,
                      TuneConfig(method=method, epochs=1, batch_size=64, lr=1e-2),
                      mean=mean, std=std, progress=False)
        tuned = copies[0].state_dict()
        weight = next(v for k, v in tuned.items()
                      if k.endswith("blocks.0.mlp.fc1.weight") or k.endswith("blocks.0.mlp.fc1.base_layer.weight"))
        assert (not torch.equal(weight, base[fc1])) == should_change, method


# --- the authors' variant (TuneConfig(variant="authors")) ---------------------------------------

def test_authors_variant_config_keeps_old_keys_and_fixes_its_knobs():
    assert "variant" not in TuneConfig().to_dict() and "res_scale_init" not in TuneConfig().to_dict()
    cfg = TuneConfig.authors_code("nmtune", epochs=2)
    assert (cfg.variant, cfg.batch_size, cfg.epochs, cfg.res_scale_init) == ("authors", 64, 2, 0.5)
    assert cfg.to_dict()["variant"] == "authors" and cfg.hash() != TuneConfig(
        method="nmtune", batch_size=64, epochs=2).hash()
    loss = cfg.loss_config()
    assert (loss.variant, loss.lam, loss.w_mse, loss.w_cov, loss.w_svd, loss.top_k) == \
        ("authors", 1.0, 1.0, 0.04, 0.001, 5)
    assert TuneConfig.authors_code("lora_nmtune").loss_config().w_mse == 0.0
    for bad in (dict(w_cov=0.5), dict(svd_top_k=3), dict(lam=0.1), dict(residual_mlp=True),
                dict(augment=True)):
        with pytest.raises(ConfigError, match="variant='authors' fixes"):
            TuneConfig.authors_code("nmtune", **bad)
    with pytest.raises(ConfigError, match="res_scale_init only acts"):
        TuneConfig(method="nmtune", res_scale_init=1.0)
    with pytest.raises(ConfigError, match="variant must be one of"):
        TuneConfig(variant="author")


def test_authors_head_batchnorm_learnable_scale_and_classifier_init():
    from nml.tune import _classifier
    torch.manual_seed(0)
    mlp = FeatureMLP(8, batchnorm=True, res_scale=0.5)
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert mlp.scale.shape == (1, 8) and torch.all(mlp.scale == 0.5) and mlp.scale.requires_grad
    f = torch.randn(16, 8)
    mlp.eval()
    torch.testing.assert_close(mlp(f), mlp.scale * mlp.net(f) + f)
    head = _classifier(128, 10, TuneConfig.authors_code("nmtune"))
    assert torch.all(head.bias == 0)
    bound = (6 / 128) ** 0.5          # kaiming_uniform_, a = 0: sqrt(2) * sqrt(3 / fan_in)
    assert head.weight.abs().max() <= bound and head.weight.abs().max() > 0.9 * bound
    paper = _classifier(128, 10, TuneConfig(method="nmtune"))
    assert paper.weight.abs().max() <= 1 / 128 ** 0.5 and paper.bias.abs().max() > 0


def _off_diagonal(x):
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def test_authors_step_matches_their_training_loop():
    """One step (the whole set in one batch) of the authors' variant: its loss equals the loss
    the authors' nml_tune.py loop computes, written here with plain modules as they do."""
    from torch import nn
    torch.set_num_threads(1)
    n, dim, classes, seed = 24, 6, 3, 4
    f1, y = _blobs(n, dim=dim, classes=classes, seed=1)
    f2 = f1 + 0.3 * torch.randn(n, dim, generator=torch.Generator().manual_seed(2))
    cfg = TuneConfig.authors_code("nmtune", epochs=1, batch_size=n, seed=seed,
                                  svd_method="exact")
    res = tune_on_features(f1, y, {"test": (f1, y)}, classes, cfg, progress=False,
                           train_features_view2=f2)
    # their modules, created in the same order from the same seed
    torch.manual_seed(seed)
    lin1, bn, lin2 = nn.Linear(dim, 4 * dim), nn.BatchNorm1d(4 * dim), nn.Linear(4 * dim, dim)
    scale = torch.ones(1, dim) * 0.5
    nn.Linear(dim, classes)           # the classifier module draws its default init first
    weights = torch.nn.init.kaiming_uniform_(torch.empty(classes, dim))
    inputs = torch.cat([f1, f2])
    mlp_feats = scale * lin2(torch.relu(bn(lin1(inputs)))) + inputs
    logits = torch.nn.functional.linear(mlp_feats, weights, torch.zeros(classes))
    loss = torch.nn.CrossEntropyLoss()(logits, torch.cat([y, y]))
    _, mlp_feats_s = mlp_feats.chunk(2)
    loss += 1.0 * torch.nn.MSELoss()(torch.nn.functional.normalize(mlp_feats_s, dim=1),
                                     torch.nn.functional.normalize(f1, dim=1))
    s = torch.linalg.svdvals(mlp_feats)
    s = s / torch.sum(s)
    loss -= 0.001 * torch.mean(s[:5])
    centred = mlp_feats - mlp_feats.mean(dim=0)
    cov = (centred.T @ centred) / (centred.size(0) - 1)
    loss += 0.04 * _off_diagonal(cov).pow(2).sum().div(centred.size(1))
    assert res.history[0]["loss"] == pytest.approx(loss.item(), rel=1e-5)


def test_authors_variant_needs_two_views_and_runs_lp_without():
    f, y = _blobs(64)
    with pytest.raises(ConfigError, match="two augmented views"):
        tune_on_features(f, y, {"test": (f, y)}, 4, TuneConfig.authors_code("mlp", epochs=1),
                         progress=False)
    with pytest.raises(DataError, match="same images"):
        tune_on_features(f, y, {"test": (f, y)}, 4, TuneConfig.authors_code("mlp", epochs=1),
                         progress=False, train_features_view2=f[:10])
    res = tune_on_features(f, y, {"test": (f, y)}, 4, TuneConfig.authors_code("lp", epochs=2),
                           progress=False)
    assert {m["metric"] for m in res.metrics} >= {"accuracy", "sve_authors", "lsvr_authors"}


def test_authors_lora_rank_is_eight():
    from nml.models import build_backbone, lora_target_ranks
    backbone = build_backbone("vit_micro", num_classes=10, image_size=16)
    assert set(lora_target_ranks(backbone, rank=8).values()) == {8}
    assert set(lora_target_ranks(backbone).values()) == {64 // 8, 256 // 8}
