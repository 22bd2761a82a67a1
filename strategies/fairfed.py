"""FairFed as a Flower strategy: FedAvg with fairness-aware aggregation weights."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedfair import fairfed, quantize
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

    ``strategy.secure_aggregation=true`` (docs/SECAGG.md): the server only receives sums, each through
    one SecAgg+ round (``strategies/secure.py``). Once: Σ of the group counts and n = Σ n_k; the
    server broadcasts D_0, D_1, n. Each round: (1) Σ_k m_k = F_global, Σ_k p_k = P (the weight share
    of the clients taking part; p_k = ω̄_k / n, kept by each client), Σ correct predictions and
    Σ n_k (→ Acc); broadcast F_global, Acc; (2) Σ_k Δ_k, each client's own gap (→ mean Δ); broadcast
    mean Δ, P; (3) each client steps its own weight, q_k = max(p_k − β·P·(Δ_k − mean Δ), 0)
    (``fedfair.fairfed.step``), trains, and the sum is Σ_k q_k θ_k, Σ_k q_k (θ = their ratio) and the
    pooled loss; the next round broadcasts P / Σ q, which renormalises p_k = q_k·P/Σ q on the client.
    This is the plain rule exactly (in units of n); no per-client weight is known to the server.
    """

    def __init__(
        self, num_clients: int, config: fairfed.FairFedConfig, timeout: float, min_clients: int | None = None,
        secure_config: quantize.SecureConfig | None = None,
    ) -> None:
        super().__init__(num_clients, min_clients, secure_config, timeout)
        self.config = config
        self.groups: np.ndarray | None = None  # [D_0, D_1], gathered in round 1
        self.weights: dict[int, float] = {}  # ω̄_k in example units (fedfair.fairfed)
        self.weight_scale: float | None = None  # secure: P / Σ q_k of the last round

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
        if self.secure is not None:
            return self.secure_configure_train(server_round, arrays, config, grid)
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

    def secure_configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The secure round of the class docstring: three SecAgg+ sums (four in round 1)."""
        if self.sizes is None:
            _, self.sizes, _ = self.secure_round(grid, "sizes", server_round, config, None, {}, 5)
        if self.groups is None:
            self.groups = fairfed.global_groups(self.sizes[:4].reshape(2, 2), self.config.metric)
        extra = {"groups": self.groups.tolist(), "rows": int(self.sizes[-1])}
        if self.weight_scale is not None:
            extra["weight-scale"] = self.weight_scale
        (f_global, total), (correct, rows), _ = self.secure_round(
            grid, "fairfed_stats", server_round, config, arrays, extra, 2)
        accuracy = correct / rows
        broadcast = {"fairness": float(f_global), "accuracy": float(accuracy)}
        (gap_sum,), _, k = self.secure_round(grid, "fairfed_gap", server_round, config, None, broadcast, 0)
        mean_gap = float(gap_sum / k)
        self.round_info["global_fairness"] = float(f_global)
        log.info("FairFed round %d (secure): F_global=%+.4f acc=%.4f mean gap=%.4f", server_round,
                 f_global, accuracy, mean_gap)
        stepped = self.secure_train(server_round, arrays, config, grid,
                                    {"mean-gap": mean_gap, "total": float(total)})
        self.weight_scale = float(total) / stepped
        return []

    def aggregation_weights(self, partition_ids: list[int], sizes: np.ndarray) -> np.ndarray:
        """The fairness weights ω̄_k of the replying clients (n_k for one not seen yet); their
        example counts if all are 0 (the all-zero guard of ``fedfair.fairfed``)."""
        weights = np.array([self.weights.get(pid, size) for pid, size in zip(partition_ids, sizes)])
        return weights if weights.any() else sizes


@register("fairfed")
def _make(exp: Experiment) -> FairFed:
    timeout = float(exp.cfg["simulation"]["timeout"])
    return FairFed(exp.num_clients, exp.fairfed_config(), timeout, exp.cfg["strategy"].get("min_clients"),
                   exp.secure_config())
