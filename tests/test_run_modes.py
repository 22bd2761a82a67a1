"""The two other run modes give exactly the simulation's metrics for the same seed and data:
(b) `flwr run .` against a local SuperLink, (c) scripts/deploy_local.sh with K = 2 SuperNodes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedfair.config import compose_config
from strategies.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OVERRIDES = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]
KEYS = ("accuracy", "spd", "eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return json.loads(simulate(compose_config(OVERRIDES), out, OVERRIDES).read_text())


def _same_metrics(res, ref):
    assert res["metrics"]["n"] == ref["metrics"]["n"]
    for key in KEYS:
        assert res["metrics"][key] == pytest.approx(ref["metrics"][key], rel=1e-9, abs=1e-12), key
    assert res["communication"]["rounds"] == 1


def _kill_superlinks(flwr_home: Path) -> None:
    """`flwr run` leaves its local SuperLink running: stop every process that uses this FLWR_HOME.
    ``ps -ww``: without it, ps cuts lines at 80 columns under pytest and the path is never seen."""
    for _ in range(10):
        ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        pids = [int(line.split()[0]) for line in ps.splitlines()
                if "flower-superlink" in line and str(flwr_home) in line]
        if not pids:
            return
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.25)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"a flower-superlink using {flwr_home} keeps running")


def _alive(pid: int) -> bool:
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    return bool(state.strip()) and not state.startswith("Z")


def test_flwr_run_matches_the_simulation(reference, tmp_path):
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "out"
    overrides = " ".join(OVERRIDES)
    cmd = [
        str(BIN / "flwr"), "run", ".", "local", "--stream",
        "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
        "--run-config", f"overrides='{overrides}' output-dir='{out}'",
    ]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        _kill_superlinks(tmp_path / "flwr")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _same_metrics(json.loads((out / "results.json").read_text()), reference)
    ps = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True).stdout
    assert str(tmp_path / "flwr") not in ps  # nothing of this run is left behind


def test_deploy_local_matches_the_simulation_and_stops_its_processes(reference, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT_DIR": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy_local.sh"), "2", *OVERRIDES],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"results: {out / 'results.json'}"
    _same_metrics(json.loads((out / "results.json").read_text()), reference)
    ps = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True).stdout
    assert str(out) not in ps and "flower-supernode" not in ps
    assert (out / "deploy-logs" / "supernode-1.log").exists()


def test_deploy_local_rejects_a_bad_k(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "zero"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: K must be a positive integer, got 'zero' (usage: scripts/deploy_local.sh K [hydra overrides...])"
