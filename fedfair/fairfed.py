"""FairFed's fairness-aware aggregation weights (Ezzeldin, Yan, He, Ferrara & Avestimehr, "FairFed:
Enabling Group Fairness in Federated Learning", AAAI 2023, Algorithm 1), as pure functions.

The protocol, for a metric F ∈ {EOD, SPD} (signed, group 1 minus group 0, as in :mod:`fedfair.metrics`):

1. Once: every client reports its training rows' counts by (s, y) (:func:`group_counts`); the server
   sums them into the GLOBAL group sizes D_a (:func:`global_groups`): n·Pr(A=a, Y=1) for EOD,
   n·Pr(A=a) for SPD (the paper's denominators, times n), and sends them back.
2. Each round, before local training, every client evaluates the current global θ on its TRAINING
   rows (:func:`local_stats`): its accuracy Acc_k, its local metric F_k (``None`` when it lacks a
   group, or for EOD a group's positives) and its additive share m_k = c_k(1)/D_1 − c_k(0)/D_0 of the
   global metric, where c_k(a) counts its rows of group a predicted +1 (among rows with y = +1 for EOD).
3. The server: F_global = Σ_k m_k (exactly F on the pooled training data), Acc = Σ_k n_k Acc_k / n,
   Δ_k = |F_global − F_k|, or |Acc − Acc_k| when F_k is undefined (:func:`gaps`), then
   ω̄_k ← ω̄_k − β(Δ_k − mean_i Δ_i), clipped at 0 and renormalised (:func:`update_weights`), and
   θ = Σ_k ω_k θ_k (:func:`fedfair.local.average`).

Weights are kept in example units: ω̄_k starts at n_k (so ω_k = n_k/n, FedAvg's weights) and the step
is scaled by n = Σ ω̄, which is the paper's step on weights that sum to 1. β = 0 then leaves the
integers n_k untouched, so FairFed with β = 0 aggregates exactly as FedAvg, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedfair import metrics, model, schema
from fedfair.errors import FedFairError
from fedfair.table import Table

METRICS = ("eod", "spd")


_DEFAULTS = schema.defaults("strategy", "fairfed")  # the defaults below: conf/strategy/fairfed.yaml


@dataclass(frozen=True)
class FairFedConfig:
    """β (the fairness budget of each weight step; 0 = FedAvg) and the metric F."""

    beta: float = _DEFAULTS["beta"]
    metric: str = _DEFAULTS["metric"]

    def __post_init__(self) -> None:
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise FedFairError(f"strategy.beta must be a finite number >= 0, got {self.beta}")
        if self.metric not in METRICS:
            raise FedFairError(f"strategy.metric must be one of {', '.join(METRICS)}, got '{self.metric}'")


@dataclass(frozen=True)
class LocalStats:
    """What a client reports each round: n_k, Acc_k, F_k (``None`` = undefined) and m_k."""

    rows: int
    accuracy: float
    fairness: float | None
    share: float


def group_counts(table: Table) -> np.ndarray:
    """Training rows by group: a 2×2 array ``n[s, y01]`` (y01 = 1 for y = +1)."""
    return np.bincount(2 * table.s + (table.y == 1), minlength=4).reshape(2, 2)


def global_groups(counts: np.ndarray, metric: str) -> np.ndarray:
    """The global group sizes [D_0, D_1] from the summed :func:`group_counts`: rows with y = +1 of
    each group for EOD, all rows of each group for SPD. Both must be positive."""
    counts = np.asarray(counts)
    sizes = counts[:, 1] if metric == "eod" else counts.sum(axis=1)
    if not (sizes > 0).all():
        need = "rows" if metric == "spd" else "rows with y=+1"
        where = "in the clients' training data"
        raise FedFairError(f"FairFed ({metric}) needs {need} of both sensitive groups {where}")
    return sizes.astype(np.float64)


def local_stats(theta: np.ndarray, table: Table, metric: str, groups: np.ndarray) -> LocalStats:
    """Acc_k, F_k and m_k of the global ``theta`` on a client's training rows, with the global group
    sizes ``groups`` = [D_0, D_1] of :func:`global_groups`."""
    if len(table) == 0:
        raise FedFairError("FairFed needs training rows on every client")
    counts = metrics.counts(table.y, model.predict(theta, table), table.s)
    values = metrics.compute(counts)
    n = counts.n  # [s, y01, predicted +1]
    positive = n[:, 1, 1] if metric == "eod" else n[:, :, 1].sum(axis=1)
    share = positive[1] / groups[1] - positive[0] / groups[0]
    return LocalStats(len(table), float(values["accuracy"]), values[metric], float(share))


def global_metric(stats: Sequence[LocalStats]) -> float:
    """F_global = Σ_k m_k."""
    return float(sum(s.share for s in stats))


def global_accuracy(stats: Sequence[LocalStats]) -> float:
    """Acc = Σ_k n_k Acc_k / Σ_k n_k: the accuracy on the pooled training rows."""
    return sum(s.rows * s.accuracy for s in stats) / sum(s.rows for s in stats)


def gap(stats: LocalStats, f_global: float, accuracy: float) -> float:
    """Δ_k = |F_global − F_k|, or |Acc − Acc_k| for a client whose F_k is undefined (a client can
    compute its own from the broadcast F_global and Acc)."""
    return abs(f_global - stats.fairness) if stats.fairness is not None else abs(accuracy - stats.accuracy)


def gaps(stats: Sequence[LocalStats]) -> np.ndarray:
    """Every client's Δ_k (:func:`gap`)."""
    f_global, acc = global_metric(stats), global_accuracy(stats)
    return np.array([gap(s, f_global, acc) for s in stats])


def step(weights: np.ndarray | float, gaps: np.ndarray | float, mean_gap: float, total: float, beta: float) -> np.ndarray:
    """The unnormalised step ω̄_k − β·n·(Δ_k − mean Δ), clipped at 0 (n = ``total`` = Σ ω̄); a client
    can take its own from the broadcast mean Δ and n."""
    return np.maximum(np.asarray(weights, dtype=np.float64) - beta * total * (np.asarray(gaps) - mean_gap), 0.0)


def update_weights(weights: np.ndarray, gaps: np.ndarray, beta: float, sizes: np.ndarray) -> np.ndarray:
    """One FairFed step on the clients' weights ω̄ (example units, n = Σ ω̄):
    ω̄_k − β·n·(Δ_k − mean Δ), clipped at 0, renormalised to sum n.

    All-zero guard: Σ_k (Δ_k − mean Δ) = 0 keeps the sum at n before clipping, so every weight can
    reach 0 only when every client taking part already had weight 0 (the others dropped out); then
    the weights fall back to FedAvg's, the example counts ``sizes``."""
    weights = np.asarray(weights, dtype=np.float64)
    gaps = np.asarray(gaps, dtype=np.float64)
    if weights.shape != gaps.shape or (weights < 0).any() or not np.isfinite(gaps).all():
        raise FedFairError(f"bad FairFed step: weights {weights.tolist()}, gaps {gaps.tolist()}")
    total = weights.sum()
    stepped = step(weights, gaps, gaps.mean(), total, beta)
    kept = stepped.sum()
    if kept == 0:
        return np.asarray(sizes, dtype=np.float64)
    return stepped * (total / kept)
