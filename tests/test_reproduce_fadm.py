"""scripts/reproduce_fadm.py end to end with ``--quick`` (5 leave-one-domain-out folds of a tiny FADM
on Adult), its outputs, ``--aggregate-only`` and a bad setting failing before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real Flower runs / a sweep: minutes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_fadm.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fadm")
    proc = _run("--quick", "--jobs", "2", "--out", str(out))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_domain_is_held_out_once_for_every_sampler(quick):
    out, summary = quick
    saved = json.loads(Path(summary["json"]).read_text())
    rows = saved["rows"]
    methods = ("real rows", "FADM", "FADM, lambda_z=0", "DDPM")
    assert sorted((r["method"], r["domain"]) for r in rows) == sorted(
        (m, d) for m in methods for d in ("A-I-E", "A-P-I", "Black", "Other", "White")
    )
    for r in rows:  # a held-out domain never trains its own generator: 45,222 Adult rows in all
        assert r["n_train"] + r["n_test"] == 45222 and 0.5 < r["acc"] <= 1.0
        assert (r["leak"] is None) == (r["method"] == "real rows")
    assert saved["settings"]["domain_column"] == "race" and saved["settings"]["samples"] == 500


def test_tables_and_plot_put_ours_next_to_the_paper(quick, tmp_path):
    out, summary = quick
    md = Path(summary["md"]).read_text()
    assert "| FADM (ours) |" in md and "84.97 / 0.91 / 0.75" in md and "84.10 / 0.82 / 0.61" in md
    assert Path(summary["png"]).stat().st_size > 10_000
    before = md
    Path(summary["md"]).unlink()
    again = _run("--quick", "--aggregate-only", "--out", str(out))
    assert again.returncode == 0 and Path(summary["md"]).read_text() == before


def test_a_bad_setting_fails_in_one_line_before_any_work(tmp_path):
    proc = _run("--quick", "--set", "lambda_z=-1", "--out", str(tmp_path / "bad"))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: FADM lambda_z must be a finite number >= 0, got -1"]
    assert not (tmp_path / "bad" / "fadm_adult.json").exists()
