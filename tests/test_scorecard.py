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
               backbone="resnet_micro", test_sets=("test",), pretrain_seed=None, lam=0.01,
               experiment=None, metric="accuracy", offsets=None, label_noise=0.0, **extra):
    """Rows of tuning units: values = {noise: [value of replicate 0, 1, ...]}.

    Without ``pretrain_seed`` a replicate is a pre-training seed (one downstream seed each, as
    at the cpu_seeds scale); with it, the values are downstream seeds 0, 1, ... of that one
    pre-trained model.

    OOD tasks (several test sets) also get the 'mean' row, as nml.experiments writes it;
    ``offsets`` shifts each target domain so the mean is what ``values`` says.
    """
    experiment = experiment or {"lp": "linear_probe", "mlp": "nmtune", "nmtune": "nmtune",
                                "lora": "lora", "lora_nmtune": "lora", "ft": "finetune",
                                "frozen": "spectrum"}[method]
    offsets = offsets or [0.0] * len(test_sets)
    rows = []
    for noise, seeds in values.items():
        for rep, value in enumerate(seeds):
            pseed, seed = (rep, 0) if pretrain_seed is None else (pretrain_seed, rep)
            key = (f"{experiment}-{method}-{backbone}-{task}-{noise}-{pseed}-{seed}-"
                   f"{label_noise}-{'-'.join(map(str, extra.values()))}")
            base = {"experiment": experiment, "scale": scale, "backbone": backbone,
                    "noise": noise, "pretrain_seed": pseed, "seed": seed,
                    "method": method, "task": task, "metric": metric, "fraction": 1.0,
                    "lam": lam, "label_noise": label_noise, "key": key, **extra}
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
    assert row.measurement.replicate == "pre-training seed"
    assert row.verdict == "reproduced"
    # The same numbers as downstream seeds of one pre-trained model cannot test a claim
    # about pre-training noise: capped at untestable, whatever the interval.
    one_model = sc.score(_index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9]},
                                           pretrain_seed=0)), _by_id("C1"), "tiny")
    assert one_model.measurement.replicate.startswith("downstream seed")
    assert one_model.headline.excludes_zero() and one_model.verdict == "untestable"
    assert "1 pre-training seed" in one_model.reason
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
    assert row.verdict == "inconclusive"    # right sign, interval includes 0
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


def test_lsvr_of_ood_spectra_averages_targets_and_one_replicate_is_untestable():
    spectra = _index(_tune_rows({0.0: [2.0], 0.1: [2.1], 0.3: [2.3]}, method="frozen",
                                task="synthetic_ood_photo", metric="lsvr",
                                test_sets=("train", *OOD_SETS), offsets=[9.0, 0.1, 0.2, 0.3]))
    # Without a clean linear probe showing the OOD task carries signal, it cannot enter.
    gated = sc.score(spectra, _by_id("C5"), "tiny")
    assert gated.verdict == "untestable" and "without a stored clean linear probe" in \
        gated.reason
    probe = _tune_rows({0.0: [35.0]}, task="synthetic_ood_photo", test_sets=OOD_SETS)
    spectra = _index(spectra.to_dict("records"), probe)
    row = sc.score(spectra, _by_id("C5"), "tiny")
    assert row.headline.n == 1 and row.headline.mean == pytest.approx(0.3)
    assert row.measurement.replicate == "pre-training seed"
    assert row.verdict == "untestable"
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
                         "test_set": "test", "key": f"k{p}{noise}", "noise_type": "symmetric"})
    row = sc.score(_index(rows), _by_id("T1"), "tiny")
    assert row.headline.n == 2 and row.headline.mean == pytest.approx(6.0)
    half = stats.t.ppf(0.975, 1) * np.std([5.0, 7.0], ddof=1) / math.sqrt(2)
    assert row.headline.lo == pytest.approx(6.0 - half)
    # n=2 pre-training seeds: fewer than 3, so a pre-training claim is untestable here.
    assert row.verdict == "untestable" and "2 pre-training seeds" in row.reason
    # Without the noise_type column (a bare index.csv) symmetric and asymmetric models of
    # experiment pretrain cannot be told apart: not run.
    bare = sc.score(_index(rows).drop(columns="noise_type"), _by_id("T1"), "tiny")
    assert bare.verdict == "not run" and "noise_type column" in bare.measurement.missing


