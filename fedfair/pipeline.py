"""One experiment, from a resolved config to the work each party does (no Flower here).

Data flows one way: dataset → partition → client generator (stage 1, stage 2) → upload → server fit
→ evaluation. The FedAvg and FairFed baselines replace the generator and the server fit by T rounds
of local training (``fedfair.local``, ``fedfair.fairfed``). The Flower adapters in ``clients/`` and
``strategies/`` call these functions; the config is the plain dict Hydra resolves from ``conf/``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fedfair import bilevel, fadm, fairdistill, fairfed, generators, local, metrics, model, quantize, schema, sections, strategy_kinds
from fedfair.audit import audit
from fedfair.data import Dataset, load_dataset
from fedfair.errors import FedFairError
from fedfair.partition import client_data
from fedfair.stage2 import Stage2Config, check_keys, privatize, upload_size
from fedfair.table import Table
from fedfair.validate import check_clients, check_config, partition_config


CACHE_FORMAT = 2  # bump when what a cache file holds changes shape
STRATEGIES = strategy_kinds.KINDS  # the strategies a run can name, by name


@dataclass(frozen=True)
class Experiment:
    """A validated experiment configuration."""

    cfg: dict[str, Any]

    def __post_init__(self) -> None:
        cfg = self.cfg
        for key in ("dataset", "partition", "strategy", "stage1", "stage2", "num_clients", "seed"):
            if key not in cfg:
                raise FedFairError(f"config is missing '{key}'")
        check_config(cfg)
        kind = self.kind
        if kind.upload:
            self.stage1_config(0)
            self.stage2_config(0)
        else:  # FedAvg and FairFed ignore stage1 and stage2; fedavg_<kind> uses stage1 = <kind>
            self.rounds()
            self.local_config()
            self.secure_config()
            if kind.config is not None:
                schema.build(kind.config, self.cfg["strategy"], "strategy")
            if self.augment is not None:
                self.stage1_config(0)
                if self.cfg["stage1"]["name"] != self.augment:
                    raise FedFairError(f"strategy={self.strategy} needs stage1={self.augment}, "
                                       f"got stage1={self.cfg['stage1']['name']}")

    @property
    def num_clients(self) -> int:
        return int(self.cfg["num_clients"])

    @property
    def strategy(self) -> str:
        return str(self.cfg["strategy"]["name"])

    @property
    def kind(self) -> strategy_kinds.StrategyKind:
        """The strategy named by ``strategy.name`` (an unknown name: one line listing the known ones)."""
        return strategy_kinds.get(self.strategy)

    @property
    def augment(self) -> str | None:
        """The generator whose rows a FedAvg client adds to its training rows (``strategy=fedavg_<kind>``),
        else None."""
        return self.kind.augment

    @property
    def generator(self) -> generators.Generator | None:
        """The stage-1 generator named by ``stage1.name`` (None: ``none``, the real rows)."""
        return generators.get(str(self.cfg["stage1"]["name"]))

    def rounds(self) -> int:
        """T: 1 for the one-shot method, ``strategy.rounds`` for the local-training strategies."""
        if self.kind.upload:
            return 1
        return schema.build(sections.RoundsServer, self.cfg["strategy"], "strategy").rounds

    def local_config(self) -> local.LocalConfig:
        """Local training of FedAvg / FairFed / fedavg_<kind> (the clients' keys of their strategy
        section; :func:`fedfair.validate.strategy_schema` gives the rest)."""
        return schema.build(local.LocalConfig, self.cfg["strategy"], "strategy")

    def secure_config(self) -> quantize.SecureConfig:
        """Secure aggregation of FedAvg / FairFed / fedavg_<kind> (``strategy.secure_*``)."""
        return schema.build(quantize.SecureConfig, self.cfg["strategy"], "strategy")

    def fairfed_config(self) -> fairfed.FairFedConfig:
        return schema.build(fairfed.FairFedConfig, self.cfg["strategy"], "strategy")

    def client_seed(self, partition_id: int) -> int:
        """A per-client seed derived from the run seed."""
        return int(np.random.SeedSequence([int(self.cfg["seed"]), partition_id]).generate_state(1)[0])

    def stage1_config(
        self, partition_id: int
    ) -> bilevel.Stage1Config | fadm.FADMConfig | fairdistill.FairDistillConfig | None:
        """The configuration of the client's generator (:mod:`fedfair.generators`), or None for
        ``stage1=none`` (the real rows)."""
        gen = self.generator
        if gen is None:
            return None
        return schema.build(
            gen.config, self.cfg["stage1"], "stage1", seed=self.client_seed(partition_id), progress=self.run.progress
        )

    def stage2_config(self, partition_id: int) -> Stage2Config:
        """The client's stage-2 settings: the common keys and those of the synthesizer ``stage2.name``
        (:mod:`fedfair.synth`); another synthesizer's key is an error."""
        section = self.cfg["stage2"]
        cfg = schema.build(Stage2Config, section, "stage2", name=section["name"], seed=self.client_seed(partition_id))
        check_keys(cfg.name, section)
        return cfg

    @property
    def run(self) -> sections.Run:
        """The top-level keys, typed (a missing key takes its value in conf/config.yaml)."""
        return schema.build(sections.Run, self.cfg, "")

    def load(self) -> Dataset:
        options = schema.build(sections.DatasetOptions, self.cfg["dataset"], "dataset").given()
        return load_dataset(self.cfg["dataset"]["name"], data_dir=self.run.data_dir, **options)

    def check_dataset(self, dataset: Dataset) -> None:
        """What depends on the dataset: every client gets enough rows (``fedfair.validate``), and the
        generator's settings fit it (e.g. FADM's ``domain_column`` must be one of its categorical or
        binary features)."""
        check_clients(dataset, self.cfg)
        gen = self.generator if self.kind.upload or self.augment else None
        if gen is not None:
            gen.check(self.stage1_config(0), fadm.Layout.from_schema(dataset.schema))

    def client_tables(self, dataset: Dataset, partition_id: int) -> tuple[Table, Table]:
        """(train, test) of one client: the same partition on every node, from (dataset, seed)."""
        part = partition_config(self.cfg)
        if not 0 <= partition_id < self.num_clients:
            raise FedFairError(f"partition id {partition_id} is outside 0..{self.num_clients - 1}")
        return client_data(
            dataset,
            part.method,
            self.num_clients,
            partition_id,
            int(self.cfg["seed"]),
            alpha=part.alpha,
            column=part.column,
            test_frac=part.test_frac,
        )


