"""scripts/reproduce_paper.py end to end: ``--quick`` once through the real CLI (12 simulation jobs,
≈3–5 min on 2 cores, dominated by Ray start-up per job), then its tables, figures and cache."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real Flower runs / a sweep: minutes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_paper.py"
COLUMNS = ("syn_1(100%)", "syn_2(100%)", "syn_2(10%)")
RHOS = (0.0, 1000.0)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("paper")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return out, summary


def test_final_line_names_the_outputs_and_the_wall_time(quick):
    out, summary = quick
    assert Path(summary["tables_md"]) == out / "tables.md"
    assert Path(summary["tables_csv"]) == out / "tables.csv"
    assert Path(summary["comparison_md"]) == out / "comparison.md"
    assert "0.4377" in (out / "comparison.md").read_text()  # the paper's baseline |SPD|
    assert sorted(Path(p).name for p in summary["figures"]) == ["fig2_sp.png", "fig3_eo.png"]
    assert summary["runs"] == 12 and summary["seeds"] == [0]
    assert 0 < summary["sweeps_wall_s"] <= summary["wall_s"]


def test_both_figures_are_pngs(quick):
    out, _ = quick
    for name in ("fig2_sp.png", "fig3_eo.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_tables_have_the_papers_rows_and_columns_and_values_in_range(quick):
    out, _ = quick
    rows = list(csv.DictReader((out / "tables.csv").open()))
    assert len(rows) == 2 * len(RHOS) * len(COLUMNS)
    cells = {(r["penalty"], float(r["rho"]), r["data"]) for r in rows}
    assert cells == {(p, rho, c) for p in ("sp", "eo") for rho in RHOS for c in COLUMNS}
    for r in rows:
        assert r["n_seeds"] == "1"
        assert r["fairness_metric"] == ("|SPD|" if r["penalty"] == "sp" else "|EOD|")
        assert r["table"] == ("1" if r["penalty"] == "sp" else "2")
        assert 40.0 <= float(r["accuracy_pct_mean"]) <= 100.0
        assert 0.0 <= float(r["fairness_mean"]) <= 1.0
        assert np.isfinite(float(r["cov_mean"]))
        if r["data"] != "syn_1(100%)":
            assert 0 < float(r["epsilon_max"]) <= 3.0
    by = {(r["penalty"], float(r["rho"]), r["data"]): r for r in rows}
    for penalty in ("sp", "eo"):  # stage 1 with ρ = 1000 reduces the gap even at k_max = 20
        base, fair = by[(penalty, 0.0, COLUMNS[0])], by[(penalty, 1000.0, COLUMNS[0])]
        assert float(fair["fairness_mean"]) < float(base["fairness_mean"])

    md = (out / "tables.md").read_text()
    assert "Table 1" in md and "Table 2" in md
    for penalty, label in (("1", r"\|SPD\|"), ("2", r"\|EOD\|")):
        section = md.split(f"## Table {penalty}")[1].split("## Table")[0]
        header = next(line for line in section.splitlines() if line.startswith("| ρ |"))
        assert [c for c in COLUMNS if c in header] == list(COLUMNS) and label in header
        body = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
        assert [line.split("|")[1].strip() for line in body] == ["0 (baseline)", "1000"]
        assert all(len(line.split("|")) == 2 + 1 + 2 * len(COLUMNS) for line in body)


def _cache_entries(cache: Path) -> Counter:
    """Cache files by what produced them: stage 1 ({"seconds"}) or a stage-2 mechanism."""
    kinds: Counter = Counter()
    for path in cache.glob("*.npz"):
        with np.load(path) as f:
            info = json.loads(str(f["info"]))
        kinds[info.get("mechanism", "stage1")] += 1
    return kinds


def test_cache_ran_stage1_and_dpctgan_once_per_configuration_and_client(quick):
    out, _ = quick
    per_config = 2 * len(RHOS) * 2  # penalties × ρ × clients, 1 seed
    kinds = _cache_entries(out / "cache")
    # 3 jobs per (penalty, ρ) — syn_1, syn_2(100%), syn_2(10%) — but one stage-1 entry and one
    # DP-CTGAN fit per (penalty, ρ, client).
    assert kinds == {"stage1": per_config, "none": per_config, "dpctgan": per_config}


def test_syn2_10_percent_uploads_a_tenth_of_the_same_sample(quick):
    out, _ = quick
    uploads: dict[tuple, dict[int, int]] = {}
    for path in out.glob("*/*/results.json"):
        r = json.loads(path.read_text())
        s1, s2 = r["config"]["stage1"], r["config"]["stage2"]
        key = (s1["penalty"], s1["rho"], s2["name"], s2.get("ns2_frac"))
        uploads[key] = {c["partition_id"]: c["n_upload"] for c in r["per_client"]}
        eps = [p["epsilon"] for p in r["privacy"]["per_client"]]
        if s2["name"] == "dpctgan":
            assert all(0 < e <= 3.0 for e in eps)
    for penalty in ("sp", "eo"):
        for rho in RHOS:
            full = uploads[(penalty, rho, "dpctgan", 1.0)]
            tenth = uploads[(penalty, rho, "dpctgan", 0.1)]
            assert full == uploads[(penalty, rho, "none", None)]
            assert tenth == {pid: round(0.1 * n) for pid, n in full.items()}


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