def test_pretraining_accuracy_uses_symmetric_models_only(tmp_path):
    """Chapter 08 stores asymmetric-noise models in experiment pretrain as well; load_index
    reads each unit's noise type from its config and T1 keeps the symmetric ones."""
    from nml.pretrain import PretrainConfig
    from nml.results import ResultStore, UnitOutput
    store = ResultStore(tmp_path)

    def put(acc, **cfg):
        config = PretrainConfig(**cfg).to_dict()
        row = {"scale": "tiny", "backbone": "resnet_micro", "noise": config["noise"],
               "pretrain_seed": 0, "seed": 0, "method": "pretrain",
               "task": "synthetic_upstream", "metric": "accuracy", "value": acc,
               "test_set": "test"}
        return store.put("pretrain", config, UnitOutput(rows=[row])).key

    clean = put(30.0, noise=0.0)
    symmetric = put(28.0, noise=0.1)
    asymmetric = put(20.0, noise=0.1, noise_type="asymmetric", noise_classes=(1, 2))
    # A unit config written before noise_type existed: the default, symmetric.
    config = {k: v for k, v in PretrainConfig(noise=0.0, seed=1).to_dict().items()
              if k not in ("noise_type", "noise_classes")}
    old = store.put("pretrain", config, UnitOutput(rows=[{
        "scale": "tiny", "backbone": "resnet_micro", "noise": 0.0, "pretrain_seed": 1,
        "seed": 1, "method": "pretrain", "task": "synthetic_upstream", "metric": "accuracy",
        "value": 31.0, "test_set": "test"}])).key
    lp = store.put("linear_probe", {"task": "synthetic_id"}, UnitOutput(rows=[{
        "scale": "tiny", "backbone": "resnet_micro", "noise": 0.1, "pretrain_seed": 0,
        "seed": 0, "method": "lp", "task": "synthetic_id", "metric": "accuracy",
        "value": 70.0, "test_set": "test"}])).key

    index = sc.load_index(tmp_path)
    noise_type = index.set_index("key")["noise_type"]
    assert noise_type[clean] == noise_type[symmetric] == noise_type[old] == "symmetric"
    assert noise_type[asymmetric] == "asymmetric"
    assert pd.isna(noise_type[lp])
    assert sc.unit_noise_types(tmp_path) == {clean: "symmetric", symmetric: "symmetric",
                                             asymmetric: "asymmetric", old: "symmetric"}
    m = sc.measure(index, "T1", "tiny")
    assert set(m.rows["key"]) == {clean, symmetric, old}   # never the asymmetric model
    assert m.duplicates == 0
    # Seed 0 is the only replicate with a 10 % model; mixed in, it would be 30 - 24 = 6.
    assert m.headline.to_dict() == pytest.approx({0: 30.0 - 28.0})


def test_ood_tasks_near_chance_do_not_enter():
    """An OOD task whose clean model probes at chance (+ less than 10 points) is left out."""
    strong = _tune_rows({0.0: [50.0, 51.0, 52.0], 0.3: [44.0, 45.5, 45.0]},
                        task="synthetic_ood_photo", test_sets=OOD_SETS)
    # synthetic_ood_sketch has 10 classes: 15 % is within 10 points of the 10 % chance.
    weak = _tune_rows({0.0: [15.0, 15.2, 14.9], 0.3: [18.0, 18.5, 17.0]},
                      task="synthetic_ood_sketch", test_sets=OOD_SETS)
    row = sc.score(_index(strong, weak), _by_id("C2"), "tiny")
    assert list(row.cells) == ["resnet_micro / synthetic_ood_photo"]
    assert "near chance" in row.measurement.excluded["resnet_micro / synthetic_ood_sketch"]
    assert row.headline.mean == pytest.approx(np.mean([6.0, 5.5, 7.0]))
    assert row.verdict == "reproduced"


def test_opposite_signs_across_tasks_are_never_averaged_on_the_page_or_in_chapters():
    falls = _tune_rows({0.0: [50.0, 51.0, 52.0], 0.3: [44.0, 45.5, 45.0]},
                       task="synthetic_ood_photo", test_sets=OOD_SETS)       # +6.17
    rises = _tune_rows({0.0: [40.0, 41.0, 42.0], 0.3: [45.0, 46.0, 47.0]},
                       task="synthetic_ood_sketch", test_sets=OOD_SETS)      # -5.00
    index = _index(falls, rises)
    row = sc.score(index, _by_id("C2"), "tiny")
    assert row.verdict == "partly" and row.headline.mean == pytest.approx((37 / 6 - 5) / 2)
    effect = sc.headline_text(row)
    assert effect.startswith("opposite signs, not averaged: ")
    assert "+6.17" in effect and "-5.00" in effect and "+0.58" not in effect
    text = sc.claim_sentences(["C2"], "tiny", index)
    assert "per task (opposite signs, so not averaged)" in text and "+0.58" not in text
    page = sc.render_markdown(index, scales=("tiny",))
    c2_row = next(line for line in page.splitlines() if line.startswith("| **C2**"))
    assert "+0.58" not in c2_row and "-5.00" in c2_row


