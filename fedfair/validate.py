"""Checks of a resolved experiment config, all made before anything starts (no Ray, no output
directory): the schema of every section the run reads (:mod:`fedfair.schema`: unknown keys, types),
the ranges the generator and strategy dataclasses do not own, and what depends on the dataset (how
many rows each client gets). Every failure is one :class:`FedFairError` line naming the key and the
value."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedfair import generators, schema, sections, strategy_kinds
from fedfair.data import Dataset
from fedfair.errors import FedFairError
from fedfair.local import LocalConfig
from fedfair.partition import partition
from fedfair.quantize import SecureConfig
from fedfair.stage2 import Stage2Config

# A client needs this many training rows for any model (both labels, a test split of its own).
MIN_CLIENT_ROWS = 4


SECTIONS = ("dataset", "partition", "stage1", "stage2", "strategy", "simulation")


def strategy_schema(name: Any) -> tuple[type, ...]:
    """The dataclasses whose fields are the keys of ``strategy=<name>`` (:mod:`fedfair.strategy_kinds`):
    the server's keys, then the clients' (local training), secure aggregation and the strategy's own."""
    kind = strategy_kinds.get(str(name))
    if kind.upload:
        return (sections.OneShotServer,)
    return (sections.RoundsServer, LocalConfig, SecureConfig, *((kind.config,) if kind.config else ()))


def stage1_schema(name: Any) -> tuple[type, ...]:
    """The dataclass of ``stage1=<name>`` (none for ``none``, whose only key is its name)."""
    gen = generators.get(str(name))
    return () if gen is None else (gen.config,)


def section_schemas(cfg: dict[str, Any]) -> dict[str, tuple[tuple[type, ...], bool]]:
    """Each section the run reads: (its dataclasses, whether it has a ``name`` key). The FedAvg and
    FairFed baselines read no stage2, and stage1 only for ``fedavg_<kind>``."""
    strategy = cfg["strategy"].get("name")
    out = {
        "simulation": ((sections.Simulation,), False),
        "dataset": ((sections.DatasetOptions,), True),
        "partition": ((sections.Partition,), False),
        "strategy": (strategy_schema(strategy), True),
    }
    if strategy == "oneshot" or str(strategy).startswith("fedavg_"):
        out["stage1"] = (stage1_schema(cfg["stage1"].get("name")), True)
    if strategy == "oneshot":
        out["stage2"] = ((Stage2Config,), False)  # its name is one of its fields
    return out


def check_schema(cfg: dict[str, Any]) -> None:
    """Every key the run reads is known and of its type: the top level, then each section."""
    top = {k: v for k, v in cfg.items() if k not in SECTIONS}
    known = set(schema.keys(sections.Run)) | set(SECTIONS)
    for key in top:
        if key not in known:
            raise FedFairError(f"unknown key {key}; known keys: {', '.join(sorted(known))}")
    for key in schema.keys(sections.Run):
        if key in cfg:
            schema.check_type(cfg[key], schema.hints(sections.Run)[key], key)
    for section, (classes, named) in section_schemas(cfg).items():
        value = cfg.get(section, {})
        if not isinstance(value, dict):
            raise FedFairError(f"{section} must be a section of keys, got {value!r}")
        schema.check_section(value, classes, section, named)


def check_config(cfg: dict[str, Any]) -> None:
    """The schema of every section the run reads (:func:`check_schema`), the ranges of the sections
    no library dataclass owns (:mod:`fedfair.sections`), and what crosses sections."""
    check_schema(cfg)
    k = schema.build(sections.Run, cfg, "").num_clients
    partition_config(cfg)
    schema.build(sections.Simulation, cfg.get("simulation", {}), "simulation")
    strategy = cfg["strategy"]
    if strategy.get("min_clients") is not None:
        schema.integer(strategy["min_clients"], "strategy.min_clients", 1, k)
    if "lam_theta" in strategy:
        schema.number(strategy["lam_theta"], "strategy.lam_theta", 0.0, lo_open=True)
    if "rho" in cfg["stage1"]:
        schema.number(cfg["stage1"]["rho"], "stage1.rho", 0.0)


def partition_config(cfg: dict[str, Any]) -> sections.Partition:
    """The ``partition`` section, typed (a missing key takes its value in conf/partition/)."""
    return schema.build(sections.Partition, cfg["partition"], "partition")


def check_clients(dataset: Dataset, cfg: dict[str, Any]) -> list[np.ndarray]:
    """Partition the rows as every node will, and refuse a client with fewer than
    ``MIN_CLIENT_ROWS`` rows. Cheap: the row count is checked before anything is partitioned, so
    ``num_clients`` far beyond the data answers at once."""
    k, n = int(cfg["num_clients"]), len(dataset.table)
    part = partition_config(cfg)
    if k * MIN_CLIENT_ROWS > n:
        raise FedFairError(
            f"num_clients={k} is too many for {dataset.name} ({n:,} rows): each client needs at least "
            f"{MIN_CLIENT_ROWS} rows, so at most {n // MIN_CLIENT_ROWS:,} clients"
        )
    groups = dataset.column(part.column) if part.method == "by_column" and part.column is not None else None
    parts = partition(dataset.table.s, part.method, k, int(cfg["seed"]), alpha=part.alpha, groups=groups)
    sizes = np.array([len(p) for p in parts])
    small = np.flatnonzero(sizes < MIN_CLIENT_ROWS)
    if len(small):
        shown = ", ".join(f"{i} ({sizes[i]} rows)" for i in small[:5]) + (" ..." if len(small) > 5 else "")
        raise FedFairError(
            f"partition gives {len(small)} client(s) fewer than {MIN_CLIENT_ROWS} rows: {shown}; "
            "use fewer clients, a larger partition.alpha or another seed"
        )
    return parts
