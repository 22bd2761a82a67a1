"""Client-side local training for the FedAvg and FairFed baselines, and the server's weighted average.

A client trains the paper's one model (:mod:`fedfair.model`: θ over z = (x, s, 1), the regularised
logistic loss ℓ_r of eq. 12) on its real training rows by mini-batch SGD for ``local_epochs`` epochs,
starting from the global θ: FedAvg's ClientUpdate (McMahan et al., AISTATS 2017, Algorithm 1). With
``reweigh`` the loss weights each row by Kamiran & Calders' w(s, y) = P(s)P(y)/P(s, y) (Knowledge and
Information Systems 33, 2012), estimated on the client's own rows. The server then averages the
local models: θ = Σ_k ω_k θ_k with ω_k = w_k / Σ_i w_i (:func:`average`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedfair import model, schema
from fedfair.errors import FedFairError
from fedfair.table import Table


_DEFAULTS = schema.defaults("strategy", "fedavg")  # the defaults below: conf/strategy/fedavg.yaml


@dataclass(frozen=True)
class LocalConfig:
    """Local training of one round (``strategy.*`` of ``conf/strategy/{fedavg,fairfed}.yaml``).
    A ``batch_size`` of at least the client's row count is full-batch gradient descent."""

    local_epochs: int = _DEFAULTS["local_epochs"]
    lr: float = _DEFAULTS["lr"]
    batch_size: int = _DEFAULTS["batch_size"]
    lam_theta: float = _DEFAULTS["lam_theta"]
    reweigh: bool = _DEFAULTS["reweigh"]

    def __post_init__(self) -> None:
        if self.local_epochs < 1:
            raise FedFairError(f"strategy.local_epochs must be >= 1, got {self.local_epochs}")
        if not self.lr > 0:
            raise FedFairError(f"strategy.lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise FedFairError(f"strategy.batch_size must be >= 1, got {self.batch_size}")
        if not self.lam_theta >= 0:
            raise FedFairError(f"strategy.lam_theta must be >= 0, got {self.lam_theta}")


@dataclass(frozen=True)
class LocalResult:
    """θ_k after local training, ℓ_r(θ_k) on the client's training rows (reweighed if configured) and
    the number of SGD steps taken."""

    theta: np.ndarray
    loss: float
    steps: int


def reweighing(table: Table) -> np.ndarray:
    """Kamiran & Calders weights w_i = P(s_i)P(y_i)/P(s_i, y_i), estimated on ``table``. Under them
    s and y are independent; they average to 1 when every (s, y) pair occurs."""
    y01 = (table.y == 1).astype(np.int64)
    joint = np.bincount(2 * table.s + y01, minlength=4).reshape(2, 2) / len(table)
    return joint.sum(axis=1)[table.s] * joint.sum(axis=0)[y01] / joint[table.s, y01]


def train(theta: np.ndarray, table: Table, config: LocalConfig, seed: int) -> LocalResult:
    """Mini-batch SGD on ℓ_r (eq. 12) from ``theta``: each epoch visits the rows in a seeded random
    order, in batches of ``batch_size``, and steps θ ← θ − lr·∇ℓ_r(θ; batch)."""
    if len(table) == 0:
        raise FedFairError("cannot train a local model on an empty table")
    z = model.design(table)
    theta = np.array(theta, dtype=np.float64)
    if theta.shape != (z.shape[1],):
        raise FedFairError(f"the global model has {theta.size} weights but the table needs {z.shape[1]}")
    y = table.y.astype(np.float64)
    weights = reweighing(table) if config.reweigh else None
    rng = np.random.default_rng(seed)
    steps = 0
    for _ in range(config.local_epochs):
        order = rng.permutation(len(table))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            w = None if weights is None else weights[batch]
            theta -= config.lr * model.gradient(theta, z[batch], y[batch], config.lam_theta, w)
            steps += 1
    return LocalResult(theta, model.loss(theta, z, y, config.lam_theta, weights), steps)


def average(thetas: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """θ = Σ_k ω_k θ_k with ω_k = w_k / Σ_i w_i, summed in the given order (FedAvg's aggregation;
    FairFed's with its fairness weights)."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(thetas) != len(weights) or not len(thetas):
        raise FedFairError(f"cannot average {len(thetas)} models with {len(weights)} weights")
    if (weights < 0).any() or not weights.sum() > 0:
        raise FedFairError(f"aggregation weights must be >= 0 with a positive sum, got {weights.tolist()}")
    factors = weights / weights.sum()
    out = np.asarray(thetas[0], dtype=np.float64) * factors[0]
    for theta, factor in zip(thetas[1:], factors[1:]):
        out = out + np.asarray(theta, dtype=np.float64) * factor
    return out