def test_the_three_seed_cap_counts_only_seeds_that_enter_the_effect():
    # seed 2 is stored at 0 % only: it pairs with nothing, so the effect rests on 2 seeds
    rows = _tune_rows({0.0: [50.0, 51.0, 52.0], 0.3: [44.0, 45.5]},
                      task="synthetic_ood_photo", test_sets=OOD_SETS)
    row = sc.score(_index(rows), _by_id("C2"), "tiny")
    assert row.headline.n == 2 and row.measurement.pretrain_seeds == 3
    assert row.verdict == "untestable" and "measured over 2 pre-training seeds" in row.reason
    full = _tune_rows({0.0: [50.0, 51.0, 52.0], 0.3: [44.0, 45.5, 45.0]},
                      task="synthetic_ood_photo", test_sets=OOD_SETS)
    assert sc.score(_index(full), _by_id("C2"), "tiny").verdict == "reproduced"


def test_rectification_needs_something_to_rectify_and_lp_control_is_reported():
    lp = _tune_rows({0.0: [72.0, 72.0, 72.0], 0.1: [70.0, 70.5, 71.0]})   # clean best under LP
    nm = _tune_rows({0.0: [75.0, 75.0, 75.0], 0.1: [73.0, 73.0, 73.0]}, method="nmtune")
    c7 = sc.score(_index(lp, nm), _by_id("C7"), "tiny")
    assert c7.verdict == "untestable" and "nothing to rectify" in c7.reason
    mlp = _tune_rows({0.0: [74.9, 75.0, 75.1], 0.1: [73.0, 72.9, 73.1]}, method="mlp")
    c6a = sc.score(_index(lp, nm, mlp), _by_id("C6a"), "tiny")
    assert c6a.verdict == "reproduced"
    assert c6a.control.mean == pytest.approx(np.mean([(2.9 + 3.0) / 2, (3.0 + 2.4) / 2,
                                                      (3.1 + 2.1) / 2]))
    text = sc.claim_sentences(["C6a"], "tiny", _index(lp, nm, mlp))
    assert "says nothing about NMTune's regularisers" in text and "**reproduced**" in text


def test_verdict_rule_on_cells():
    iv = sc.Interval
    sig_pos, sig_neg = iv(1.0, 0.5, 1.5, 3), iv(-1.0, -1.5, -0.5, 3)
    ns_pos, ns_neg = iv(0.2, -0.3, 0.7, 3), iv(-0.2, -0.7, 0.3, 3)
    assert sc.verdict(sig_pos, {"a": sig_pos}, +1) == "reproduced"
    assert sc.verdict(sig_pos, {"a": sig_pos, "b": sig_neg}, +1) == "partly"
    assert sc.verdict(ns_neg, {"a": sig_pos, "b": sig_neg}, +1) == "partly"
    assert sc.verdict(ns_neg, {"a": ns_neg}, +1) == "not reproduced at this scale"
    assert sc.verdict(sig_neg, {"a": sig_neg}, -1) == "reproduced"
    assert sc.verdict(ns_pos, {"a": ns_pos}, +1) == "inconclusive"
    assert sc.verdict(None, {}, +1) == "not run"
    one = iv(1.0, None, None, 1)
    assert sc.verdict(one, {"a": one}, +1) == "untestable"
    # Opposite signs across cells are never averaged: judged per cell.
    assert sc.verdict(ns_pos, {"a": ns_pos, "b": ns_neg}, +1) == "inconclusive"
    assert sc.verdict(ns_pos, {"a": ns_pos, "b": sig_neg}, +1) == \
        "not reproduced at this scale"
    # ... and cells of one replicate each carry no interval to judge, whatever their signs
    one_neg = iv(-1.0, None, None, 1)
    assert sc.verdict(one, {"a": one, "b": one_neg}, +1) == "untestable"
    assert set(sc.VERDICT_MEANING) == set(sc.VERDICTS)


def test_markdown_lists_every_claim_and_well_formed_tables():
    index = _index(_tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9]}))
    text = sc.render_markdown(index, scales=("cifar", "tiny"))
    for claim in sc.CLAIMS:
        assert f"**{claim.id}** {claim.title}" in text
        assert f"**{claim.id} {claim.title}**" in text
    for claim, source, _ in sc.NOT_RUN_CLAIMS + sc.NOT_SCORED_CLAIMS:
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
    fresh = sc.render_markdown(sc.load_index(REPO / "results"))
    assert page.read_text() == fresh, \
        "book/scorecard.md is out of date with results/index.csv: run `python -m nml scorecard`"


# -- the claim families beyond the main experiments ----------------------------------------------