@dataclass
class Upload:
    """What a client sends in the one-shot method: the final synthetic table and its provenance
    (never the exact training row count). ``audit``: :func:`fedfair.audit.audit` of the table
    against the client's training and held-out rows (numbers only), or ``None`` when switched off."""

    table: Table
    stage1_s: float
    stage2_s: float
    privacy: dict[str, Any]
    audit: dict[str, Any] | None = None
    cached: bool = False


def _canonical(value: Any) -> Any:
    """``value`` with every number as a float, so that ``rho=1000`` and ``rho=1000.0`` share a key."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@functools.cache
def code_version() -> str:
    """A digest of the library's source (every ``fedfair/**/*.py``) and the cache format: part of
    every cache key, so that a changed line of code never reuses an output of the old code."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_path(cache_dir: str, key: dict[str, Any], suffix: str) -> Path:
    """``<cache_dir>/<sha256(key, code version)><suffix>``. The directory is created owner-only
    (0700): it holds stage-1 tables, which are not private (docs/PRIVACY.md)."""
    versioned = {"key": key, "code": code_version()}
    digest = hashlib.sha256(json.dumps(_canonical(versioned), sort_keys=True).encode()).hexdigest()[:24]
    root = Path(cache_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)
    return root / f"{digest}{suffix}"


def _cached(
    cache_dir: str | None, key: dict[str, Any], compute: Callable[[], tuple[Table, dict[str, Any]]]
) -> tuple[Table, dict[str, Any], bool]:
    """``compute()`` once per ``key`` when a cache directory is set: the table and its JSON info are
    stored as ``<sha256(key)>.npz`` (written atomically). Returns (table, info, came from cache)."""
    if not cache_dir:
        return (*compute(), False)
    path = _cache_path(cache_dir, key, ".npz")
    if path.exists():
        with np.load(path) as f:
            info = json.loads(str(f["info"]))
            return Table.from_array(f["rows"], [str(c) for c in f["columns"]]), info, True
    table, info = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, rows=table.to_array(), columns=np.array(table.columns), info=json.dumps(info))
    tmp.chmod(0o600)
    os.replace(tmp, path)
    return table, info, False


