"""The tiny pipeline end to end, replay from the store, chapter parameters, the CLI."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from nml.chapters import ChapterParams, chapter_grids, levels_with, run_chapter
from nml.errors import ConfigError
from nml.experiments import MissingResult, Pipeline, get_scale
from nml.results import ResultStore


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """The whole tiny pipeline once for this module: 3 noise levels, LP / MLP / NMTune, spectra."""
    from nml.experiments import run_tiny_pipeline
    root = tmp_path_factory.mktemp("results")
    store = ResultStore(root)
    units = run_tiny_pipeline(store)
    scale = get_scale("tiny")
    assert units["pretrain"] == len(scale.noise_levels)
    return store


def test_tiny_pipeline_fills_the_index(tiny_store):
    index = pd.read_csv(tiny_store.root / "index.csv")
    scale = get_scale("tiny")
    pre = index[(index.experiment == "pretrain") & (index.metric == "accuracy")]
    assert sorted(pre.noise) == sorted(scale.noise_levels)
    # the realised pre-training noise rate is the requested one
    rate = index[index.metric == "train_noise_rate"].set_index("noise")["value"]
    for noise, value in rate.items():
        assert value == pytest.approx(noise, abs=1e-3)
    methods = set(index[index.experiment != "pretrain"].method)
    assert {"lp", "mlp", "nmtune", "frozen"} <= methods
    acc = index[(index.metric == "accuracy") & (index.method == "lp") & (index.test_set == "test")]
    assert (acc.value > 100 / 10 + 5).all(), "linear probe should beat chance on synthetic_id"


def test_replay_needs_no_compute(tiny_store):
    pipe = Pipeline("tiny", store=tiny_store, replay_only=True, progress=False)
    pcfg = pipe.pretrain_config(pipe.scale.backbones[0], 0.1, 0)
    unit = pipe.tune(pcfg, "synthetic_id", pipe.tune_config("lp"))
    assert unit.replayed and len(unit.arrays["test"]) > 0
    with pytest.raises(MissingResult):
        pipe.tune(pcfg, "synthetic_id", pipe.tune_config("lp", seed=99))


def test_chapter_params_errors():
    with pytest.raises(ConfigError, match="'noise'.*out of range"):
        ChapterParams.from_dict(noise=1.5)
    with pytest.raises(ConfigError, match="'noise' must be float"):
        ChapterParams.from_dict(noise="0.1")
    with pytest.raises(ConfigError, match="'task' = 'imagenet' is unknown"):
        ChapterParams.from_dict(task="imagenet")
    with pytest.raises(ConfigError, match="'scale' = 'huge' is unknown"):
        ChapterParams.from_dict(scale="huge")
    with pytest.raises(ConfigError, match="unknown config key"):
        ChapterParams.from_dict(nosie=0.1)


def test_chapter_grids_include_the_users_noise():
    assert levels_with((0.0, 0.1), 0.15) == (0.0, 0.1, 0.15)
    assert levels_with((0.0, 0.1), 0.1) == (0.0, 0.1)
    grids = chapter_grids("02_linear_probe", ChapterParams(noise=0.15), "tiny")
    assert 0.15 in grids[0].noise_levels
    with pytest.raises(ConfigError, match="unknown chapter"):
        chapter_grids("99_nothing", ChapterParams(), "tiny")


def test_chapter_computes_then_replays(tiny_store):
    params = ChapterParams(scale="tiny", noise=0.1, backbone=get_scale("tiny").backbones[0])
    _, computed = run_chapter("03_feature_spectrum", params, store=tiny_store, progress=False)
    pipe, replayed = run_chapter("03_feature_spectrum", params.replace(compute=False),
                                 store=tiny_store, progress=False)
    assert pipe.scale.name == "tiny"
    pd.testing.assert_frame_equal(computed[0].rows, replayed[0].rows)
    sve = replayed[0].metric("sve", method="frozen")
    assert set(sve.noise) == set(get_scale("tiny").noise_levels)
    lp = replayed[0].metric("accuracy", method="lp", test_set="test")
    assert set(lp.seed) == set(get_scale("tiny").tune_seeds)
    # auto picks the tiny scale when nothing better is fully stored
    pipe, _ = run_chapter("03_feature_spectrum", params.replace(scale="auto", compute=False),
                          store=tiny_store, progress=False)
    assert pipe.scale.name == "tiny"


def test_replay_only_chapter_names_the_fix(tiny_store):
    params = ChapterParams(scale="tiny", noise=0.2, compute=False)
    with pytest.raises(ConfigError, match="-p compute True"):
        run_chapter("01_noisy_pretraining", params, store=tiny_store, progress=False)


def _nml(*args):
    return subprocess.run([sys.executable, "-m", "nml", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,message", [
    (["pretrain", "--noise", "1.5"], "out of range"),
    (["tune", "--method", "svm"], "unknown tuning method"),
    (["pretrain", "--scale", "huge"], "unknown scale"),
    (["pretrain", "--set", "nosie=0.1"], "unknown config key"),
    (["tune", "--task", "imagenet"], "unknown task"),
    (["pretrain", "--backbone", "resnet1000"], "resnet1000"),
    (["grid", "--scale", "tiny", "--shard", "0/2"], "add --by-model"),
    (["grid", "--scale", "tiny", "--by-model", "--shard", "2/2"], "shard 2/2 does not exist"),
    (["grid", "--scale", "tiny", "--by-model", "--shard", "half"], "is not K/N"),
])
def test_cli_bad_input_is_one_clear_line(args, message, tmp_path):
    out = _nml(*args, "--results", str(tmp_path), "--quiet")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("nml: error:") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_shards_split_the_model_major_grid_without_overlap(tmp_path):
    from nml.chapters import model_major
    pipe = Pipeline("cpu_seeds", store=ResultStore(tmp_path), device="cpu", progress=False)
    chapters = ("01_noisy_pretraining", "02_linear_probe", "03_feature_spectrum", "06_nmtune")
    params = ChapterParams.from_dict(scale="cpu_seeds")

    def units(shard):
        return [(model, g) for model, grids in model_major(pipe, chapters, params, shard=shard)
                for g in grids]

    whole = units((0, 1))
    models = [model for model, _ in whole]
    assert len(set(models)) == 15  # 5 noise levels x 3 pre-training seeds
    halves = [units((0, 2)), units((1, 2))]
    first, second = ({model for model, _ in half} for half in halves)
    assert first and second and not first & second
    assert first | second == set(models)
    # Every unit of the whole grid lands in exactly one shard, in the whole grid's order.
    assert sorted(map(repr, halves[0] + halves[1])) == sorted(map(repr, whole))
    assert [u for u in whole if u[0] in first] == halves[0]


def test_cli_lists_subcommands():
    out = _nml("--help")
    for sub in ("pretrain", "tune", "spectrum", "bench", "grid"):
        assert sub in out.stdout


def test_cli_replays_stored_unit(tiny_store):
    out = _nml("spectrum", "--noise", "0.1", "--results", str(tiny_store.root), "--quiet",
               "--task", "synthetic_id")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["metric"] for r in rows} == {"sve", "lsvr", "sve_authors", "lsvr_authors"} and "replayed" in out.stderr


def test_downstream_label_noise_units_store_the_realised_rate(tiny_store):
    """Chapter 09 shows the realised flip rate from the store: each unit records its own."""
    pipe = Pipeline("tiny", store=tiny_store, progress=False)
    pcfg = pipe.pretrain_config(pipe.scale.backbones[0], 0.0, 0)
    unit = pipe.tune(pcfg, "synthetic_id", pipe.tune_config("lp", label_noise=0.2, epochs=1),
                     experiment="noisy_downstream")
    rate = unit.rows[unit.rows["metric"] == "train_noise_rate"]
    assert rate["test_set"].tolist() == ["train"]
    assert rate["value"].iloc[0] == pytest.approx(0.2, abs=1e-3)
    clean = pipe.tune(pcfg, "synthetic_id", pipe.tune_config("lp", epochs=1))
    assert "train_noise_rate" not in set(clean.rows["metric"])


def test_authors_variant_tunes_on_two_cached_views_and_spectra_carry_both(tiny_store):
    import torch

    from nml.experiments import authors_view_seeds
    from nml.tune import TuneConfig
    pipe = Pipeline("tiny", store=tiny_store, progress=False)
    pcfg = pipe.pretrain_config(pipe.scale.backbones[0], 0.0, 0)
    unit = pipe.tune(pcfg, "synthetic_id", TuneConfig.authors_code("nmtune", epochs=1),
                     experiment="ablation")
    assert unit.config["tune"]["variant"] == "authors" and unit.config["tune"]["batch_size"] == 64
    assert {"accuracy", "sve", "lsvr", "sve_authors", "lsvr_authors"} <= set(unit.rows["metric"])
    assert {"test", "authors/test"} <= set(unit.arrays)
    views = [pipe.features(pcfg, "synthetic_id", augment_seed=s, augmentation="resized_crop")
             for s in authors_view_seeds(0)]
    plain = pipe.features(pcfg, "synthetic_id")
    assert views[0]["train"][0].shape == views[1]["train"][0].shape == plain["train"][0].shape
    assert not torch.equal(views[0]["train"][0], views[1]["train"][0])
    assert not torch.equal(views[0]["train"][0], plain["train"][0])
    # only the training images are augmented
    assert torch.equal(views[0]["tests"]["test"][0], plain["tests"]["test"][0])
    spec = pipe.spectrum(pcfg, "synthetic_id")
    assert {"sve", "lsvr", "sve_authors", "lsvr_authors"} <= set(spec.rows["metric"])
    assert {"test", "authors/test", "train", "authors/train"} <= set(spec.arrays)


def _migration_script():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / "migrate_spectrum_authors.py"
    spec = importlib.util.spec_from_file_location("migrate_spectrum_authors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_adds_the_authors_rows_without_changing_keys(tiny_store, tmp_path, capsys):
    """A spectrum unit stored with the paper's rows only (as before) gets the authors' rows from
    its cached features, keeps its key, and a second run does nothing; a unit whose stored
    values its features do not reproduce is left alone."""
    import torch

    from nml.config import config_hash
    from nml.results import UnitOutput, default_cache_root
    migrate = _migration_script()
    store = ResultStore(tmp_path / "results")
    pipe = Pipeline("tiny", store=tiny_store, progress=False)
    keys = {}
    for noise in (0.0, 0.1):
        pcfg = pipe.pretrain_config(pipe.scale.backbones[0], noise, 0)
        feats = pipe.features(pcfg, "synthetic_id")
        rows, arrays = pipe.spectrum_output(pcfg, "synthetic_id", feats, ("paper",))
        if noise > 0:   # a unit whose stored numbers are not those of its features
            rows = [{**r, "value": r["value"] * 1.01} for r in rows]
        unit = store.put("spectrum", pipe.spectrum_key(pcfg, "synthetic_id"),
                         UnitOutput(rows=rows, arrays=arrays))
        keys[noise] = unit.key
        # the caches the script reads were written before the key held the weights' fingerprint
        tensors = {"train/x": feats["train"][0], "train/y": feats["train"][1],
                   **{f"test/{n}/{xy}": t for n, pair in feats["tests"].items()
                      for xy, t in zip("xy", pair)}}
        legacy = f"{config_hash(migrate.feature_payload(unit))}.pt"
        torch.save(tensors, default_cache_root() / "features" / legacy)
    assert migrate.main(["--results", str(store.root), "--recompute", ""]) == 0
    out = capsys.readouterr().out
    assert "migrated: 1" in out and "not migrated: 1" in out and "not the same features" in out
    done = store.load("spectrum", keys[0.0])
    assert done.key == store.key("spectrum", done.config)        # the key did not change
    want = pipe.spectrum(pipe.pretrain_config(pipe.scale.backbones[0], 0.0, 0), "synthetic_id")
    got = done.rows.set_index(["test_set", "metric"])["value"]
    for r in want.rows.itertuples():
        assert got[(r.test_set, r.metric)] == pytest.approx(r.value, rel=1e-12)
    np_arrays = done.arrays
    assert set(np_arrays) == set(want.arrays)
    assert done.provenance["amendments"][0]["rows_added"] == 4
    untouched = store.load("spectrum", keys[0.1])
    assert "sve_authors" not in set(untouched.rows["metric"])
    index = store.index()
    assert set(index[index["key"] == keys[0.0]]["metric"]) == {"sve", "lsvr", "sve_authors",
                                                               "lsvr_authors"}
    assert migrate.main(["--results", str(store.root), "--recompute", ""]) == 0
    assert "already: 1" in capsys.readouterr().out


def test_auto_scale_says_when_a_better_scale_is_stored_in_part(tiny_store, tmp_path):
    """A chapter that falls back past a partly stored scale says how far that grid has got."""
    import shutil
    from pathlib import Path

    from nml.chapters import stored_models

    root = tmp_path / "results"
    shutil.copytree(tiny_store.root, root)
    store = ResultStore(root)
    partial = Pipeline("cpu_seeds", store=store, replay_only=True, progress=False)
    assert stored_models(partial) == (0, 15)
    # the grid's first real cpu_seeds model (noise 0, pre-training seed 0), as committed
    key = store.key("pretrain", partial.pretrain_config("resnet18_cifar_narrow", 0.0, 0))
    repo_unit = Path(__file__).resolve().parents[1] / "results" / "pretrain" / f"{key}.json"
    assert repo_unit.exists(), "the committed cpu_seeds unit (noise 0, seed 0) is missing"
    (root / "pretrain").mkdir(exist_ok=True)
    shutil.copy(repo_unit, root / "pretrain" / repo_unit.name)
    assert stored_models(partial) == (1, 15)

    # tiny_store holds the tiny scale's first backbone only
    params = ChapterParams(scale="auto", compute=False, noise=0.1,
                           backbone=get_scale("tiny").backbones[0])
    pipe, results = run_chapter("03_feature_spectrum", params, store=store, progress=False)
    assert pipe.scale.name == "tiny"
    assert ("CPU. Note: the `cpu_seeds` scale is not complete yet (1 of 15 pre-trained models "
            "stored)") in results[0].description
    # with nothing of a better scale stored, the description is the scale's own
    _, plain = run_chapter("03_feature_spectrum", params, store=tiny_store, progress=False)
    assert plain[0].description == get_scale("tiny").description


def test_auto_scale_does_not_call_a_scale_with_every_model_incomplete(tiny_store, monkeypatch):
    """A scale whose models are all stored but whose runs for this chapter are not (the
    cpu_seeds grid covers chapters 01-03 and 06) is named as such, not as "not complete"."""
    import nml.chapters as chapters

    real = chapters.stored_models
    monkeypatch.setattr(chapters, "stored_models", lambda pipe: (
        (15, 15) if pipe.scale.name == "cpu_seeds" else real(pipe)))
    params = ChapterParams(scale="auto", compute=False, noise=0.1,
                           backbone=get_scale("tiny").backbones[0])
    _, results = run_chapter("03_feature_spectrum", params, store=tiny_store, progress=False)
    text = results[0].description
    assert "the `cpu_seeds` scale has all 15 pre-trained models stored but not this chapter's " \
           "runs on them" in text and "not complete" not in text


def test_tuning_migration_needs_a_rerun_that_reproduces_every_stored_row(tiny_store, tmp_path,
                                                                        capsys):
    """--tuning adds the authors' rows to a tuning unit stored without them only when running it
    again reproduces all its stored rows and arrays; a unit whose numbers differ is left alone."""
    from nml.results import UnitOutput
    migrate = _migration_script()
    store = ResultStore(tmp_path / "results")
    pipe = Pipeline("tiny", store=tiny_store, progress=False)
    pcfg = pipe.pretrain_config(pipe.scale.backbones[0], 0.0, 0)
    keys = {}
    for seed in (0, 1):
        tcfg = pipe.tune_config("nmtune", seed=seed, epochs=2)
        full = pipe.tune(pcfg, "synthetic_id", tcfg)
        assert {"sve_authors", "lsvr_authors"} <= set(full.rows["metric"])
        old = full.rows[~full.rows["metric"].isin(["sve_authors", "lsvr_authors"])].copy()
        if seed == 1:   # a stored accuracy its re-run does not give
            old.loc[old["metric"] == "accuracy", "value"] += 0.5
        arrays = {k: v for k, v in full.arrays.items() if not k.startswith("authors/")}
        experiment, config = pipe.tune_ref(pcfg, "synthetic_id", tcfg)
        keys[seed] = store.put(experiment, config, UnitOutput(
            rows=old.drop(columns=["experiment"], errors="ignore").to_dict("records"),
            arrays=arrays)).key
    assert migrate.main(["--results", str(store.root), "--tuning"]) == 0
    out = capsys.readouterr().out
    assert "migrated: 1" in out and "not the same run" in out
    done = store.load(experiment, keys[0])
    assert done.key == keys[0]
    want = pipe.tune(pcfg, "synthetic_id", pipe.tune_config("nmtune", seed=0, epochs=2))
    got = done.rows.set_index(["test_set", "metric"])["value"]
    for r in want.rows.itertuples():
        assert got[(r.test_set, r.metric)] == pytest.approx(r.value, rel=1e-12)
    assert set(done.arrays) == set(want.arrays)
    assert "sve_authors" not in set(store.load(experiment, keys[1]).rows["metric"])
    assert migrate.main(["--results", str(store.root), "--tuning"]) == 0
    assert "already: 1" in capsys.readouterr().out
