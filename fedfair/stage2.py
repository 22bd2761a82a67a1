"""Stage 2: a differentially private synthesizer fitted to the stage-1 table (Algorithm 1, line 19).

A client fits an snsynth synthesizer to its fair stage-1 table of N rows and samples N rows; it
uploads the first N_s2 = round(ns2_frac·N) of them (:func:`upload_size`), so every N_s2 of one
configuration comes from ONE fit (the paper's syn_2(100%) and syn_2(10%)). The fitted synthesizer keeps the training matrix and
exact marginals, so it never leaves :func:`privatize`.

* ``dpctgan`` (the paper's): every column is continuous with PUBLIC min–max bounds, so no budget is
  spent on preprocessing and no exact category frequency leaks through the conditional vector;
  ``s`` and ``y`` come back thresholded at 0.5. Only the discriminator is private: opacus 0.14's RDP
  accountant for the subsampled Gaussian, q = B/n (B capped at N, rounded down to even), two noisy
  steps per batch (fake, real). It trains for the largest number of epochs (at most ``epochs``)
  whose ε stays within the target, so the reported ε never exceeds it (snsynth alone stops one epoch
  late). Caveat: the real batches are drawn with replacement, which is neither Poisson nor
  fixed-size sampling, so the ε is the usual Poisson approximation, not a proven bound (opacus: "The
  returned privacy budget will be incorrect"; smartnoise-sdk#569). Its DP randomness comes from the
  OS unless ``noise_seed`` asks for a reproducible simulation (never in a deployment).
* ``mst``: Private-PGM's MST on ``mst_bins`` public equal-width bins per feature (values come back as
  bin midpoints), ``s`` and ``y`` as two bins; it spends exactly (ε, δ). Its Gaussian noise comes from
  OpenDP's secure sampler, so its output is not reproducible (``reproducible: false`` in its report).
* ``gaussian``: one Gaussian mechanism (OpenDP) releases the (s, y)-cell counts, cell feature sums
  and one pooled second moment; rows are sampled from them (``fedfair.cellgauss``). It keeps the
  joint (x, s, y) structure the logistic model and the fairness penalty depend on, takes well under a
  second, and its row count is itself DP (round of the noisy counts), never the exact N.
* ``none``: no differential privacy; the stage-1 table is returned as is (``ns2_frac`` not applied).

``order`` places stage 2 relative to stage 1 (``fedfair.pipeline.make_upload``): ``after`` is the
paper's (DP on the stage-1 table: the guarantee is with respect to that table only), ``before`` runs
the mechanism on the client's real rows and stage 1 on its output (post-processing: the guarantee is
with respect to the real rows). docs/PRIVACY.md gives the neighbouring relation and the proof sketch.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fedfair import cellgauss, schema
from fedfair.env import raise_mmap_threshold
from fedfair.errors import FedFairError
from fedfair.table import Table

NAMES = ("gaussian", "dpctgan", "mst", "none")
ORDERS = ("before", "after")
# The RDP orders snsynth's DP-CTGAN gives opacus' PrivacyEngine.
DPCTGAN_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
# Library noise that fires inside a fit (the torch one ~144 times per DP-CTGAN epoch).
_NOISE = (
    (FutureWarning, "Using a non-full backward hook"),
    (UserWarning, "Secure RNG turned off"),
    (UserWarning, "The sample rate will be defined"),
    (UserWarning, "Pandas dataframe inputs are deprecated"),
)


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
        if self.name not in NAMES:
            raise FedFairError(f"unknown stage2 '{self.name}'; choose {', '.join(NAMES)}")
        if self.order not in ORDERS:
            raise FedFairError(f"stage2.order must be before or after, got {self.order!r}")
        if not 0 <= self.bounds_margin <= 10:
            raise FedFairError(f"stage2.bounds_margin must be in [0, 10], got {self.bounds_margin}")
        if not self.epsilon > 0:
            raise FedFairError(f"stage2.epsilon must be > 0, got {float(self.epsilon)}")
        if not 0 < self.delta < 1:
            raise FedFairError(f"stage2.delta must be in (0, 1), got {self.delta}")
        if not 0 < self.ns2_frac <= 1:
            raise FedFairError(f"stage2.ns2_frac={self.ns2_frac} must be in (0, 1]")
        if self.epochs < 1 or self.threads < 1 or not self.sigma > 0:
            raise FedFairError("stage2.epochs and stage2.threads must be >= 1 and stage2.sigma > 0")
        if self.batch_size < 2 or self.batch_size % 2:
            raise FedFairError(f"stage2.batch_size must be even and >= 2, got {self.batch_size}")
        if self.mst_bins < 2:
            raise FedFairError(f"stage2.mst_bins must be >= 2, got {self.mst_bins}")
        if not 0 <= self.seed < 2**32:
            raise FedFairError(f"stage2.seed must be in [0, 2**32), got {self.seed}")
        if self.noise_seed is not None and (
            isinstance(self.noise_seed, bool) or not isinstance(self.noise_seed, int) or not 0 <= self.noise_seed < 2**32
        ):
            raise FedFairError(f"stage2.noise_seed must be null or an integer in [0, 2**32), got {self.noise_seed!r}")


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
    """The DP synthetic table of N rows (same feature names) and its privacy report.

    ``bounds`` holds the PUBLIC (lower, upper) of every feature, from the dataset schema, never from
    the data; ``s`` and ``y`` are 0/1 by construction, so entries for them are not needed. Stage-1
    features may lie outside their bounds: the bounds are widened by ``cfg.bounds_margin`` and
    values still outside are CLIPPED to them before fitting. A result
    whose rows all carry one label is returned, not refused (``report.single_label``). ``progress``
    lets the synthesizer print its progress. ``valid`` (``gaussian`` only) maps sampled feature rows to
    valid rows of the schema; pass it when ``table`` holds real rows.
    """
    start = time.perf_counter()
    if cfg.name == "none":
        return table, PrivacyReport("none", math.inf, None, 0.0, _single_label(table))
    if len(table) == 0:
        raise FedFairError("stage 2 got an empty table")
    if cfg.name == "gaussian":
        out, accounting = _gaussian(table, bounds, cfg, valid)
    else:
        frame, lower, upper = _clipped_frame(table, bounds, cfg.bounds_margin)
        with warnings.catch_warnings():
            for category, message in _NOISE:
                warnings.filterwarnings("ignore", message=message, category=category)
            if cfg.name == "dpctgan":
                sample, accounting = _dpctgan(frame, lower, upper, len(table), cfg, progress)
            else:
                sample, accounting = _mst(frame, lower, upper, len(table), cfg, progress)
        out = Table.from_array(sample[list(table.columns)].to_numpy(dtype=np.float64), table.columns)
    report = PrivacyReport(
        mechanism=cfg.name,
        delta=cfg.delta,
        seconds=time.perf_counter() - start,
        single_label=_single_label(out),
        **accounting,
    )
    return out, report


def upload_size(n: int, cfg: Stage2Config) -> int:
    """N_s2: how many of the n sampled rows a client uploads (all of them for ``none``)."""
    return n if cfg.name == "none" else max(1, round(cfg.ns2_frac * n))


def _single_label(table: Table) -> bool:
    return len(table) > 0 and bool(np.all(table.y == table.y[0]))


def _clipped_frame(
    table: Table, bounds: dict[str, tuple[float, float]], margin: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``table.to_array()`` as a DataFrame clipped to the public bounds (features widened by
    ``margin``·(hi − lo) on each side), and those bounds per column."""
    lo, hi = _public_box(table, bounds)
    lower = np.append(lo - margin * (hi - lo), [0.0, 0.0])
    upper = np.append(hi + margin * (hi - lo), [1.0, 1.0])
    arr = np.clip(table.to_array().astype(np.float64), lower, upper)
    return pd.DataFrame(arr, columns=list(table.columns)), lower, upper