def generate(exp: Experiment, dataset: Dataset, train: Table, partition_id: int) -> tuple[Table, dict[str, Any]]:
    """Stage 1's rows from the client's training rows (its generator's rows, or the rows themselves
    for ``stage1=none``) and their JSON info (``seconds``, and the generator's summary)."""
    gen, s1 = exp.generator, exp.stage1_config(partition_id)
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if gen is None:
        rows = train
    else:
        rows, info = gen.sample(_model(exp, dataset, train, partition_id, gen, s1), train, s1)
    return rows, {"seconds": time.perf_counter() - t0, **info}


def _model(
    exp: Experiment, dataset: Dataset, train: Table, partition_id: int, gen: generators.Generator, cfg: Any
) -> Any:
    """The client's fitted generator; with ``cache_dir`` set, a trained kind is fitted once per
    training setting (its ``training_key``) and kept as ``<key>.<kind>.pt``, so a sweep over its
    sampling settings reuses it."""
    layout = fadm.Layout.from_schema(dataset.schema)
    cache_dir = exp.run.cache_dir
    path = None
    if cache_dir and gen.trained:
        key = {**_stage1_key(exp, partition_id), "stage1": gen.training_key(cfg)}
        path = _cache_path(cache_dir, {gen.name: key}, f".{gen.name}.pt")
    return generators.fitted(gen, train, layout, cfg, path)


def _stage1_key(exp: Experiment, partition_id: int) -> dict[str, Any]:
    key = {k: exp.cfg[k] for k in ("dataset", "partition", "num_clients", "seed", "stage1")}
    key["partition_id"] = partition_id
    return key


def augmentation(exp: Experiment, dataset: Dataset, train: Table, partition_id: int) -> tuple[Table, float]:
    """``strategy=fedavg_<kind>``: the generated rows a client adds to its training rows (cached in
    ``cache_dir`` like stage 1) and the seconds they took to make."""
    with threadpool_limits(1):
        rows, info, _ = _cached(
            exp.run.cache_dir, {"stage1": _stage1_key(exp, partition_id)},
            lambda: generate(exp, dataset, train, partition_id),
        )
    return rows, float(info["seconds"])


def guarantee(exp: Experiment, s2: Stage2Config) -> str:
    """With respect to what the upload's (ε, δ) holds: the real rows when DP comes first (or there
    is no stage 1), the stage-1 table in the paper's order (one real row can move every stage-1 row),
    nothing without DP."""
    if s2.name == "none":
        return "none: no differential privacy"
    if s2.order == "before" or exp.cfg["stage1"]["name"] == "none":
        return "the client's real training rows (add/remove one row)"
    return "the stage-1 table only (add/remove one row), not the real rows"


def make_upload(
    exp: Experiment, dataset: Dataset, train: Table, partition_id: int, holdout: Table | None = None
) -> Upload:
    """Algorithm 1, lines 2–19: stage 1 (fair synthetic set) and stage 2 (DP synthesizer), in the
    paper's order (``stage2.order=after``) or DP first (``before``: stage 1 runs on the DP rows, as
    post-processing). With ``holdout`` (the client's test rows) and ``audit`` on, the upload is audited.

    With ``cache_dir`` set, each stage's output is computed once per configuration (stage 2's full
    sample, so that every N_s2 comes from one fit; DP first, the release on the real rows is made once
    for every stage-1 setting: rerunning it would spend the budget again) and reused by later runs."""
    cfg = exp.cfg
    cache = exp.run.cache_dir
    s2 = exp.stage2_config(partition_id)
    key1 = _stage1_key(exp, partition_id)
    key2 = {k: v for k, v in cfg["stage2"].items() if k != "ns2_frac"}

    layout = fadm.Layout.from_schema(dataset.schema)

    def private(table: Table, real: bool) -> Callable[[], tuple[Table, dict[str, Any]]]:
        """Stage 2 on ``table``; DP rows made from real rows are mapped to valid rows of the schema."""
        valid = (lambda x: layout.decode(layout.encode(x))) if real else None

        def run() -> tuple[Table, dict[str, Any]]:
            out, report = privatize(table, dataset.schema.bounds(), s2, exp.run.progress, valid)
            return out, report.to_dict()

        return run

    with threadpool_limits(1):
        if s2.order == "before":
            real_key = {**{k: v for k, v in key1.items() if k != "stage1"}, "stage2": key2}
            dp_rows, privacy, hit2 = _cached(cache, {"real": real_key}, private(train, real=True))
            final, info1, hit1 = _cached(
                cache, {"stage1": key1, "on_dp": real_key}, lambda: generate(exp, dataset, dp_rows, partition_id)
            )
        else:
            fair, info1, hit1 = _cached(cache, {"stage1": key1}, lambda: generate(exp, dataset, train, partition_id))
            real = cfg["stage1"]["name"] == "none"
            final, privacy, hit2 = _cached(cache, {"stage1": key1, "stage2": key2}, private(fair, real))
    privacy["guarantee"] = guarantee(exp, s2)
    upload = final.subset(np.arange(upload_size(len(final), s2)))
    report = None
    if holdout is not None and exp.run.audit and len(upload):
        with threadpool_limits(1):
            report = audit(upload, train, holdout)
    return Upload(upload, info1["seconds"], privacy["seconds"], privacy, report, hit1 and hit2)