def _pretrain_rows(accs: dict, *, experiment="clip", backbone="clip_vit_micro",
                   metric="zero_shot_accuracy"):
    """Pre-training rows: accs = {noise: [value of pre-training seed 0, 1, ...]}."""
    rows = []
    for noise, values in accs.items():
        for p, acc in enumerate(values):
            for m, v in ((metric, acc), ("train_noise_rate", noise)):
                rows.append({"experiment": experiment, "scale": "tiny", "backbone": backbone,
                             "noise": noise, "pretrain_seed": p, "seed": p, "method": "pretrain",
                             "task": "synthetic_upstream", "metric": m, "value": v,
                             "test_set": "test", "key": f"{experiment}-{backbone}-{noise}-{p}"})
    return rows


def test_clip_claims_read_the_clip_experiment_only():
    zs = _pretrain_rows({0.0: [30.0, 31.0, 30.5], 0.05: [29.0, 30.0, 29.0],
                         0.1: [28.0, 28.0, 28.5], 0.3: [24.0, 25.5, 24.0]})
    row = sc.score(_index(zs), _by_id("K1"), "tiny")   # 0 % minus 30 %: 6, 5.5, 6.5
    assert row.headline.mean == pytest.approx(6.0) and row.headline.n == 3
    assert row.measurement.replicate == "pre-training seed"
    assert row.verdict == "reproduced"
    assert set(row.measurement.rows["metric"]) == {"zero_shot_accuracy"}
    assert sc.score(_index(zs), _by_id("T1"), "tiny").verdict == "not run"  # not supervised
    rising = _pretrain_rows({0.0: [24.0, 24.5, 25.0], 0.3: [30.0, 30.5, 29.0]})
    assert sc.score(_index(rising), _by_id("K1"), "tiny").verdict == \
        "not reproduced at this scale"
    one_seed = _pretrain_rows({0.0: [24.0], 0.3: [30.0]})
    assert sc.score(_index(one_seed), _by_id("K1"), "tiny").verdict == "untestable"
    # The supervised main runs do not count for CLIP claims, and the CLIP runs not for C claims.
    clip_lp = _tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [71.5, 72.2, 73.9]},
                         backbone="clip_vit_micro", experiment="clip")
    main_lp = _tune_rows({0.0: [70.0, 71.0, 72.0], 0.1: [68.0, 69.2, 69.9]})
    index = _index(clip_lp, main_lp)
    assert sc.score(index, _by_id("K2"), "tiny").verdict == "reproduced"
    assert sc.score(index, _by_id("C1"), "tiny").verdict == "not reproduced at this scale"
    assert set(sc.measure(index, "K2", "tiny").rows["experiment"]) == {"clip"}
    missing = sc.score(_index(main_lp), _by_id("K6a"), "tiny")
    assert missing.verdict == "not run"
    assert missing.measurement.missing == "no rows for nmtune, lp in experiment clip"


def test_clip_nmtune_and_spectrum_claims():
    kw = dict(backbone="clip_vit_micro", experiment="clip", task="synthetic_ood_photo",
              test_sets=OOD_SETS)
    lp = _tune_rows({0.0: [50.0, 51.0, 52.0], 0.3: [45.0, 46.0, 46.5]}, **kw)
    nm = _tune_rows({0.0: [53.0, 53.5, 55.0], 0.3: [48.0, 49.0, 49.0]}, method="nmtune", **kw)
    index = _index(lp, nm)
    row = sc.score(index, _by_id("K6c"), "tiny")
    assert row.headline.mean == pytest.approx(np.mean([(3 + 3) / 2, (2.5 + 3) / 2,
                                                       (3 + 2.5) / 2]))
    assert row.verdict == "reproduced"
    assert sc.score(index, _by_id("K3"), "tiny").verdict == "reproduced"   # OOD falls
    worse = _tune_rows({0.0: [48.0, 49.0, 50.0], 0.3: [43.0, 44.0, 44.0]}, method="nmtune", **kw)
    assert sc.score(_index(lp, worse), _by_id("K6c"), "tiny").verdict == \
        "not reproduced at this scale"
    spectra = _tune_rows({0.0: [2.0], 0.3: [2.3]}, method="frozen", metric="lsvr",
                         backbone="clip_vit_micro", experiment="clip",
                         task="synthetic_ood_photo", test_sets=("train", *OOD_SETS))
    k5 = sc.score(_index(spectra, lp), _by_id("K5"), "tiny")   # lp: the task carries signal
    assert k5.headline.mean == pytest.approx(0.3) and k5.verdict == "untestable"


def _asym(method, values, task="synthetic_id", test_sets=("test",)):
    """Asymmetric-noise rows: values = {noise: [value of pre-training seed 0, 1, 2]}."""
    rows = []
    for p in range(3):
        rows += _tune_rows({n: [v[p]] for n, v in values.items()}, method=method, task=task,
                           test_sets=test_sets, pretrain_seed=p, experiment="asymmetric")
    return rows


