"""The two other run modes give exactly the simulation's metrics for the same seed and data:
(b) `flwr run . local` through scripts/flwr_run_local.sh, (c) scripts/deploy_local.sh with K = 2
SuperNodes, two deployments at once; neither leaves a process behind (tests/procs.py)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import procs
from fedfair.config import compose_config
from strategies.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]
KEYS = ("accuracy", "spd", "eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, built_once):
    def run() -> dict:
        return json.loads(simulate(compose_config(OVERRIDES), tmp_path_factory.mktemp("sim"), OVERRIDES).read_text())
    return built_once("run-modes-reference", run)


def _same_metrics(res, ref):
    assert res["metrics"]["n"] == ref["metrics"]["n"]
    for key in KEYS:
        assert res["metrics"][key] == pytest.approx(ref["metrics"][key], rel=1e-9, abs=1e-12), key
    assert res["communication"]["rounds"] == 1


def _run_dirs(stdout_first_line: str) -> str:
    """The private dir deploy_local.sh announces on its first line."""
    match = re.search(r"private dir (\S+)$", stdout_first_line)
    assert match, stdout_first_line
    return match.group(1)


@pytest.mark.slow
def test_flwr_run_wrapper_matches_the_simulation_and_leaves_nothing(reference, tmp_path):
    """scripts/flwr_run_local.sh: its own SuperLink on OS-chosen ports and a private FLWR_HOME,
    stopped (with its children) when the run ends."""
    out = tmp_path / "out"
    overrides = " ".join(OVERRIDES)
    cmd = [
        "bash", str(ROOT / "scripts" / "flwr_run_local.sh"),
        "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
        "--run-config", f"overrides='{overrides}' output-dir='{out}'",
    ]
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    match = re.match(r"local superlink: (127\.0\.0\.1:\d+), private FLWR_HOME (\S+)$", proc.stderr.splitlines()[0])
    assert match, proc.stderr[:500]
    address, flwr_home = match.groups()
    assert address != "127.0.0.1:39091"  # never Flower's fixed default port, which anyone may hold
    left = procs.settle(flwr_home, address)
    procs.stop(left)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _same_metrics(json.loads((out / "results.json").read_text()), reference)
    assert not left, left  # nothing of this run is left behind
    assert not Path(flwr_home).exists()


@pytest.mark.slow
def test_two_deployments_at_once_give_their_own_results_and_leave_nothing(reference, tmp_path):
    """Two scripts/deploy_local.sh runs (TLS, SuperNode authentication, K = 2) side by side: each
    finishes with the simulation's metrics in its own results.json and stops all it started."""
    runs = []
    other_data = [o.replace("rows=600", "rows=800") for o in OVERRIDES]
    for name, overrides in (("a", OVERRIDES), ("b", other_data)):
        out = tmp_path / name
        env = {**os.environ, "OUT_DIR": str(out), "PYTHON": sys.executable}
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "2", *overrides],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append((out, overrides, proc))
    results = []
    for out, overrides, proc in runs:
        stdout, stderr = proc.communicate(timeout=600)
        lines = stdout.strip().splitlines()
        work = _run_dirs(lines[0])
        left = procs.settle(work, str(out))
        procs.stop(left)
        assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
        assert "TLS (CA " in lines[0] and "SuperNode authentication on" in lines[0]
        assert lines[-1] == f"results: {out / 'results.json'}"
        assert not left, left  # nothing of this run is left behind
        assert not Path(work).exists()  # keys and certificates deleted
        assert (out / "deploy-logs" / "supernode-1.log").exists()
        results.append(json.loads((out / "results.json").read_text()))
    _same_metrics(results[0], reference)
    other = json.loads(simulate(compose_config(other_data), tmp_path / "sim-b", other_data).read_text())
    _same_metrics(results[1], other)  # run b has its own data: its own numbers, not a's
    assert results[0]["metrics"]["n"] != results[1]["metrics"]["n"]


def test_deploy_local_rejects_a_bad_k(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "zero"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: K must be a positive integer, got 'zero' "
                                   "(usage: scripts/deploy_local.sh [--insecure] K [hydra overrides...])")
