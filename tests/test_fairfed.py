"""FairFed (Ezzeldin et al., AAAI 2023): the weight step against a hand-computed example, the all-zero
guard, the missing-group fallback, F_global = Σ m_k, and β = 0 ≡ FedAvg bit for bit on a fake grid."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid
from flwr.app import ArrayRecord, ConfigRecord

from clients.client_app import app as client_app
from fedfair import fairfed, metrics, model
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.fairfed import LocalStats
from fedfair.local import average
from fedfair.pipeline import Experiment
from fedfair.table import Table
from strategies.fairfed import FairFed
from strategies.server_app import make_strategy, run_experiment

OVERRIDES = [
    "dataset=synthetic", "num_clients=3", "partition=dirichlet", "progress=false", "strategy.rounds=3",
    "strategy.local_epochs=10", "strategy.batch_size=32", "strategy.lr=2",
]

# The hand example. Three clients with n = (50, 30, 20): ω⁰ = (0.5, 0.3, 0.2), i.e. (50, 30, 20) in
# example units (n = 100). Client 2 lacks a sensitive group, so its F_2 is undefined.
HAND = [
    LocalStats(rows=50, accuracy=0.90, fairness=0.16, share=0.05),
    LocalStats(rows=30, accuracy=0.90, fairness=-0.24, share=0.02),
    LocalStats(rows=20, accuracy=0.65, fairness=None, share=-0.01),
]
SIZES = np.array([50.0, 30.0, 20.0])


def test_weight_step_matches_the_hand_example():
    # F_global = 0.05 + 0.02 − 0.01 = 0.06 (the sum of the shares, not the mean of the F_k)
    assert fairfed.global_metric(HAND) == pytest.approx(0.06)
    # Acc = (50·0.90 + 30·0.90 + 20·0.65) / 100 = (45 + 27 + 13) / 100 = 0.85
    assert fairfed.global_accuracy(HAND) == pytest.approx(0.85)
    # Δ = (|0.06 − 0.16|, |0.06 − (−0.24)|, |0.85 − 0.65|) = (0.10, 0.30, 0.20); mean Δ = 0.20
    gaps = fairfed.gaps(HAND)
    assert gaps == pytest.approx([0.10, 0.30, 0.20])

    # β = 1: (50, 30, 20) − 1·100·(−0.10, +0.10, 0) = (60, 20, 20); nothing clipped, sum still 100
    #        → ω = (0.6, 0.2, 0.2)
    w1 = fairfed.update_weights(SIZES, gaps, 1.0, SIZES)
    assert w1 == pytest.approx([60.0, 20.0, 20.0])
    # β = 4: (50, 30, 20) − 4·100·(−0.10, +0.10, 0) = (90, −10, 20) → clipped (90, 0, 20), sum 110
    #        → renormalised to 100: (81.82, 0, 18.18) → ω = (9/11, 0, 2/11)
    w4 = fairfed.update_weights(SIZES, gaps, 4.0, SIZES)
    assert w4 == pytest.approx([900 / 11, 0.0, 200 / 11])
    assert w4.sum() == pytest.approx(100.0)
    # The same step on weights that sum to 1 (the paper's units) gives the same ω.
    assert fairfed.update_weights(SIZES / 100, gaps, 4.0, SIZES / 100) == pytest.approx([9 / 11, 0, 2 / 11])

    # θ = Σ ω_k θ_k with ω = (0.6, 0.2, 0.2): 0.6·(1, 0) + 0.2·(0, 1) + 0.2·(1, 1) = (0.8, 0.4)
    thetas = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]
    assert average(thetas, w1) == pytest.approx([0.8, 0.4])


def test_beta_zero_leaves_the_weights_exactly_and_the_all_zero_guard_falls_back_to_sizes():
    gaps = fairfed.gaps(HAND)
    assert np.array_equal(fairfed.update_weights(SIZES, gaps, 0.0, SIZES), SIZES)
    # All weights 0 (every client taking part had been clipped, the others dropped out): nothing can
    # grow, so the step would leave all-zero weights; the guard returns FedAvg's sizes instead.
    zero, gaps2, sizes2 = np.zeros(2), np.array([0.1, 0.3]), np.array([3, 1])
    assert np.array_equal(fairfed.update_weights(zero, gaps2, 1.0, sizes2), [3.0, 1.0])
    strategy = FairFed(3, fairfed.FairFedConfig(beta=1.0), timeout=10)
    strategy.weights = {0: 0.0, 1: 0.0, 2: 5.0}
    assert np.array_equal(strategy.aggregation_weights([0, 1], np.array([3.0, 1.0])), [3.0, 1.0])
    assert np.array_equal(strategy.aggregation_weights([0, 2], np.array([3.0, 1.0])), [0.0, 5.0])


def _table(s, y, x=None):
    s = np.asarray(s)
    x = np.zeros((len(s), 1)) if x is None else np.asarray(x, dtype=float)[:, None]
    return Table(x, s, np.asarray(y), ("x",))


def test_a_client_lacking_a_group_reports_no_fairness_and_gets_the_accuracy_gap():
    theta = np.array([1.0, 0.0, -0.5])  # predicts +1 iff x > 0.5
    groups = np.array([10.0, 10.0])
    only_men = _table([1, 1, 1, 1], [1, 1, -1, -1], [1, 0, 0, 1])  # predictions +1, −1, −1, +1
    stats = fairfed.local_stats(theta, only_men, "eod", groups)
    # Accuracy 2/4; no s = 0 rows, so the local EOD is undefined; m = c(1)/D_1 − c(0)/D_0 = 1/10 − 0
    assert (stats.rows, stats.accuracy, stats.fairness, stats.share) == (4, 0.5, None, pytest.approx(0.1))
    # Both groups, but no positives in group 0: EOD undefined, SPD defined (= 1/2 − 0/1).
    no_pos0 = _table([0, 1, 1], [-1, 1, -1], [0, 1, 0])
    assert fairfed.local_stats(theta, no_pos0, "eod", groups).fairness is None
    assert fairfed.local_stats(theta, no_pos0, "spd", groups).fairness == pytest.approx(0.5)

    complete = LocalStats(rows=4, accuracy=1.0, fairness=0.3, share=0.1)
    # F_global = 0.1 + 0.1 = 0.2; Acc = (4·1.0 + 4·0.5)/8 = 0.75 → Δ = (|0.2 − 0.3|, |0.75 − 0.5|)
    assert fairfed.gaps([complete, stats]) == pytest.approx([0.1, 0.25])


def test_global_metric_is_the_sum_of_shares_and_equals_the_pooled_metric():
    exp = Experiment(compose_config(OVERRIDES + ["strategy=fairfed", "num_clients=4", "partition.alpha=0.3"]))
    data = exp.load()
    trains = [exp.client_tables(data, pid)[0] for pid in range(4)]
    theta = model.fit(Table.concat(trains))
    counts = sum(fairfed.group_counts(t) for t in trains)
    pooled = metrics.pooled([metrics.counts(t.y, model.predict(theta, t), t.s) for t in trains])
    for metric in ("eod", "spd"):
        stats = [fairfed.local_stats(theta, t, metric, fairfed.global_groups(counts, metric)) for t in trains]
        assert fairfed.global_metric(stats) == pytest.approx(pooled[metric], abs=1e-12)
        local_mean = np.mean([s.fairness for s in stats if s.fairness is not None])
        assert abs(local_mean - pooled[metric]) > 1e-3  # the mean of the F_k would be another number
    assert fairfed.global_accuracy(stats) == pytest.approx(pooled["accuracy"], abs=1e-12)


def test_global_groups_need_both_groups():
    assert np.array_equal(fairfed.global_groups(np.array([[3, 2], [5, 4]]), "eod"), [2.0, 4.0])
    assert np.array_equal(fairfed.global_groups(np.array([[3, 2], [5, 4]]), "spd"), [5.0, 9.0])
    with pytest.raises(FedFairError, match="needs rows with y=\\+1 of both sensitive groups in"):
        fairfed.global_groups(np.array([[3, 0], [5, 4]]), "eod")


def _start(overrides, grid_failing=None):
    """Run the configured strategy on a fake grid; return it and the final θ."""
    cfg = compose_config(overrides)
    strategy, rounds = make_strategy(Experiment(cfg))
    job = json.dumps(cfg)
    result = strategy.start(
        grid=FakeGrid(client_app, cfg["num_clients"], grid_failing),
        initial_arrays=ArrayRecord(),
        num_rounds=rounds,
        timeout=10,
        train_config=ConfigRecord({"fedfair": job}),
        evaluate_config=ConfigRecord({"fedfair": job}),
    )
    return strategy, result.arrays["theta"].numpy()


def test_beta_zero_is_fedavg_bit_for_bit():
    # Sizes n = (485, 970, 145): the fractions n_k/n do not sum to exactly 1.0 in floating point,
    # so a renormalisation that is not exact at β = 0 would change the weights' last bits.
    sizes = [*OVERRIDES, "seed=2", "partition.alpha=0.3"]
    fedavg, theta_avg = _start([*sizes, "strategy=fedavg"])
    fair0, theta_fair0 = _start([*sizes, "strategy=fairfed", "strategy.beta=0"])
    assert [fedavg.training[pid].n_train for pid in range(3)] == [485, 970, 145]
    assert np.array_equal(theta_avg, theta_fair0)
    assert fedavg.evaluation.pooled == fair0.evaluation.pooled
    assert {k: v.metrics for k, v in fedavg.evaluation.per_client.items()} == {
        k: v.metrics for k, v in fair0.evaluation.per_client.items()
    }
    # The extra FairFed exchanges are metered: groups once, stats every round (K messages each way).
    k, t = 3, 3
    assert fedavg.communication.messages_down == 2 * k * t
    assert fair0.communication.messages_down == 2 * k * t + k + k * t
    assert fair0.communication.bytes_down > fedavg.communication.bytes_down
    assert fair0.communication.bytes_up > fedavg.communication.bytes_up

    # β > 0 moves the weights and so the model: the test above could fail.
    fair1, theta_fair1 = _start([*sizes, "strategy=fairfed", "strategy.beta=1"])
    assert not np.array_equal(theta_avg, theta_fair1)
    weights = [fair1.training[pid].weight for pid in range(3)]
    sizes = np.array([fair1.training[pid].n_train for pid in range(3)])
    assert sum(weights) == pytest.approx(1.0)
    assert not np.allclose(weights, sizes / sizes.sum())


def test_fairfed_run_writes_results_with_weights(tmp_path):
    overrides = [*OVERRIDES, "strategy=fairfed", "strategy.metric=spd"]
    path = run_experiment(FakeGrid(client_app, 3), compose_config(overrides), tmp_path, overrides)
    res = json.loads(path.read_text())
    assert res["strategy"] == "fairfed" and res["communication"]["rounds"] == 3
    assert res["privacy"]["mechanism"] == "none"
    assert [c["partition_id"] for c in res["per_client"]] == [0, 1, 2]
    assert sum(c["weight"] for c in res["per_client"]) == pytest.approx(1.0)
    # Per round: the weights used (they sum to 1, and move), F_global, the metrics of that round's model.
    history = res["history"]
    assert [r["round"] for r in history] == [1, 2, 3]
    weights = [[r["weights"][str(pid)] for pid in range(3)] for r in history]
    assert [sum(w) for w in weights] == pytest.approx([1.0] * 3)
    assert not np.allclose(weights[0], weights[-1])
    assert weights[-1] == [c["weight"] for c in res["per_client"]]
    assert all(isinstance(r["global_fairness"], float) for r in history)
    assert history[-1]["abs_spd"] == res["metrics"]["abs_spd"]
    assert (tmp_path / "history.png").exists()


def test_a_failing_client_fails_the_fairfed_exchange_in_one_line(caplog):
    with pytest.raises(FedFairError, match="fairfed groups: only 2 of 3 clients answered"):
        _start([*OVERRIDES, "strategy=fairfed"], grid_failing={1: "disk on fire"})
    assert "disk on fire" in caplog.text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategy.beta=-1", "strategy.beta must be a finite number >= 0"),
        ("strategy.metric=dp", "strategy.metric must be one of eod, spd"),
        ("strategy.rounds=0", "strategy.rounds must be a positive integer"),
        ("+strategy.bogus=1", "unknown key strategy.bogus; known keys: batch_size, beta,"),
    ],
)
def test_bad_fairfed_config_is_one_line(override, message):
    with pytest.raises(FedFairError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Experiment(compose_config(["strategy=fairfed", override]))

