"""FedAvg over the paper's logistic model: local training, the strategy on a fake grid (accuracy,
rounds, measured bytes, results.json) and one real simulation of FedAvg and FairFed."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid
from flwr.app import Array, ArrayRecord, ConfigRecord

from clients.client_app import app as client_app
from fedfair import local, metrics, model
from fedfair.config import compose_config
from fedfair.data.sets.synthetic import synthetic
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment, evaluate, local_update
from fedfair.results import HISTORY_KEYS, SCHEMA_VERSION
from fedfair.table import Table
from strategies.base import config_digest
from strategies.server_app import run_experiment
from strategies.simulation import simulate

OVERRIDES = [
    "dataset=synthetic", "num_clients=3", "partition=dirichlet", "progress=false", "strategy.rounds=3",
    "strategy.local_epochs=10", "strategy.batch_size=32", "strategy.lr=2",
]


@pytest.fixture(scope="module")
def table() -> Table:
    return synthetic(rows=400, seed=3).table


def test_local_training_lowers_the_loss_and_is_seeded(table):
    cfg = local.LocalConfig(local_epochs=3, lr=1.0, batch_size=32)
    start = np.zeros(len(table.feature_names) + 2)
    z, y = model.design(table), table.y.astype(float)
    result = local.train(start, table, cfg, seed=1)
    assert result.loss == pytest.approx(model.loss(result.theta, z, y, cfg.lam_theta))
    assert result.loss < model.loss(start, z, y, cfg.lam_theta) - 0.05  # log 2 at θ = 0
    assert result.steps == 3 * 13  # ceil(400 / 32) batches per epoch
    assert np.array_equal(local.train(start, table, cfg, seed=1).theta, result.theta)
    assert not np.array_equal(local.train(start, table, cfg, seed=2).theta, result.theta)
    assert np.array_equal(start, np.zeros_like(start))  # the global θ is not modified in place


def test_full_batch_is_one_gradient_step_per_epoch(table):
    cfg = local.LocalConfig(local_epochs=1, lr=0.3, batch_size=len(table), lam_theta=0.5)
    theta0 = np.linspace(-1, 1, len(table.feature_names) + 2)
    z, y = model.design(table), table.y.astype(float)
    expected = theta0 - 0.3 * model.gradient(theta0, z, y, 0.5)
    assert local.train(theta0, table, cfg, seed=0).theta == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_reweighing_makes_s_and_y_independent_and_training_lowers_the_weighted_loss(table):
    w = local.reweighing(table)
    assert w.mean() == pytest.approx(1.0)
    positive = table.y == 1
    rates = [w[(table.s == g) & positive].sum() / w[table.s == g].sum() for g in (0, 1)]
    assert rates[0] == pytest.approx(rates[1])  # weighted P(y=+1 | s) equal in both groups
    assert abs(positive[table.s == 0].mean() - positive[table.s == 1].mean()) > 0.1  # not so unweighted
    cfg = local.LocalConfig(local_epochs=3, lr=1.0, batch_size=32, reweigh=True)
    start = np.zeros(len(table.feature_names) + 2)
    result = local.train(start, table, cfg, seed=1)
    z, y = model.design(table), table.y.astype(float)
    assert result.loss == pytest.approx(model.loss(result.theta, z, y, cfg.lam_theta, w))
    assert result.loss < model.loss(start, z, y, cfg.lam_theta, w) - 0.05


def test_local_training_rejects_a_model_of_the_wrong_size(table):
    with pytest.raises(FedFairError, match="the global model has 3 weights but the table needs 6"):
        local.train(np.zeros(3), table, local.LocalConfig(), seed=0)


def _run(tmp_path, overrides):
    cfg = compose_config(overrides)
    path = run_experiment(FakeGrid(client_app, cfg["num_clients"]), cfg, tmp_path, overrides)
    return cfg, json.loads(path.read_text())


def test_fedavg_learns_counts_rounds_and_measures_bytes(tmp_path):
    overrides = [*OVERRIDES, "strategy=fedavg"]
    cfg, res = _run(tmp_path, overrides)
    exp = Experiment(cfg)
    data = exp.load()
    tables = [exp.client_tables(data, pid) for pid in range(3)]
    tests = [t for _, t in tables]
    zero = metrics.pooled([evaluate(np.zeros(len(data.table.feature_names) + 2), t) for t in tests])
    central = metrics.pooled([evaluate(model.fit(Table.concat([tr for tr, _ in tables])), t) for t in tests])
    assert res["metrics"]["accuracy"] > zero["accuracy"] + 0.2  # θ⁰ = 0 predicts −1 everywhere
    assert res["metrics"]["accuracy"] > central["accuracy"] - 0.03  # close to the pooled-data fit

    # The same θ as the library's FedAvg: 3 rounds of local_update, averaged by n_k.
    theta = np.zeros(len(data.table.feature_names) + 2)
    sizes = np.array([len(tr) for tr, _ in tables], dtype=float)
    for rnd in (1, 2, 3):
        thetas = [local_update(exp, train, theta, pid, rnd).theta for pid, (train, _) in enumerate(tables)]
        theta = local.average(thetas, sizes)
    assert res["metrics"] == metrics.pooled([evaluate(theta, t) for t in tests])

    k, t = 3, 3
    comm = res["communication"]
    assert comm["rounds"] == t
    assert comm["messages_down"] == comm["messages_up"] == 2 * k * t  # train + evaluate, every round
    # Down: every message carries the server round; all but round 1's train messages carry θ. The run
    # config goes with the first message to each node, its digest with every message: metered apart.
    job = json.dumps(cfg)
    digest = ConfigRecord({"fedfair-digest": config_digest(job)}).count_bytes()
    full = ConfigRecord({"fedfair": job}).count_bytes() + digest
    round_bytes = ConfigRecord({"server-round": 1}).count_bytes()
    theta_bytes = ArrayRecord({"theta": Array(theta)}).count_bytes()
    assert comm["bytes_down"] == k * (2 * t * round_bytes + (2 * t - 1) * theta_bytes)
    assert comm["config_bytes_down"] == k * (full + (2 * t - 1) * digest)
    assert k * t * theta_bytes < comm["bytes_up"] < k * t * (theta_bytes + 2_000)

    # History: one entry per round, the last one the final metrics; its bytes add up to the totals.
    history = res["history"]
    assert res["schema_version"] == SCHEMA_VERSION
    assert [r["round"] for r in history] == [1, 2, 3]
    assert {key: history[-1][key] for key in HISTORY_KEYS} == {key: res["metrics"][key] for key in HISTORY_KEYS}
    assert history[0]["accuracy"] != history[-1]["accuracy"]
    for key in ("bytes_down", "bytes_up", "config_bytes_down"):
        assert sum(r[key] for r in history) == comm[key]
    assert history[0]["config_bytes_down"] == k * (full + digest) and history[1]["config_bytes_down"] == 2 * k * digest
    assert [sum(r["weights"].values()) for r in history] == pytest.approx([1.0] * t)
    assert history[-1]["weights"] == {str(c["partition_id"]): c["weight"] for c in res["per_client"]}
    assert (tmp_path / "history.png").stat().st_size > 10_000

    assert res["privacy"] == {"mechanism": "none", "epsilon": None, "delta": None, "guarantee": None,
                              "per_client": [], "audit": []}
    assert res["clients"] == [{"partition_id": pid, "status": "ok"} for pid in range(k)]
    assert [c["n_train"] for c in res["per_client"]] == sizes.astype(int).tolist()
    assert not any("n_upload" in c or "privacy" in c for c in res["per_client"])


def test_fedavg_results_have_the_one_shot_keys(tmp_path, base_overrides):
    _, oneshot = _run(tmp_path / "oneshot", base_overrides)
    _, fedavg = _run(tmp_path / "fedavg", [*base_overrides, "strategy=fedavg", "strategy.rounds=1"])
    assert set(fedavg) == set(oneshot)
    assert set(fedavg["communication"]) == set(oneshot["communication"])
    assert set(fedavg["metrics"]) == set(oneshot["metrics"])


def test_stage_configs_do_not_block_the_federated_baselines():
    for strategy in ("fedavg", "fairfed"):
        Experiment(compose_config([f"strategy={strategy}", "stage2.epsilon=0", "stage1.penalty=xx"]))
    with pytest.raises(FedFairError, match="stage2.epsilon must be > 0"):
        Experiment(compose_config(["stage2.epsilon=0"]))
    with pytest.raises(FedFairError, match="unknown strategy 'fedprox'; choose one of: oneshot, fed"):
        Experiment(compose_config(["strategy.name=fedprox"]))


@pytest.mark.slow
def test_fedavg_and_fairfed_through_the_real_simulation(tmp_path):
    common = [*OVERRIDES, "num_clients=2", "strategy.rounds=2", "simulation.timeout=600"]
    results = {}
    for strategy in ("fedavg", "fairfed"):
        overrides = [*common, f"strategy={strategy}"]
        path = simulate(compose_config(overrides), tmp_path / strategy, overrides)
        results[strategy] = json.loads(path.read_text())
    for strategy, res in results.items():
        assert res["strategy"] == strategy
        assert res["communication"]["rounds"] == 2
        assert sorted(c["partition_id"] for c in res["per_client"]) == [0, 1]
        assert res["metrics"]["accuracy"] > res["sanity"]["majority_rate"]
    # FairFed's extra exchanges: groups once, stats in each of the 2 rounds, 2 clients, both ways.
    extra = results["fairfed"]["communication"]["messages"] - results["fedavg"]["communication"]["messages"]
    assert extra == 2 * (2 + 2 * 2)