def test_asymmetric_claims_use_their_noise_grid_and_slight_levels():
    # 2.5 % helps (+2, +1.5, +2.5 per pre-training seed); 10 % "helps" more but is not slight.
    lp = _asym("lp", {0.0: [70.0, 71.0, 72.0], 0.025: [72.0, 72.5, 74.5],
                      0.05: [70.0, 71.0, 72.5], 0.1: [80.0, 80.0, 80.0]})
    row = sc.score(_index(lp), _by_id("A1"), "tiny")
    assert row.measurement.replicate == "pre-training seed"
    assert row.headline.mean == pytest.approx(2.0) and row.verdict == "reproduced"
    assert 0.025 in set(row.measurement.rows["noise"])      # not a PAPER_NOISE level
    hurt = _asym("lp", {0.0: [70.0, 71.0, 72.0], 0.025: [69.0, 70.5, 70.0],
                        0.05: [68.0, 69.0, 71.0], 0.1: [65.0, 66.0, 67.0]})
    assert sc.score(_index(hurt), _by_id("A1"), "tiny").verdict == \
        "not reproduced at this scale"
    # The main C1 claim never sees asymmetric rows.
    assert sc.score(_index(lp), _by_id("C1"), "tiny").verdict == "not run"
    ood = _asym("lp", {0.0: [50.0, 51.0, 52.0], 0.05: [49.0, 50.0, 50.0],
                       0.1: [46.0, 47.5, 47.0]}, task="synthetic_ood_photo",
                test_sets=OOD_SETS)
    a2 = sc.score(_index(ood), _by_id("A2"), "tiny")
    assert a2.headline.mean == pytest.approx(np.mean([4.0, 3.5, 5.0]))   # 0 % minus 10 %
    assert a2.verdict == "reproduced"
    nm = _asym("nmtune", {0.0: [73.0, 74.0, 74.0], 0.025: [72.0, 73.0, 73.0],
                          0.05: [71.0, 72.0, 72.0], 0.1: [70.0, 71.0, 70.0]})
    index = _index(lp, nm)
    a4 = sc.score(index, _by_id("A4"), "tiny")
    assert a4.headline.mean == pytest.approx(1.0) and a4.verdict == "reproduced"
    assert a4.secondary["same under LP"].mean < 0          # under LP 10 % is best
    assert sc.score(index, _by_id("A3b"), "tiny").verdict == "not run"   # no OOD NMTune rows


def _eta_rows(method, by_eta: dict):
    """Noisy-downstream rows: by_eta = {eta: {noise: [value of downstream seed 0, 1, 2]}}."""
    return [r for eta, values in by_eta.items()
            for r in _tune_rows(values, method=method, experiment="noisy_downstream",
                                label_noise=eta)]


def test_noisy_downstream_claims_make_eta_part_of_the_cell():
    slight_helps = {0.0: [60.0, 61.0, 62.0], 0.1: [62.0, 62.0, 64.0], 0.3: [55.0, 55.0, 55.0]}
    lp = _eta_rows("lp", {0.0: {0.0: [0.0] * 3, 0.1: [99.0] * 3},   # eta 0: must not enter
                          0.1: slight_helps, 0.4: slight_helps})
    row = sc.score(_index(lp), _by_id("N1"), "tiny")
    assert set(row.cells) == {"resnet_micro / synthetic_id / eta 10 %",
                              "resnet_micro / synthetic_id / eta 40 %"}
    assert row.headline.mean == pytest.approx(np.mean([2.0, 1.0, 2.0]))
    assert row.verdict == "reproduced"
    assert set(row.measurement.rows["label_noise"]) == {0.1, 0.4}
    hurts = {0.0: [60.0, 61.0, 62.0], 0.1: [58.0, 59.0, 59.5]}
    assert sc.score(_index(_eta_rows("lp", {0.2: hurts})), _by_id("N1"), "tiny").verdict == \
        "not reproduced at this scale"
    # NMTune beats LP at light eta and falls short at heavy eta: N3 and N4 both hold.
    lp2 = _eta_rows("lp", {0.1: {0.0: [60.0, 61.0, 62.0]}, 0.5: {0.0: [50.0, 51.0, 52.0]}})
    nm2 = _eta_rows("nmtune", {0.1: {0.0: [62.0, 63.0, 63.5]}, 0.5: {0.0: [48.0, 49.5, 49.0]}})
    index = _index(lp2, nm2)
    n3 = sc.score(index, _by_id("N3"), "tiny")
    assert list(n3.cells) == ["resnet_micro / synthetic_id / eta 10 %"]
    assert n3.headline.mean == pytest.approx(np.mean([2.0, 2.0, 1.5]))
    assert n3.verdict == "reproduced"
    n4 = sc.score(index, _by_id("N4"), "tiny")
    assert list(n4.cells) == ["resnet_micro / synthetic_id / eta 50 %"]
    assert n4.headline.mean == pytest.approx(np.mean([-2.0, -1.5, -3.0]))
    assert n4.verdict == "reproduced"                       # claimed < 0
    # Only light eta present: the heavy-eta claim is not run; reversed: not reproduced.
    light = _index(_eta_rows("lp", {0.1: {0.0: [60.0, 61.0, 62.0]}}),
                   _eta_rows("nmtune", {0.1: {0.0: [58.0, 59.0, 59.0]}}))
    assert sc.score(light, _by_id("N4"), "tiny").verdict == "not run"
    assert sc.score(light, _by_id("N3"), "tiny").verdict == "not reproduced at this scale"
    # The clean-downstream claims never see these rows.
    assert sc.score(index, _by_id("C6a"), "tiny").verdict == "not run"


