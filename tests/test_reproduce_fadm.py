"""scripts/reproduce_fadm.py: ``--aggregate-only`` on hand-made folds (the table and CSV checked number by
number, the figure), a bad setting failing before any work, and once end to end on a tiny fixture: one
held-out domain of a tiny FADM on Adult (``--quick --domains Amer-Indian-Eskimo``), its table checked
against the saved folds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_fadm.py"
METHODS = ("real rows", "FADM", "FADM, lambda_z=0", "DDPM")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_aggregate_only_averages_seeds_then_domains(tmp_path):
    rows = [{"domain": d, "seed": seed, "method": m, "acc": 0.80 + 0.02 * seed + 0.01 * i, "r_dp": 0.9, "r_eop": 0.7,
             "abs_spd": 0.05, "leak": None if m == "real rows" else 0.6, "n_train": 1, "n_test": 1}
            for seed in (0, 1) for i, d in enumerate(("Black", "White")) for m in METHODS]
    (tmp_path / "fadm_adult.json").write_text(json.dumps({"rows": rows, "settings": {}, "wall_s": 5.0, "seeds": [0, 1]}))
    proc = _run("--aggregate-only", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    table = {(r["method"], r["domain"]): r for r in csv.DictReader(open(tmp_path / "fadm_adult.csv"))}
    black = table[("FADM", "Black")]
    assert black["n"] == "2" and float(black["acc"]) == pytest.approx(0.81)
    assert float(black["acc_std"]) == pytest.approx(0.0141421, rel=1e-5)
    assert float(table[("FADM", "Avg")]["acc"]) == pytest.approx(0.815) and table[("FADM", "Avg")]["n"] == "2"
    assert table[("real rows", "Avg")]["leak"] == ""
    md = (tmp_path / "fadm_adult.md").read_text()
    assert "| FADM (ours) | n/a | n/a | 81.00 / 0.90 / 0.70 | n/a | 82.00 / 0.90 / 0.70 | 81.50 / 0.90 / 0.70 | 0.600 |" in md
    assert "| FADM (paper) |" in md and "84.97 / 0.91 / 0.75" in md and "Seeds 0 1" in md
    assert (tmp_path / "fadm_adult.png").stat().st_size > 10_000


def test_a_bad_setting_fails_in_one_line_before_any_work(tmp_path):
    proc = _run("--quick", "--set", "lambda_z=-1", "--out", str(tmp_path / "bad"))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: FADM lambda_z must be a finite number >= 0, got -1"]
    assert not (tmp_path / "bad" / "fadm_adult.json").exists()


@pytest.mark.slow  # loads Adult, trains a (tiny) FADM
def test_one_held_out_domain_end_to_end(tmp_path):
    proc = _run("--quick", "--jobs", "1", "--domains", "Amer-Indian-Eskimo", "--out", str(tmp_path))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    saved = json.loads(Path(summary["json"]).read_text())
    assert sorted(r["method"] for r in saved["rows"]) == sorted(METHODS)
    assert saved["settings"]["domain_column"] == "race" and saved["settings"]["samples"] == 500
    table = {(r["method"], r["domain"]): r for r in csv.DictReader(open(tmp_path / "fadm_adult.csv"))}
    for r in saved["rows"]:  # the held-out domain never trains its own generator: 45,222 Adult rows in all
        assert r["domain"] == "A-I-E" and r["n_train"] + r["n_test"] == 45222
        assert (r["leak"] is None) == (r["method"] == "real rows")
        for domain in ("A-I-E", "Avg"):  # one seed, one domain: each cell is the fold's own number
            assert float(table[(r["method"], domain)]["acc"]) == pytest.approx(r["acc"])
    md = Path(summary["md"]).read_text()
    assert "| FADM (ours) |" in md and "84.10 / 0.82 / 0.61" in md
    assert Path(summary["png"]).stat().st_size > 10_000
