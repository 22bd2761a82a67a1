"""The FADM generator: configuration, training on a client's (or domain-pooled) rows, and sampling
rows of chosen labels as a :class:`~fedfair.table.Table`.

Choices where the paper (Lin, Li, Zhao & Shao, "Fair Data Generation via Score-based Diffusion
Model") is silent: the diffusion models the non-sensitive features x only (the sensitive attribute
is what guidance removes); a generated row's s, which fedfair's model a = (x, s) needs, is drawn
independently of (x, y) with the training share of s = 1, so a model fitted on the samples has no
reason to use s. With λ_y = 0 (plain DDPM, the paper's ablation) samples are not steered toward a
label and each takes the label the label classifier gives it at t = T_MIN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedfair import schema
from fedfair.env import torch_threads
from fedfair.errors import FedFairError
from fedfair.fadm.layout import Layout
from fedfair.fadm.networks import EMBED, TimeMLP, classifier, score_net
from fedfair.fadm.sampling import reverse_sde
from fedfair.fadm.sde import T_MIN, VPSDE
from fedfair.fadm.training import TrainSettings, meta_train
from fedfair.table import Table

LABELS = ("match", "balanced")
SAMPLING = ("lambda_y", "lambda_z", "steps", "ns", "labels", "progress")  # FADMConfig fields used after training


_DEFAULTS = schema.defaults("stage1", "fadm")  # the defaults below: conf/stage1/fadm.yaml


@dataclass(frozen=True)
class FADMConfig:
    """Training (Algorithm 1: ``inner_lr`` α, ``meta_weight`` β, ``lr`` γ), sampling (eq. 11:
    ``lambda_y``, ``lambda_z``, ``steps``) and output (``ns`` rows: None = as many as the training
    rows, a fraction in (0, 1] of them or a count; ``labels``: ``match`` the training class balance
    or ``balanced`` halves). ``domain_column`` names the feature whose values are the meta-learning
    domains (e.g. Adult's ``race``); None = one domain (plain training)."""

    iterations: int = _DEFAULTS["iterations"]
    batch_size: int = _DEFAULTS["batch_size"]
    hidden: int = _DEFAULTS["hidden"]
    layers: int = _DEFAULTS["layers"]
    lr: float = _DEFAULTS["lr"]
    inner_lr: float = _DEFAULTS["inner_lr"]
    meta_weight: float = _DEFAULTS["meta_weight"]
    beta_min: float = _DEFAULTS["beta_min"]
    beta_max: float = _DEFAULTS["beta_max"]
    lambda_y: float = _DEFAULTS["lambda_y"]
    lambda_z: float = _DEFAULTS["lambda_z"]
    steps: int = _DEFAULTS["steps"]
    ns: float | None = _DEFAULTS["ns"]
    labels: str = _DEFAULTS["labels"]
    domain_column: str | None = _DEFAULTS["domain_column"]
    seed: int = field(default=0, metadata=schema.RUN)
    threads: int = _DEFAULTS["threads"]
    progress: bool = field(default=True, metadata=schema.RUN)

    def __post_init__(self) -> None:
        ints = ("iterations", "batch_size", "hidden", "layers", "steps", "threads")
        for name in ints:
            if getattr(self, name) < 1:
                raise FedFairError(f"FADM {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "inner_lr", "beta_min"):
            if not getattr(self, name) > 0:
                raise FedFairError(f"FADM {name} must be > 0, got {getattr(self, name)}")
        for name in ("meta_weight", "lambda_y", "lambda_z"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise FedFairError(f"FADM {name} must be a finite number >= 0, got {value}")
        if not self.beta_max > self.beta_min:
            raise FedFairError(f"FADM beta_max must exceed beta_min, got {self.beta_max} <= {self.beta_min}")
        if self.labels not in LABELS:
            raise FedFairError(f"FADM labels must be one of {', '.join(LABELS)}, got '{self.labels}'")
        if self.ns is not None and not self.ns > 0:
            raise FedFairError(f"FADM ns must be > 0, got {self.ns}")


def _networks(dim: int, hidden: int, layers: int) -> dict[str, TimeMLP]:
    """The score network and the label and sensitive classifiers, freshly initialised."""
    return {"score": score_net(dim, hidden, layers), "label": classifier(dim, hidden, layers),
            "sensitive": classifier(dim, hidden, layers)}


@dataclass
class FADM:
    """A trained generator: the VP-SDE, the three networks, and what decoding needs."""

    layout: Layout
    feature_names: tuple[str, ...]
    sde: VPSDE
    score: TimeMLP
    label: TimeMLP
    sensitive: TimeMLP
    s_share: float
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write the trained networks and what decoding needs (``torch.save``) to ``path``."""
        torch.save({
            "nets": {k: getattr(self, k).state_dict() for k in ("score", "label", "sensitive")},
            "shape": [self.score.body[0].in_features - EMBED, self.score.body[0].out_features,
                      sum(isinstance(m, torch.nn.Linear) for m in self.score.body) - 1],
            "sde": [self.sde.beta_min, self.sde.beta_max],
            "feature_names": list(self.feature_names), "s_share": self.s_share, "history": self.history,
        }, path)

    @classmethod
    def load(cls, path: Path, layout: Layout) -> FADM:
        """A generator written by :meth:`save`; it samples exactly as the one saved."""
        blob = torch.load(path, weights_only=True)
        nets = _networks(*blob["shape"])
        for name, net in nets.items():
            net.load_state_dict(blob["nets"][name])
            net.eval().requires_grad_(False)
        return cls(layout, tuple(blob["feature_names"]), VPSDE(*blob["sde"]), nets["score"], nets["label"],
                   nets["sensitive"], float(blob["s_share"]), list(blob["history"]))

    def generate(
        self, labels: np.ndarray, seed: int, lambda_y: float, lambda_z: float, steps: int = 200,
        progress: bool = False,
    ) -> Table:
        """One row per requested ±1 label (eq. 11); deterministic for ``seed``. With ``lambda_y``
        = 0 a row's label is the label classifier's at t = T_MIN instead (see the module doc)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.isin(labels, (-1, 1)).all():
            raise FedFairError("FADM labels to generate must be a 1-D array of -1/+1")
        gen = torch.Generator().manual_seed(int(seed))
        y = torch.as_tensor(labels, dtype=next(self.score.parameters()).dtype)
        x = reverse_sde(self.score, self.label, self.sensitive, self.sde, y, lambda_y, lambda_z, steps, gen, progress)
        if not lambda_y:
            with torch.no_grad():
                logit = self.label(x, torch.full((len(x),), T_MIN, dtype=x.dtype))[:, 0]
            labels = np.where(logit.numpy() >= 0, 1, -1)
        s = (torch.rand(len(labels), generator=gen, dtype=torch.float64) < self.s_share).numpy()
        rows = self.layout.decode(x.numpy().astype(np.float64))
        return Table(rows, s.astype(np.int64), labels, self.feature_names)


def train(table: Table, layout: Layout, cfg: FADMConfig, domains: np.ndarray | None = None) -> FADM:
    """Algorithm 1 on ``table`` (``domains``: an integer per row, or None for one domain)."""
    if len(table) < 2:
        raise FedFairError(f"FADM needs at least 2 training rows, got {len(table)}")
    domains = np.zeros(len(table), dtype=np.int64) if domains is None else np.asarray(domains)
    if domains.shape != (len(table),):
        raise FedFairError(f"FADM domains must give one value per row ({len(table)}), got {domains.shape}")
    dim = table.x.shape[1]
    with torch_threads(cfg.threads), torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        nets = _networks(dim, cfg.hidden, cfg.layers)
        sde = VPSDE(cfg.beta_min, cfg.beta_max)
        x = torch.from_numpy(layout.encode(table.x).astype(np.float32))
        y = torch.from_numpy((table.y == 1).astype(np.float32))
        z = torch.from_numpy(table.s.astype(np.float32))
        settings = TrainSettings(cfg.iterations, cfg.batch_size, cfg.lr, cfg.inner_lr, cfg.meta_weight, cfg.progress)
        gen = torch.Generator().manual_seed(cfg.seed)
        history = meta_train(nets, sde, x, y, z, domains, settings, gen)
    for net in nets.values():
        net.eval().requires_grad_(False)
    return FADM(layout, table.feature_names, sde, nets["score"], nets["label"], nets["sensitive"],
                float(table.s.mean()), history)


def requested_labels(table: Table, size: int, how: str) -> np.ndarray:
    """``size`` ±1 labels: the training class balance (``match``, rounded) or halves (``balanced``)."""
    share = float((table.y == 1).mean()) if how == "match" else 0.5
    positives = int(round(share * size))
    return np.concatenate([np.ones(positives, dtype=np.int64), -np.ones(size - positives, dtype=np.int64)])


def output_size(n: int, ns: float | None) -> int:
    size = n if ns is None else int(round(ns * n)) if ns <= 1 else int(ns)
    if size < 1:
        raise FedFairError(f"FADM ns={ns} gives {size} rows for {n} training rows")
    return size


def fit(table: Table, layout: Layout, cfg: FADMConfig) -> FADM:
    """Algorithm 1 on ``table`` with the domains of ``cfg.domain_column`` (None: one domain)."""
    domains = None if cfg.domain_column is None else layout.domains(table.x, cfg.domain_column)
    return train(table, layout, cfg, domains)


def sample(fadm: FADM, table: Table, cfg: FADMConfig) -> tuple[Table, dict[str, Any]]:
    """``cfg.ns`` rows (relative to ``table``, the training rows) of the ``cfg.labels`` class
    balance, guided by ``cfg.lambda_y`` and ``cfg.lambda_z``; with a summary (final losses)."""
    labels = requested_labels(table, output_size(len(table), cfg.ns), cfg.labels)
    with torch_threads(cfg.threads):
        rows = fadm.generate(labels, cfg.seed + 1, cfg.lambda_y, cfg.lambda_z, cfg.steps, cfg.progress)
    return rows, {"final": fadm.history[-1]}


def training_key(cfg: FADMConfig) -> dict[str, Any]:
    """The settings a trained generator depends on (not the sampling ones): generators trained with
    equal keys on equal rows are equal, so a sweep over λ_y, λ_z, steps, ns or labels can share one."""
    return {k: v for k, v in asdict(cfg).items() if k not in SAMPLING}
