"""The schema of the config sections no library dataclass owns: the top level and ``simulation``
(conf/config.yaml), ``dataset``, ``partition`` and the server's keys of ``strategy``. Defaults come
from conf/ (:func:`fedfair.schema.defaults`); each checks its ranges in one line per bad value."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fedfair.errors import FedFairError
from fedfair.partition import METHODS
from fedfair.schema import MAX_SEED, ROOT, defaults, integer, number

_TOP = defaults(None, ROOT)
_SIM = _TOP["simulation"]
_PART = defaults("partition", "iid", "dirichlet", "by_column")
_ONESHOT = defaults("strategy", "oneshot")
_FEDAVG = defaults("strategy", "fedavg")


@dataclass(frozen=True)
class Run:
    """The top level of conf/config.yaml."""

    num_clients: int = _TOP["num_clients"]
    seed: int = _TOP["seed"]
    data_dir: str | None = _TOP["data_dir"]
    cache_dir: str | None = _TOP["cache_dir"]
    audit: bool = _TOP["audit"]
    progress: bool = _TOP["progress"]

    def __post_init__(self) -> None:
        integer(self.seed, "seed", 0, MAX_SEED - 1)
        integer(self.num_clients, "num_clients", 1)


@dataclass(frozen=True)
class Simulation:
    """``simulation.*``: Ray's resources and the server's waits."""

    num_cpus: int = _SIM["num_cpus"]
    client_cpus: int = _SIM["client_cpus"]
    timeout: float = _SIM["timeout"]
    connect_timeout: float = _SIM["connect_timeout"]
    ray_address: str | None = _SIM["ray_address"]

    def __post_init__(self) -> None:
        integer(self.num_cpus, "simulation.num_cpus", 1)
        integer(self.client_cpus, "simulation.client_cpus", 1, self.num_cpus)
        number(self.timeout, "simulation.timeout", 0.0, lo_open=True)
        number(self.connect_timeout, "simulation.connect_timeout", 0.0, lo_open=True)


@dataclass(frozen=True)
class Partition:
    """``partition.*`` (conf/partition/): how rows are split among clients, then into train/test."""

    method: str
    test_frac: float = _PART["test_frac"]
    alpha: float = _PART["alpha"]
    column: str | None = _PART["column"]

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise FedFairError(f"partition.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        number(self.test_frac, "partition.test_frac", 0.0, 1.0, lo_open=True, hi_open=True)
        if self.method == "dirichlet":
            number(self.alpha, "partition.alpha", 0.0, lo_open=True)


@dataclass(frozen=True)
class DatasetOptions:
    """``dataset.*`` (conf/dataset/) but ``name``: a dataset's loader options; None: not set (each
    option exists for some datasets only, and the loader refuses it for the others)."""

    sensitive: str | None = None
    rows: int | None = None

    def given(self) -> dict[str, Any]:
        """The options that are set, as the loader's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class OneShotServer:
    """The server's keys of ``strategy=oneshot``: the server model's λ_θ (eq. 16) and the quorum."""

    lam_theta: float = _ONESHOT["lam_theta"]
    min_clients: int | None = _ONESHOT["min_clients"]


@dataclass(frozen=True)
class RoundsServer:
    """The server's keys of the multi-round strategies (FedAvg, FairFed, fedavg_<kind>)."""

    rounds: int = _FEDAVG["rounds"]
    min_clients: int | None = _FEDAVG["min_clients"]

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise FedFairError(f"strategy.rounds must be a positive integer, got {self.rounds!r}")
