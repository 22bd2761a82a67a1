"""Fair latent distillation in the framework: ``stage1=fairdistill`` one-shot uploads and
``strategy=fedavg_fairdistill`` (FedAvg on real + generated rows) on a fake grid and through the real
simulation; the generator registry; the model cache."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid

from clients.client_app import app as client_app
from fedfair import fairdistill, generators, local, metrics, pipeline
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.table import Table
from strategies.server_app import run_experiment
from strategies.simulation import simulate

TINY = ["dataset=synthetic", "dataset.rows=400", "progress=false", "stage1=fairdistill",
        "stage1.teacher_iterations=30", "stage1.student_iterations=30", "stage1.hidden=16",
        "stage1.student_hidden=8", "stage1.z_dim=2", "stage1.batch_size=64"]


def _run(tmp_path, overrides):
    cfg = compose_config(overrides)
    path = run_experiment(FakeGrid(client_app, cfg["num_clients"]), cfg, tmp_path, overrides)
    return pipeline.Experiment(cfg), json.loads(path.read_text())


def _count_fits(monkeypatch) -> list[int]:
    calls: list[int] = []
    real_fit = fairdistill.fit

    def counted(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fairdistill, "fit", counted)
    return calls


def test_unknown_stage1_names_every_generator_in_one_line():
    with pytest.raises(FedFairError) as err:
        pipeline.Experiment(compose_config(["stage1.name=vae"]))
    assert str(err.value) == "unknown stage1 'vae'; choose one of: bilevel, fadm, fairdistill, none"
    assert generators.names() == ("bilevel", "fadm", "fairdistill", "none")
    assert "fedavg_fairdistill" in pipeline.STRATEGIES and "fedavg_bilevel" not in pipeline.STRATEGIES


def test_fedavg_fairdistill_needs_the_fairdistill_generator():
    with pytest.raises(FedFairError, match="strategy=fedavg_fairdistill needs stage1=fairdistill, got stage1=fadm"):
        pipeline.Experiment(compose_config(["strategy=fedavg_fairdistill", "stage1=fadm"]))
    assert compose_config(["strategy=fedavg_fairdistill"])["stage1"]["name"] == "fairdistill"  # its default
    with pytest.raises(FedFairError, match="stage1.beta must be a number"):
        pipeline.Experiment(compose_config(["stage1=fairdistill", "stage1.beta=lots"]))
    with pytest.raises(FedFairError, match="unknown key"):
        pipeline.Experiment(compose_config(["stage1=fairdistill", "+stage1.lambda_z=1"]))


def test_oneshot_uploads_generated_rows_and_the_server_fits_their_union(tmp_path):
    exp, res = _run(tmp_path, [*TINY, "stage2=none", "stage1.ns=0.5", "stage1.labels=balanced"])
    data = exp.load()
    uploads = []
    for pid in range(2):
        train, _ = exp.client_tables(data, pid)
        upload = pipeline.make_upload(exp, data, train, pid)
        assert len(upload.table) == len(train) // 2 and (upload.table.y == 1).sum() == len(upload.table) // 2
        uploads.append(Table.from_array(upload.table.to_array(), upload.table.columns))  # as sent
    theta, _ = pipeline.server_fit(uploads, 1e-4)
    tests = [exp.client_tables(data, pid)[1] for pid in range(2)]
    expected = metrics.pooled([pipeline.evaluate(theta, t) for t in tests])
    # the covariances of a nearly flat θ differ in the 10th digit with the BLAS reduction order
    assert res["metrics"] == pytest.approx(expected, rel=1e-6) and res["metrics"]["n"] == expected["n"]
    assert res["metrics"]["accuracy"] == expected["accuracy"]
    assert [c["n_upload"] for c in res["per_client"]] == [len(u) for u in uploads]
    assert res["communication"]["rounds"] == 1 and res["config"]["stage1"]["name"] == "fairdistill"


def test_fedavg_fairdistill_generates_once_per_node_and_trains_on_real_plus_generated_rows(tmp_path, monkeypatch):
    calls = _count_fits(monkeypatch)
    exp, res = _run(tmp_path, [*TINY, "strategy=fedavg_fairdistill", "strategy.rounds=3"])
    assert len(calls) == 2  # one generator per node, its rows kept in the node's state for rounds 2 and 3
    assert res["strategy"] == "fedavg_fairdistill" and res["communication"]["rounds"] == 3

    data = exp.load()
    augmented = []
    for pid in range(2):
        train, _ = exp.client_tables(data, pid)
        rows, _ = pipeline.augmentation(exp, data, train, pid)
        augmented.append(Table.concat([train, rows]))
        assert res["per_client"][pid]["n_synthetic"] == len(rows) == len(train)
        assert res["per_client"][pid]["n_train"] == 2 * len(train)
        assert res["per_client"][pid]["stage1_s"] > 0
    theta = np.zeros(len(data.table.feature_names) + 2)
    for rnd in (1, 2, 3):
        thetas = [pipeline.local_update(exp, t, theta, pid, rnd).theta for pid, t in enumerate(augmented)]
        theta = local.average(thetas, np.array([len(t) for t in augmented], dtype=float))
    tests = [exp.client_tables(data, pid)[1] for pid in range(2)]
    assert res["metrics"] == metrics.pooled([pipeline.evaluate(theta, t) for t in tests])


def test_a_sweep_over_generation_settings_trains_the_generator_once_per_client(tmp_path, monkeypatch):
    base = [*TINY, "stage2=none", f"cache_dir={tmp_path}"]
    first = pipeline.Experiment(compose_config(base))
    data = first.load()
    train, _ = first.client_tables(data, 0)
    random_s = pipeline.make_upload(first, data, train, 0).table
    assert len(list(tmp_path.glob("*.fairdistill.pt"))) == 1

    calls = _count_fits(monkeypatch)
    swept = pipeline.Experiment(compose_config([*base, "stage1.s_decode=own"]))
    own_s = pipeline.make_upload(swept, data, train, 0)
    assert calls == [] and not own_s.cached  # new rows, from the cached generator
    assert not np.array_equal(own_s.table.s, random_s.s)
    fresh = pipeline.make_upload(pipeline.Experiment(compose_config([*base[:-1], "stage1.s_decode=own"])),
                                 data, train, 0)
    np.testing.assert_array_equal(fresh.table.to_array(), own_s.table.to_array())  # as a freshly trained one
    assert len(calls) == 1
    pipeline.make_upload(pipeline.Experiment(compose_config([*base, "stage1.beta=10"])), data, train, 0)
    assert len(calls) == 2  # a training setting is a new generator


@pytest.mark.slow
def test_oneshot_fairdistill_through_the_real_simulation(tmp_path):
    overrides = [*TINY, "stage2=none", "simulation.timeout=600"]
    res = json.loads(simulate(compose_config(overrides), tmp_path, overrides).read_text())
    assert res["strategy"] == "oneshot" and res["config"]["stage1"]["name"] == "fairdistill"
    assert all(c["n_upload"] > 150 for c in res["per_client"])
    assert all(s is not None and s > 0 for s in res["timings"]["stage1_s"])


@pytest.mark.slow
def test_fedavg_fairdistill_through_the_real_simulation(tmp_path):
    overrides = [*TINY, "strategy=fedavg_fairdistill", "strategy.rounds=2", "simulation.timeout=600"]
    res = json.loads(simulate(compose_config(overrides), tmp_path, overrides).read_text())
    assert res["strategy"] == "fedavg_fairdistill" and res["communication"]["rounds"] == 2
    assert all(c["n_train"] == 2 * c["n_synthetic"] > 300 for c in res["per_client"])
    assert all(s is not None and s > 0 for s in res["timings"]["stage1_s"])
