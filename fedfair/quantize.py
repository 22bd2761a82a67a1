"""The fixed-point encoding of a secure sum (SecAgg+, Bell et al., CCS 2020, as Flower implements it),
and the limits it puts on what can be summed. No Flower here: ``strategies/secure.py`` runs the
protocol.

A client's vector is clipped to [−R, R] (R = ``strategy.secure_clip``) and mapped to integers
0..T by q = round_stochastic((v + R)·T/(2R)); the masked integers are summed modulo M; the server
subtracts the K offsets and gets Σ v back. The quantisation step is δ = 2R/T, and one client's entry
is off by less than δ (stochastic rounding, unbiased), so a sum over K clients is off by less than
K·δ (:func:`error_bound`). An entry on the grid (a multiple of δ) travels exactly: integer counts are
sent times :data:`COUNT_UNIT`, a power of two that is a multiple of δ, so summed counts are exact.
The integers of K clients must not wrap around M: K·T < M, and Flower adds K masked vectors below M
in int64, so K·M < 2⁶³ (:func:`check_clients`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedfair import schema
from fedfair.errors import FedFairError

LEVELS = 2**30  # T: one client's entry becomes an integer in 0..T (Flower quantises into int32)
MODULUS = 2**48  # M: the masks' modulus (a power of two)
COUNT_UNIT = 2.0**-16  # an integer count travels as count·COUNT_UNIT: on the grid, so summed exactly
MAX_CLIP = 2**13  # the largest R for which COUNT_UNIT is a multiple of the step δ = 2R/T

_DEFAULTS = schema.defaults("strategy", "fedavg")  # the defaults below: conf/strategy/fedavg.yaml


@dataclass(frozen=True)
class SecureConfig:
    """``strategy.secure_aggregation`` (FedAvg, FairFed: only sums reach the server, through SecAgg+)
    and R, the clipping range of one client's entries (``strategy.secure_clip``)."""

    secure_aggregation: bool = _DEFAULTS["secure_aggregation"]
    secure_clip: float = _DEFAULTS["secure_clip"]

    def __post_init__(self) -> None:
        clip = self.secure_clip
        if not (1 <= clip <= MAX_CLIP and math.log2(clip).is_integer()):
            raise FedFairError(f"strategy.secure_clip must be a power of two in 1..{MAX_CLIP}, got {clip:g}")


def step(clip: float) -> float:
    """δ = 2R/T: the quantisation step of one entry."""
    return 2 * clip / LEVELS


def error_bound(clip: float, num_clients: int) -> float:
    """The largest error of one entry of a sum over ``num_clients`` clients: K·δ."""
    return num_clients * step(clip)


def max_clients() -> int:
    """The most clients a secure sum can have: K·T < M and K·M < 2⁶³."""
    return min((MODULUS - 1) // LEVELS, (2**63 - 1) // MODULUS)


def check_clients(num_clients: int) -> None:
    """A secure sum needs 2..:func:`max_clients` clients."""
    if not 2 <= num_clients <= max_clients():
        raise FedFairError(f"strategy.secure_aggregation needs 2..{max_clients()} clients, got num_clients={num_clients}")


def encode(values: np.ndarray, counts: np.ndarray, clip: float, what: str) -> np.ndarray:
    """One client's vector: ``values`` (real, |v| ≤ R) then ``counts`` (integers) times
    :data:`COUNT_UNIT`. An entry out of range is a one-line error naming ``what`` (it would be clipped)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if not np.isfinite(values).all() or (np.abs(values) > clip).any():
        worst = float(np.max(np.abs(values))) if np.isfinite(values).all() else math.nan
        raise FedFairError(f"{what}: an entry of magnitude {worst:g} exceeds strategy.secure_clip={clip:g} "
                           "(it would be clipped): raise strategy.secure_clip")
    if (counts != np.round(counts)).any() or (np.abs(counts) * COUNT_UNIT > clip).any():
        raise FedFairError(f"{what}: counts must be integers of magnitude <= {clip / COUNT_UNIT:g} "
                           f"(strategy.secure_clip={clip:g}), got {counts.tolist()}")
    return np.concatenate([values, counts * COUNT_UNIT])


def decode(total: np.ndarray, num_counts: int) -> tuple[np.ndarray, np.ndarray]:
    """(the summed values, the summed counts as integers) of a sum of :func:`encode` vectors."""
    total = np.asarray(total, dtype=np.float64)
    cut = len(total) - num_counts
    return total[:cut], np.round(total[cut:] / COUNT_UNIT).astype(np.int64)
