import math
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import f1_score, precision_score, recall_score

from fedfair.errors import FedFairError
from fedfair.metrics import Counts, compute, counts, evaluate, pooled

# Hand case, 10 rows:   s   y   ŷ     d
#                  0:   1  +1  +1   2.0   TP
#                  1:   1  +1  +1   1.0   TP
#                  2:   1  +1  -1  -0.5   FN
#                  3:   1  -1  +1   0.5   FP
#                  4:   1  -1  -1  -1.0   TN
#                  5:   0  +1  +1   1.5   TP
#                  6:   0  +1  -1  -2.0   FN
#                  7:   0  -1  -1  -1.0   TN
#                  8:   0  -1  -1  -0.5   TN
#                  9:   0  -1  -1  -0.25  TN
S = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
Y = [1, 1, 1, -1, -1, 1, 1, -1, -1, -1]
P = [1, 1, -1, 1, -1, 1, -1, -1, -1, -1]
D = [2.0, 1.0, -0.5, 0.5, -1.0, 1.5, -2.0, -1.0, -0.5, -0.25]


def test_hand_case():
    m = evaluate(Y, P, S, D)
    # TP=3 (0,1,5), FN=2 (2,6), FP=1 (3), TN=4 (4,7,8,9)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["recall"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(6 / 9)  # 2TP / (2TP + FP + FN)
    assert m["selection_rate"] == pytest.approx(4 / 10)
    # selection: s=1 picks rows 0,1,3 -> 3/5; s=0 picks row 5 -> 1/5
    assert m["sel_rate_s1"] == pytest.approx(0.6) and m["sel_rate_s0"] == pytest.approx(0.2)
    assert m["spd"] == pytest.approx(0.4) and m["abs_spd"] == pytest.approx(0.4)
    assert m["dpr"] == pytest.approx(0.2 / 0.6)
    # TPR: s=1 positives 0,1,2 -> 2/3; s=0 positives 5,6 -> 1/2
    assert m["tpr_s1"] == pytest.approx(2 / 3) and m["tpr_s0"] == pytest.approx(1 / 2)
    assert m["eod"] == pytest.approx(1 / 6)
    assert m["eor"] == pytest.approx(0.75)
    # s̄ = 0.5; Σ_{s=1} d = 2.0, Σ_{s=0} d = -2.25 -> (0.5*2.0 + 0.5*2.25) / 10 = 0.2125
    assert m["cov_sp"] == pytest.approx(0.2125)
    # y=+1 rows only, s̄ still over all 10: Σ_{s=1} d = 2.5, Σ_{s=0} d = -0.5 -> (1.25 + 0.25) / 10 = 0.15
    # (s̄ over positives only would give 0.13; dividing by the 5 positives would give 0.3)
    assert m["cov_eo"] == pytest.approx(0.15)
    # FPR: s=1 negatives 3,4 -> 1/2; s=0 negatives 7,8,9 -> 0/3. Equalized odds: min(TPR ratio 0.75,
    # FPR ratio 0/0.5 = 0) = 0 and max(|TPR gap| 1/6, |FPR gap| 1/2) = 1/2
    assert m["fpr_s1"] == pytest.approx(0.5) and m["fpr_s0"] == 0.0
    assert m["eqodds_ratio"] == 0.0 and m["eqodds_diff"] == pytest.approx(0.5)


def test_equalized_odds_by_hand_when_fpr_ratio_is_not_the_minimum():
    # s=1: TPR 2/4, FPR 1/4; s=0: TPR 1/4, FPR 1/5 -> ratios 0.5 and 0.8, gaps 0.25 and 0.05
    s = [1] * 8 + [0] * 9
    y = [1, 1, 1, 1, -1, -1, -1, -1] + [1, 1, 1, 1, -1, -1, -1, -1, -1]
    p = [1, 1, -1, -1, 1, -1, -1, -1] + [1, -1, -1, -1, 1, -1, -1, -1, -1]
    m = evaluate(y, p, s)
    assert m["eqodds_ratio"] == pytest.approx(0.5) and m["eqodds_diff"] == pytest.approx(0.25)
    assert m["eor"] == pytest.approx(0.5)


def test_hand_case_signs_flip_with_groups():
    m = evaluate(Y, P, [1 - v for v in S], D)
    assert m["spd"] == pytest.approx(-0.4) and m["abs_spd"] == pytest.approx(0.4)
    assert m["eod"] == pytest.approx(-1 / 6)
    assert m["cov_sp"] == pytest.approx(-0.2125)
    assert m["dpr"] == pytest.approx(1 / 3)


def _random_case(k: int):
    rng = np.random.default_rng(k)
    n = int(rng.integers(20, 300))
    s = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    y = np.where(rng.random(n) < rng.uniform(0.2, 0.7) + 0.15 * s, 1, -1)
    p = np.where(rng.random(n) < rng.uniform(0.1, 0.6) + rng.uniform(0, 0.3) * s, 1, -1)
    s[:4], y[:4] = [0, 0, 1, 1], [1, -1, 1, -1]  # every (group, label) cell occurs
    if k % 7 == 0:
        p[:] = -1  # nobody selected: fairlearn's ratio is 0/0 = NaN, ours 1.0
    return y, p, s


