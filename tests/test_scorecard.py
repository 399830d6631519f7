"""The reproduction scorecard: effects, intervals and verdicts on indexes with known effects."""

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nml import scorecard as sc
from nml.errors import NMLError
from nml.results import INDEX_COLUMNS

REPO = Path(__file__).resolve().parents[1]
T2 = 4.302652729911275  # t(0.975, 2 degrees of freedom), from a printed t table


def _tune_rows(values: dict, *, method="lp", task="synthetic_id", scale="tiny",
               backbone="resnet_micro", test_sets=("test",), pretrain_seed=0, lam=0.01,
               experiment=None, metric="accuracy", offsets=None):
    """Rows of tuning units: values = {noise: [value of downstream seed 0, 1, ...]}.

    OOD tasks (several test sets) also get the 'mean' row, as nml.experiments writes it;
    ``offsets`` shifts each target domain so the mean is what ``values`` says.
    """
    experiment = experiment or {"lp": "linear_probe", "mlp": "nmtune", "nmtune": "nmtune",
                                "lora": "lora", "lora_nmtune": "lora", "ft": "finetune",
                                "frozen": "spectrum"}[method]
    offsets = offsets or [0.0] * len(test_sets)
    rows = []
    for noise, seeds in values.items():
        for seed, value in enumerate(seeds):
            key = f"{experiment}-{method}-{backbone}-{task}-{noise}-{pretrain_seed}-{seed}"
            base = {"experiment": experiment, "scale": scale, "backbone": backbone,
                    "noise": noise, "pretrain_seed": pretrain_seed, "seed": seed,
                    "method": method, "task": task, "metric": metric, "fraction": 1.0,
                    "lam": lam, "label_noise": 0.0, "key": key}
            for ts, off in zip(test_sets, offsets):
                rows.append({**base, "test_set": ts, "value": value + off})
            if len(test_sets) > 1 and method != "frozen":
                rows.append({**base, "test_set": "mean", "value": value})
    return rows


def _index(*groups) -> pd.DataFrame:
    rows = [r for g in groups for r in g]
    df = pd.DataFrame(rows)
    return df[[*INDEX_COLUMNS, *[c for c in df.columns if c not in INDEX_COLUMNS]]]


def _by_id(cid):
    return {c.id: c for c in sc.CLAIMS}[cid]


OOD_SETS = ("art", "cartoon", "sketch")


def test_t_interval_matches_hand_computation():
    diffs = [1.5, 1.2, 1.9]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    iv = sc.t_interval(diffs)
    assert iv.n == 3 and iv.mean == pytest.approx(mean)
    assert iv.lo == pytest.approx(mean - T2 * sd / math.sqrt(3))
    assert iv.hi == pytest.approx(mean + T2 * sd / math.sqrt(3))
    one = sc.t_interval([0.7])
    assert one.n == 1 and one.lo is None and not one.excludes_zero()
    assert "no interval" in one.format(2)


def test_slight_noise_benefit_is_reproduced_with_the_hand_interval():
    index = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9],
                               0.3: [60.0, 61.0, 62.0]}))
    row = sc.score(index, _by_id("C1"), "tiny")
    diffs = [1.5, 1.2, 1.9]
    sd = float(np.std(diffs, ddof=1))
    assert row.headline.n == 3
    assert row.headline.mean == pytest.approx(np.mean(diffs))
    assert row.headline.lo == pytest.approx(np.mean(diffs) - T2 * sd / math.sqrt(3))
    assert row.headline.hi == pytest.approx(np.mean(diffs) + T2 * sd / math.sqrt(3))
    assert row.measurement.replicate.startswith("downstream seed")
    assert row.verdict == "reproduced"
    assert set(row.measurement.rows["key"]) and len(row.measurement.rows) == 9