def _practical(method, by_set: dict, noise=None, *, backbone="all-MiniLM-L6-v2", task="sst2"):
    """Practical-model rows as nml.practical writes them (scale cpu): task sst2, test sets
    test / dev (ID) and imdb (OOD), no 'mean' row, noise and pretrain_seed unknown (None).
    by_set = {test_set: [value of tuning seed 0, 1, 2]}."""
    rows = []
    for test_set, values in by_set.items():
        for seed, value in enumerate(values):
            rows.append({"experiment": "practical", "scale": "cpu", "backbone": backbone,
                         "noise": noise, "pretrain_seed": None, "seed": seed, "method": method,
                         "task": task, "metric": "accuracy", "value": value, "fraction": 1.0,
                         "lam": 0.01, "label_noise": 0.0, "test_set": test_set,
                         "key": f"practical-{method}-{backbone}-{task}-{seed}-{noise}"})
    return rows


@pytest.mark.parametrize("noise", [None, 0.0, -1.0])
def test_practical_claims_pool_an_unknown_noise(noise):
    index = _index(
        _practical("lp", {"test": [80.0, 81.0, 80.5], "dev": [0.0] * 3,
                          "imdb": [70.0, 71.0, 70.0]}, noise),
        _practical("nmtune", {"test": [81.0, 82.5, 81.5], "dev": [99.0] * 3,
                              "imdb": [69.0, 70.5, 69.0]}, noise))
    p1 = sc.score(index, _by_id("P1"), "cpu")
    assert p1.headline.mean == pytest.approx(np.mean([1.0, 1.5, 1.0]))   # SST-2 test only
    assert p1.verdict == "reproduced"
    assert set(p1.measurement.rows["test_set"]) == {"test"}
    assert p1.measurement.replicate.startswith("downstream seed")
    assert list(p1.cells) == ["all-MiniLM-L6-v2 / sst2"]
    p2 = sc.score(index, _by_id("P2"), "cpu")
    assert p2.headline.mean == pytest.approx(np.mean([-1.0, -0.5, -1.0]))
    assert p2.verdict == "not reproduced at this scale"
    assert set(p2.measurement.rows["test_set"]) == {"imdb"}
    p3 = sc.score(index, _by_id("P3"), "cpu")
    assert p3.verdict == "not run" and p3.measurement.missing == \
        "no rows for mlp in experiment practical"


def test_practical_rows_of_different_noise_labels_are_one_level():
    index = _index(_practical("lp", {"test": [80.0, 81.0, 80.5]}, None),
                   _practical("nmtune", {"test": [81.0, 82.5, 81.5]}, 0.0))
    row = sc.score(index, _by_id("P1"), "cpu")
    assert row.headline.mean == pytest.approx(np.mean([1.0, 1.5, 1.0]))
    # The same rows never count for the image claims (another experiment).
    assert sc.score(index, _by_id("C6a"), "cpu").verdict == "not run"


def test_practical_claims_score_the_vision_model_per_task():
    """EfficientNet-Lite0 rows (nml.practical_vision): CIFAR-10's test set is an ID cell, PACS
    photo's three target domains are averaged per unit into one OOD cell, beside MiniLM's."""
    vision = dict(backbone="efficientnet_lite0")
    index = _index(
        _practical("lp", {"test": [80.0, 81.0, 80.5], "imdb": [70.0, 71.0, 70.0]}),
        _practical("nmtune", {"test": [81.0, 82.5, 81.5], "imdb": [71.0, 72.0, 71.0]}),
        _practical("lp", {"test": [90.0, 90.0, 90.0]}, task="cifar10", **vision),
        _practical("nmtune", {"test": [89.0, 89.5, 89.0]}, task="cifar10", **vision),
        _practical("lp", {"art_painting": [60.0] * 3, "cartoon": [50.0] * 3,
                          "sketch": [40.0] * 3}, task="pacs_photo", **vision),
        _practical("nmtune", {"art_painting": [63.0] * 3, "cartoon": [50.0] * 3,
                              "sketch": [40.0] * 3}, task="pacs_photo", **vision))
    p1 = sc.score(index, _by_id("P1"), "cpu")
    assert sorted(p1.cells) == ["all-MiniLM-L6-v2 / sst2", "efficientnet_lite0 / cifar10"]
    assert p1.cells["efficientnet_lite0 / cifar10"].mean == pytest.approx(-2.5 / 3)
    p2 = sc.score(index, _by_id("P2"), "cpu")
    assert sorted(p2.cells) == ["all-MiniLM-L6-v2 / sst2", "efficientnet_lite0 / pacs_photo"]
    assert p2.cells["efficientnet_lite0 / pacs_photo"].mean == pytest.approx(1.0)  # 3 / 3 sets