def _public_box(table: Table, bounds: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
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


@functools.cache
def _calibration(epsilon: float, delta: float, d: int, radius: float) -> cellgauss.Calibration:
    return cellgauss.calibrate(epsilon, delta, d, radius)


def _gaussian(
    table: Table,
    bounds: dict[str, tuple[float, float]],
    cfg: Stage2Config,
    valid: Callable[[np.ndarray], np.ndarray] | None,
) -> tuple[Table, dict[str, Any]]:
    lo, hi = _public_box(table, bounds)
    cal = _calibration(cfg.epsilon, cfg.delta, len(lo), cellgauss.box(lo, hi, cfg.bounds_margin)[3])
    released = cellgauss.release(table, lo, hi, cfg.bounds_margin, cal)
    sample_seed = int(np.random.SeedSequence([cfg.seed, 2]).generate_state(1)[0])
    out = cellgauss.sample_rows(released, table.feature_names, sample_seed, valid)
    return out, {
        "reproducible": False,
        "epsilon": cal.epsilon,
        "zcdp_rho": cal.rho,
        "l2_sensitivity": cal.mu,
        "sigmas": {"count": cal.sigma_count, "sum": cal.sigma_sum, "moment": cal.sigma_moment, "radius": cal.radius},
    }


def _dpctgan(
    frame: pd.DataFrame, lower: np.ndarray, upper: np.ndarray, n_rows: int, cfg: Stage2Config,
    progress: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from snsynth import Synthesizer
    from snsynth.transform import MinMaxTransformer
    from snsynth.transform.table import TableTransformer

    n = len(frame)
    if n < 2:
        raise FedFairError(f"DP-CTGAN needs at least 2 rows, got {n}")
    batch = min(cfg.batch_size, n - n % 2)
    q = batch / n
    steps_per_epoch = 2 * max(n // batch, 1)
    rdp_step = _rdp_per_step(q, cfg.sigma)
    epochs = _affordable_epochs(rdp_step, steps_per_epoch, cfg)
    scalers = [MinMaxTransformer(lower=lo, upper=hi) for lo, hi in zip(lower, upper)]
    synth = Synthesizer.create(
        "dpctgan", epsilon=cfg.epsilon, delta=cfg.delta, epochs=epochs, batch_size=batch,
        sigma=cfg.sigma, verbose=False, cuda=False,
    )
    # The DP randomness (batch sampling, the generator's start, the noise) from a seed only when the
    # user asks for a reproducible simulation; else from the OS (opacus reseeds torch from os.urandom).
    if cfg.noise_seed is None:
        fit_seed, noise_seed = secrets.randbits(32), None
    else:
        fit_seed, noise_seed = map(int, np.random.SeedSequence([cfg.noise_seed, 1]).generate_state(2))
    sample_seed = int(np.random.SeedSequence([cfg.seed, 3]).generate_state(1)[0])
    raise_mmap_threshold()
    # One tick per noisy discriminator step: the bar's total is the budgeted epochs, with an ETA.
    bar = tqdm(total=epochs * steps_per_epoch, desc=f"DP-CTGAN ({epochs} epochs)", unit="step",
               disable=not progress, leave=False)
    with bar, _reproducible(fit_seed, noise_seed, cfg.threads, on_step=bar.update) as engines:
        synth.fit(frame, transformer=TableTransformer(scalers), preprocessor_eps=0.0)
        _seed(sample_seed)
        sample = synth.sample(n_rows)
    steps = sum(engine.steps for engine in engines)
    return sample, {
        "epsilon": _epsilon(rdp_step, steps, cfg.delta),
        "epochs": steps // steps_per_epoch,
        "steps": steps,
        "noise_multiplier": cfg.sigma,
        "sample_rate": q,
        "reproducible": cfg.noise_seed is not None,
    }


def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one subsampled-Gaussian step at DP-CTGAN's orders (opacus' accountant); it adds up
    linearly over steps."""
    from opacus import privacy_analysis

    return np.asarray(privacy_analysis.compute_rdp(sample_rate, noise_multiplier, 1, DPCTGAN_ALPHAS))


def _epsilon(rdp_step: np.ndarray, steps: int, delta: float) -> float:
    from opacus import privacy_analysis

    return float(privacy_analysis.get_privacy_spent(DPCTGAN_ALPHAS, rdp_step * steps, delta)[0])


def _affordable_epochs(rdp_step: np.ndarray, steps_per_epoch: int, cfg: Stage2Config) -> int:
    """The most epochs (at most ``cfg.epochs``) whose ε is within ``cfg.epsilon``."""
    epochs = 0
    spent = _epsilon(rdp_step, steps_per_epoch, cfg.delta)
    while epochs < cfg.epochs and spent <= cfg.epsilon:
        epochs += 1
        spent = _epsilon(rdp_step, (epochs + 1) * steps_per_epoch, cfg.delta)
    if epochs == 0:
        raise FedFairError(
            f"stage2.epsilon={cfg.epsilon} buys no DP-CTGAN epoch (one costs {spent:.3g} at "
            f"sigma={cfg.sigma}); raise epsilon or sigma"
        )
    return epochs


def _mst(
    frame: pd.DataFrame, lower: np.ndarray, upper: np.ndarray, n_rows: int, cfg: Stage2Config,
    progress: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from snsynth import Synthesizer
    from snsynth.transform import BinTransformer
    from snsynth.transform.table import TableTransformer

    d = frame.shape[1] - 2
    bins = [BinTransformer(bins=cfg.mst_bins, lower=lo, upper=hi) for lo, hi in zip(lower[:d], upper[:d])]
    bins += [BinTransformer(bins=2, lower=0.0, upper=1.0) for _ in range(2)]  # s, y
    synth = Synthesizer.create("mst", epsilon=cfg.epsilon, delta=cfg.delta, verbose=progress)
    synth.fit(frame, transformer=TableTransformer(bins), preprocessor_eps=0.0)
    return synth.sample(n_rows), {"epsilon": cfg.epsilon, "reproducible": False}


def _seed(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _reproducible(
    seed: int, noise_seed: int | None, threads: int, on_step: Callable[[], Any] = lambda: None
) -> Iterator[list[Any]]:
    """Seed numpy and torch, run torch on ``threads`` threads, and (``noise_seed`` not None) reseed
    torch right after every opacus ``PrivacyEngine.__init__`` (it reseeds the global torch RNG from
    os.urandom); call
    ``on_step`` after each of the engines' noisy steps. Yields the engines created inside (for their
    step counts); restores the RNG states, the thread count and the patched ``__init__`` on exit."""
    import opacus
    import torch

    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    old_threads = torch.get_num_threads()
    original_init = opacus.PrivacyEngine.__init__
    engines: list[Any] = []

    def seeded_init(engine: Any, *args: Any, **kwargs: Any) -> None:
        original_init(engine, *args, **kwargs)
        if noise_seed is not None:
            torch.manual_seed(noise_seed)
        engines.append(engine)
        step = engine.step

        def counted_step(*step_args: Any, **step_kwargs: Any) -> None:
            step(*step_args, **step_kwargs)
            on_step()

        engine.step = counted_step

    opacus.PrivacyEngine.__init__ = seeded_init
    try:
        torch.set_num_threads(threads)
        _seed(seed)
        yield engines
    finally:
        opacus.PrivacyEngine.__init__ = original_init
        torch.set_num_threads(old_threads)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)