def test_noise_ratios_outside_the_paper_grid_are_left_out():
    # A user's extra 50 % level must not become the "highest noise" of the OOD claim.
    index = _index(_tune_rows({0.0: [50.0, 51.0], 0.3: [45.0, 46.0], 0.5: [70.0, 70.0]},
                              task="synthetic_ood_photo", test_sets=OOD_SETS))
    row = sc.score(index, _by_id("C2"), "tiny")
    assert row.headline.mean == pytest.approx(5.0)
    assert set(row.measurement.rows["noise"]) == {0.0, 0.3}


def test_rows_of_other_experiments_are_not_mixed_in():
    main = _tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9]})
    ablation = _tune_rows({0.0: [0.0, 0.0, 0.0], 0.1: [99.0, 99.0, 99.0]},
                          experiment="noisy_downstream")
    bench = [{**main[0], "experiment": "runtime", "scale": "cpu-bench", "key": "bench"}]
    index = _index(main, ablation, bench)
    row = sc.score(index, _by_id("C1"), "tiny")
    assert row.headline.mean == pytest.approx(np.mean([1.5, 1.2, 1.9]))
    assert row.measurement.duplicates == 0
    text = sc.render_markdown(index)
    assert "## Other scales in the index" in text and "`cpu-bench`" in text
    assert "## Cpu-bench" not in text


def test_best_slight_level_is_chosen_by_its_mean():
    # 5 % is better on average than 10 %: the effect is 5 % minus clean, paired by seed.
    index = _index(_tune_rows({0.0: [70.0, 70.0, 70.0], 0.05: [73.0, 72.0, 74.0],
                               0.1: [71.0, 71.0, 71.0]}))
    row = sc.score(index, _by_id("C1"), "tiny")
    assert row.headline.mean == pytest.approx(3.0)


def test_flat_and_wrong_sign_effects_are_not_reproduced():
    flat = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [70.5, 70.4, 72.2]}))
    row = sc.score(flat, _by_id("C1"), "tiny")
    assert row.headline.mean == pytest.approx((0.5 - 0.6 + 0.2) / 3)
    assert not row.headline.excludes_zero()
    assert row.verdict == "partly"          # right sign, interval includes 0
    worse = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [68.0, 69.2, 69.9]}))
    assert sc.score(worse, _by_id("C1"), "tiny").verdict == "not reproduced at this scale"
    slightly_worse = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [69.5, 71.6, 71.7]}))
    assert sc.score(slightly_worse, _by_id("C1"), "tiny").verdict == \
        "not reproduced at this scale"


def test_missing_rows_are_not_run():
    index = _index(_tune_rows({0.0: [70.0], 0.1: [71.0]}))
    assert sc.score(index, _by_id("C1"), "cpu").verdict == "not run"   # other scale
    row = sc.score(index, _by_id("C3a"), "tiny")                        # no LoRA rows
    assert row.verdict == "not run" and "lora" in row.measurement.missing
    no_clean = _index(_tune_rows({0.1: [71.0, 72.0], 0.3: [60.0, 61.0]}))
    row = sc.score(no_clean, _by_id("C1"), "tiny")
    assert row.verdict == "not run" and "no complete comparison" in row.measurement.missing


def test_several_pretrain_seeds_make_the_pretrain_seed_the_replicate():
    groups = []
    # Pre-training seed p: clean = 70 + p, 10 % = 70 + p + effect_p on both downstream seeds.
    for p, effect in [(0, 1.0), (1, 2.0), (2, 3.0)]:
        groups.append(_tune_rows({0.0: [70.0 + p, 70.0 + p],
                                  0.1: [70.0 + p + effect - 0.5, 70.0 + p + effect + 0.5]},
                                 pretrain_seed=p))
    row = sc.score(_index(*groups), _by_id("C1"), "tiny")
    assert row.measurement.replicate == "pre-training seed"
    assert row.headline.n == 3 and row.headline.mean == pytest.approx(2.0)
    assert row.headline.hi - row.headline.mean == pytest.approx(T2 * 1.0 / math.sqrt(3))


