"""Flower's simulation engine (flwr 1.41, Ray backend), assembled for many nodes and many runs.

``run_simulation`` is Flower's ``_main_loop`` + ``start_vce`` with these parts swapped:

- ``IndexedLinkState``: Flower's in-memory LinkState with the undelivered messages indexed by
  destination node. The engine polls every node every 0.1 s, and Flower's ``get_message_ins`` scans
  (and re-validates) every stored message for each node: O(K²) per poll, which dominated K ≥ 200.
  Here a node's poll looks at its own messages only; the messages returned, their order and their
  validity checks are Flower's.
- ``ReplyGrid``: Flower's InMemoryGrid, whose poll (every 0.1 s) re-validated all K outstanding
  messages, pulls the replies that arrived (and, every few seconds, all: Flower's error replies).
- ``SharedRayBackend``: one Ray instance and one actor pool for all the runs of a process (a Hydra
  sweep), instead of a Ray start, the actors' cold imports and a Ray shutdown per run. Each
  run still gets fresh node contexts; only process-level caches (imports, the loaded dataset) carry
  over. Ray and the actors stop at process exit, or when a run needs other resources.
- ``ray_address``: attach to a running Ray cluster (``ray start --head``) instead of starting one.

Every other piece (node registration, the worker threads, the Ray actors, sending) is Flower's own.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, cast

import ray
from flwr.app import Context, Message, RecordDict
from flwr.app.user_config import UserConfig
from flwr.clientapp import ClientApp
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
from flwr.server.superlink.fleet.vce.metrics import VceMetrics
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkState, LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.serverapp import ServerApp
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.date import now
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid


class IndexedLinkState(InMemoryLinkState):
    """InMemoryLinkState whose ``get_message_ins`` looks only at the node's own undelivered messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._undelivered: dict[int, list[str]] = defaultdict(list)  # node id -> message ids, in storing order
        self._replied: set[str] = set()  # ids of stored messages whose reply is stored

    def store_message_res(self, message: Message) -> str | None:
        with self.lock:
            message_id = super().store_message_res(message)
            if message_id is not None:
                self._replied.add(message.metadata.reply_to_message_id)
        return message_id

    def delete_messages(self, message_ins_ids: set[str]) -> None:
        with self.lock:
            super().delete_messages(message_ins_ids)
            self._replied.difference_update(message_ins_ids)

    def replied(self, message_ids: set[str]) -> set[str]:
        """Those of ``message_ids`` whose reply is stored."""
        with self.lock:
            return message_ids & self._replied

    def store_message_ins(self, message: Message) -> str | None:
        with self.lock:
            known = message.metadata.message_id in self.message_ins_store
            message_id = super().store_message_ins(message)
            if message_id is not None and not known:
                self._undelivered[message.metadata.dst_node_id].append(message_id)
        return message_id

    def get_message_ins(self, node_id: int, limit: int | None, *, run_id: int | None = None) -> list[Message]:
        """Flower's selection (stored, still valid, for ``node_id`` and ``run_id``, not delivered; in
        storing order; at most ``limit``), marked delivered; ids that left the store or were
        delivered leave the index."""
        if limit is not None and limit < 1:
            raise AssertionError("`limit` must be >= 1")
        if node_id not in self._undelivered:  # the engine polls every node every 0.1 s: most have nothing
            return []
        found: list[Message] = []
        with self.lock:
            kept: list[str] = []
            for msg_id in self._undelivered.get(node_id, ()):
                if limit and len(found) == limit:
                    kept.append(msg_id)
                    continue
                self._check_stored_messages({msg_id})
                msg = self.message_ins_store.get(msg_id)
                if msg is None or msg.metadata.delivered_at != "":
                    continue
                if run_id is not None and msg.metadata.run_id != run_id:
                    kept.append(msg_id)
                    continue
                found.append(msg)
            if kept:
                self._undelivered[node_id] = kept
            else:
                self._undelivered.pop(node_id, None)
        delivered_at = now().isoformat()
        for msg in found:
            msg.metadata.delivered_at = delivered_at
        return found


class IndexedLinkStateFactory(LinkStateFactory):
    """A LinkStateFactory whose one state is an ``IndexedLinkState``."""

    def __init__(self) -> None:
        super().__init__(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())

    def state(self) -> LinkState:
        with self._state_lock:
            if self.state_instance is None:
                self.state_instance = IndexedLinkState(self.federation_manager, self.objectstore_factory.store())
            return self.state_instance


