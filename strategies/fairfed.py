"""FairFed as a Flower strategy: FedAvg with fairness-aware aggregation weights."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedfair import fairfed
from fedfair.pipeline import Experiment
from strategies.base import CONFIG_KEY, partition_id
from strategies.fedavg import FedAvg
from strategies.registry import register

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


class FairFed(FedAvg):
    """FairFed: Ezzeldin, Yan, He, Ferrara & Avestimehr, "FairFed: Enabling Group Fairness in
    Federated Learning", AAAI 2023 (Algorithm 1), over the paper's logistic model.

    Implements the AAAI rule with global-denominator shares (``fedfair.fairfed``): weights start at
    n_k/n; the global group sizes are gathered once (query ``fairfed_groups``); each round, before
    local training, every client evaluates the global θ on its training rows (query
    ``fairfed_stats``) and reports Acc_k, its signed local EOD or SPD F_k and its share m_k of the
    global metric; the server sets F_global = Σ m_k, Δ_k = |F_global − F_k| (the accuracy gap when
    the client lacks a group), ω̄_k ← ω̄_k − β(Δ_k − mean Δ), clipped at 0 and renormalised, and
    aggregates θ = Σ ω_k θ_k. Local training has no debiasing unless ``strategy.reweigh=true``
    (Kamiran & Calders reweighing; the paper also pairs FairFed with local debiasing). β = 0 is
    FedAvg exactly.

    Both extra exchanges go through ``grid.send_and_receive`` and are metered like every message.
    """

    def __init__(
        self, num_clients: int, config: fairfed.FairFedConfig, timeout: float, min_clients: int | None = None
    ) -> None:
        super().__init__(num_clients, min_clients)
        self.config = config
        self.timeout = timeout
        self.groups: np.ndarray | None = None  # [D_0, D_1], gathered in round 1
        self.weights: dict[int, float] = {}  # ω̄_k in example units (fedfair.fairfed)

    def summary(self) -> None:
        log.info("FairFed: %d clients (min %d), beta=%g, metric=%s", self.num_clients, self.min_clients,
                 self.config.beta, self.config.metric)

    def _query(self, action: str, content: RecordDict, grid: Grid, phase: str) -> list[Message]:
        """One metered exchange with every node; the good replies, in partition order."""
        nodes = grid.get_node_ids()
        msgs = self.send(Message(content, message_type=f"query.{action}", dst_node_id=node) for node in nodes)
        replies = grid.send_and_receive(msgs, timeout=self.timeout)
        return sorted(self.good_replies(replies, phase), key=partition_id)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Before the FedAvg train messages: the group sizes (round 1) and the weight step."""
        job = ConfigRecord({CONFIG_KEY: config[CONFIG_KEY]})
        if self.groups is None:
            replies = self._query("fairfed_groups", RecordDict({"config": job}), grid, "fairfed groups")
            counts = sum(np.asarray(m.content["metrics"]["groups"]).reshape(2, 2) for m in replies)
            self.groups = fairfed.global_groups(counts, self.config.metric)
        job["groups"] = self.groups.tolist()
        replies = self._query("fairfed_stats", RecordDict({"arrays": arrays, "config": job}), grid,
                              f"fairfed stats round {server_round}")
        records = [m.content["metrics"] for m in replies]
        stats = [
            fairfed.LocalStats(int(r["num-examples"]), r["accuracy"], r.get("fairness"), r["share"])
            for r in records
        ]
        pids = [int(r["partition_id"]) for r in records]
        sizes = np.array([float(s.rows) for s in stats])
        current = np.array([self.weights.setdefault(pid, size) for pid, size in zip(pids, sizes)])
        updated = fairfed.update_weights(current, fairfed.gaps(stats), self.config.beta, sizes)
        self.weights.update(zip(pids, updated.tolist()))
        f_global = fairfed.global_metric(stats)
        self.round_info["global_fairness"] = float(f_global)
        log.info("FairFed round %d: F_global=%+.4f acc=%.4f weights=%s", server_round,
                 f_global, fairfed.global_accuracy(stats), np.round(updated / updated.sum(), 4).tolist())
        return super().configure_train(server_round, arrays, config, grid)

    def aggregation_weights(self, partition_ids: list[int], sizes: np.ndarray) -> np.ndarray:
        """The fairness weights ω̄_k of the replying clients (n_k for one not seen yet); their
        example counts if all are 0 (the all-zero guard of ``fedfair.fairfed``)."""
        weights = np.array([self.weights.get(pid, size) for pid, size in zip(partition_ids, sizes)])
        return weights if weights.any() else sizes


@register("fairfed")
def _make(exp: Experiment) -> FairFed:
    timeout = float(exp.cfg["simulation"]["timeout"])
    return FairFed(exp.num_clients, exp.fairfed_config(), timeout, exp.cfg["strategy"].get("min_clients"))
