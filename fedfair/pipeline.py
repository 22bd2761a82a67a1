"""One experiment, from a resolved config to the work each party does (no Flower here).

Data flows one way: dataset → partition → client generator (stage 1, stage 2) → upload → server fit
→ evaluation. The Flower adapters in ``clients/`` and ``strategies/`` call these functions; the
config is the plain dict Hydra resolves from ``conf/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fedfair import bilevel, metrics, model
from fedfair.data import Dataset, load_dataset
from fedfair.errors import FedFairError
from fedfair.partition import client_data
from fedfair.stage2 import Stage2Config, privatize
from fedfair.table import Table


_KINDS: dict[type, tuple[str, Any]] = {
    float: ("a number", (int, float)),
    int: ("an integer", int),
    str: ("a string", str),
    bool: ("true or false", bool),
}


def _build(cls: type, section: dict[str, Any], where: str, **extra: Any) -> Any:
    """Instantiate a config dataclass from a config section, naming unknown keys clearly."""
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in section.items() if k != "name"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise FedFairError(f"unknown key(s) in {where}: {', '.join(unknown)}")
    for f in fields(cls):
        if f.name in values and type(f.default) in _KINDS:
            kind, accepted = _KINDS[type(f.default)]
            value = values[f.name]
            if not isinstance(value, accepted) or (isinstance(value, bool) and accepted is not bool):
                raise FedFairError(f"{where}.{f.name} must be {kind}, got {value!r}")
    return cls(**values, **extra)


@dataclass(frozen=True)
class Experiment:
    """A validated experiment configuration."""

    cfg: dict[str, Any]

    def __post_init__(self) -> None:
        cfg = self.cfg
        for key in ("dataset", "partition", "strategy", "stage1", "stage2", "num_clients", "seed"):
            if key not in cfg:
                raise FedFairError(f"config is missing '{key}'")
        if not isinstance(cfg["num_clients"], int) or cfg["num_clients"] < 1:
            raise FedFairError(f"num_clients must be a positive integer, got {cfg['num_clients']!r}")
        if self.cfg["partition"].get("method") == "dirichlet" and self.cfg["partition"]["alpha"] <= 0:
            raise FedFairError("partition.alpha must be > 0")
        self.stage1_config(0)
        self.stage2_config(0)

    @property
    def num_clients(self) -> int:
        return int(self.cfg["num_clients"])

    @property
    def strategy(self) -> str:
        return str(self.cfg["strategy"]["name"])

    def client_seed(self, partition_id: int) -> int:
        """A per-client seed derived from the run seed."""
        return int(np.random.SeedSequence([int(self.cfg["seed"]), partition_id]).generate_state(1)[0])

    def stage1_config(self, partition_id: int) -> bilevel.Stage1Config | None:
        section = self.cfg["stage1"]
        if section["name"] == "none":
            return None
        if section["name"] != "bilevel":
            raise FedFairError(f"unknown stage1 '{section['name']}'; choose bilevel or none")
        return _build(
            bilevel.Stage1Config,
            section,
            "stage1",
            seed=self.client_seed(partition_id),
            progress=bool(self.cfg.get("progress", False)),
        )

    def stage2_config(self, partition_id: int) -> Stage2Config:
        return _build(Stage2Config, self.cfg["stage2"], "stage2", name=self.cfg["stage2"]["name"],
                      seed=self.client_seed(partition_id))

    def load(self) -> Dataset:
        section = {k: v for k, v in self.cfg["dataset"].items() if k != "name"}
        return load_dataset(self.cfg["dataset"]["name"], data_dir=self.cfg.get("data_dir"), **section)

    def client_tables(self, dataset: Dataset, partition_id: int) -> tuple[Table, Table]:
        """(train, test) of one client: the same partition on every node, from (dataset, seed)."""
        part = self.cfg["partition"]
        if not 0 <= partition_id < self.num_clients:
            raise FedFairError(f"partition id {partition_id} is outside 0..{self.num_clients - 1}")
        return client_data(
            dataset,
            part["method"],
            self.num_clients,
            partition_id,
            int(self.cfg["seed"]),
            alpha=float(part.get("alpha", 0.5)),
            column=part.get("column"),
            test_frac=float(part.get("test_frac", 0.2)),
        )


@dataclass
class Upload:
    """What a client sends in the one-shot method: the final synthetic table and its provenance."""

    table: Table
    n_train: int
    stage1_s: float
    stage2_s: float
    privacy: dict[str, Any]


def make_upload(exp: Experiment, dataset: Dataset, train: Table, partition_id: int) -> Upload:
    """Algorithm 1, lines 2–19: stage 1 (fair synthetic set) then stage 2 (DP synthesizer)."""
    with threadpool_limits(1):
        t0 = time.perf_counter()
        s1 = exp.stage1_config(partition_id)
        fair = train if s1 is None else bilevel.synthesize(train, s1).table
        t1 = time.perf_counter()
        private, report = privatize(
            fair,
            dataset.schema.bounds(),
            exp.stage2_config(partition_id),
            progress=bool(exp.cfg.get("progress", False)),
        )
        t2 = time.perf_counter()
    return Upload(private, len(train), t1 - t0, t2 - t1, report.to_dict())


def server_fit(tables: list[Table], lam_theta: float) -> tuple[np.ndarray, bool]:
    """θ on the union of the uploads (eq. 16). If every uploaded row has one label (DP-CTGAN at a
    small ε can collapse so), no classifier can be fitted: return the constant classifier that
    predicts that label and ``True`` (the run records ``degenerate_upload``)."""
    union = Table.concat(tables)
    if len(union) and np.all(union.y == union.y[0]):
        theta = np.zeros(len(union.feature_names) + 2)
        theta[-1] = float(union.y[0])
        return theta, True
    return model.fit(union, lam_theta), False


def evaluate(theta: np.ndarray, test: Table) -> metrics.Counts:
    """The counts a client reports so that the server can pool metrics exactly."""
    return metrics.counts(test.y, model.predict(theta, test), test.s, model.decision(theta, test))
