"""Chapter 07_practical_models: the registry of the paper's public models, the text loaders, the
frozen MiniLM encoder and the text grid (LP / MLP / NMTune on its features), end to end on tiny
generated text tarballs in the real on-disk format."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch

from nml import data, practical, practical_text
from nml.errors import ConfigError, DataError
from nml.experiments import MissingResult
from nml.practical import (PRACTICAL_MODELS, WeightsUnavailable, load_practical_model, loading_code,
                           resolves_offline)
from nml.practical_text import PracticalParams, TextConfig, run_text_grid
from nml.results import INDEX_COLUMNS, ResultStore

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_data_state(monkeypatch):
    """Each test verifies and reads its own tarballs (no memory of earlier tests' files)."""
    monkeypatch.delenv("NML_DATA", raising=False)
    monkeypatch.setattr(data.archives, "_VERIFIED", {})
    monkeypatch.setattr(data.text, "_TEXTS", {})


# ------------------------------------------------------------------------------------- registry

@pytest.mark.parametrize("key", list(PRACTICAL_MODELS))
def test_every_registry_entry_resolves_offline(key):
    entry = PRACTICAL_MODELS[key]
    assert resolves_offline(entry), f"{entry.library} does not list {entry.full_name}"
    code = loading_code(entry)
    assert repr(entry.name) in code and (entry.tag is None or repr(entry.tag) in code)


@pytest.mark.parametrize("key,change", [
    ("efficientnet_b3", {"name": "tf_efficientnet_b3.ns_jft_in1kk"}),
    ("resnetv2_152x2", {"name": "resnetv2_152x2_bit.goog_in21"}),
    ("vit_l_clip", {"tag": "laion2b_s32b_b82"}),
    ("convnext_l_clip", {"name": "convnext_large"}),
    ("bert_l", {"name": "bert-large-uncasd"}),
    ("roberta_l", {"model_type": "bert"}),          # a known name under the wrong architecture
    ("gpt2", {"name": "gpt2-larg"}),
])
def test_a_misspelt_name_does_not_resolve(key, change):
    assert not resolves_offline(dataclasses.replace(PRACTICAL_MODELS[key], **change))


def test_registry_matches_the_papers_table_3():
    names = {m.paper_name: m for m in PRACTICAL_MODELS.values()}
    assert set(names) == {"EfficientNet-B3", "ResNetv2-152x2", "Swin-L", "ViT-L", "ConvNext-L",
                          "BERT-L", "RoBERTa-L", "GPT-2"}
    assert names["ConvNext-L"].tag.startswith("laion2b") and names["ViT-L"].tag.startswith("laion2b")
    assert [m.params_m for m in PRACTICAL_MODELS.values()] == [12, 236, 197, 304, 200, 336, 355, 774]
    table = practical.registry_table()
    assert len(table) == len(PRACTICAL_MODELS) + len(practical.API_MODELS)


def test_loading_without_internet_is_one_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # nothing cached
    before = constants.HF_HUB_OFFLINE
    with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE") as err:
        load_practical_model("gpt2", offline=True)
    assert "gpt2-large" in str(err.value) and "internet" in str(err.value)
    assert constants.HF_HUB_OFFLINE == before              # offline mode only while loading
    with pytest.raises(ConfigError, match="unknown practical model"):
        load_practical_model("gpt-5")
    with pytest.raises(ConfigError, match="does not list"):
        load_practical_model(dataclasses.replace(PRACTICAL_MODELS["gpt2"], name="gpt2-larg"))


# ------------------------------------------------------------------------------- text tarballs

POSITIVE = ["a great and wonderful film", "truly moving , funny and smart", "an excellent ride",
            "beautiful acting and a lovely story", "i loved every minute", "brilliant and warm"]
NEGATIVE = ["a dull and awful film", "boring , flat and stupid", "a terrible mess",
            "ugly acting and a pointless story", "i hated every minute", "tedious and cold"]


def _add(tf: tarfile.TarFile, name: str, text: str) -> None:
    blob = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tf.addfile(info, io.BytesIO(blob))


def _record(root: Path, path: Path) -> None:
    with open(root / "SHA256SUMS", "a") as f:
        f.write(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")


def write_sst2(root: Path, sizes=None, sums=True) -> Path:
    """sst2.tar.xz as in the data folder: sst2/{train,dev,test}.tsv with a label<TAB>sentence
    header, sentences cycling through the positive and negative templates."""
    sizes = sizes or {"train": 48, "dev": 10, "test": 12}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sst2.tar.xz"
    with tarfile.open(path, "w:xz") as tf:
        for split, n in sizes.items():
            lines = ["label\tsentence"]
            for i in range(n):
                label = i % 2
                pool = POSITIVE if label else NEGATIVE
                lines.append(f"{label}\t{pool[(i // 2) % len(pool)]} #{i}")
            _add(tf, f"sst2/{split}.tsv", "\n".join(lines) + "\n")
    if sums:
        _record(root, path)
    return path


def write_imdb(root: Path, per_class=6) -> Path:
    """imdb.tar.xz: imdb/{train,test}/{pos,neg}/<id>_<rating>.txt, reviews with <br /> breaks."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "imdb.tar.xz"
    with tarfile.open(path, "w:xz") as tf:
        for split in ("train", "test"):
            for cls, pool, rating in (("pos", POSITIVE, 9), ("neg", NEGATIVE, 2)):
                for i in reversed(range(per_class)):  # stored out of order on purpose
                    review = f"{pool[i % len(pool)]}.<br /><br />I would say {pool[(i + 1) % len(pool)]}."
                    _add(tf, f"imdb/{split}/{cls}/{i}_{rating}.txt", review)
    _record(root, path)
    return path


def test_text_loaders_read_the_on_disk_format(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_sst2(root)
    write_imdb(root)
    train = data.load_texts("sst2", "train", root=root)
    assert len(train) == 48 and train.labels.dtype == torch.int64
    assert train.labels[:4].tolist() == [0, 1, 0, 1] and train.classes == ["negative", "positive"]
    assert train.texts[1] == f"{POSITIVE[0]} #1" and train.ids[0] == "train:2"
    assert len(data.load_texts("sst2", "dev", root=root)) == 10
    monkeypatch.setenv("NML_DATA", str(root))                      # the root from $NML_DATA
    imdb = data.load_texts("imdb", "test")
    assert len(imdb) == 12 and imdb.labels.tolist() == [0] * 6 + [1] * 6   # neg first
    assert imdb.ids[:2] == ["test/neg/0_2", "test/neg/1_2"]                # sorted by review id
    assert "<br" not in imdb.texts[0] and imdb.texts[0].startswith(NEGATIVE[0] + ". I would")
    sub = imdb.subset([11, 0])
    assert sub.labels.tolist() == [1, 0] and sub.texts[1] == imdb.texts[0]
    with pytest.raises(DataError, match="no split 'dev'"):
        data.load_texts("imdb", "dev")
    with pytest.raises(DataError, match="unknown text dataset"):
        data.load_texts("sst5")


def test_corrupt_or_malformed_text_tarballs_are_clear_errors(tmp_path):
    good = tmp_path / "good"
    blob = write_sst2(good).read_bytes()

    flipped = tmp_path / "flipped"
    flipped.mkdir()
    (flipped / "SHA256SUMS").write_text((good / "SHA256SUMS").read_text())
    (flipped / "sst2.tar.xz").write_bytes(blob[:60] + bytes([blob[60] ^ 0xFF]) + blob[61:])
    with pytest.raises(DataError, match="sst2.tar.xz is corrupt or truncated"):
        data.load_texts("sst2", root=flipped)

    recorded = tmp_path / "recorded"      # truncated, with its (wrong) checksum recorded
    recorded.mkdir()
    (recorded / "sst2.tar.xz").write_bytes(blob[: len(blob) // 2])
    _record(recorded, recorded / "sst2.tar.xz")
    with pytest.raises(DataError, match="could not be read"):
        data.load_texts("sst2", root=recorded)

    nosums = tmp_path / "nosums"
    write_sst2(nosums, sums=False)
    with pytest.raises(DataError, match="SHA256SUMS"):
        data.load_texts("sst2", root=nosums)

    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(bad / "sst2.tar.xz", "w:xz") as tf:
        _add(tf, "sst2/train.tsv", "label\tsentence\n1\tfine\nmaybe\tnot a label\n")
    _record(bad, bad / "sst2.tar.xz")
    with pytest.raises(DataError, match="line 3"):
        data.load_texts("sst2", root=bad)

    with pytest.raises(DataError, match=r"imdb\.tar\.xz.*NML_DATA"):
        data.load_texts("imdb", root=good)


# ------------------------------------------------------------------------------------ encoder

@pytest.fixture(scope="module")
def encoder():
    return practical_text.load_text_encoder("all-MiniLM-L6-v2", device="cpu")


def test_minilm_gives_unit_384d_embeddings_deterministically(encoder):
    texts = POSITIVE[:3] + NEGATIVE[:3]
    first = practical_text.encode_texts(encoder, texts, batch_size=4, progress=False)
    again = practical_text.encode_texts(encoder, texts, batch_size=4, progress=False)
    assert first.shape == (6, 384) and first.dtype == torch.float32
    assert torch.allclose(first.norm(dim=1), torch.ones(6), atol=1e-5)
    assert torch.equal(first, again)
    alone = practical_text.encode_texts(encoder, texts[:1], progress=False)
    assert torch.allclose(alone[0], first[0], atol=1e-5)  # order / batch mates do not matter
    assert encoder.max_seq_length == practical_text.TEXT_ENCODERS["all-MiniLM-L6-v2"].max_seq_length
    # a real sentence encoder: a paraphrase lies closer than an unrelated sentence
    a, b, c = practical_text.encode_texts(encoder, ["the movie was great", "the film was excellent",
                                               "stock markets fell sharply today"], progress=False)
    assert float(a @ b) > float(a @ c) + 0.2


# --------------------------------------------------------------------------------- end to end

def test_text_grid_stores_practical_units_and_replays_them(tmp_path, monkeypatch, encoder):
    root = tmp_path / "data"
    write_sst2(root)
    write_imdb(root)
    monkeypatch.setattr(practical_text, "load_text_encoder", lambda *a, **k: encoder)
    store = ResultStore(tmp_path / "results")
    cfg = TextConfig(scale="tiny", epochs=2, seeds=(0, 1), ood_test_limit=10, train_limit=40)
    result = run_text_grid(cfg, store=store, root=root, device="cpu", progress=False)

    units = list(store.units("practical"))
    assert len(units) == 1 + 3 * 2
    rows = result.rows
    assert set(INDEX_COLUMNS) - {"experiment"} <= set(rows.columns)
    assert set(rows["experiment"]) == {"practical"} and set(rows["scale"]) == {"tiny"}
    assert set(rows["backbone"]) == {"all-MiniLM-L6-v2"} and rows["noise"].isna().all()
    assert set(rows["method"]) == {"frozen", "lp", "mlp", "nmtune"}
    acc = result.metric("accuracy")
    assert set(acc["test_set"]) == {"test", "dev", "imdb"} and len(acc) == 3 * 2 * 3
    assert acc["value"].between(0, 100).all()
    assert result.info["sizes"] == {"train": 40, "test": 12, "dev": 10, "imdb": 10}
    frozen = result.metric("sve", method="frozen")
    assert set(frozen["test_set"]) == {"train", "test", "dev", "imdb"}
    assert ("frozen", None, "imdb") in result.spectra and ("nmtune", 1, "imdb") in result.spectra
    index = store.index()
    assert (index["experiment"] == "practical").sum() == len(rows)

    # Replay: nothing is encoded, loaded or tuned again, and the rows are the same.
    monkeypatch.setattr(practical_text, "load_text_encoder", lambda *a, **k: pytest.fail("encoded"))
    monkeypatch.setattr("nml.tune.tune_on_features", lambda *a, **k: pytest.fail("tuned"))
    again = run_text_grid(cfg, store=store, root=root, progress=False, replay_only=True)
    assert again.rows.sort_values(["method", "seed", "test_set", "metric"]).reset_index(
        drop=True)["value"].equals(rows.sort_values(["method", "seed", "test_set", "metric"])
                                   .reset_index(drop=True)["value"])
    with pytest.raises(MissingResult, match="not stored"):
        run_text_grid(cfg.replace(seeds=(0, 1, 2)), store=store, root=root, progress=False,
                      replay_only=True)
    gap = practical_text.method_gap(rows, metric="accuracy", test_set="imdb", method="nmtune",
                               baseline="lp")
    assert gap["n"] == 2 and gap["n_baseline"] == 2


# ------------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("values,message", [
    ({"lam": -1}, "'lam' = -1"),
    ({"lam": "big"}, "'lam' must be float"),
    ({"epochs": 0}, "'epochs' = 0"),
    ({"ood_test_limit": 1}, "'ood_test_limit' = 1"),
    ({"image_scale": "huge"}, "'image_scale' = 'huge' is unknown"),
    ({"device": "tpu"}, "'device' = 'tpu' is unknown"),
    ({"compute": "yes"}, "'compute' must be bool"),
    ({"seeds": 3}, "unknown config key"),
])
def test_chapter_parameters_are_checked(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        PracticalParams.from_dict(values)


def test_text_config_is_strict_and_keys_ignore_speed_settings():
    with pytest.raises(ConfigError, match="methods"):
        TextConfig(methods=("lora",))
    with pytest.raises(ConfigError, match="seeds"):
        TextConfig(seeds=(0, 0))
    with pytest.raises(ConfigError, match="text scale"):
        TextConfig(scale="cifar")
    cfg = PracticalParams().text_config()
    assert cfg.scale == "cpu" and cfg.ood_test_limit == 3000 and cfg.epochs == 10
    assert PracticalParams(ood_test_limit=None).text_config().scale == "full"
    assert cfg.data_key() == cfg.replace(encode_batch_size=8, max_seq_length=256).data_key()
    assert cfg.tune_config("lp", 0).hash() == cfg.replace(lam=0.1).tune_config("lp", 0).hash()
    assert cfg.tune_config("nmtune", 0).lam == 0.01


@pytest.mark.parametrize("parameters,message", [
    ({"lam": -1}, "'lam' = -1.0 is out of range"),
    ({"ood_test_limit": "all"}, "'ood_test_limit' must be int or None"),
])
def test_a_bad_papermill_parameter_stops_the_chapter(parameters, message, tmp_path):
    papermill = pytest.importorskip("papermill")
    chapter = Path(__file__).resolve().parents[1] / "notebooks" / "07_practical_models.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(chapter), str(tmp_path / "out.ipynb"),
                                   parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(chapter.parent))
    assert err.value.ename == "ConfigError"
    assert message in err.value.evalue
