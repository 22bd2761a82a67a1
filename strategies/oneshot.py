"""The one-shot strategy of Wu, Curtis & Robinson (Algorithm 1, lines 21–24).

One round. Train: every client uploads its final synthetic table once; the server fits the same
regularised logistic model as the clients' inner problem on the union (eq. 16) — no fairness
weights, no client statistics. Evaluate: θ goes back to the clients, which report confusion counts
on their local test data for exactly pooled metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord

from fedfair.pipeline import Experiment, server_fit
from fedfair.results import Report, UploadInfo
from fedfair.table import Table
from strategies.base import MeteredFedAvg, partition_id
from strategies.registry import register

log = logging.getLogger("flwr")  # streamed with Flower's own log lines in every run mode


class OneShot(MeteredFedAvg):
    """Collect the clients' synthetic tables, fit θ on their union, send θ back (one round)."""

    def __init__(self, num_clients: int, lam_theta: float, min_clients: int | None = None) -> None:
        super().__init__(num_clients, min_clients)
        self.lam_theta = lam_theta
        self.uploads: dict[int, UploadInfo] = {}
        self.server_fit_s = 0.0
        self.degenerate_upload = False

    def summary(self) -> None:
        log.info("OneShot: %d clients (min %d), lam_theta=%g", self.num_clients, self.min_clients,
                 self.lam_theta)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # in partition order: the union's row order sets θ's last bits, whatever order replies arrive in
        good = sorted(self.good_replies(replies, "upload"), key=partition_id)
        tables = []
        for msg in good:
            info = msg.content["metrics"]
            meta = msg.content["meta"]
            table = Table.from_array(msg.content["upload"]["rows"].numpy(), list(meta["columns"]))
            pid = int(info["partition_id"])
            privacy = json.loads(meta["privacy"])
            self.uploads[pid] = UploadInfo(float(info["stage1_s"]), float(info["stage2_s"]), len(table), privacy,
                                           json.loads(meta["audit"]))
            if privacy["single_label"]:
                log.warning("client %d uploaded rows of one label only: its table carries no "
                            "decision boundary", pid)
            tables.append(table)
        t0 = time.perf_counter()
        theta, self.degenerate_upload = server_fit(tables, self.lam_theta)
        self.server_fit_s = time.perf_counter() - t0
        if self.degenerate_upload:
            log.warning("every uploaded row has one label: the server model is a constant classifier")
        log.info("server model fitted on %d uploaded rows in %.3f s",
                 sum(len(t) for t in tables), self.server_fit_s)
        return ArrayRecord({"theta": Array(np.asarray(theta, dtype=np.float64))}), None

    def report(self) -> Report:
        return replace(super().report(), uploads=dict(sorted(self.uploads.items())),
                       degenerate_upload=bool(self.degenerate_upload), server_fit_s=float(self.server_fit_s))


@register("oneshot")
def _make(exp: Experiment) -> OneShot:
    section = exp.cfg["strategy"]
    return OneShot(exp.num_clients, float(section["lam_theta"]), section.get("min_clients"))