class ReplyGrid(InMemoryGrid):
    """InMemoryGrid whose 0.1 s poll asks the state only for the replies that arrived since the last
    poll, and for all outstanding ones every ``FULL_PULL_S`` seconds: there Flower's state also
    answers for messages that can no longer be answered (TTL expired, node gone) with an error reply,
    as it does on every poll of its own Grid."""

    FULL_PULL_S = 5.0

    def __init__(self, state_factory: LinkStateFactory) -> None:
        super().__init__(state_factory=state_factory)
        self._next_full_pull = 0.0

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        ids = set(message_ids)
        if time.monotonic() >= self._next_full_pull:
            self._next_full_pull = time.monotonic() + self.FULL_PULL_S
        else:
            ids = cast(IndexedLinkState, self.state).replied(ids)
        return super().pull_messages(ids) if ids else []


class SharedRayBackend(RayBackend):
    """A RayBackend whose Ray instance and actor pool outlive the run (see ``backend``)."""

    def build(self, app_fn: Callable[[], ClientApp]) -> None:
        if self.pool is None:
            super().build(app_fn)
        self.app_fn = app_fn

    def terminate(self) -> None:
        """End of a run: keep everything, unless an actor is still busy (a timed-out message)."""
        if self.pool is not None and len(self.pool.pool) != self.pool.num_actors:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the actors and Ray (or detach from the cluster)."""
        global _SHARED
        if ray.is_initialized():  # at exit, Ray's own atexit hook may have stopped it already
            super().terminate()
        self.pool = None
        if _SHARED is not None and _SHARED[1] is self:
            _SHARED = None


_SHARED: tuple[str, SharedRayBackend] | None = None  # (backend config as JSON, its backend)


def backend(config: dict[str, Any]) -> SharedRayBackend:
    """The process's backend for ``config``; one made for another config is shut down first."""
    global _SHARED
    key = json.dumps(config, sort_keys=True)
    if _SHARED is not None and not ray.is_initialized():  # Ray was stopped under it
        _SHARED = None
    if _SHARED is not None and _SHARED[0] != key:
        _SHARED[1].shutdown()
    if _SHARED is None:  # RayBackend starts Ray, or joins the one this process already has
        _SHARED = (key, SharedRayBackend(json.loads(key)))
    return _SHARED[1]


def shutdown() -> None:
    """Stop the shared backend, if any (registered at exit)."""
    if _SHARED is not None:
        _SHARED[1].shutdown()


atexit.register(shutdown)


def backend_config(num_cpus: int, client_cpus: int, log_to_driver: bool, ray_address: str | None) -> dict[str, Any]:
    """Flower's backend config: a local Ray of ``num_cpus`` CPUs, or the cluster at ``ray_address``
    (``auto``, ``host:port``), whose CPUs are its own."""
    init_args: dict[str, Any] = {"log_to_driver": log_to_driver, "include_dashboard": False,
                                 "logging_level": "WARNING"}
    if ray_address:
        init_args["address"] = ray_address
    else:  # "local": a new Ray, even where `ray start` left a cluster (Ray would join it otherwise)
        init_args.update(address="local", num_cpus=num_cpus)
    return {"client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0}, "init_args": init_args,
            "actor": {"tensorflow": 0}}


def run_simulation(server_app: ServerApp, client_app: ClientApp, num_supernodes: int,
                   config: dict[str, Any]) -> None:
    """Run ``server_app`` against ``num_supernodes`` virtual nodes running ``client_app`` (Flower's
    ``run_simulation``, with the parts above). Returns when the ServerApp returns; its exception is
    re-raised here."""
    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run.run_id, SUPERLINK_NODE_ID

    factory = IndexedLinkStateFactory()
    state = cast(InMemoryLinkState, factory.state())
    state.run_ids[run.run_id] = RunRecord(run=run)
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)
    grid = ReplyGrid(state_factory=factory)
    grid.set_run(run)

    f_stop = threading.Event()
    errors: list[BaseException] = []
    context = Context(run_id=run.run_id, node_id=0, node_config=UserConfig(), state=RecordDict(),
                      run_config=UserConfig())

    def serve() -> None:
        try:
            server_app(grid=grid, context=context)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            f_stop.set()

    nodes = vce_api._register_nodes(num_supernodes, factory)  # noqa: SLF001 - Flower's own registration,
    stores = vce_api._register_node_info_stores(nodes, run)  # noqa: SLF001 - before the ServerApp starts
    server = threading.Thread(target=serve, name="fedfair-serverapp", daemon=True)
    server.start()
    try:
        vce_api.run_api(lambda: client_app, lambda: backend(config), nodes, factory, stores, f_stop,
                        VceMetrics())
    except BaseException:
        f_stop.set()  # the engine failed: the ServerApp thread ends at its own timeout
        raise
    server.join()  # run_api returns once the ServerApp has set f_stop
    if errors:
        raise errors[0]
