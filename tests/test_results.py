"""results.json helpers: the constant-model check and its warning, the summary, the sweep CSV row."""

from __future__ import annotations

from typing import Any

import pytest

from fedfair.report import flat_row
from fedfair.results import CONSTANT_RATE, sanity, summary_table


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
