"""CLIP pre-training with swapped captions (nml.clip): configs, captions, noise, training, store."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from nml import clip
from nml.data import synthetic_class_descriptions
from nml.errors import ConfigError, DataError
from nml.experiments import SCALES, Pipeline
from nml.models import build_backbone
from nml.pretrain import PretrainConfig, pretrain
from nml.results import ResultStore

torch.set_num_threads(1)

SMALL = dict(scale="tiny", dataset="synthetic_upstream", backbone="clip_vit_micro", epochs=2,
             batch_size=64, image_size=16, train_fraction=0.25, warmup_epochs=0)


def test_every_clip_backbone_is_built_from_its_open_clip_config():
    import open_clip

    for name, config_name in clip.CLIP_BACKBONES.items():
        config = clip.model_config(name)
        size = config["vision_cfg"]["image_size"]
        model = build_backbone(name, 0, image_size=size)
        clip._register_configs()
        assert open_clip.get_model_config(config_name) == config
        assert model.family == "clip" and model.feature_dim == config["embed_dim"]
        assert model.trunk is model.clip.visual and model.is_vit
        feats = model.features(torch.zeros(3, 3, size, size))
        assert feats.shape == (3, config["embed_dim"])


def test_a_clip_backbone_at_the_wrong_image_size_is_a_clear_error():
    with pytest.raises(ConfigError, match="configured for 16 px"):
        build_backbone("clip_vit_micro", 0, image_size=32)
    with pytest.raises(ConfigError, match="no classifier head"):
        build_backbone("clip_vit_micro", 10, image_size=16)
    with pytest.raises(ConfigError, match="unknown CLIP backbone"):
        clip.model_config("clip_vit_huge")


def test_captions_name_the_class_with_each_template():
    texts = clip.class_texts("cifar100", ["maple_tree", "sweet_pepper"])
    assert texts == ["maple tree", "sweet pepper"]
    table = clip.caption_table(texts)
    templates = clip.caption_templates()
    assert len(table) == 2 * len(templates)
    assert table[len(templates)] == templates[0]("sweet pepper")
    assert all("maple tree" in t for t in table[:len(templates)])
    # the synthetic classes are named by their parts, all distinct
    names = clip.class_texts("synthetic_upstream", [])
    assert len(names) == 40 and len(set(names)) == 40
    assert names == synthetic_class_descriptions("synthetic_upstream")


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.1, 0.3])
def test_caption_swapping_moves_the_requested_fraction(ratio):
    labels = np.repeat(np.arange(100), 50)
    T = len(clip.caption_templates())
    ids, moved = clip._captions(labels, T, ratio, seed=3)
    expected = int(round(ratio * len(labels)))
    expected -= expected % 2
    assert moved.sum() == expected
    # unmoved images keep a caption of their own class; the caption multiset is unchanged
    assert np.all(ids[~moved] // T == labels[~moved])
    clean, _ = clip._captions(labels, T, 0.0, seed=3)
    assert sorted(ids.tolist()) == sorted(clean.tolist())
    mismatch = np.mean(ids // T != labels)
    assert mismatch <= moved.mean()
    if ratio:   # a swap inside one class (1 % of pairs here) changes no class
        assert mismatch > 0.95 * moved.mean()


def test_captions_fit_the_text_towers_context():
    tok = clip.tokenizer_for("clip_vit_micro")
    for texts in (clip.class_texts("synthetic_upstream", []),):
        tokens = tok(clip.caption_table(texts))
        assert int((tokens[:, -1] != 0).sum()) == 0   # nothing truncated


def test_clip_pretraining_learns_and_resumes_exactly(tmp_path):
    cfg = PretrainConfig.from_dict(SMALL)
    whole = pretrain(cfg, checkpoint_dir=tmp_path / "a", progress=False)
    assert len(whole.history) == 2 and whole.train_noise_rate == 0.0
    assert whole.history[1]["loss"] < whole.history[0]["loss"]
    assert 0.0 <= whole.test_accuracy <= 100.0
    assert whole.extra == {"caption_mismatch_rate": 0.0}
    part = pretrain(cfg, checkpoint_dir=tmp_path / "b", progress=False, stop_after_epoch=1)
    assert part.epochs_run == 1
    resumed = pretrain(cfg, checkpoint_dir=tmp_path / "b", progress=False)
    assert resumed.epochs_run == 1 and resumed.start_epoch == 1
    assert resumed.test_accuracy == whole.test_accuracy
    for a, b in zip(whole.backbone.state_dict().values(), resumed.backbone.state_dict().values()):
        assert torch.equal(a, b)
    again = pretrain(cfg, checkpoint_dir=tmp_path / "b", progress=False)
    assert again.epochs_run == 0 and again.test_accuracy == whole.test_accuracy


def test_clip_pretraining_beats_chance_at_zero_shot():
    cfg = PretrainConfig.from_dict({**SMALL, "epochs": 6, "train_fraction": 0.5})
    result = pretrain(cfg, checkpoint_dir=None, progress=False)
    assert result.test_accuracy > 3 * 100 / 40     # 40 classes: chance is 2.5 %


def test_noisy_clip_pretraining_reports_the_swap_rate():
    cfg = PretrainConfig.from_dict({**SMALL, "epochs": 1, "noise": 0.2})
    result = pretrain(cfg, checkpoint_dir=None, progress=False)
    n = 1000   # a quarter of 4,000 images
    assert result.train_noise_rate == pytest.approx(round(0.2 * n) / n)
    assert 0.15 < result.extra["caption_mismatch_rate"] <= result.train_noise_rate


@pytest.mark.parametrize("override,match", [
    ({"noise_type": "asymmetric", "noise_classes": (0, 1)}, "caption swapping"),
    ({"label_smoothing": 0.1}, "label_smoothing"),
])
def test_clip_pretraining_rejects_supervised_only_settings(override, match):
    with pytest.raises(ConfigError, match=match):
        pretrain(PretrainConfig.from_dict({**SMALL, **override}), checkpoint_dir=None,
                 progress=False)


def test_clip_units_are_stored_under_the_clip_experiment(tmp_path):
    scale = dataclasses.replace(SCALES["tiny"], clip_overrides=(
        ("epochs", 1), ("batch_size", 64), ("train_fraction", 0.25), ("warmup_epochs", 0)),
        tune_epochs=2)
    store = ResultStore(tmp_path)
    pipe = Pipeline(scale, store=store, progress=False, device="cpu",
                    checkpoint_dir=tmp_path / "ckpt")
    pcfg = pipe.pretrain_config("clip_vit_micro", 0.1, 0)
    assert pcfg.epochs == 1 and pcfg.train_fraction == 0.25
    unit = pipe.pretrain(pcfg)
    metrics = set(unit.rows["metric"])
    assert metrics == {"zero_shot_accuracy", "train_noise_rate", "caption_mismatch_rate"}
    assert unit.experiment == "clip"
    spectrum = pipe.spectrum(pcfg, "synthetic_id")
    tuned = pipe.tune(pcfg, "synthetic_id", pipe.tune_config("nmtune", seed=0))
    assert spectrum.experiment == "clip" and tuned.experiment == "clip"
    assert len(spectrum.arrays["test"]) == 64   # D = the joint embedding of clip_vit_micro
    index = store.index()
    assert set(index["experiment"]) == {"clip"}
    assert {"pretrain", "frozen", "nmtune"} <= set(index["method"])
    saved = json.loads((tmp_path / "clip" / f"{unit.key}.json").read_text())
    assert saved["config"]["backbone"] == "clip_vit_micro"


@pytest.mark.parametrize("scale_name", ["tiny", "cpu", "cifar"])
def test_the_clip_grids_use_the_scales_clip_model_and_caption_noise(scale_name):
    from nml.chapters import CHAPTERS, ChapterParams, chapter_grids

    assert "clip" in CHAPTERS
    scale = SCALES[scale_name]
    pre, rest = chapter_grids("clip", ChapterParams(), scale_name)
    assert pre.methods == ("pretrain",) and rest.methods == ("frozen", "lp", "mlp", "nmtune")
    for grid in (pre, rest):
        assert grid.backbones == (scale.clip_backbone,)
        assert grid.noise_levels == scale.clip_noise_levels
    assert rest.tasks == scale.tasks and rest.tune_overrides == {"lam": 0.01}
    assert clip.is_clip_backbone(scale.clip_backbone)
    size = clip.model_config(scale.clip_backbone)["vision_cfg"]["image_size"]
    assert size == scale.image_size


def test_clip_pretraining_refuses_torchrun_and_overlong_captions(monkeypatch):
    cfg = PretrainConfig.from_dict({**SMALL, "epochs": 1})
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        pretrain(cfg, checkpoint_dir=None, progress=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(clip, "class_texts", lambda dataset, classes: ["very long name " * 10] * 40)
    with pytest.raises(DataError, match="longer than the text tower's context"):
        pretrain(cfg, checkpoint_dir=None, progress=False)