def _ablation(variant, values):
    """Ablation rows of one NMTune variant (variant label as load_index writes it)."""
    return _tune_rows(values, method="nmtune", experiment="ablation", variant=variant)


def test_ablation_claims_compare_variants():
    paper = _ablation("", {0.0: [70.0, 71.0, 72.0], 0.1: [69.0, 70.0, 70.5]})
    linear = _ablation("mlp_activation=identity", {0.0: [65.0, 66.0, 66.5],
                                                   0.1: [64.0, 65.0, 66.0]})
    no_svd = _ablation("w_svd=0", {0.0: [71.0, 72.0, 72.5], 0.1: [70.0, 71.0, 71.5]})
    other_lam = _tune_rows({0.0: [0.0] * 3}, method="nmtune", experiment="ablation",
                           lam=0.3, variant="")
    index = _index(paper, linear, no_svd, other_lam)
    b1 = sc.score(index, _by_id("B1"), "tiny")
    assert b1.headline.mean == pytest.approx(np.mean([(5 + 5) / 2, (5 + 5) / 2,
                                                      (5.5 + 4.5) / 2]))
    assert b1.verdict == "reproduced"
    assert sc.score(index, _by_id("B3"), "tiny").verdict == "not reproduced at this scale"
    b4 = sc.score(index, _by_id("B4"), "tiny")
    assert b4.verdict == "not run" and "w_cov=0" in b4.measurement.missing
    # Without the variant column (a bare index.csv) the arms cannot be told apart: not run.
    bare = index.drop(columns="variant")
    row = sc.score(bare, _by_id("B1"), "tiny")
    assert row.verdict == "not run" and "variant column" in row.measurement.missing
    assert sc.arm("nmtune", w_svd=0.0) == "nmtune@w_svd=0"
    assert sc.variant_label({"residual_mlp": True, "mlp_layers": 3}) == \
        "mlp_layers=3,residual_mlp=true"


def test_load_index_reads_the_ablation_variant_from_unit_configs(tmp_path):
    from nml.results import ResultStore, UnitOutput
    from nml.tune import TuneConfig
    store = ResultStore(tmp_path)
    for knobs in ({}, {"w_svd": 0.0}, {"mlp_activation": "identity", "mlp_layers": 3}):
        tune = {**TuneConfig(method="nmtune").to_dict(), **knobs}
        row = {"scale": "tiny", "backbone": "resnet_micro", "noise": 0.0, "pretrain_seed": 0,
               "seed": 0, "method": "nmtune", "task": "synthetic_id", "metric": "accuracy",
               "value": 70.0, "test_set": "test"}
        store.put("ablation", {"task": "synthetic_id", "tune": tune}, UnitOutput(rows=[row]))
    store.put("linear_probe", {"task": "synthetic_id"},
              UnitOutput(rows=[{**row, "method": "lp"}]))
    index = sc.load_index(tmp_path)
    by_method = index.groupby("experiment")["variant"].apply(lambda v: sorted(v.fillna("?")))
    assert by_method["ablation"] == ["", "mlp_activation=identity,mlp_layers=3", "w_svd=0"]
    assert by_method["linear_probe"] == ["?"]


def test_every_claim_id_is_unique_and_every_family_is_on_the_page():
    ids = [c.id for c in sc.CLAIMS]
    assert len(ids) == len(set(ids))
    text = sc.render_markdown(_index(_tune_rows({0.0: [70.0], 0.1: [71.0]})))
    for claims, _ in sc.FAMILIES:
        assert f"`{claims[0].experiment}`" in text
    for name in ("clip", "asymmetric", "noisy_downstream", "practical", "ablation"):
        assert f"`{name}`" in text


