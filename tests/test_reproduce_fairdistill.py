"""scripts/reproduce_fairdistill.py without training: a bad setting fails in one line before any work, and
``--aggregate-only`` turns saved rows into the table (ours beside the paper's Table 1) and the figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_fairdistill.py"
METHODS = ("Original", "L1-KL", "MSE-KL", "Huber-KL", "MD-KL", "L1-KL, own s", "L1-KL, no distillation",
           "L1-KL, beta=0")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_bad_setting_fails_in_one_line_before_any_work(tmp_path):
    proc = _run("--quick", "--set", "loss=kl", "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: fairdistill loss must be one of l1, mse, huber, md, got 'kl'"]
    assert not (tmp_path / "bad" / "fairdistill_adult.json").exists()


def test_aggregate_only_writes_the_table_beside_the_paper(tmp_path):
    rows = []
    for sensitive in ("sex", "race"):
        for rep in (0, 1):
            for i, method in enumerate(METHODS):
                for clf in ("rf", "logistic"):
                    fid = None if method == "Original" else 0.5 + 0.01 * i
                    rows.append({"sensitive": sensitive, "repeat": rep, "method": method, "classifier": clf,
                                 "acc": 0.80 + 0.01 * rep, "majority": 0.75, "selection": 0.2, "dpr": 0.5, "eor": 0.6,
                                 "recall": 0.5, "f1": 0.6, "density": fid, "coverage": fid, "seconds": 60.0 * (i > 0)})
    (tmp_path / "fairdistill_adult.json").write_text(json.dumps(
        {"rows": rows, "settings": {"beta": 1e5}, "wall_s": 12.0, "repeats": 2}))
    proc = _run("--aggregate-only", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "fairdistill_adult.md").read_text()
    assert "### s = sex" in md and "### s = race" in md
    assert "| L1-KL | 0.81 ± 0.01 | 0.75 ± 0.00 | 0.20 ± 0.00 |" in md  # mean ± std over the two repeats
    assert "0.99 / 0.99 / 0.76 / 0.99 / 0.89 / 1.06 / 0.94" in md  # the paper's L1-KL, sex
    assert "| FairDisCo (paper only) |" in md
    assert (tmp_path / "fairdistill_adult.png").stat().st_size > 10_000
