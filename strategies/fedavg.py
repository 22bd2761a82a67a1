"""FedAvg (McMahan et al., AISTATS 2017) over the paper's logistic model, as a Flower strategy.

T rounds. Train: every client runs local SGD on its real training rows from the global θ
(``fedfair.local``) and replies θ_k with the example count n_k it trained on; the server sets
θ ← Σ_k (n_k / Σ_i n_i) θ_k, summed in partition order so that a run is reproducible bit for bit.
Round 1 sends no θ: the clients start from θ⁰ = 0. Evaluate (every round): the clients report
confusion counts of θ on their test rows, pooled exactly as in the one-shot method.
``strategy=fedavg_<kind>`` is this strategy over clients that train on their real rows plus the rows of
the stage-1 generator <kind> (``clients/client_app.py``); they also report its seconds and row count.

``strategy.secure_aggregation=true`` (docs/SECAGG.md): the server never receives a client's θ_k or
n_k, only sums through SecAgg+ (``strategies/secure.py``): once Σ_k n_k = n, then each round
Σ_k (n_k/n)·θ_k, Σ_k n_k/n and the pooled training loss; θ is their ratio. No per-client training
record or weight is kept then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from fedfair import quantize
from fedfair.errors import FedFairError
from fedfair.local import average
from fedfair.pipeline import Experiment
from fedfair.results import Report, TrainingInfo
from fedfair.strategy_kinds import KINDS
from strategies import secure
from strategies.base import CONFIG_KEY, MeteredFedAvg, config_bytes, failure, partition_id, payload_bytes
from strategies.registry import register

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


class FedAvg(MeteredFedAvg):
    """Weighted averaging of the clients' locally trained θ_k by their reported example counts."""

    def __init__(self, num_clients: int, min_clients: int | None = None,
                 secure_config: quantize.SecureConfig | None = None, timeout: float = 3600.0) -> None:
        super().__init__(num_clients, min_clients)
        self.training: dict[int, TrainingInfo] = {}  # by partition id, in the last round it trained
        self.secure = secure_config if secure_config is not None and secure_config.secure_aggregation else None
        if self.secure is not None:
            quantize.check_clients(num_clients)
        self.timeout = timeout
        self.sizes: np.ndarray | None = None  # secure: Σ of the clients' counts by (s, y), then n
        self.secured: tuple[ArrayRecord, MetricRecord] | None = None  # secure: this round's aggregate

    def summary(self) -> None:
        log.info("%s: %d clients (min %d)", type(self).__name__, self.num_clients, self.min_clients)

    def aggregation_weights(self, partition_ids: list[int], sizes: np.ndarray) -> np.ndarray:
        """Un-normalised weights of the replying clients: FedAvg's are their example counts n_k."""
        return sizes

    # -- secure aggregation ----------------------------------------------------------------------
    def secure_round(self, grid: Grid, action: str, server_round: int, config: ConfigRecord,
                     arrays: ArrayRecord | None, extra: dict, num_counts: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One SecAgg+ sum of ``action``'s client vectors: (summed values, summed counts, the number of
        clients in the sum). Metered like every message; a node that fails or drops out is recorded
        as failed and asked nothing more; too few left (below the reconstruction threshold or
        ``min_clients``) fails the run in one line."""
        phase = f"secure {action} round {server_round}"
        nodes = [node for node in grid.get_node_ids() if node not in self.failed_nodes]
        theta = arrays["theta"].numpy() if arrays is not None and "theta" in arrays else None
        record = ConfigRecord({CONFIG_KEY: config[CONFIG_KEY], "server-round": server_round,
                               "secure-action": action, **extra})
        result = secure.secure_sum(grid, {node: (self.carried(record, node), theta) for node in nodes},
                                   self.secure.secure_clip, self.timeout, server_round)
        for msg in result.sent:
            self.communication.sent(payload_bytes(msg) - config_bytes(msg), config_bytes(msg))
        for msg in result.replies:
            self.communication.received(payload_bytes(msg))
        self.communication.secure_sums += 1
        self.communication.secure_seconds += result.seconds
        asked = {msg.metadata.message_id: msg.metadata.dst_node_id for msg in result.sent if msg.metadata.message_id}
        reasons = []
        for msg in result.replies:
            if msg.has_error():
                node = asked.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)
                pid, reason = failure(msg)
                reasons.append(reason)
                self._fail(node, self.node_partition.get(node, pid), reason, phase)
        for node in set(nodes) - set(result.included) - set(self.failed_nodes):
            self._fail(node, self.node_partition.get(node), "dropped out of the secure aggregation", phase)
        if result.total is None:
            first = f"; first error: {reasons[0]}" if reasons else ""
            raise FedFairError(f"{phase}: too few clients left to unmask the sum (each needs "
                               f"{result.threshold} of its neighbours){first}")
        if len(result.included) < self.min_clients:
            raise FedFairError(f"{phase}: only {len(result.included)} of {self.num_clients} clients answered "
                               f"(min_clients={self.min_clients}); see the log for their errors")
        values, counts = quantize.decode(result.total, num_counts)
        return values, counts, len(result.included)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Secure aggregation: the whole round is SecAgg+ sums, run here; Flower sends no message."""
        if self.secure is None:
            return super().configure_train(server_round, arrays, config, grid)
        self.secure_train(server_round, arrays, config, grid, {})
        return []

    def secure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid,
                     extra: dict) -> float:
        """One secure training round (n first, once): θ = Σ w_k θ_k / Σ w_k, kept for
        :meth:`aggregate_train`; returns Σ w_k. ``extra``: what FairFed's clients need for their w_k."""
        self.communication.rounds = server_round
        if self.sizes is None:
            _, self.sizes, _ = self.secure_round(grid, "sizes", server_round, config, None, {}, 5)
        extra = {"rows": int(self.sizes[-1]), **extra}
        values, _, _ = self.secure_round(grid, "train", server_round, config, arrays, extra, 0)
        weighted, weight, loss, size = values[:-3], values[-3], values[-2], values[-1]
        if not weight > 0:
            raise FedFairError(f"train round {server_round}: the clients' aggregation weights sum to {weight:g}")
        train_loss = float(loss / size)
        self.round_info.update(train_loss=train_loss)
        self.secured = (ArrayRecord({"theta": Array(weighted / weight)}), MetricRecord({"train_loss": train_loss}))
        return float(weight)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.secure is not None:
            secured, self.secured = self.secured, None
            return secured if secured is not None else (None, None)
        good = sorted(self.good_replies(replies, f"train round {server_round}"), key=partition_id)
        records = [msg.content["metrics"] for msg in good]
        pids = [int(r["partition_id"]) for r in records]
        sizes = np.array([float(r[self.weighted_by_key]) for r in records])
        weights = self.aggregation_weights(pids, sizes)
        theta = average([msg.content["arrays"]["theta"].numpy() for msg in good], weights)
        shares = weights / weights.sum()
        losses = [float(r["train_loss"]) for r in records]
        for pid, size, share, loss, record in zip(pids, sizes, shares, losses, records):
            # fedavg_<kind>: the generator's time and the synthetic rows among the n_train
            generated = {k: record[k] for k in ("stage1_s", "n_synthetic") if k in record}
            self.training[pid] = TrainingInfo(int(size), loss, float(share), **generated)
        train_loss = float(np.dot(sizes, losses) / sizes.sum())  # on the pooled training rows
        self.round_info.update(train_loss=train_loss,
                               weights={pid: float(share) for pid, share in zip(pids, shares)})
        return ArrayRecord({"theta": Array(theta)}), MetricRecord({"train_loss": train_loss})

    def report(self) -> Report:
        return replace(super().report(), training=dict(sorted(self.training.items())))


@register("fedavg", *(kind.name for kind in KINDS.values() if kind.augment))
def _make(exp: Experiment) -> FedAvg:
    timeout = float(exp.cfg["simulation"]["timeout"])
    return FedAvg(exp.num_clients, exp.cfg["strategy"].get("min_clients"), exp.secure_config(), timeout)
