"""Fault injection, three clients, ``strategy.min_clients`` deciding the outcome:
- simulation (Flower's engine): partition 2 has 54 training rows under the Dirichlet split and
  ``stage1.ns1=100`` asks for 100 synthetic rows, so its ClientApp raises a FedFairError (a natural
  failure, no test hook in the product);
- deployment (scripts/deploy_local.sh): the SuperNode of partition 2 and its children are SIGKILLed
  once it has received its train message. Flower 1.41 answers for a node whose heartbeats stopped
  (within 2 × its interval) with an error reply from the SuperLink itself. The SuperNodes here report
  at Flower's minimum interval, 10 s, not its default 30 s (tests/fast_heartbeat/sitecustomize.py:
  Flower takes it from a constant only), so the SuperLink gives up on the killed one within 20 s.
With min_clients met the run finishes with partitions 0 and 1 and results.json names partition 2 and
why; below it the run ends with one error line (in deployment: exit 2, checked in
test_deploy_security.py, beside a deployment that finishes)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flwr.app import Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import procs
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from strategies.base import MeteredFedAvg
from strategies.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
FAST_HEARTBEAT = Path(__file__).resolve().parent / "fast_heartbeat"
OVERRIDES = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]
NODE_UNAVAILABLE = "Error: Node Unavailable — The destination node failed to report a heartbeat"


def _survivors_only(res):
    """Partition 2 failed, 0 and 1 are pooled (and nothing else)."""
    assert [c["status"] for c in res["clients"][:2]] == ["ok", "ok"]
    assert [c["partition_id"] for c in res["clients"]] == [0, 1, 2]
    assert [c["partition_id"] for c in res["per_client"]] == [0, 1]
    assert res["metrics"]["n"] == sum(c["metrics"]["n"] for c in res["per_client"])
    # train: 3 down, 3 up (one an error reply); evaluate: only to the two left
    assert res["communication"]["messages"] == 3 + 3 + 2 + 2
    return res["clients"][2]["status"]


def test_an_error_reply_the_superlink_makes_for_a_dead_node_is_pinned_on_that_nodes_partition(caplog, monkeypatch):
    """Flower's error reply for a node without heartbeats comes from the SuperLink (node id 1), not from
    the node: the strategy finds the node by the message it replies to, and its partition as the one
    partition nobody else answered for."""
    for key, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):  # who "we" are, as in fakegrid.py
        monkeypatch.setattr(TaskIdentity, key, value)
    strategy = MeteredFedAvg(num_clients=3, min_clients=2)
    asked = [Message(RecordDict(), dst_node_id=node, message_type="train") for node in (101, 102, 103)]
    for i, msg in enumerate(asked):
        msg.metadata.__dict__["_message_id"] = f"m{i}"  # what the grid does when it sends them
    strategy.send(asked)
    replies = [Message(RecordDict({"metrics": MetricRecord({"partition_id": pid})}), reply_to=asked[i])
               for i, pid in ((0, 2), (2, 0))]
    dead = Message(Error(code=3, reason=f"{NODE_UNAVAILABLE} within 2 × its expected interval."), reply_to=asked[1])
    dead.metadata.__dict__["_src_node_id"] = 1
    assert [strategy.node_of(m) for m in replies] == [101, 103]
    assert len(strategy.good_replies([*replies, dead], "upload")) == 2
    assert strategy.failed == {1: f"{NODE_UNAVAILABLE} within 2 × its expected interval."}
    assert list(strategy.failed_nodes) == [102]  # never the SuperLink's id
    assert f"upload: partition 1 failed: {NODE_UNAVAILABLE}" in caplog.text
    assert "no reply within" not in caplog.text  # its reply came, from the SuperLink
    assert [m.metadata.dst_node_id for m in strategy.send(asked)] == [101, 103]  # no later message to it


@pytest.mark.slow
def test_a_client_that_raises_in_simulation_is_named_and_left_out(tmp_path):
    overrides = [*OVERRIDES, "num_clients=3", "partition=dirichlet", "stage1.ns1=100"]
    res = json.loads(simulate(compose_config([*overrides, "strategy.min_clients=2"]), tmp_path / "a",
                              overrides).read_text())
    assert _survivors_only(res) == "failed: stage-1 ns1=100 gives 100 rows; it must give 2..54 (N = 54)"
    with pytest.raises(FedFairError, match=r"^upload: only 2 of 3 clients answered \(min_clients=3\)"):
        simulate(compose_config([*overrides, "strategy.min_clients=3"]), tmp_path / "b", overrides)
    assert not (tmp_path / "b" / "results.json").exists()


def _deploy_and_kill_node_2(tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """deploy_local.sh 3 with SuperNode 2 (and its children) killed once its train message arrived;
    checks that nothing of the deployment is left running."""
    out = tmp_path / "out"
    path = os.pathsep.join(p for p in (str(FAST_HEARTBEAT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OUT_DIR": str(out), "PYTHON": sys.executable, "PYTHONPATH": path}
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "3", *OVERRIDES,
                                 "strategy.min_clients=2"], cwd=tmp_path, env=env,
                                stdout=stdout, stderr=stderr)
    node_log, work, deadline = out / "deploy-logs" / "supernode-2.log", None, time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if node_log.exists() and "Receiving: train message" in node_log.read_text():
                work = re.search(r"private dir (\S+)$", (tmp_path / "stdout").read_text().splitlines()[0])[1]
                node = [pid for pid, args in procs.leftovers(work).items()
                        if "flower-supernode" in args and "partition-id=2 " in args]
                assert len(node) == 1, node
                procs.kill_tree(node[0])
                break
            time.sleep(0.2)
        assert work, "SuperNode 2 never received its train message"
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        left = procs.settle(*(m for m in (work, str(out)) if m))
        procs.stop(left)
    assert not left, left  # nothing of this run is left behind
    assert not Path(work).exists()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, (tmp_path / "stdout").read_text(),
                                       (tmp_path / "stderr").read_text())
    return done, out


@pytest.mark.slow
def test_a_supernode_killed_mid_round_is_named_and_the_survivors_finish(tmp_path):
    proc, out = _deploy_and_kill_node_2(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stderr == ""
    status = _survivors_only(json.loads((out / "results.json").read_text()))
    assert status.startswith(f"failed: {NODE_UNAVAILABLE}"), status
    assert f"upload: partition 2 failed: {NODE_UNAVAILABLE}" in proc.stdout  # by partition, not node id
    assert f"WARNING: client 2 failed: {NODE_UNAVAILABLE}" in proc.stdout  # the summary names it