def test_spectral_claims_are_scored_under_both_preprocessings():
    """C4 / C5 (and K4 / K5) each have an 'A' twin on the authors' preprocessing; a scale whose
    units lack those rows shows 'not run', never a zero."""
    ids = [c.id for c in sc.CLAIMS]
    for cid in ("C4", "C5", "K4", "K5"):
        assert f"{cid}A" in ids
        assert "paper's definition" in _by_id(cid).title
        assert "authors' preprocessing" in _by_id(f"{cid}A").title
    assert (_by_id("C4A").metric, _by_id("C5A").metric) == ("sve_authors", "lsvr_authors")
    assert _by_id("K5A").experiment == "clip" and _by_id("K5A").metric == "lsvr_authors"
    paper = _tune_rows({0.0: [2.0], 0.1: [2.1], 0.3: [2.3]}, method="frozen",
                       task="synthetic_ood_photo", metric="lsvr",
                       test_sets=("train", *OOD_SETS), offsets=[9.0, 0.1, 0.2, 0.3])
    authors = _tune_rows({0.0: [3.0], 0.1: [2.9], 0.3: [2.5]}, method="frozen",
                         task="synthetic_ood_photo", metric="lsvr_authors",
                         test_sets=("train", *OOD_SETS), offsets=[9.0, 0.1, 0.2, 0.3])
    probe = _tune_rows({0.0: [35.0]}, task="synthetic_ood_photo", test_sets=OOD_SETS)
    both = _index(paper, authors, probe)
    assert sc.score(both, _by_id("C5"), "tiny").headline.mean == pytest.approx(0.3)
    row = sc.score(both, _by_id("C5A"), "tiny")
    assert row.headline.mean == pytest.approx(-0.5)
    assert row.verdict == "untestable"    # one pre-training seed: no interval
    missing = sc.score(_index(paper), _by_id("C5A"), "tiny")
    assert missing.verdict == "not run" and missing.headline is None
    assert "not stored" in _by_id("C5A").note


def test_stored_models_line_counts_the_scales_models():
    """A scale stored in part says how many of its pre-trained models exist; a complete or
    unknown scale says nothing; asymmetric-noise models and other scales do not count."""
    import pandas as pd

    from nml.experiments import get_scale
    from nml.scorecard.render import stored_models_line

    spec = get_scale("cpu_seeds")
    models = [(b, n, s) for b in spec.backbones for n in spec.noise_levels
              for s in spec.pretrain_seeds]

    def index(chosen, **extra):
        return pd.DataFrame([{"experiment": "pretrain", "scale": "cpu_seeds", "backbone": b,
                              "noise": n, "pretrain_seed": s, "metric": "accuracy",
                              "value": 50.0, "noise_type": "symmetric", **extra}
                             for b, n, s in chosen])

    two = index(models[:2])
    extra = pd.concat([two, index(models[2:5], noise_type="asymmetric"),
                       index(models[5:7], scale="cpu")])
    line = stored_models_line(extra, "cpu_seeds")
    assert "Stored so far: 2 of the 15 pre-trained models" in line
    # models[:2] are noise 0 at seeds 0 and 1: no heavier level stored yet
    assert "compares 0 % with the heaviest stored level (0 %)" in line
    assert stored_models_line(index(models), "cpu_seeds") == ""
    assert stored_models_line(two, "no_such_scale") == ""


def test_an_authors_preprocessing_claim_lists_the_cells_only_its_paper_twin_has():
    """C9aA measured where only one backbone's units carry the authors' preprocessing: the
    other backbone's cell (present under the paper's definition) is listed as left out, never
    silently dropped; with no such cell at all the claim is not run."""
    groups = []
    for backbone, authors in (("resnet_micro", False), ("vit_micro", True)):
        for method, values in (("nmtune", [2.5, 2.6, 2.7]), ("lp", [2.0, 2.1, 2.1])):
            by_noise = {n: values for n in (0.0, 0.1, 0.3)}
            groups.append(_tune_rows(by_noise, method=method, backbone=backbone,
                                     metric="sve", pretrain_seed=0))
            if authors:
                groups.append(_tune_rows(by_noise, method=method, backbone=backbone,
                                         metric="sve_authors", pretrain_seed=0))
    index = _index(*groups)
    paper = sc.score(index, _by_id("C9a"), "tiny")
    authors = sc.score(index, _by_id("C9aA"), "tiny")
    assert set(paper.cells) == {"resnet_micro / synthetic_id", "vit_micro / synthetic_id"}
    assert set(authors.cells) == {"vit_micro / synthetic_id"}
    assert "not stored under the authors' preprocessing" in \
        authors.measurement.excluded["resnet_micro / synthetic_id"]
    assert authors.headline.mean == pytest.approx(0.5333333)
    assert "(1 cell left out, see details)" in sc.render_markdown(index, scales=("tiny",))
    only_paper = _index(*[g for g in groups if g[0]["metric"] == "sve"])
    assert sc.score(only_paper, _by_id("C9aA"), "tiny").verdict == "not run"
