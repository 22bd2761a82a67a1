"""The simulation engine at scale (strategies.engine): the indexed LinkState serves each node exactly
what Flower's serves, at a cost independent of the other nodes' messages; a run on an already
running Ray instance (``simulation.ray_address``); runs of one process share one backend."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from uuid import uuid4

import pytest
import ray
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID, SUPERLINK_NODE_ID
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import InMemoryLinkState
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager

from fedfair.config import compose_config
from strategies import engine
from strategies.simulation import simulate

RUN_ID = 7


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("_run_id", RUN_ID), ("_node_id", SUPERLINK_NODE_ID), ("_task_id", 1)):  # the ServerApp
        monkeypatch.setattr(TaskIdentity, key, value)


def _state(cls: type[InMemoryLinkState], num_nodes: int) -> tuple[InMemoryLinkState, list[int]]:
    """A LinkState of class ``cls`` with one run and ``num_nodes`` nodes, set up as the engine does."""
    state = cls(NoOpFederationManager(), ObjectStoreFactory().store())
    run = Run.create_empty(run_id=RUN_ID)
    run.primary_task_id, run.federation_id = 11, NOOP_FEDERATION_ID
    state.run_ids[RUN_ID] = RunRecord(run=run)
    state.task_store[11] = Task(task_id=11, run_id=RUN_ID)
    nodes = []
    for _ in range(num_nodes):
        node = state.create_node(NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32),
                                 heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        state.acknowledge_node_heartbeat(node_id=node, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        nodes.append(node)
    return state, nodes


def _store(state: InMemoryLinkState, node: int, tag: str, ttl: float = 3600.0) -> None:
    msg = Message(RecordDict({"c": ConfigRecord({"tag": tag})}), dst_node_id=node, message_type="train", ttl=ttl)
    msg.metadata.__dict__["_message_id"] = str(uuid4())  # as InMemoryGrid.push_messages
    assert state.store_message_ins(msg) is not None


def _serve_all(state: InMemoryLinkState, nodes: list[int], limit: int | None) -> list[list[str]]:
    """What each node gets from one poll."""
    return [[str(m.content["c"]["tag"]) for m in state.get_message_ins(node_id=n, limit=limit)] for n in nodes]


@pytest.mark.parametrize("limit", [1, 2, None])
def test_indexed_state_serves_each_node_what_flowers_serves(limit: int | None) -> None:
    served = {}
    for cls in (InMemoryLinkState, engine.IndexedLinkState):
        state, nodes = _state(cls, 4)
        for j in range(3):  # interleaved: node i gets "i.0", "i.1", "i.2" in that order
            for i, node in enumerate(nodes):
                _store(state, node, f"{i}.{j}", ttl=0.05 if (i, j) == (1, 0) else 3600.0)  # "1.0" expires
        time.sleep(0.1)
        polls = [_serve_all(state, nodes, limit) for _ in range(4)]
        other_run = state.get_message_ins(node_id=nodes[0], limit=None, run_id=RUN_ID + 1)
        served[cls.__name__] = (polls, other_run)
    assert served["IndexedLinkState"] == served["InMemoryLinkState"]
    polls = served["IndexedLinkState"][0]
    assert "1.0" not in str(polls) and sum(len(p) for poll in polls for p in poll) == 11  # 12 stored, 1 expired
    assert polls[0][0] == (["0.0"] if limit == 1 else ["0.0", "0.1"] if limit == 2 else ["0.0", "0.1", "0.2"])


def test_indexed_state_poll_checks_only_the_polled_nodes_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """One poll of all K nodes re-validates K messages (Flower's scan: ~K²/2), the next poll none."""
    state, nodes = _state(engine.IndexedLinkState, 300)
    for node in nodes:
        _store(state, node, "x")
    checked = []
    original = state._check_stored_messages
    monkeypatch.setattr(state, "_check_stored_messages", lambda ids, run_id=None: (checked.append(len(ids)),
                                                                                    original(ids, run_id)))
    assert all(got == ["x"] for got in _serve_all(state, nodes, 1))
    assert len(checked) == 300
    assert _serve_all(state, nodes, 1) == [[]] * 300 and len(checked) == 300
    assert len(state.message_ins_store) == 300  # delivered messages stay stored until their replies are pulled


def test_reply_grid_pulls_the_arrived_replies_and_at_times_flowers_error_replies(monkeypatch) -> None:
    factory = engine.IndexedLinkStateFactory()
    state = factory.state()
    run = Run.create_empty(run_id=RUN_ID)
    run.primary_task_id, run.federation_id = 11, NOOP_FEDERATION_ID
    state.run_ids[RUN_ID] = RunRecord(run=run)
    state.task_store[11] = Task(task_id=11, run_id=RUN_ID)
    nodes = list(vce_api._register_nodes(3, factory))
    grid = engine.ReplyGrid(factory)
    grid.set_run(run)
    ids = list(grid.push_messages(
        Message(RecordDict(), dst_node_id=n, message_type="train", ttl=0.5 if i == 2 else 3600.0)
        for i, n in enumerate(nodes)))
    for node in nodes[:2]:  # nodes 0 and 1 answer; node 2 never does, and its message expires
        (msg,) = state.get_message_ins(node_id=node, limit=1)
        reply = Message(RecordDict(), reply_to=msg)
        reply.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's engine worker
        assert state.store_message_res(reply) is not None
    asked: list[set[str]] = []
    original = state.get_message_res
    monkeypatch.setattr(state, "get_message_res", lambda message_ids, run_id: (asked.append(set(message_ids)),
                                                                              original(message_ids, run_id))[1])
    grid._next_full_pull = time.monotonic() + 60
    got = list(grid.pull_messages(ids))
    assert sorted(m.metadata.reply_to_message_id for m in got) == sorted(ids[:2]) and not any(m.has_error() for m in got)
    assert asked == [set(ids[:2])] and state.replied(set(ids)) == set()  # pulled replies leave the store
    assert list(grid.pull_messages(ids[2:])) == [] and len(asked) == 1  # nothing arrived: no state call
    time.sleep(0.6)
    grid._next_full_pull = 0.0  # a full poll: Flower's error reply for the expired message
    (expired,) = grid.pull_messages(ids[2:])
    assert expired.has_error() and expired.metadata.reply_to_message_id == ids[2] and asked[-1] == {ids[2]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_simulation_attached_to_a_running_ray_and_runs_sharing_one_backend(tmp_path, base_overrides) -> None:
    """``ray start --head`` (stopped by its PID), two runs attached via simulation.ray_address: the
    second reuses the first's Ray connection and actors, and its results are the first's."""
    port = _free_port()
    # Loopback only, and a private temp dir: `ray start` records its address in <temp dir>/ray_current_cluster,
    # where any other `ray.init()` on the machine would find (and join) it.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(line) for line in head.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while not any("Ray runtime started" in line for line in lines):
            assert head.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        overrides = [*base_overrides, "num_clients=3", f"simulation.ray_address=127.0.0.1:{port}",
                     "simulation.timeout=300", "simulation.connect_timeout=60"]
        cfg = compose_config(overrides)
        first = simulate(cfg, tmp_path / "a", overrides)
        shared = engine._SHARED
        second = simulate(cfg, tmp_path / "b", overrides)
        assert engine._SHARED is shared and shared is not None  # one backend for both runs
        assert ray.get_runtime_context().gcs_address.endswith(f":{port}")  # the running head, not a new Ray
        a, b = (json.loads(p.read_text()) for p in (first, second))
        # Exact but for the covariance sums, whose last bits follow the order the replies arrived in
        # (the server concatenates the uploads in that order), as between any two runs.
        assert len(a["per_client"]) == 3 and a["metrics"].keys() == b["metrics"].keys()
        for key, value in a["metrics"].items():
            assert b["metrics"][key] == (pytest.approx(value, rel=1e-9, abs=1e-15) if key.startswith("cov_") else value)
        assert a["metrics"]["accuracy"] > a["sanity"]["majority_rate"]
    finally:
        engine.shutdown()
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its own daemons on SIGTERM
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)
