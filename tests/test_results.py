"""results.json helpers: the constant-model check and its warning, the summary, the sweep CSV row."""

from __future__ import annotations

from typing import Any

import pytest

import json

import numpy as np

from fedfair import metrics as m
from fedfair.results import (
    CONSTANT_RATE, HISTORY_KEYS, SCHEMA_VERSION, ClientEvaluation, Communication, Report, Round, TrainingInfo,
    UploadInfo, build, plot_history, sanity, summary_table, write_json,
)
from fedfair.report import flat_row


def results(selection: float, single: list[int]) -> dict[str, Any]:
    metrics = {"accuracy": 0.8899, "abs_spd": 0.0015, "abs_eod": 0.0, "selection_rate": selection,
               "sel_rate_s0": selection - 0.001, "sel_rate_s1": selection}
    return {
        "strategy": "oneshot", "dataset": "law_school", "num_clients": 2, "seed": 0,
        "metrics": metrics,
        "per_client": [],
        "communication": {"rounds": 1, "messages": 4, "bytes_up": 10, "bytes_down": 10},
        "privacy": {"mechanism": "gaussian", "epsilon": 3.0, "delta": 1e-5,
                    "guarantee": "the client's real training rows (add/remove one row)",
                    "audit": [{"mia_auc": 0.51}, {"mia_auc": 0.49}]},
        "timings": {"total_s": 1.0, "server_fit_s": 0.1},
        "sanity": sanity(metrics, 0.8897, single),
    }


@pytest.mark.parametrize("rate, constant", [(0.9998, True), (CONSTANT_RATE, True), (0.97, False),
                                            (0.2, False), (0.01, True), (None, True)])
def test_constant_model_flag(rate: float | None, constant: bool) -> None:
    check = sanity({"selection_rate": rate}, 0.89, [])
    assert check["constant_model"] is constant
    assert len(check["warnings"]) == int(constant)


def test_summary_prints_selection_rate_majority_rate_and_one_warning_per_problem() -> None:
    text = summary_table(results(0.9998, [1]))
    assert "selection rate 0.9998 (s=0 0.9988, s=1 0.9998); majority-class rate 0.8897" in text
    warnings = [line for line in text.splitlines() if "WARNING" in line]
    assert len(warnings) == 2
    assert "predicts (nearly) one class (selection rate 0.9998): its fairness numbers are meaningless" in warnings[0]
    assert "client(s) 1 uploaded rows of a single label" in warnings[1]
    assert "with respect to the client's real training rows" in text
    assert "WARNING" not in summary_table(results(0.95, []))


def test_flat_row_carries_the_checks() -> None:
    row = flat_row(results(0.9998, []), ["stage2=gaussian"])
    assert row["constant_model"] is True and row["majority_rate"] == 0.8897
    assert row["selection_rate"] == 0.9998 and row["mia_auc"] == 0.51


def test_raw_rows_in_an_upload_always_reach_the_summary() -> None:
    check = sanity({"selection_rate": 0.9}, 0.89, [], {0: 0, 1: 1})
    assert check["raw_row_uploads"] == {1: 1}
    assert check["warnings"] == [
        "uploads contain rows identical to training rows (client 1: 1): raw rows left the client"]


def test_a_model_below_the_majority_rate_is_warned_about() -> None:
    check = sanity({"selection_rate": 0.27, "accuracy": 0.7238}, 0.7521, [])
    assert check["warnings"] == [
        "the model is less accurate (0.7238) than always predicting the majority class (0.7521)"]
    assert sanity({"selection_rate": 0.2, "accuracy": 0.84}, 0.7521, [])["warnings"] == []


def _client(seed: int) -> ClientEvaluation:
    rng = np.random.default_rng(seed)
    y, s = rng.choice([-1, 1], 200), rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.8, y, -y)
    counts = m.counts(y, pred, s, rng.normal(size=200))
    return ClientEvaluation(counts, m.compute(counts))


def _report(rounds: int, **extra) -> Report:
    evaluation = {0: _client(0), 1: _client(1)}
    pooled = m.pooled([c.counts for c in evaluation.values()])
    history = [Round(r, {**pooled, "accuracy": 0.6 + 0.01 * r}, 100, 50, 30 if r == 1 else 2, train_loss=0.5,
                     weights={0: 0.25 + 0.01 * r, 1: 0.75 - 0.01 * r}, global_fairness=-0.1 / r)
               for r in range(1, rounds + 1)]
    history[-1].metrics = pooled
    comm = Communication(rounds, 2 * rounds, 2 * rounds, 100 * rounds, 50 * rounds, 28 + 2 * rounds)
    return Report(pooled, evaluation, [{"partition_id": p, "status": "ok"} for p in (0, 1)], comm, history, **extra)


CFG = {"dataset": {"name": "synthetic"}, "num_clients": 2, "seed": 3, "strategy": {"name": "fairfed"}}


def test_results_schema_is_versioned_with_one_history_entry_per_round(tmp_path) -> None:
    training = {pid: TrainingInfo(100 + pid, 0.4, 0.5) for pid in (0, 1)}
    res = json.loads(write_json(tmp_path / "results.json", build(_report(4, training=training), CFG, [], 1.0)).read_text())
    assert res["schema_version"] == SCHEMA_VERSION == 2
    assert [r["round"] for r in res["history"]] == [1, 2, 3, 4]
    assert {k: res["history"][-1][k] for k in HISTORY_KEYS} == {k: res["metrics"][k] for k in HISTORY_KEYS}
    assert [sum(r["weights"].values()) for r in res["history"]] == pytest.approx([1.0] * 4)
    assert res["history"][0]["weights"] == {"0": 0.26, "1": 0.74} and res["history"][1]["global_fairness"] == -0.05
    assert res["communication"]["config_bytes_down"] == 36 and res["communication"]["messages"] == 16
    # Per client: the training info without the absent generator fields; no upload, so no privacy.
    assert res["per_client"][1] == {"partition_id": 1, "n_train": 101, "train_loss": 0.4, "weight": 0.5,
                                    "metrics": res["per_client"][1]["metrics"]}
    assert res["privacy"]["mechanism"] == "none" and res["privacy"]["per_client"] == []
    assert res["sanity"]["majority_rate"] == pytest.approx(m.majority_rate(
        _client(0).counts + _client(1).counts))
    assert "(+ run config 36)" in summary_table(res)
    out = plot_history(res, tmp_path / "history.png")
    assert out.stat().st_size > 10_000


def test_one_shot_uploads_make_the_privacy_block() -> None:
    privacy = {"mechanism": "gaussian", "epsilon": 3.0, "delta": 1e-5, "guarantee": "g", "single_label": False}
    uploads = {pid: UploadInfo(1.0, 2.0, 50, {**privacy, "epsilon": 2.0 + pid}, {"exact_matches": pid, "mia_auc": 0.5})
               for pid in (0, 1)}
    res = build(_report(1, uploads=uploads, server_fit_s=0.25), {**CFG, "strategy": {"name": "oneshot"}}, [], 1.0)
    assert res["privacy"]["epsilon"] == 3.0 and res["privacy"]["delta"] == 1e-5
    assert [c["n_upload"] for c in res["per_client"]] == [50, 50]
    assert res["timings"]["stage2_s"] == [2.0, 2.0] and res["timings"]["server_fit_s"] == 0.25
    assert res["sanity"]["raw_row_uploads"] == {1: 1}
    assert len(res["history"]) == 1
