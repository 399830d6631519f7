"""The result store: keys, replay, atomic writes, provenance and index.csv."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import nml.results as results_mod
from nml.errors import NMLError
from nml.results import INDEX_COLUMNS, ResultStore, UnitOutput


def _row(value, metric="accuracy", seed=0):
    return {"scale": "tiny", "backbone": "resnet_micro", "noise": 0.1, "pretrain_seed": 0,
            "seed": seed, "method": "lp", "task": "synthetic_id", "metric": metric,
            "value": value}


def test_compute_once_then_replay(tmp_path):
    store = ResultStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return UnitOutput(rows=[_row(71.5)], arrays={"s": np.array([3.0, 2.0, 1.0])})

    first = store.run("linear_probe", {"a": 1}, compute)
    second = store.run("linear_probe", {"a": 1}, compute)
    assert len(calls) == 1 and not first.replayed and second.replayed
    assert second.rows["value"].tolist() == [71.5]
    np.testing.assert_array_equal(second.arrays["s"], [3.0, 2.0, 1.0])
    store.run("linear_probe", {"a": 1}, compute, recompute=True)
    assert len(calls) == 2
    store.run("linear_probe", {"a": 2}, compute)
    assert len(calls) == 3


def test_provenance_recorded(tmp_path):
    unit = ResultStore(tmp_path).run("x", {"a": 1}, lambda: UnitOutput([_row(1.0)], device="cpu",
                                                                        data_checksum="abc"))
    prov = unit.provenance
    for key in ("nml_version", "git_commit", "torch_version", "device", "data_checksum",
                "seconds", "created", "python"):
        assert key in prov
    assert prov["device"] == "cpu" and prov["data_checksum"] == "abc" and prov["seconds"] >= 0


def test_index_has_required_columns_and_all_rows(tmp_path):
    store = ResultStore(tmp_path)
    store.run("linear_probe", {"a": 1}, lambda: UnitOutput([_row(1.0), _row(2.0, "f1")]))
    store.run("nmtune", {"a": 1}, lambda: UnitOutput([{**_row(3.0), "method": "nmtune"}]))
    index = pd.read_csv(tmp_path / "index.csv")
    assert list(index.columns[:len(INDEX_COLUMNS)]) == list(INDEX_COLUMNS)
    assert sorted(index["value"]) == [1.0, 2.0, 3.0]
    assert set(index["experiment"]) == {"linear_probe", "nmtune"}


def test_index_carries_each_units_noise_type_and_ablation_variant(tmp_path):
    """index.csv alone tells asymmetric-noise models and ablation arms apart (the scorecard
    reads no unit JSON); an index written before these columns existed is rebuilt on read."""
    from nml.pretrain import PretrainConfig
    from nml.tune import TuneConfig
    store = ResultStore(tmp_path)
    asym = PretrainConfig(noise=0.1, noise_type="asymmetric", noise_classes=(1, 2)).to_dict()
    old = {k: v for k, v in PretrainConfig().to_dict().items() if k != "noise_type"}
    store.put("pretrain", asym, UnitOutput([_row(1.0)]))
    store.put("pretrain", old, UnitOutput([_row(2.0)]))
    paper = {"pretrain": PretrainConfig().to_dict(), "tune": TuneConfig(method="nmtune").to_dict()}
    knob = {**paper, "tune": {**paper["tune"], "w_svd": 0.0, "mlp_layers": 3}}
    store.put("ablation", paper, UnitOutput([_row(3.0)]))
    store.put("ablation", knob, UnitOutput([_row(4.0)]))
    store.put("linear_probe", {"task": "synthetic_id"}, UnitOutput([_row(5.0)]))
    index = pd.read_csv(tmp_path / "index.csv").set_index("value")
    assert index.loc[1.0, "noise_type"] == "asymmetric"
    assert index.loc[2.0, "noise_type"] == index.loc[3.0, "noise_type"] == "symmetric"
    assert pd.isna(index.loc[5.0, "noise_type"])             # no pre-trained model of nml
    assert pd.isna(index.loc[3.0, "variant"])                # the paper's setting: ''
    assert index.loc[4.0, "variant"] == "mlp_layers=3,w_svd=0"
    assert index[["variant"]].drop([3.0, 4.0])["variant"].isna().all()
    assert store.check() == []
    # An index from before the derived columns: read as stale and rebuilt, values intact.
    stale = pd.read_csv(tmp_path / "index.csv").drop(columns=["noise_type", "variant"])
    (tmp_path / "index.csv").write_text(stale.to_csv(index=False))
    assert any("lacks column" in p for p in store.check())
    again = store.index()
    assert {"noise_type", "variant"} <= set(again.columns) and len(again) == 5
    assert store.check() == []


def test_row_without_index_columns_is_rejected(tmp_path):
    with pytest.raises(NMLError, match="lacks index column"):
        ResultStore(tmp_path).put("x", {"a": 1}, UnitOutput([{"metric": "accuracy", "value": 1}]))


def test_failed_write_leaves_previous_state(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.put("x", {"a": 1}, UnitOutput([_row(1.0)]))
    before = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()}

    def broken_fsync(fd):
        raise OSError("disk died midway")
    monkeypatch.setattr(results_mod.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.put("x", {"a": 1}, UnitOutput([_row(2.0)]))
    after = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()}
    assert after == before  # no temporary files left, old content intact
    assert store.get("x", {"a": 1}).rows["value"].tolist() == [1.0]


def test_write_killed_midway_leaves_a_whole_file(tmp_path):
    """SIGKILL a process that rewrites a large unit in a loop: the file is always whole."""
    script = textwrap.dedent(f"""
        import numpy as np
        from nml.results import ResultStore, UnitOutput
        store = ResultStore({str(tmp_path)!r})
        rows = [dict(scale="tiny", backbone="b", noise=0.0, pretrain_seed=0, seed=i, method="lp",
                     task="t", metric="accuracy", value=float(i)) for i in range(20000)]
        i = 0
        while True:
            i += 1
            store.put("big", {{"a": 1}}, UnitOutput(rows, info={{"round": i}}))
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.readline().strip() == "1"  # one complete write exists
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    unit = ResultStore(tmp_path).get("big", {"a": 1})
    assert len(unit.rows) == 20000 and unit.info["round"] >= 1
    assert len(pd.read_csv(tmp_path / "index.csv")) == 20000


