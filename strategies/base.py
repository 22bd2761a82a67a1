"""What every fedfair strategy shares: metered communication and exactly pooled evaluation.

``MeteredFedAvg`` is Flower's FedAvg plus
- the run config sent once per node: the first message to a node carries it (``config["fedfair"]``,
  the resolved config as JSON), every message its digest (``config["fedfair-digest"]``); the client
  keeps it for the rest of the run (``clients/client_app.py``);
- communication accounting (``fedfair.results.Communication``): rounds, messages and payload bytes
  each way, where a message's payload is the sum of ``count_bytes()`` over its records (the formula of
  Flower's ``message_size_mod``), the run config and its digest metered apart;
- evaluation pooled from the clients' confusion counts (``fedfair.metrics.Counts``), never by
  averaging rates, with the per-client metrics kept for ``results.json``, and each round's pooled
  metrics and bytes kept as its history;
- failure handling: a failed or missing reply is logged and recorded by partition id with its reason
  (``failed``); a failed client gets no later message and is left out of the pooled metrics; fewer
  than ``min_clients`` good replies fail the run with a one-line message.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedfair import metrics
from fedfair.errors import FedFairError
from fedfair.results import ClientEvaluation, Communication, Report, Round

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


def partition_id(msg: Message) -> int:
    """The partition a client reply comes from (every fedfair reply names it in its MetricRecord)."""
    return int(next(iter(msg.content.metric_records.values()))["partition_id"])


def _value_bytes(value: Any) -> int:
    """Bytes of one ConfigRecord value by Flower's ``count_bytes`` formula: 1 for a bool, 8 for a
    number, the length of a str or bytes, summed over a list."""
    if isinstance(value, list):
        return sum(_value_bytes(v) for v in value)
    if isinstance(value, bool):
        return 1
    return len(value) if isinstance(value, (str, bytes)) else 8


def record_bytes(record: ArrayRecord | ConfigRecord | MetricRecord) -> int:
    """``record.count_bytes()``; a ConfigRecord by the same formula, which also takes the empty lists
    and strings SecAgg+ sends (on which Flower's ``ConfigRecord.count_bytes`` fails)."""
    if isinstance(record, ConfigRecord):
        return sum(len(k) + _value_bytes(v) for k, v in record.items())
    return record.count_bytes()


def payload_bytes(msg: Message) -> int:
    """Bytes of a message's records (0 for an error reply, which carries none)."""
    if msg.has_error():
        return 0
    return sum(record_bytes(record) for record in msg.content.values())


CONFIG_KEY = "fedfair"  # the run config (JSON), in the first message to each node
DIGEST_KEY = "fedfair-digest"  # the digest of the run config, in every message


def config_digest(text: str) -> str:
    """The digest that names a run config (its SHA-256, 16 hex digits)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SECURE_CONFIG = "fitins.config"  # the config record of a SecAgg+ collect-stage message (legacy FitIns)


def config_bytes(msg: Message) -> int:
    """Bytes of a message's run config and digest (``count_bytes()`` of those entries alone)."""
    records = [] if msg.has_error() else [r for r in ("config", SECURE_CONFIG) if r in msg.content.config_records]
    if not records:
        return 0
    record = msg.content.config_records[records[0]]
    return ConfigRecord({k: record[k] for k in (CONFIG_KEY, DIGEST_KEY) if k in record}).count_bytes()


@dataclass
class Evaluation:
    pooled: dict[str, Any] = field(default_factory=dict)
    per_client: dict[int, ClientEvaluation] = field(default_factory=dict)


def failure(msg: Message) -> tuple[int | None, str]:
    """(partition id, one-line reason) of an error reply; the client app prefixes its reasons with
    ``partition <id>:``, an error made by Flower (a node that died) names no partition."""
    text = (msg.error.reason or "no reason given").strip()
    lines = text.splitlines() or ["no reason given"]
    match = re.match(r"partition (\d+): (.*)", lines[0])
    if match:
        return int(match.group(1)), match.group(2)
    return None, lines[-1]


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
        self.history: list[Round] = []
        self.round_info: dict[str, Any] = {}  # the current round's extra Round fields (train loss, weights)
        self._counted = Communication()  # the counts at the end of the previous round
        self.configured: set[int] = set()  # the nodes the run config was sent to
        self.failed: dict[int, str] = {}  # partition id → reason
        self.failed_nodes: dict[int, str] = {}  # node id → reason (also those naming no partition)
        self.node_partition: dict[int, int] = {}
        self.sent: list[Message] = []
        self.sent_to: set[int] = set()

    def send(self, msgs: Iterable[Message]) -> list[Message]:
        """The messages to send: those not addressed to a node that failed before, each with the run
        config (first message to its node) or its digest; metered; remembers who was asked."""
        msgs = [self._with_config(m) for m in msgs if m.metadata.dst_node_id not in self.failed_nodes]
        self.sent = msgs  # the grid gives each its message id when it sends it
        self.sent_to = {m.metadata.dst_node_id for m in msgs}
        for msg in msgs:
            config = config_bytes(msg)
            self.communication.sent(payload_bytes(msg) - config, config)
        return msgs

    def _with_config(self, msg: Message) -> Message:
        """``msg`` with its own content: the config record carries the digest of the run config, and
        the run config itself only if this is the first message to the node."""
        if "config" not in msg.content.config_records or CONFIG_KEY not in msg.content["config"]:
            return msg
        content = RecordDict(dict(msg.content.items()))
        content["config"] = self.carried(msg.content["config"], msg.metadata.dst_node_id)
        msg.content = content
        return msg

    def carried(self, record: ConfigRecord, node: int) -> ConfigRecord:
        """``record`` as sent to ``node``: the digest of the run config, and the run config itself
        only if this is the first message to the node."""
        text = str(record[CONFIG_KEY])
        carried = ConfigRecord({k: v for k, v in record.items() if k != CONFIG_KEY})
        carried[DIGEST_KEY] = config_digest(text)
        if node not in self.configured:
            carried[CONFIG_KEY] = text
            self.configured.add(node)
        return carried

    def node_of(self, reply: Message) -> int:
        """The node a reply speaks for: the node asked, found by the reply's ``reply_to_message_id``
        (an error the SuperLink makes for a node that stopped sending heartbeats comes from the
        SuperLink's own node id), else the reply's source."""
        asked = reply.metadata.reply_to_message_id
        for msg in self.sent:
            if asked and msg.metadata.message_id == asked:
                return msg.metadata.dst_node_id
        return reply.metadata.src_node_id

    def client_status(self) -> list[dict[str, Any]]:
        """Each partition's status: ``ok`` or ``failed: <reason>`` (results.json ``clients``)."""
        unnamed = [r for node, r in self.failed_nodes.items() if node not in self.node_partition]
        out = []
        for pid in range(self.num_clients):
            if pid in self.failed:
                status = f"failed: {self.failed[pid]}"
            elif pid in self.evaluation.per_client:
                status = "ok"
            else:
                status = f"failed: {unnamed[0] if unnamed else 'no reply'}"
            out.append({"partition_id": pid, "status": status})
        return out

    # -- metering --------------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        msgs = self.send(super().configure_train(server_round, arrays, config, grid))
        self.communication.rounds = server_round
        return msgs

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.send(super().configure_evaluate(server_round, arrays, config, grid))

    def good_replies(self, replies: Iterable[Message], phase: str) -> list[Message]:
        """Meter the replies, log failures with their reasons, enforce ``min_clients``."""
        replies = list(replies)
        for msg in replies:
            self.communication.received(payload_bytes(msg))
        good = [m for m in replies if not m.has_error()]
        for msg in good:
            self.node_partition[self.node_of(msg)] = partition_id(msg)
        failures = [(self.node_of(m), *failure(m)) for m in replies if m.has_error()]
        answered = {self.node_of(m) for m in replies}
        failures += [(node, None, "no reply within the round's timeout") for node in sorted(self.sent_to - answered)]
        failures = [(node, self.node_partition.get(node, pid), reason) for node, pid, reason in failures]
        unheard = set(range(self.num_clients)) - set(self.node_partition.values()) - set(self.failed)
        unheard -= {pid for _, pid, _ in failures}
        unnamed = [i for i, (_, pid, _) in enumerate(failures) if pid is None]
        if len(unheard) == 1 and len(unnamed) == 1:  # one partition unheard of, one node failed unnamed
            node, _, reason = failures[unnamed[0]]
            failures[unnamed[0]] = (node, unheard.pop(), reason)
        for node, pid, reason in failures:
            if pid is not None:
                self.node_partition[node] = pid
            self._fail(node, pid, reason, phase)
        if len(good) < self.min_clients:
            raise FedFairError(
                f"{phase}: only {len(good)} of {self.num_clients} clients answered "
                f"(min_clients={self.min_clients}); see the log for their errors"
            )
        return good

    def _fail(self, node: int, pid: int | None, reason: str, phase: str) -> None:
        self.failed_nodes[node] = reason
        if pid is not None:
            self.failed[pid] = reason
        who = f"partition {pid}" if pid is not None else f"node {node} (partition unknown)"
        log.warning("%s: %s failed: %s", phase, who, reason)

    # -- evaluation ------------------------------------------------------------------------------
    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Pool the clients' counts exactly (summed in partition order, so that the pooled sums do
        not depend on the order replies arrive in); keep per-client metrics and the round's history."""
        good = sorted(self.good_replies(replies, f"evaluate round {server_round}"), key=partition_id)
        per_client: dict[int, ClientEvaluation] = {}
        for msg in good:
            record = msg.content["metrics"]
            pid = int(record["partition_id"])
            counts = metrics.Counts.from_dict({k: v for k, v in record.items() if k != "partition_id"})
            per_client[pid] = ClientEvaluation(counts, metrics.compute(counts))
        pooled = metrics.pooled([c.counts for c in per_client.values()])
        self.evaluation = Evaluation(pooled, per_client)
        self._end_round(server_round)
        return MetricRecord({k: float(v) for k, v in pooled.items() if v is not None})

    def _end_round(self, server_round: int) -> None:
        now, before = self.communication, self._counted
        self.history.append(Round(
            server_round, dict(self.evaluation.pooled), now.bytes_down - before.bytes_down,
            now.bytes_up - before.bytes_up, now.config_bytes_down - before.config_bytes_down,
            **self.round_info,
        ))
        self._counted = replace(now)
        self.round_info = {}

    def report(self) -> Report:
        """The run's typed report (``fedfair.results.build`` makes results.json of it)."""
        return Report(self.evaluation.pooled, self.evaluation.per_client, self.client_status(),
                      self.communication, self.history)
