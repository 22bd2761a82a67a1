"""scripts/compare.py's aggregation (``--aggregate-only``) through fedfair.report: mean ± std over seeds
per method and swept value, the markdown table, the Pareto plot, and ``--methods`` choosing a subset."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fakeruns import fake_results, write_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compare.py"


def _result(path: Path, seed: int, accuracy: float, abs_eod: float, beta: float | None = None,
            selection: float = 0.5) -> None:
    config = {"stage1": {"rho": 1000.0}, "strategy": {"beta": beta} if beta is not None else {}}
    write_run(path, fake_results(seed, accuracy, abs_eod=abs_eod, selection=selection, config=config))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    for seed, (acc, eod) in enumerate([(0.80, 0.10), (0.84, 0.06)]):
        _result(tmp_path / "FedAvg" / f"seed{seed}" / "0", seed, acc, eod)
        for job, beta in enumerate((0.5, 1.0)):
            _result(tmp_path / "FairFed" / f"seed{seed}" / str(job), seed, acc - 0.01, eod / 2 - beta / 100, beta)
    return tmp_path


def _aggregate(out: Path, *methods: str, seeds: tuple[str, ...] = ("0", "1")) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--aggregate-only", "--out", str(out), "--seeds", *seeds,
           "--methods", *methods]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_aggregation_gives_mean_and_std_per_method_and_value(out):
    proc = _aggregate(out, "FedAvg", "FairFed")
    assert proc.returncode == 0, proc.stderr
    rows = {(r["method"], r["value"]): r for r in csv.DictReader(open(out / "comparison.csv"))}
    assert set(rows) == {("FedAvg", ""), ("FairFed", "0.5"), ("FairFed", "1.0")}
    fedavg = rows[("FedAvg", "")]
    assert fedavg["n"] == "2" and float(fedavg["accuracy"]) == pytest.approx(0.82)
    assert float(fedavg["accuracy_std"]) == pytest.approx(0.0282843, rel=1e-5)  # sample std of .80, .84
    assert float(fedavg["abs_eod"]) == pytest.approx(0.08) and fedavg["eor"] == ""  # undefined stays empty
    assert float(fedavg["majority_rate"]) == 0.75
    assert float(rows[("FairFed", "1.0")]["abs_eod"]) == pytest.approx(0.03)
    assert float(fedavg["bytes_up"]) == pytest.approx(1000.5)
    md = (out / "comparison.md").read_text()
    assert "| FedAvg |  | 2 | 0.8200 ± 0.0283 | 0.7500 ± 0.0000 | 0.500 ± 0.000 |" in md
    assert "| FairFed | beta=1 | 2 |" in md
    assert (out / "pareto.png").stat().st_size > 10_000
    assert json.loads(proc.stdout.strip().splitlines()[-1])["md"] == str(out / "comparison.md")


def test_one_seed_shows_its_value_without_a_spread(out):
    assert _aggregate(out, "FedAvg", seeds=("1",)).returncode == 0
    (row,) = csv.DictReader(open(out / "comparison.csv"))
    assert (row["n"], row["accuracy"], row["accuracy_std"]) == ("1", "0.84", "")
    assert "| FedAvg |  | 1 | 0.8400 | 0.7500 | 0.500 |" in (out / "comparison.md").read_text()


def test_methods_selects_a_subset_and_rejects_unknown_labels(out):
    assert _aggregate(out, "FedAvg").returncode == 0
    assert [r["method"] for r in csv.DictReader(open(out / "comparison.csv"))] == ["FedAvg"]
    bad = _aggregate(out, "FedProx")
    assert bad.returncode == 2 and "invalid choice: 'FedProx'" in bad.stderr


def test_gap_penalty_rows_are_swept_over_gamma(tmp_path):
    for seed in (0, 1):
        for job, gamma in enumerate((10.0, 100.0)):
            config = {"stage1": {"penalty": "sp_gap", "rho": 1000.0, "gamma": gamma}, "strategy": {}}
            write_run(tmp_path / "one-shot_sp_gap" / f"seed{seed}" / str(job),
                      fake_results(seed, 0.83 + seed / 100, abs_eod=0.2, config=config))
    assert _aggregate(tmp_path, "one-shot, sp_gap").returncode == 0
    rows = list(csv.DictReader(open(tmp_path / "comparison.csv")))
    assert [(r["param"], r["value"]) for r in rows] == [("gamma", "10.0"), ("gamma", "100.0")]
    assert float(rows[0]["accuracy"]) == pytest.approx(0.835)
    assert "| one-shot, sp_gap | gamma=100 |" in (tmp_path / "comparison.md").read_text()


def test_a_constant_model_is_marked_in_the_table(tmp_path):
    _result(tmp_path / "FedAvg" / "seed0" / "0", 0, 0.89, 0.0, selection=0.9998)
    _result(tmp_path / "FedAvg" / "seed1" / "0", 1, 0.88, 0.05, selection=0.95)
    assert _aggregate(tmp_path, "FedAvg").returncode == 0
    row = next(csv.DictReader(open(tmp_path / "comparison.csv")))
    assert row["constant_runs"] == "1" and float(row["selection_rate"]) == pytest.approx(0.9749)
    md = (tmp_path / "comparison.md").read_text()
    assert "0.0250 ± 0.0354 † 1/2" in md and "so its fairness numbers are meaningless" in md
