"""The `flwr run . local` run mode (scripts/flwr_run_local.sh) gives exactly the simulation's metrics
for the same seed and data and leaves no process behind (tests/procs.py). The local deployment
(scripts/deploy_local.sh) is checked in test_deploy_security.py and test_deploy_faults.py."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import procs
from runs import same_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flwr_run_wrapper_matches_the_simulation_and_leaves_nothing(reference, base_overrides, tmp_path):
    """scripts/flwr_run_local.sh: its own SuperLink on OS-chosen ports and a private FLWR_HOME,
    stopped (with its children) when the run ends."""
    out = tmp_path / "out"
    overrides = " ".join(base_overrides)
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
    same_metrics(json.loads((out / "results.json").read_text()), reference)
    assert not left, left  # nothing of this run is left behind
    assert not Path(flwr_home).exists()


def test_deploy_local_rejects_a_bad_k(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "zero"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: K must be a positive integer, got 'zero' "
                                   "(usage: scripts/deploy_local.sh [--insecure] K [hydra overrides...])")