def test_ood_harm_uses_the_mean_over_targets_and_the_slope():
    index = _index(_tune_rows({0.0: [50.0, 51.0, 52.0], 0.1: [48.0, 49.0, 50.0],
                               0.3: [44.0, 45.5, 45.0]}, task="synthetic_ood_photo",
                              test_sets=OOD_SETS, offsets=[5.0, -3.0, 1.0]))
    row = sc.score(index, _by_id("C2"), "tiny")
    assert row.headline.mean == pytest.approx(np.mean([6.0, 5.5, 7.0]))
    assert row.verdict == "reproduced"
    # least-squares slope per replicate, per 10 points of noise
    x = np.array([0.0, 0.1, 0.3])
    slopes = [np.polyfit(x, y, 1)[0] * 0.1 for y in
              ([50, 48, 44], [51, 49, 45.5], [52, 50, 45])]
    assert row.secondary["slope per 10 points of noise"].mean == pytest.approx(np.mean(slopes))


def test_lsvr_of_ood_spectra_averages_targets_and_one_replicate_is_partly():
    spectra = _index(_tune_rows({0.0: [2.0], 0.1: [2.1], 0.3: [2.3]}, method="frozen",
                                task="synthetic_ood_photo", metric="lsvr",
                                test_sets=("train", *OOD_SETS), offsets=[9.0, 0.1, 0.2, 0.3]))
    row = sc.score(spectra, _by_id("C5"), "tiny")
    assert row.headline.n == 1 and row.headline.mean == pytest.approx(0.3)
    assert row.measurement.replicate == "pre-training seed"
    assert row.verdict == "partly"
    assert "no interval" in row.headline.format(4)


def test_gap_shrinks_and_method_differences():
    lp = _tune_rows({0.0: [70.0, 70.0, 70.0], 0.1: [73.0, 72.0, 74.0],
                     0.3: [64.0, 66.0, 65.0]}, backbone="vit_micro")
    ft = _tune_rows({0.0: [80.0, 80.0, 80.0], 0.1: [81.0, 80.5, 81.0],
                     0.3: [79.0, 79.0, 78.0]}, backbone="vit_micro", method="ft")
    row = sc.score(_index(lp, ft), _by_id("C3c"), "tiny")
    gap_lp = [(3 + 6) / 2, (2 + 4) / 2, (4 + 5) / 2]
    gap_ft = [(1 + 1) / 2, (0.5 + 1) / 2, (1 + 2) / 2]
    assert row.headline.mean == pytest.approx(np.mean(np.subtract(gap_lp, gap_ft)))
    assert row.verdict == "reproduced"
    nm = _tune_rows({0.0: [72.0, 71.0, 73.0], 0.1: [72.5, 71.5, 72.5],
                     0.3: [66.0, 67.0, 66.0]}, backbone="vit_micro", method="nmtune")
    other_lam = _tune_rows({0.0: [0.0, 0.0, 0.0]}, backbone="vit_micro", method="nmtune",
                           lam=0.3, experiment="nmtune_lambda")
    index = _index(lp, nm, other_lam)
    row = sc.score(index, _by_id("C6a"), "tiny")
    per_seed = [np.mean([2.0, -0.5, 2.0]), np.mean([1.0, -0.5, 1.0]),
                np.mean([3.0, -1.5, 1.0])]
    assert row.headline.mean == pytest.approx(np.mean(per_seed))   # lam 0.3 row ignored
    c7 = sc.score(index, _by_id("C7"), "tiny")
    assert c7.headline.mean == pytest.approx(np.mean([72 - 72.5, 71 - 71.5, 73 - 72.5]))
    assert c7.secondary["same under LP"].mean == pytest.approx(-3.0)
    assert sc.score(index, _by_id("C6b"), "tiny").verdict == "not run"


