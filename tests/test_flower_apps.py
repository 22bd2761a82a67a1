"""The ClientApp and the one-shot strategy against an in-process grid (no Ray): results, exact pooled
metrics, measured bytes, failing clients and degenerate uploads."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid

from clients.client_app import app as client_app
from fedfair import bilevel, metrics, model
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from fedfair.table import Table
from strategies.server_app import run_experiment


def _run(tmp_path, overrides, failing=None):
    cfg = compose_config(overrides)
    grid = FakeGrid(client_app, cfg["num_clients"], failing)
    path = run_experiment(grid, cfg, tmp_path, overrides)
    return cfg, json.loads(path.read_text())


def test_oneshot_results_match_the_library_computed_directly(tmp_path, base_overrides):
    cfg, res = _run(tmp_path, base_overrides)
    assert res["strategy"] == "oneshot" and res["num_clients"] == 2
    assert res["communication"]["rounds"] == 1
    assert res["communication"]["messages"] == 8  # train + evaluate, down and up, 2 clients
    privacy = res["privacy"]
    assert (privacy["mechanism"], privacy["epsilon"], privacy["delta"]) == ("none", None, None)
    assert privacy["guarantee"] == "none: no differential privacy"
    assert [a["n_upload"] for a in privacy["audit"]] == [c["n_upload"] for c in res["per_client"]]
    assert res["sanity"]["constant_model"] is False and res["sanity"]["warnings"] == []

    # Recompute the whole pipeline with the library alone: same uploads, same θ, same pooled counts.
    exp = Experiment(cfg)
    data = exp.load()
    uploads, tests = [], []
    for pid in range(2):
        train, test = exp.client_tables(data, pid)
        uploads.append(bilevel.synthesize(train, exp.stage1_config(pid)).table)
        tests.append(test)
    theta = model.fit(Table.concat(uploads))
    pooled = metrics.pooled([metrics.counts(t.y, model.predict(theta, t), t.s, model.decision(theta, t)) for t in tests])
    for key in ("accuracy", "spd", "eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1"):
        # the upload travels as float32, hence the tolerance
        assert res["metrics"][key] == pytest.approx(pooled[key], rel=1e-5, abs=1e-8), key

    # Bytes up are measured from the records: the float32 tables dominate them.
    table_bytes = sum(u.to_array().nbytes for u in uploads)
    assert table_bytes < res["communication"]["bytes_up"] < table_bytes + 20_000
    assert res["communication"]["bytes_down"] < 10_000
    assert [c["n_upload"] for c in res["per_client"]] == [len(u) for u in uploads]


def test_a_failing_client_is_reported_by_partition_and_the_run_needs_min_clients(
    tmp_path, base_overrides, caplog, monkeypatch
):
    import clients.client_app as client_module

    real = client_module.pipeline.make_upload

    def fails_on_partition_1(exp, dataset, train, pid, **kwargs):
        if pid == 1:
            raise RuntimeError("disk on fire")
        return real(exp, dataset, train, pid, **kwargs)

    monkeypatch.setattr(client_module.pipeline, "make_upload", fails_on_partition_1)
    with pytest.raises(FedFairError, match="only 1 of 2 clients answered"):
        _run(tmp_path / "a", base_overrides)
    assert "upload: partition 1 failed: RuntimeError: disk on fire" in caplog.text
    assert not (tmp_path / "a" / "results.json").exists()
    _, res = _run(tmp_path / "b", [*base_overrides, "strategy.min_clients=1"])
    assert res["clients"] == [{"partition_id": 0, "status": "ok"},
                              {"partition_id": 1, "status": "failed: RuntimeError: disk on fire"}]
    assert [c["partition_id"] for c in res["per_client"]] == [0]  # no evaluation of the failed client
    assert res["metrics"]["n"] == res["per_client"][0]["metrics"]["n"]
    assert res["communication"]["messages"] == 2 + 2 + 1 + 1  # train down/up, evaluate to 0 only
    from fedfair.results import summary_table

    assert ("WARNING: client 1 failed: RuntimeError: disk on fire (left out of the pooled metrics)"
            in summary_table(res))


def test_a_node_that_dies_is_reported_without_its_partition(tmp_path, base_overrides):
    """An error made by Flower itself (the node process died) names no partition."""
    _, res = _run(tmp_path, [*base_overrides, "strategy.min_clients=1"], failing={1: "node lost"})
    assert res["clients"][1] == {"partition_id": 1, "status": "failed: node lost"}
    assert res["clients"][0]["status"] == "ok"


def test_bad_client_input_comes_back_as_a_one_line_reason(tmp_path, base_overrides, caplog):
    # Each node believes the federation has 3 partitions, the run says 2.
    cfg = compose_config(base_overrides)
    with pytest.raises(FedFairError, match="only 0 of 2 clients answered"):
        run_experiment(FakeGrid(client_app, 3), cfg, tmp_path, [])
    reasons = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert len(reasons) == 3
    assert all(r.endswith("this node belongs to a 3-partition federation, the run has 2") for r in reasons)


def test_single_label_uploads_give_a_constant_model_and_are_flagged():
    from fedfair.pipeline import server_fit

    t = Table(np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.ones(4, dtype=int), ("a", "b"))
    theta, degenerate = server_fit([t, t], 1e-4)
    assert degenerate
    assert np.all(model.predict(theta, t) == 1)


def _without_timings(value):
    """The results without timings, floats rounded to 12 significant digits (numpy's reductions may
    round the last bits differently with a buffer's memory alignment, which no seed controls)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if k not in ("timings", "seconds") and not k.endswith("_s")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def test_same_seed_same_results_without_dp(tmp_path, base_overrides):
    """stage2=none is deterministic for a seed: every result key but the timings agrees. (gaussian and
    MST draw OpenDP's secure noise and say so: privacy.per_client[*].reproducible is false.)"""
    _, first = _run(tmp_path / "a", base_overrides)
    _, second = _run(tmp_path / "b", base_overrides)
    assert _without_timings(second) == _without_timings(first)
    _, other = _run(tmp_path / "c", [*base_overrides, "seed=1"])
    assert _without_timings(other)["metrics"] != _without_timings(first)["metrics"]
