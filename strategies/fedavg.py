"""FedAvg (McMahan et al., AISTATS 2017) over the paper's logistic model, as a Flower strategy.

T rounds. Train: every client runs local SGD on its real training rows from the global θ
(``fedfair.local``) and replies θ_k with the example count n_k it trained on; the server sets
θ ← Σ_k (n_k / Σ_i n_i) θ_k, summed in partition order so that a run is reproducible bit for bit.
Round 1 sends no θ: the clients start from θ⁰ = 0. Evaluate (every round): the clients report
confusion counts of θ on their test rows, pooled exactly as in the one-shot method.
``strategy=fedavg_<kind>`` is this strategy over clients that train on their real rows plus the rows of
the stage-1 generator <kind> (``clients/client_app.py``); they also report its seconds and row count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord

from fedfair.local import average
from fedfair.pipeline import Experiment
from fedfair.results import Report, TrainingInfo
from fedfair.strategy_kinds import KINDS
from strategies.base import MeteredFedAvg, partition_id
from strategies.registry import register

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


class FedAvg(MeteredFedAvg):
    """Weighted averaging of the clients' locally trained θ_k by their reported example counts."""

    def __init__(self, num_clients: int, min_clients: int | None = None) -> None:
        super().__init__(num_clients, min_clients)
        self.training: dict[int, TrainingInfo] = {}  # by partition id, in the last round it trained

    def summary(self) -> None:
        log.info("%s: %d clients (min %d)", type(self).__name__, self.num_clients, self.min_clients)

    def aggregation_weights(self, partition_ids: list[int], sizes: np.ndarray) -> np.ndarray:
        """Un-normalised weights of the replying clients: FedAvg's are their example counts n_k."""
        return sizes

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
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
    return FedAvg(exp.num_clients, exp.cfg["strategy"].get("min_clients"))
