"""Stage 2: a differentially private synthesizer fitted to the stage-1 table (Algorithm 1, line 19).

A client fits a DP synthesizer to its fair stage-1 table of N rows and samples N rows; it
uploads the first N_s2 = round(ns2_frac·N) of them (:func:`upload_size`), so every N_s2 of one
configuration comes from ONE fit (the paper's syn_2(100%) and syn_2(10%)). The fitted synthesizer keeps the training matrix and
exact marginals, so it never leaves :func:`privatize`.

The synthesizers are the modules of :mod:`fedfair.synth` (``gaussian``, ``dpctgan``, ``mst``, each
documented there), found by name; ``none`` is no DP: the stage-1 table is returned as is
(``ns2_frac`` not applied).

``order`` places stage 2 relative to stage 1 (``fedfair.pipeline.make_upload``): ``after`` is the
paper's (DP on the stage-1 table: the guarantee is with respect to that table only), ``before`` runs
the mechanism on the client's real rows and stage 1 on its output (post-processing: the guarantee is
with respect to the real rows). docs/PRIVACY.md gives the neighbouring relation and the proof sketch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedfair import schema
from fedfair.errors import FedFairError
from fedfair.registry import unknown
from fedfair.synth import SYNTHESIZERS, Synthesizer
from fedfair.table import Table

NONE = "none"  # stage2=none: no differential privacy
ORDERS = ("before", "after")
# The keys every synthesizer takes; the others belong to one synthesizer (its ``keys``).
COMMON_KEYS = ("name", "order", "epsilon", "delta", "ns2_frac", "seed", "bounds_margin")
# Library noise that fires inside an snsynth fit (the torch one ~144 times per DP-CTGAN epoch).
_NOISE = (
    (FutureWarning, "Using a non-full backward hook"),
    (UserWarning, "Secure RNG turned off"),
    (UserWarning, "The sample rate will be defined"),
    (UserWarning, "Pandas dataframe inputs are deprecated"),
)


def names() -> tuple[str, ...]:
    """Every value ``stage2.name`` may take."""
    return (*SYNTHESIZERS, NONE)


def synthesizer(name: str) -> Synthesizer | None:
    """The synthesizer called ``name`` (None for ``none``); an unknown name is a one-line error."""
    if name == NONE:
        return None
    if name not in SYNTHESIZERS:
        raise unknown("stage2", name, names())
    return SYNTHESIZERS[name]


def check_keys(name: str, keys: Iterable[str]) -> None:
    """Every key of a ``stage2`` section is a common key or one of synthesizer ``name``'s."""
    synth = synthesizer(name)
    own = (*COMMON_KEYS, *(synth.keys if synth else ()))
    for key in keys:
        if key not in own:
            settable = ", ".join(k for k in own if k not in ("name", "seed"))
            raise FedFairError(f"stage2.{key} is not a key of stage2={name}; its keys: {settable}")


_DEFAULTS = schema.defaults("stage2", "dpctgan", "mst")  # the defaults below: conf/stage2/dpctgan.yaml, then mst.yaml


@dataclass(frozen=True)
class Stage2Config:
    """Settings of Algorithm 1, line 19. ``order``: ``before`` or ``after`` stage 1 (module
    docstring). ``seed`` (derived from the run seed) drives only post-processing; ``noise_seed``
    (DP-CTGAN only; null by default) makes its DP randomness reproducible for a simulation, which voids
    the guarantee for anyone who knows it. ``epochs`` caps DP-CTGAN, which otherwise trains until the
    budget is spent; ``threads`` is torch's thread count during the fit; ``bounds_margin`` widens
    each feature's public range [lo, hi] by that fraction of hi − lo on both sides, because stage 1
    moves features past the schema's range (on Law School 17% of values at ρ = 1000)."""

    name: str
    order: str = _DEFAULTS["order"]
    epsilon: float = _DEFAULTS["epsilon"]
    delta: float = _DEFAULTS["delta"]
    ns2_frac: float = _DEFAULTS["ns2_frac"]
    epochs: int = _DEFAULTS["epochs"]
    batch_size: int = _DEFAULTS["batch_size"]
    sigma: float = _DEFAULTS["sigma"]
    seed: int = field(default=0, metadata=schema.RUN)
    threads: int = _DEFAULTS["threads"]
    mst_bins: int = _DEFAULTS["mst_bins"]
    bounds_margin: float = _DEFAULTS["bounds_margin"]
    noise_seed: int | None = _DEFAULTS["noise_seed"]

    def __post_init__(self) -> None:
        synth = synthesizer(self.name)
        if self.order not in ORDERS:
            raise FedFairError(f"stage2.order must be before or after, got {self.order!r}")
        if synth is not None and self.order not in synth.orders:
            raise FedFairError(f"stage2={self.name} supports order {' or '.join(synth.orders)}, got {self.order!r}")
        if not 0 <= self.bounds_margin <= 10:
            raise FedFairError(f"stage2.bounds_margin must be in [0, 10], got {self.bounds_margin}")
        if not self.epsilon > 0:
            raise FedFairError(f"stage2.epsilon must be > 0, got {float(self.epsilon)}")
        if not 0 < self.delta < 1:
            raise FedFairError(f"stage2.delta must be in (0, 1), got {self.delta}")
        if not 0 < self.ns2_frac <= 1:
            raise FedFairError(f"stage2.ns2_frac={self.ns2_frac} must be in (0, 1]")
        if not 0 <= self.seed < 2**32:
            raise FedFairError(f"stage2.seed must be in [0, 2**32), got {self.seed}")
        if synth is not None and synth.check is not None:
            synth.check(self)