def server_fit(tables: list[Table], lam_theta: float) -> tuple[np.ndarray, bool]:
    """θ on the union of the uploads (eq. 16). If every uploaded row has one label (DP-CTGAN at a
    small ε can collapse so), no classifier can be fitted: return the constant classifier that
    predicts that label and ``True`` (the run records ``degenerate_upload``). One BLAS thread, so
    that the same uploads give the same θ to the last bit."""
    union = Table.concat(tables)
    if len(union) and np.all(union.y == union.y[0]):
        theta = np.zeros(len(union.feature_names) + 2)
        theta[-1] = float(union.y[0])
        return theta, True
    with threadpool_limits(1):
        return model.fit(union, lam_theta), False


def evaluate(theta: np.ndarray, test: Table) -> metrics.Counts:
    """The counts a client reports so that the server can pool metrics exactly (one BLAS thread:
    reproducible to the last bit)."""
    with threadpool_limits(1):
        return metrics.counts(test.y, model.predict(theta, test), test.s, model.decision(theta, test))


def local_update(
    exp: Experiment, train: Table, theta: np.ndarray, partition_id: int, server_round: int
) -> local.LocalResult:
    """FedAvg's ClientUpdate (McMahan et al. 2017): local SGD from the global θ on the client's
    training rows, seeded by (run seed, client, round)."""
    seed = np.random.SeedSequence([int(exp.cfg["seed"]), partition_id, server_round]).generate_state(1)[0]
    with threadpool_limits(1):
        return local.train(theta, train, exp.local_config(), int(seed))


def run_oneshot(exp: Experiment, dataset: Dataset) -> dict[str, Any]:
    """The one-shot method in this process, without Flower: the functions the client and server apps
    call (:func:`make_upload`, :func:`server_fit`, :func:`evaluate`), client after client. For sweeps
    that would otherwise pay the engine's start-up per run; ``fedfair run`` is the product path.
    Returns the pooled metrics, each client's upload size, privacy, audit and timings, and whether
    the server model is a constant fallback."""
    if exp.strategy != "oneshot":
        raise FedFairError(f"run_oneshot runs strategy=oneshot, got {exp.strategy}")
    uploads, tests = [], []
    for pid in range(exp.num_clients):
        train, test = exp.client_tables(dataset, pid)
        uploads.append(make_upload(exp, dataset, train, pid, holdout=test))
        tests.append(test)
    t0 = time.perf_counter()
    theta, degenerate = server_fit([u.table for u in uploads], schema.build(sections.OneShotServer, exp.cfg["strategy"], "strategy").lam_theta)
    fit_s = time.perf_counter() - t0
    counts = [evaluate(theta, test) for test in tests]
    return {
        "metrics": metrics.pooled(counts),
        "counts": sum(counts, metrics.Counts.zero()),
        "degenerate_upload": degenerate,
        "server_fit_s": fit_s,
        "per_client": [
            {"partition_id": pid, "n_upload": len(u.table), "stage1_s": u.stage1_s, "stage2_s": u.stage2_s,
             "privacy": u.privacy, "audit": u.audit}
            for pid, u in enumerate(uploads)
        ],
    }