CASES = [_random_case(k) for k in range(50)]


@pytest.fixture(scope="module")
def fairlearn_frame() -> MetricFrame:
    """One MetricFrame over all 50 cases (case id as control feature): by group, per case."""
    y, p, s = (np.concatenate(cols) for cols in zip(*CASES))
    case = np.concatenate([np.full(len(c[0]), k) for k, c in enumerate(CASES)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fairlearn warns on 0/0 selection ratios
        return MetricFrame(
            metrics={"sel": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
            y_true=(y == 1).astype(int),  # fairlearn wants 0/1 labels, 1 = positive
            y_pred=(p == 1).astype(int),
            sensitive_features=pd.Series(s, name="s"),
            control_features=pd.Series(case, name="case"),
        )


@pytest.mark.parametrize("k", range(len(CASES)))
def test_matches_fairlearn_and_sklearn(k, fairlearn_frame):
    y, p, s = CASES[k]
    m = evaluate(y, p, s)
    y01, p01 = (y == 1).astype(int), (p == 1).astype(int)
    by = fairlearn_frame.by_group.loc[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diff, ratio = fairlearn_frame.difference().loc[k], fairlearn_frame.ratio().loc[k]
        if k % 5 == 0:  # the public functions are this MetricFrame per case; too slow to call 50 times
            assert demographic_parity_difference(y01, p01, sensitive_features=s) == pytest.approx(diff["sel"])
            assert demographic_parity_ratio(y01, p01, sensitive_features=s) == pytest.approx(
                ratio["sel"], nan_ok=True
            )
            eo_ratio = equalized_odds_ratio(y01, p01, sensitive_features=s)
            assert m["eqodds_ratio"] == pytest.approx(1.0 if math.isnan(eo_ratio) else eo_ratio, abs=1e-12)
            assert m["eqodds_diff"] == pytest.approx(equalized_odds_difference(y01, p01, sensitive_features=s))
    for g in (0, 1):
        assert m[f"sel_rate_s{g}"] == pytest.approx(by.loc[g, "sel"], abs=1e-12)
        assert m[f"tpr_s{g}"] == pytest.approx(by.loc[g, "tpr"], abs=1e-12)
        assert m[f"fpr_s{g}"] == pytest.approx(by.loc[g, "fpr"], abs=1e-12)
    assert m["spd"] == pytest.approx(by.loc[1, "sel"] - by.loc[0, "sel"], abs=1e-12)
    assert m["eod"] == pytest.approx(by.loc[1, "tpr"] - by.loc[0, "tpr"], abs=1e-12)
    assert m["abs_spd"] == pytest.approx(diff["sel"], abs=1e-12)  # fairlearn's difference is max - min
    assert m["abs_eod"] == pytest.approx(diff["tpr"], abs=1e-12)
    for ours, theirs in (("dpr", "sel"), ("eor", "tpr")):
        want = 1.0 if math.isnan(ratio[theirs]) else ratio[theirs]
        assert m[ours] == pytest.approx(want, abs=1e-12), ours
    tpr_r, fpr_r = (1.0 if math.isnan(ratio[k]) else ratio[k] for k in ("tpr", "fpr"))
    assert m["eqodds_ratio"] == pytest.approx(min(tpr_r, fpr_r), abs=1e-12)  # fairlearn's worst case
    assert m["eqodds_diff"] == pytest.approx(max(diff["tpr"], diff["fpr"]), abs=1e-12)
    assert m["accuracy"] == pytest.approx(np.mean(y == p), abs=1e-12)
    assert m["selection_rate"] == pytest.approx(np.mean(p01), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, p, pos_label=1), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, p, pos_label=1, zero_division=0.0), abs=1e-12)
    if p01.any():
        assert m["precision"] == pytest.approx(precision_score(y, p, pos_label=1), abs=1e-12)
    else:
        assert m["precision"] is None


def test_covariances_match_direct_formula():
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(5, 500))
        s = rng.integers(0, 2, n)
        y = rng.choice([-1, 1], n)
        d = rng.normal(0.3, 2.0, n) + 0.7 * s
        p = np.where(d > 0, 1, -1)
        m = evaluate(y, p, s, d)
        centred = s - s.mean()
        assert m["cov_sp"] == pytest.approx(np.mean(centred * d), abs=1e-12)
        assert m["cov_eo"] == pytest.approx(np.mean(centred * (1 + y) / 2 * d), abs=1e-12)


def _clients(seed: int = 3):
    """Three clients of different sizes and group mixes, and their concatenation."""
    rng = np.random.default_rng(seed)
    parts = []
    for n, share_s1, bias in ((400, 0.8, 0.3), (150, 0.3, -0.2), (60, 0.5, 0.6)):
        s = (rng.random(n) < share_s1).astype(int)
        y = rng.choice([-1, 1], n)
        d = rng.normal(bias * s, 1.0, n)
        parts.append((y, np.where(d > 0, 1, -1), s, d))
    whole = tuple(np.concatenate(cols) for cols in zip(*parts))
    return parts, whole


def test_pooled_counts_are_exact_and_differ_from_rate_averaging():
    parts, whole = _clients()
    per_client = [counts(*part) for part in parts]
    got, want = pooled(per_client), evaluate(*whole)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    mean_spd = np.mean([compute(c)["spd"] for c in per_client])
    assert abs(mean_spd - want["spd"]) > 0.01
    mean_acc = np.average([compute(c)["accuracy"] for c in per_client])
    assert abs(mean_acc - want["accuracy"]) > 1e-4


def test_round_trip_and_commutative_addition():
    parts, _ = _clients()
    a, b, c = (counts(*part) for part in parts)
    record = a.to_dict()
    assert all(isinstance(v, (int, float)) and not isinstance(v, np.generic) for v in record.values())
    assert "n_s0_y0_p0" in record and "sum_sd_pos" in record
    assert Counts.from_dict(record) == a
    assert Counts.from_dict({k: float(v) for k, v in record.items()}) == a  # a MetricRecord may hold floats
    assert a + b == b + a
    assert ((a + b) + c).to_dict() == pytest.approx((a + (b + c)).to_dict(), abs=1e-9)
    assert a + Counts.zero() == a
    assert a + b != a


def test_layout_of_counts_and_keys():
    c = counts(Y, P, S, D)
    # n[s, y01, yhat01]: row 3 is the only false positive in s=1, rows 7,8,9 the true negatives in s=0
    assert c.n[1, 0, 1] == 1 and c.n[0, 0, 0] == 3 and c.n[1, 1, 1] == 2 and c.n.sum() == 10
    record = c.to_dict()
    assert record["n_s1_y0_p1"] == 1 and record["n_s0_y1_p0"] == 1 and record["n_s0_y0_p1"] == 0
    assert record["sum_d"] == pytest.approx(-0.25) and record["sum_sd"] == pytest.approx(2.0)
    assert record["sum_d_pos"] == pytest.approx(2.0) and record["sum_sd_pos"] == pytest.approx(2.5)
    assert record["n_scored"] == 10 and c.has_scores and not counts(Y, P, S).has_scores


def test_from_dict_rejects_incomplete_record():
    record = counts(Y, P, S, D).to_dict()
    del record["sum_d"]
    with pytest.raises(FedFairError, match="sum_d"):
        Counts.from_dict(record)


def test_missing_group_gives_none_not_nan():
    m = evaluate([1, -1, 1], [1, 1, -1], [0, 0, 0], [0.5, 0.2, -0.1])
    assert m["accuracy"] == pytest.approx(1 / 3)
    for key in ("spd", "eod", "abs_spd", "abs_eod", "dpr", "eor", "sel_rate_s1", "tpr_s1", "eqodds_ratio",
                "eqodds_diff"):
        assert m[key] is None, key
    assert m["cov_sp"] == pytest.approx(0.0)  # s is constant: zero covariance, still defined


def test_no_positives_in_a_group_leaves_spd_defined():
    m = evaluate([1, -1, -1, -1], [1, -1, 1, -1], [0, 0, 1, 1])
    assert m["spd"] == pytest.approx(0.0)
    assert m["eod"] is None and m["eor"] is None and m["tpr_s1"] is None
    assert m["eqodds_ratio"] is None and m["eqodds_diff"] is None


def test_undefined_values_and_ratio_zero_over_zero():
    m = evaluate(Y, [-1] * 10, S)  # nobody selected in either group
    assert m["dpr"] == 1.0 and m["eor"] == 1.0 and m["spd"] == 0.0
    assert m["precision"] is None and m["f1"] == 0.0  # f1 = 2TP / (2TP+FP+FN) = 0 / 5
    assert m["cov_sp"] is None and m["cov_eo"] is None  # no decision values
    empty = evaluate([], [], [])
    assert empty["n"] == 0 and all(v is None for k, v in empty.items() if k != "n")
    for y, p, s in CASES:
        assert all(v is None or math.isfinite(v) for v in evaluate(y, p, s).values())


def test_unscored_client_makes_pooled_covariance_undefined():
    parts, _ = _clients()
    y, p, s, _ = parts[0]
    m = pooled([counts(*parts[1]), counts(y, p, s)])
    assert m["cov_sp"] is None and m["accuracy"] is not None


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([1, -1], [1, 1], [0, 2]), "s"),
        (([1, 0], [1, 1], [0, 1]), "y_true"),
        (([1, -1], [1, 0], [0, 1]), "y_pred"),
        (([1, -1], [1, 1], [0, 1], [0.1, float("nan")]), "d"),
        (([1, -1], [1], [0, 1]), "length"),
        (([1, -1], [1, 1], [0, 1], [0.1]), "length"),
    ],
)
def test_bad_input_raises_one_line_error(args, name):
    with pytest.raises(FedFairError) as info:
        counts(*args)
    assert "\n" not in str(info.value)
    assert name in str(info.value)