def test_corrupt_unit_gives_clear_error(tmp_path):
    store = ResultStore(tmp_path)
    unit = store.put("x", {"a": 1}, UnitOutput([_row(1.0)]))
    (tmp_path / "x" / f"{unit.key}.json").write_text("{not json")
    with pytest.raises(NMLError, match="not valid JSON.*delete it"):
        store.get("x", {"a": 1})


def test_incremental_index_equals_a_full_rebuild(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(5):
        store.put("linear_probe", {"a": i}, UnitOutput([_row(float(i)), _row(i + 0.5, "f1")]))
    store.put("linear_probe", {"a": 2}, UnitOutput([_row(99.0)]))  # replacing a unit's rows
    incremental = pd.read_csv(tmp_path / "index.csv")
    rebuilt = store.refresh_index()
    pd.testing.assert_frame_equal(incremental, pd.read_csv(tmp_path / "index.csv"))
    assert len(rebuilt) == 9 and 99.0 in set(incremental["value"]) and 2.0 not in set(incremental["value"])


def test_only_rank_zero_writes_under_data_parallel(tmp_path, monkeypatch):
    monkeypatch.setattr(results_mod, "_secondary_rank", lambda: True)
    unit = ResultStore(tmp_path).run("x", {"a": 1}, lambda: UnitOutput([_row(1.0)]))
    assert unit.rows["value"].tolist() == [1.0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "index.csv").exists()


def test_amend_adds_rows_and_arrays_only(tmp_path):
    store = ResultStore(tmp_path)
    unit = store.put("spectrum", {"a": 1}, UnitOutput(rows=[_row(2.0, metric="sve")],
                                                      arrays={"test": np.array([2.0, 1.0])}))
    other = store.put("spectrum", {"a": 2}, UnitOutput(rows=[_row(3.0, metric="sve")]))
    amended = store.amend(unit, [_row(2.5, metric="sve_authors")],
                          {"authors/test": np.array([1.5, 0.5])}, note="test")
    assert amended.key == unit.key == store.key("spectrum", {"a": 1})
    assert sorted(amended.rows["metric"]) == ["sve", "sve_authors"]
    np.testing.assert_array_equal(amended.arrays["test"], [2.0, 1.0])
    np.testing.assert_array_equal(amended.arrays["authors/test"], [1.5, 0.5])
    assert amended.provenance["amendments"][0]["note"] == "test"
    index = store.index()
    assert sorted(index[index["key"] == unit.key]["metric"]) == ["sve", "sve_authors"]
    assert (index["key"] == other.key).sum() == 1
    with pytest.raises(NMLError, match="only adds"):
        store.amend(amended, [_row(9.0, metric="sve")], {}, note="overwrite")
    with pytest.raises(NMLError, match="only adds"):
        store.amend(amended, [], {"test": np.array([0.0])}, note="overwrite")
