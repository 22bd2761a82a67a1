"""FADM in the framework: ``stage1=fadm`` one-shot uploads and ``strategy=fedavg_fadm`` (FedAvg on
FADM-augmented clients) on a fake grid and through the real simulation; config errors."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid

from clients.client_app import app as client_app
from fedfair import fadm, local, metrics, pipeline
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.table import Table
from strategies.server_app import run_experiment
from strategies.simulation import simulate

TINY_FADM = ["dataset=synthetic", "dataset.rows=400", "progress=false", "stage1=fadm", "stage1.iterations=30",
             "stage1.hidden=16", "stage1.layers=1", "stage1.steps=10"]


def _run(tmp_path, overrides):
    cfg = compose_config(overrides)
    path = run_experiment(FakeGrid(client_app, cfg["num_clients"]), cfg, tmp_path, overrides)
    return pipeline.Experiment(cfg), json.loads(path.read_text())


def test_oneshot_uploads_fadm_samples_and_the_server_fits_their_union(tmp_path):
    exp, res = _run(tmp_path, [*TINY_FADM, "stage2=none", "stage1.ns=0.5", "stage1.labels=balanced"])
    data = exp.load()
    uploads = []
    for pid in range(2):
        train, _ = exp.client_tables(data, pid)
        upload = pipeline.make_upload(exp, data, train, pid)
        assert len(upload.table) == len(train) // 2 and (upload.table.y == 1).sum() == len(upload.table) // 2
        uploads.append(Table.from_array(upload.table.to_array(), upload.table.columns))  # as sent
    theta, _ = pipeline.server_fit(uploads, 1e-4)
    tests = [exp.client_tables(data, pid)[1] for pid in range(2)]
    assert res["metrics"] == pytest.approx(metrics.pooled([pipeline.evaluate(theta, t) for t in tests]), rel=1e-9)
    assert [c["n_upload"] for c in res["per_client"]] == [len(u) for u in uploads]
    assert res["communication"]["rounds"] == 1 and res["config"]["stage1"]["name"] == "fadm"


def test_fedavg_fadm_generates_once_per_node_and_trains_on_real_plus_synthetic_rows(tmp_path, monkeypatch):
    calls = []
    real_fit = fadm.fit

    def counted(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fadm, "fit", counted)
    overrides = [*TINY_FADM, "strategy=fedavg_fadm", "strategy.rounds=3"]
    exp, res = _run(tmp_path, overrides)
    assert len(calls) == 2  # one FADM per node, kept in its context state for rounds 2 and 3
    assert res["strategy"] == "fedavg_fadm" and res["communication"]["rounds"] == 3

    data = exp.load()
    augmented = []
    for pid in range(2):
        train, _ = exp.client_tables(data, pid)
        rows, _ = pipeline.augmentation(exp, data, train, pid)
        augmented.append(Table.concat([train, rows]))
        assert res["per_client"][pid]["n_synthetic"] == len(rows) == len(train)
        assert res["per_client"][pid]["n_train"] == 2 * len(train)
    theta = np.zeros(len(data.table.feature_names) + 2)
    for rnd in (1, 2, 3):
        thetas = [pipeline.local_update(exp, t, theta, pid, rnd).theta for pid, t in enumerate(augmented)]
        theta = local.average(thetas, np.array([len(t) for t in augmented], dtype=float))
    tests = [exp.client_tables(data, pid)[1] for pid in range(2)]
    assert res["metrics"] == metrics.pooled([pipeline.evaluate(theta, t) for t in tests])


def test_fedavg_fadm_needs_the_fadm_generator():
    with pytest.raises(FedFairError, match="strategy=fedavg_fadm needs stage1=fadm, got stage1=bilevel"):
        pipeline.Experiment(compose_config(["strategy=fedavg_fadm", "stage1=bilevel"]))
    assert compose_config(["strategy=fedavg_fadm"])["stage1"]["name"] == "fadm"  # its default generator
    with pytest.raises(FedFairError, match="stage1.lambda_z must be a number"):
        pipeline.Experiment(compose_config(["stage1=fadm", "stage1.lambda_z=lots"]))
    with pytest.raises(FedFairError, match="no feature column 'race'"):
        exp = pipeline.Experiment(compose_config([*TINY_FADM, "stage2=none", "stage1.domain_column=race"]))
        data = exp.load()
        pipeline.make_upload(exp, data, exp.client_tables(data, 0)[0], 0)


@pytest.mark.slow
def test_fedavg_fadm_through_the_real_simulation(tmp_path):
    overrides = [*TINY_FADM, "strategy=fedavg_fadm", "strategy.rounds=2", "simulation.timeout=600"]
    res = json.loads(simulate(compose_config(overrides), tmp_path, overrides).read_text())
    assert res["strategy"] == "fedavg_fadm" and res["communication"]["rounds"] == 2
    assert all(c["n_train"] == 2 * c["n_synthetic"] > 300 for c in res["per_client"])
    assert all(s is not None and s > 0 for s in res["timings"]["stage1_s"])


def test_a_sweep_over_sampling_settings_trains_fadm_once_per_client(tmp_path, monkeypatch):
    base = [*TINY_FADM, "stage2=none", f"cache_dir={tmp_path}"]
    first = pipeline.Experiment(compose_config([*base, "stage1.lambda_z=0"]))
    data = first.load()
    train, _ = first.client_tables(data, 0)
    unguided = pipeline.make_upload(first, data, train, 0).table

    def no_training(*args, **kwargs):
        raise AssertionError("FADM was trained again")

    real_fit = fadm.fit
    monkeypatch.setattr(fadm, "fit", no_training)
    swept = pipeline.Experiment(compose_config([*base, "stage1.lambda_z=3", "stage1.labels=balanced"]))
    guided = pipeline.make_upload(swept, data, train, 0)
    assert not guided.cached  # new samples, from the cached generator
    assert (guided.table.y == 1).sum() == len(train) // 2 and not np.array_equal(guided.table.x, unguided.x)
    monkeypatch.setattr(fadm, "fit", real_fit)  # the cached generator samples as a freshly trained one
    fresh = pipeline.make_upload(pipeline.Experiment(compose_config([*base[:-1], "stage1.lambda_z=3",
                                                                     "stage1.labels=balanced"])), data, train, 0)
    np.testing.assert_array_equal(fresh.table.to_array(), guided.table.to_array())
    with pytest.raises(AssertionError, match="trained again"):  # a training setting is a new generator
        monkeypatch.setattr(fadm, "fit", no_training)
        pipeline.make_upload(pipeline.Experiment(compose_config([*base, "stage1.iterations=31"])), data, train, 0)
