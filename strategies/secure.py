"""A secure SUM of one vector per node through Flower's SecAgg+ (``SecAggPlusWorkflow`` on the server,
``secaggplus_mod`` on the client, see ``clients/client_app.py``), driven from a Message API ServerApp.

The workflow is written for legacy strategies: it asks ``context.strategy.configure_fit`` for one
``FitIns`` per node, runs the protocol's four stages (setup, share keys, collect masked vectors,
unmask) over the Grid, and hands ``aggregate_fit`` the unmasked aggregate. :func:`secure_sum` gives
it a two-method stand-in for that strategy (:class:`_Sum`), so the only thing the caller gets back is
the sum (and which nodes' vectors it contains); the clients' masked vectors stay inside the workflow.
The client's train handler answers the collect stage with its vector, encoded by
:func:`fedfair.quantize.encode`, as a ``FitRes`` of weight 1 (the workflow's weighted mean with all
weights 1 is the sum over K; it is multiplied back by K here).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import FitIns, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.serverapp import Grid

from fedfair import quantize

log = logging.getLogger("flwr")


def shares(num_nodes: int) -> tuple[int, int]:
    """(neighbours each node shares its secrets with, itself included; shares needed to unmask it):
    all nodes up to 7, else 2⌈log₂ K⌉ + 1 (SecAgg+'s logarithmic neighbourhood); a strict majority of
    them to reconstruct, so up to half of a node's neighbours may drop out."""
    count = num_nodes if num_nodes <= 7 else min(num_nodes, 2 * math.ceil(math.log2(num_nodes)) + 1)
    return count, count // 2 + 1


@dataclass
class _Proxy:
    """What the workflow reads of a legacy ClientProxy: its node id."""

    node_id: int


@dataclass
class _Sum:
    """The two methods of a legacy strategy that ``SecAggPlusWorkflow`` calls."""

    fitins: dict[int, FitIns]
    total: np.ndarray | None = None
    included: list[int] = field(default_factory=list)

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: object) -> list:
        return [(_Proxy(node), ins) for node, ins in self.fitins.items()]

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple[None, dict]:
        """Every result carries the same unmasked aggregate: the mean over the included nodes."""
        self.included = [proxy.node_id for proxy, _ in results]
        mean = parameters_to_ndarrays(results[0][1].parameters)[0]
        self.total = np.asarray(mean, dtype=np.float64) * len(results)
        return None, {}


class _Recorder:
    """The Grid, recording every message the workflow sends and receives (for metering)."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.calls: list[tuple[list[Message], list[Message]]] = []  # (sent, received) of each exchange

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        messages = list(messages)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        self.calls.append((messages, replies))
        return replies


@dataclass
class SecureSum:
    """One secure sum: the total (None if the protocol halted: too few nodes left to unmask), the
    nodes whose vectors it contains, every message sent and received, its seconds and threshold."""

    total: np.ndarray | None
    included: list[int]
    sent: list[Message]
    replies: list[Message]
    seconds: float
    threshold: int


def secure_sum(
    grid: Grid, requests: dict[int, tuple[ConfigRecord, np.ndarray | None]], clip: float, timeout: float,
    server_round: int,
) -> SecureSum:
    """Run one SecAgg+ round: node → (its config, the θ it needs, if any); each node's train handler
    answers with its vector, clipped to [−clip, clip]."""
    recorder = _Recorder(grid)
    t0 = time.perf_counter()
    while True:
        quantize.check_clients(len(requests))
        count, threshold = shares(len(requests))
        empty = Parameters(tensors=[], tensor_type="numpy.ndarray")
        strategy = _Sum({
            node: FitIns(empty if theta is None else ndarrays_to_parameters([theta]), dict(record))
            for node, (record, theta) in requests.items()
        })
        workflow = SecAggPlusWorkflow(
            num_shares=1.0 if count == len(requests) else count,  # 1.0: every node
            reconstruction_threshold=threshold,
            max_weight=1.0,  # each client's weight is 1: the aggregate is the mean
            clipping_range=float(clip),
            quantization_range=quantize.LEVELS,
            modulus_range=quantize.MODULUS,
            timeout=timeout,
        )
        state = RecordDict({"config": ConfigRecord({"current_round": server_round}), "parameters": ArrayRecord()})
        context = LegacyContext(Context(0, 0, {}, state, {}), strategy=strategy)  # type: ignore[arg-type]
        first = len(recorder.calls)
        workflow(recorder, context)  # type: ignore[arg-type]
        # Flower 1.41 cannot unmask a sum when a node failed before sharing its keys (its neighbours
        # hold no share of it): then the sum starts again without the nodes that failed the setup.
        setup, replies = recorder.calls[first]
        lost = set(requests) - {r.metadata.src_node_id for r in replies if not r.has_error()}
        if strategy.total is not None or not lost or len(requests) - len(lost) < 2:
            break
        log.warning("secure sum: %d node(s) failed the setup stage; starting again without them", len(lost))
        requests = {node: request for node, request in requests.items() if node not in lost}
    sent = [msg for out, _ in recorder.calls for msg in out]
    received = [msg for _, back in recorder.calls for msg in back]
    return SecureSum(strategy.total, strategy.included, sent, received, time.perf_counter() - t0, threshold)
