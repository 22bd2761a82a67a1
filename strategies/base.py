"""What every fedfair strategy shares: metered communication and exactly pooled evaluation.

``MeteredFedAvg`` is Flower's FedAvg plus
- communication accounting: rounds, messages and payload bytes each way, where a message's payload is
  the sum of ``count_bytes()`` over its records (the formula of Flower's ``message_size_mod``);
- evaluation pooled from the clients' confusion counts (``fedfair.metrics.Counts``), never by
  averaging rates, with the per-client metrics kept for ``results.json``;
- failure handling: a failed reply is logged with its reason; fewer than ``min_clients`` good
  replies fail the run with a one-line message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedfair import metrics
from fedfair.errors import FedFairError

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


def partition_id(msg: Message) -> int:
    """The partition a client reply comes from (every fedfair reply names it in its MetricRecord)."""
    return int(next(iter(msg.content.metric_records.values()))["partition_id"])


def payload_bytes(msg: Message) -> int:
    """Bytes of a message's records (0 for an error reply, which carries none)."""
    if msg.has_error():
        return 0
    return sum(record.count_bytes() for record in msg.content.values())


@dataclass
class Communication:
    rounds: int = 0
    messages_down: int = 0
    messages_up: int = 0
    bytes_down: int = 0
    bytes_up: int = 0

    def sent(self, msgs: list[Message]) -> None:
        self.messages_down += len(msgs)
        self.bytes_down += sum(payload_bytes(m) for m in msgs)

    def received(self, msgs: list[Message]) -> None:
        self.messages_up += len(msgs)
        self.bytes_up += sum(payload_bytes(m) for m in msgs)

    def to_dict(self) -> dict[str, int]:
        return {
            "rounds": self.rounds,
            "messages": self.messages_down + self.messages_up,
            "messages_down": self.messages_down,
            "messages_up": self.messages_up,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


@dataclass
class Evaluation:
    pooled: dict[str, Any] = field(default_factory=dict)
    per_client: dict[int, dict[str, Any]] = field(default_factory=dict)


class MeteredFedAvg(FedAvg):
    """FedAvg with metered messages and pooled evaluation (see the module docstring)."""

    def __init__(self, num_clients: int, min_clients: int | None = None, **kwargs: Any) -> None:
        min_clients = num_clients if min_clients is None else int(min_clients)
        if not 1 <= min_clients <= num_clients:
            raise FedFairError(f"min_clients={min_clients} must be in 1..num_clients={num_clients}")
        super().__init__(
            min_train_nodes=min_clients,
            min_evaluate_nodes=min_clients,
            min_available_nodes=min_clients,
            **kwargs,
        )
        self.num_clients = num_clients
        self.min_clients = min_clients
        self.communication = Communication()
        self.evaluation = Evaluation()

    # -- metering --------------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        msgs = list(super().configure_train(server_round, arrays, config, grid))
        self.communication.rounds = server_round
        self.communication.sent(msgs)
        return msgs

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        msgs = list(super().configure_evaluate(server_round, arrays, config, grid))
        self.communication.sent(msgs)
        return msgs

    def good_replies(self, replies: Iterable[Message], phase: str) -> list[Message]:
        """Meter the replies, log failures with their reasons, enforce ``min_clients``."""
        replies = list(replies)
        self.communication.received(replies)
        good = [m for m in replies if not m.has_error()]
        for msg in replies:
            if msg.has_error():
                reason = (msg.error.reason or "no reason given").strip().splitlines()[-1]
                log.warning("%s: node %d failed: %s", phase, msg.metadata.src_node_id, reason)
        if len(good) < self.min_clients:
            raise FedFairError(
                f"{phase}: only {len(good)} of {self.num_clients} clients answered "
                f"(min_clients={self.min_clients}); see the log for their errors"
            )
        return good

    # -- evaluation ------------------------------------------------------------------------------
    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Pool the clients' counts exactly (summed in partition order, so that the pooled sums do
        not depend on the order replies arrive in); keep per-client metrics."""
        good = sorted(self.good_replies(replies, f"evaluate round {server_round}"), key=partition_id)
        per_client: dict[int, dict[str, Any]] = {}
        for msg in good:
            record = msg.content["metrics"]
            pid = int(record["partition_id"])
            counts = metrics.Counts.from_dict({k: v for k, v in record.items() if k != "partition_id"})
            per_client[pid] = {"counts": counts, "metrics": metrics.compute(counts)}
        pooled = metrics.pooled([c["counts"] for c in per_client.values()])
        self.evaluation = Evaluation(pooled, per_client)
        return MetricRecord({k: float(v) for k, v in pooled.items() if v is not None})
