"""Checks of a resolved experiment config, all made before anything starts (no Ray, no output
directory): the sections the generator and strategy dataclasses do not own, and what depends on the
dataset (how many rows each client gets). Every failure is one :class:`FedFairError` line naming the
key and the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedfair.data import Dataset
from fedfair.errors import FedFairError
from fedfair.partition import METHODS, partition

MAX_SEED = 2**32
# A client needs this many training rows for any model (both labels, a test split of its own).
MIN_CLIENT_ROWS = 4


def _where(section: str | None, key: str) -> str:
    return key if section is None else f"{section}.{key}"


def integer(value: Any, where: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (``hi`` None: no upper bound), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FedFairError(f"{where} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise FedFairError(f"{where} must be {span}, got {value}")
    return value


def number(value: Any, where: str, lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FedFairError(f"{where} must be a finite number, got {value!r}")
    if (value < lo or (lo_open and value == lo)) or (value > hi or (hi_open and value == hi)):
        left, right = "(" if lo_open else "[", ")" if hi_open or hi == math.inf else "]"
        upper = "inf" if hi == math.inf else f"{hi:g}"
        raise FedFairError(f"{where} must be in {left}{lo:g}, {upper}{right}, got {value:g}")
    return float(value)


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise FedFairError(f"{where} must be true or false, got {value!r}")
    return value


def check_config(cfg: dict[str, Any]) -> None:
    """The top level, ``partition``, ``simulation`` and the keys of ``stage1`` / ``stage2`` that
    the run seed owns."""
    integer(cfg["seed"], "seed", 0, MAX_SEED - 1)
    k = integer(cfg["num_clients"], "num_clients", 1)
    for key in ("progress", "audit"):
        if key in cfg:
            flag(cfg[key], key)
    for key in ("data_dir", "cache_dir"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise FedFairError(f"{key} must be a path or null, got {cfg[key]!r}")
    part = cfg["partition"]
    if part.get("method") not in METHODS:
        raise FedFairError(f"partition.method must be one of {', '.join(METHODS)}, got {part.get('method')!r}")
    number(part.get("test_frac", 0.2), "partition.test_frac", 0.0, 1.0, lo_open=True, hi_open=True)
    if part["method"] == "dirichlet":
        number(part.get("alpha"), "partition.alpha", 0.0, lo_open=True)
    sim = cfg.get("simulation", {})
    cpus = integer(sim.get("num_cpus", 1), "simulation.num_cpus", 1)
    integer(sim.get("client_cpus", 1), "simulation.client_cpus", 1, cpus)
    for key in ("timeout", "connect_timeout"):
        if key in sim:
            number(sim[key], f"simulation.{key}", 0.0, lo_open=True)
    strategy = cfg["strategy"]
    if strategy.get("min_clients") is not None:
        integer(strategy["min_clients"], "strategy.min_clients", 1, k)
    if "lam_theta" in strategy:
        number(strategy["lam_theta"], "strategy.lam_theta", 0.0, lo_open=True)
    for section in ("stage1", "stage2"):
        if "seed" in cfg[section]:
            raise FedFairError(f"{section}.seed cannot be set: it is derived from the run seed (set seed=...)")
    if "rho" in cfg["stage1"]:
        number(cfg["stage1"]["rho"], "stage1.rho", 0.0)


def check_clients(dataset: Dataset, cfg: dict[str, Any]) -> list[np.ndarray]:
    """Partition the rows as every node will, and refuse a client with fewer than
    ``MIN_CLIENT_ROWS`` rows. Cheap: the row count is checked before anything is partitioned, so
    ``num_clients`` far beyond the data answers at once."""
    k, n = int(cfg["num_clients"]), len(dataset.table)
    part = cfg["partition"]
    if k * MIN_CLIENT_ROWS > n:
        raise FedFairError(
            f"num_clients={k} is too many for {dataset.name} ({n:,} rows): each client needs at least "
            f"{MIN_CLIENT_ROWS} rows, so at most {n // MIN_CLIENT_ROWS:,} clients"
        )
    column = part.get("column")
    groups = dataset.column(column) if part["method"] == "by_column" and column is not None else None
    parts = partition(dataset.table.s, part["method"], k, int(cfg["seed"]), alpha=float(part.get("alpha", 0.5)),
                      groups=groups)
    sizes = np.array([len(p) for p in parts])
    small = np.flatnonzero(sizes < MIN_CLIENT_ROWS)
    if len(small):
        shown = ", ".join(f"{i} ({sizes[i]} rows)" for i in small[:5]) + (" ..." if len(small) > 5 else "")
        raise FedFairError(
            f"partition gives {len(small)} client(s) fewer than {MIN_CLIENT_ROWS} rows: {shown}; "
            "use fewer clients, a larger partition.alpha or another seed"
        )
    return parts
