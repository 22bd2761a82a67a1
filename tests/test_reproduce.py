"""scripts/reproduce_paper.py: its aggregation of hand-made results.json (tables, CSV, figures, checked
number by number), the fast σ, and once end to end through the real CLI on a tiny fixture (the
synthetic dataset, one seed, the SP penalty at ρ = 1000, k_max 20, one DP-CTGAN epoch: 3 simulation
jobs, one per column) with its tables checked against the runs' results.json, its cache and the
sweeps' own summaries."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fakeruns import fake_results, write_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_paper.py"
COLUMNS = ("syn_1(100%)", "syn_2(100%)", "syn_2(10%)")
RHOS = (0.0, 1000.0)  # the hand-made runs; the tiny real run has ρ = 1000 only
TINY = ["--quick", "--dp", "paper", "--penalties", "sp", "--extra", "dataset=synthetic", "dataset.rows=600"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def _config(penalty: str, rho: float, stage2: str, frac: float | None, k_max: int = 20) -> dict:
    s2 = {"name": "none"} if stage2 == "none" else {"name": "dpctgan", "ns2_frac": frac, "epochs": 1, "sigma": 5.0}
    return {"stage1": {"name": "bilevel", "penalty": penalty, "rho": rho, "k_max": k_max}, "stage2": s2}


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """Two seeds of every (ρ, column) of the SP table, as the tiny run mode writes them, and one run
    of another mode (k_max 1000) that must be ignored."""
    for seed in (0, 1):
        job = 0
        for rho in RHOS:
            for stage2, frac in (("none", None), ("dpctgan", 1.0), ("dpctgan", 0.1)):
                name = f"seed{seed}-syn1" if stage2 == "none" else f"seed{seed}-syn2-paper"
                acc = 0.80 + 0.02 * seed + rho / 1e5 + (0.01 if stage2 != "none" else 0.0)
                sel = 0.999 if (seed, rho, frac) == (1, 0.0, 0.1) else 0.6
                write_run(tmp_path / name / str(job), fake_results(
                    seed, acc, abs_spd=0.3 - rho / 1e4 + 0.01 * seed, selection=sel,
                    config=_config("sp", rho, stage2, frac), overrides=[f"seed={seed}"]))
                job += 1
    write_run(tmp_path / "seed0-syn1" / "99", fake_results(0, 0.5, config=_config("sp", 0.0, "none", None, 1000)))
    return tmp_path


def test_aggregation_turns_results_json_into_the_tables_number_by_number(fake):
    proc = _run("--aggregate-only", "--out", str(fake), "--seeds", "0", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["runs"] == 12 and summary["seeds"] == [0, 1] and "ignored 1 results.json" in proc.stderr
    rows = {(float(r["rho"]), r["data"]): r for r in csv.DictReader((fake / "tables.csv").open())}
    assert set(rows) == {(rho, c) for rho in RHOS for c in COLUMNS}
    base = rows[(0.0, COLUMNS[0])]
    assert (base["n"], base["seeds"], base["table"], base["fairness_metric"]) == ("2", "0 1", "1", "|SPD|")
    assert float(base["accuracy"]) == pytest.approx(0.81) and float(base["abs_spd"]) == pytest.approx(0.305)
    assert float(base["accuracy_std"]) == pytest.approx(0.0141421, rel=1e-5)
    assert rows[(0.0, COLUMNS[2])]["constant_runs"] == "1" and base["constant_runs"] == "0"
    md = (fake / "tables.md").read_text()
    assert "| 0 (baseline) | 81.00 ± 1.41* | 0.3050 ± 0.0071* | 82.00 ± 1.41 | 0.3050 ± 0.0071 |" in md
    assert "| 0.3050 ± 0.0071 † 1/2 |" in md and "Table 2" not in md
    comparison = (fake / "comparison.md").read_text()
    assert "| 1000 | syn_1(100%) | 2 | 82.00 ± 1.41 | 85.02 | 75.00 ± 0.00 | 0.600 ± 0.000 |" in comparison
    assert [Path(p).name for p in summary["figures"]] == ["fig2_sp.png"]
    assert (fake / "fig2_sp.png").stat().st_size > 10_000


def test_a_bad_override_fails_in_one_line_before_any_run(tmp_path):
    proc = _run("--quick", "--out", str(tmp_path), "--extra", "dataset=nope")
    assert proc.returncode == 2 and proc.stderr.startswith("error: bad config:")
    assert not list(tmp_path.iterdir())


def test_fast_sigma_is_the_smallest_that_spends_at_most_epsilon_3_in_10_epochs():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import reproduce_paper
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from fedfair.synth.dpctgan import _epsilon, _rdp_per_step

    n, batch = 8319, 500

    def eps(sigma: float) -> float:
        return _epsilon(_rdp_per_step(batch / n, sigma), reproduce_paper.FAST_EPOCHS * 2 * (n // batch), 1e-5)

    sigma = reproduce_paper.FAST_SIGMA
    assert eps(sigma) <= 3.0 < eps(round(sigma - 0.01, 2))
    assert reproduce_paper.DP_FAST == ["stage2=dpctgan", "stage2.epochs=10", f"stage2.sigma={sigma}"]


@pytest.mark.slow  # 3 simulation jobs; one test, so that one worker runs them (pytest.ini: -n)
def test_tiny_run_end_to_end(tmp_path):
    """The real script on a tiny fixture: its tables match the runs, the cache ran stage 1 and
    DP-CTGAN once per configuration and client, and syn_2(10%) uploads a tenth of one sample."""
    out = tmp_path / "paper"
    proc = _run(*TINY, "--rhos", "1000", "--out", str(out), timeout=1500)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    _tables_match_the_runs(out, summary)
    _cache_ran_stage1_and_dpctgan_once_per_configuration_and_client(out)
    _syn2_10_percent_uploads_a_tenth_of_the_same_sample(out)


def _tables_match_the_runs(out: Path, summary: dict) -> None:
    assert summary["runs"] == 3 and summary["seeds"] == [0] and 0 < summary["sweeps_wall_s"] <= summary["wall_s"]
    assert [Path(p).name for p in summary["figures"]] == ["fig2_sp.png"]
    assert (out / "fig2_sp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {(float(r["rho"]), r["data"]): r for r in csv.DictReader((out / "tables.csv").open())}
    assert set(rows) == {(1000.0, c) for c in COLUMNS}
    for path in out.glob("*/*/results.json"):  # one seed: each cell is its run's own number
        r = json.loads(path.read_text())
        s1, s2 = r["config"]["stage1"], r["config"]["stage2"]
        column = COLUMNS[0] if s2["name"] == "none" else COLUMNS[1] if s2["ns2_frac"] == 1.0 else COLUMNS[2]
        row = rows[(float(s1["rho"]), column)]
        assert row["n"] == "1" and row["accuracy_std"] == ""
        for key in ("accuracy", "abs_spd", "selection_rate"):
            assert float(row[key]) == pytest.approx(r["metrics"][key])
        assert float(row["majority_rate"]) == pytest.approx(r["sanity"]["majority_rate"])
        if column != COLUMNS[0]:
            assert 0 < float(row["epsilon_max"]) <= 3.0
    for sweep in ("seed0-syn1", "seed0-syn2-paper"):  # each sweep's own summary (the Hydra callback)
        assert {"summary.csv", "summary.md", "summary.png"} <= {p.name for p in (out / sweep).iterdir()}
    md = (out / "tables.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| ρ |"))
    assert [c for c in COLUMNS if c in header] == list(COLUMNS) and r"\|SPD\|" in header


def _cache_entries(cache: Path) -> Counter:
    """Cache files by what produced them: stage 1 ({"seconds"}) or a stage-2 mechanism."""
    kinds: Counter = Counter()
    for path in cache.glob("*.npz"):
        with np.load(path) as f:
            info = json.loads(str(f["info"]))
        kinds[info.get("mechanism", "stage1")] += 1
    return kinds


def _cache_ran_stage1_and_dpctgan_once_per_configuration_and_client(out: Path) -> None:
    # 3 jobs — syn_1, syn_2(100%), syn_2(10%) — but one stage-1 entry and one DP-CTGAN fit per client
    assert _cache_entries(out / "cache") == {"stage1": 2, "none": 2, "dpctgan": 2}


def _syn2_10_percent_uploads_a_tenth_of_the_same_sample(out: Path) -> None:
    uploads: dict[tuple, dict[int, int]] = {}
    for path in out.glob("*/*/results.json"):
        r = json.loads(path.read_text())
        s1, s2 = r["config"]["stage1"], r["config"]["stage2"]
        uploads[(s1["rho"], s2["name"], s2.get("ns2_frac"))] = {c["partition_id"]: c["n_upload"]
                                                               for c in r["per_client"]}
        if s2["name"] == "dpctgan":
            assert all(0 < p["epsilon"] <= 3.0 for p in r["privacy"]["per_client"])
    full, tenth = uploads[(1000.0, "dpctgan", 1.0)], uploads[(1000.0, "dpctgan", 0.1)]
    assert full == uploads[(1000.0, "none", None)]
    assert tenth == {pid: round(0.1 * n) for pid, n in full.items()}