def test_pretraining_accuracy_claim():
    rows = []
    for p, accs in enumerate([[30.0, 28.0, 25.0], [31.0, 28.5, 24.0]]):
        for noise, acc in zip([0.0, 0.1, 0.3], accs):
            rows.append({"experiment": "pretrain", "scale": "tiny", "backbone": "resnet_micro",
                         "noise": noise, "pretrain_seed": p, "seed": p, "method": "pretrain",
                         "task": "synthetic_upstream", "metric": "accuracy", "value": acc,
                         "test_set": "test", "key": f"k{p}{noise}"})
    row = sc.score(_index(rows), _by_id("T1"), "tiny")
    assert row.headline.n == 2 and row.headline.mean == pytest.approx(6.0)
    half = stats.t.ppf(0.975, 1) * np.std([5.0, 7.0], ddof=1) / math.sqrt(2)
    assert row.headline.lo == pytest.approx(6.0 - half)
    assert row.verdict == "partly"   # n=2: the interval is wide and includes 0


def test_verdict_rule_on_cells():
    iv = sc.Interval
    sig_pos, sig_neg = iv(1.0, 0.5, 1.5, 3), iv(-1.0, -1.5, -0.5, 3)
    ns_pos, ns_neg = iv(0.2, -0.3, 0.7, 3), iv(-0.2, -0.7, 0.3, 3)
    assert sc.verdict(sig_pos, {"a": sig_pos}, +1) == "reproduced"
    assert sc.verdict(sig_pos, {"a": sig_pos, "b": sig_neg}, +1) == "partly"
    assert sc.verdict(ns_neg, {"a": sig_pos, "b": sig_neg}, +1) == "partly"
    assert sc.verdict(ns_neg, {"a": ns_neg}, +1) == "not reproduced at this scale"
    assert sc.verdict(sig_neg, {"a": sig_neg}, -1) == "reproduced"
    assert sc.verdict(ns_pos, {"a": ns_pos}, +1) == "partly"
    assert sc.verdict(None, {}, +1) == "not run"


def test_markdown_lists_every_claim_and_well_formed_tables():
    index = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9]}))
    text = sc.render_markdown(index, scales=("cifar", "tiny"))
    for claim in sc.CLAIMS:
        assert f"**{claim.id}** {claim.title}" in text
        assert f"**{claim.id} {claim.title}**" in text
    for claim, source, _ in sc.NOT_RUN_CLAIMS:
        assert source in text
    assert "COCO" in text and "not run" in text
    assert "**reproduced**" in text and sc.VERDICT_RULE in text
    assert "Scales without results" in text and "CIFAR scale" in text
    assert "$" not in text
    for block in text.split("\n\n"):
        table = [ln for ln in block.splitlines() if ln.startswith("|")]
        if table:
            assert len({ln.count("|") for ln in table}) == 1, block
    assert sc.render_markdown(index) == sc.render_markdown(index)   # deterministic
    empty = sc.render_markdown(index.iloc[:0])
    assert "holds no results yet" in empty


def test_cli_writes_and_checks(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _index(_tune_rows({0.0: [70.0, 71.0], 0.1: [72.0, 73.0]})).to_csv(
        results / "index.csv", index=False)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    sc.add_parser(sub)
    out = tmp_path / "scorecard.md"
    args = parser.parse_args(["scorecard", "--results", str(results), "--out", str(out)])
    args.func(args)
    assert "Reproduction scorecard" in out.read_text()
    check = parser.parse_args(["scorecard", "--results", str(results), "--out", str(out),
                               "--check"])
    check.func(check)
    out.write_text("stale")
    with pytest.raises(NMLError, match="out of date"):
        check.func(check)
    with pytest.raises(NMLError, match="no result store"):
        sc.load_index(tmp_path / "absent")


def test_committed_page_is_up_to_date():
    index_csv = REPO / "results" / "index.csv"
    if not index_csv.exists():
        pytest.skip("results/index.csv absent")
    page = REPO / "book" / "scorecard.md"
    assert page.exists(), "book/scorecard.md missing: run `python -m nml scorecard`"
    fresh = sc.render_markdown(pd.read_csv(index_csv))
    assert page.read_text() == fresh, \
        "book/scorecard.md is out of date with results/index.csv: run `python -m nml scorecard`"