@dataclass
class PrivacyReport:
    """What stage 2 spent. ``epsilon`` is ``inf`` for ``none`` (``None`` in :meth:`to_dict`);
    ``guarantee`` says with respect to what the (ε, δ) holds (set by the pipeline from the order);
    ``epochs``, ``steps`` (noisy discriminator steps), ``noise_multiplier`` and ``sample_rate`` are
    DP-CTGAN's accounting inputs; ``zcdp_rho``, ``l2_sensitivity`` and ``sigmas`` the Gaussian
    mechanism's. ``reproducible``: the same config gives the same table (false where the DP noise comes
    from a secure, unseedable source). ``single_label``: every returned row has the same label (DP-CTGAN at a small ε can
    collapse so); no classifier can be fitted on such a table alone, and the caller decides what to do."""

    mechanism: str
    epsilon: float
    delta: float | None
    seconds: float
    single_label: bool
    reproducible: bool = True
    guarantee: str | None = None
    epochs: int | None = None
    steps: int | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    zcdp_rho: float | None = None
    l2_sensitivity: float | None = None
    sigmas: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if math.isinf(self.epsilon):
            out["epsilon"] = None
        return out


def privatize(
    table: Table,
    bounds: dict[str, tuple[float, float]],
    cfg: Stage2Config,
    progress: bool = False,
    valid: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[Table, PrivacyReport]:
    """The DP synthetic table of N rows (same feature names) and its privacy report, from the
    synthesizer ``cfg.name`` (:mod:`fedfair.synth`).

    ``bounds`` holds the PUBLIC (lower, upper) of every feature, from the dataset schema, never from
    the data; ``s`` and ``y`` are 0/1 by construction, so entries for them are not needed. Stage-1
    features may lie outside their bounds: the bounds are widened by ``cfg.bounds_margin`` and
    values still outside are CLIPPED to them before fitting. A result
    whose rows all carry one label is returned, not refused (``report.single_label``). ``progress``
    lets the synthesizer print its progress. ``valid`` (``gaussian`` only) maps sampled feature rows to
    valid rows of the schema; pass it when ``table`` holds real rows.
    """
    start = time.perf_counter()
    synth = synthesizer(cfg.name)
    if synth is None:
        return table, PrivacyReport(NONE, math.inf, None, 0.0, _single_label(table))
    if len(table) == 0:
        raise FedFairError("stage 2 got an empty table")
    out, accounting = synth.privatize(table, bounds, cfg, progress, valid)
    report = PrivacyReport(
        **{"mechanism": cfg.name, "delta": cfg.delta, **accounting},
        seconds=time.perf_counter() - start,
        single_label=_single_label(out),
    )
    return out, report


def upload_size(n: int, cfg: Stage2Config) -> int:
    """N_s2: how many of the n sampled rows a client uploads (all of them for ``none``)."""
    return n if cfg.name == NONE else max(1, round(cfg.ns2_frac * n))


def _single_label(table: Table) -> bool:
    return len(table) > 0 and bool(np.all(table.y == table.y[0]))


def clipped_frame(
    table: Table, bounds: dict[str, tuple[float, float]], margin: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``table.to_array()`` as a DataFrame clipped to the public bounds (features widened by
    ``margin``·(hi − lo) on each side), and those bounds per column."""
    lo, hi = public_box(table, bounds)
    lower = np.append(lo - margin * (hi - lo), [0.0, 0.0])
    upper = np.append(hi + margin * (hi - lo), [1.0, 1.0])
    arr = np.clip(table.to_array().astype(np.float64), lower, upper)
    return pd.DataFrame(arr, columns=list(table.columns)), lower, upper


def public_box(table: Table, bounds: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The schema's (lower, upper) of every feature, checked finite with lower < upper."""
    missing = [f for f in table.feature_names if f not in bounds]
    if missing:
        raise FedFairError(f"stage 2 needs public bounds for feature(s): {', '.join(missing)}")
    for f in table.feature_names:
        lo, hi = bounds[f]
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise FedFairError(f"bounds of feature '{f}' must be finite, lower < upper; got ({lo}, {hi})")
    lo = np.array([float(bounds[f][0]) for f in table.feature_names])
    hi = np.array([float(bounds[f][1]) for f in table.feature_names])
    return lo, hi


def frame_table(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> Table:
    """A synthesizer's sampled DataFrame as a :class:`Table` with ``columns`` (features, s, y)."""
    return Table.from_array(frame[list(columns)].to_numpy(dtype=np.float64), columns)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the library warnings an snsynth fit emits (:data:`_NOISE`)."""
    with warnings.catch_warnings():
        for category, message in _NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
