"""``stage2=dpctgan`` (the paper's stage 2, through snsynth): every column is continuous with PUBLIC
min–max bounds, so no budget is spent on preprocessing and no exact category frequency leaks through
the conditional vector; ``s`` and ``y`` come back thresholded at 0.5. Only the discriminator is
private: opacus 0.14's RDP accountant for the subsampled Gaussian, q = B/n (B capped at N, rounded
down to even), two noisy steps per batch (fake, real). It trains for the largest number of epochs
(at most ``epochs``) whose ε stays within the target, so the reported ε never exceeds it (snsynth
alone stops one epoch late). Caveat: the real batches are drawn with replacement, which is neither
Poisson nor fixed-size sampling, so the ε is the usual Poisson approximation, not a proven bound
(opacus: "The returned privacy budget will be incorrect"; smartnoise-sdk#569). Its DP randomness
comes from the OS unless ``noise_seed`` asks for a reproducible simulation (never in a deployment)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fedfair.env import raise_mmap_threshold
from fedfair.errors import FedFairError
from fedfair.stage2 import Stage2Config, clipped_frame, frame_table, quiet
from fedfair.synth import Bounds, Synthesizer, Valid
from fedfair.table import Table

# The RDP orders snsynth's DP-CTGAN gives opacus' PrivacyEngine.
DPCTGAN_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def privatize(
    table: Table, bounds: Bounds, cfg: Stage2Config, progress: bool, valid: Valid | None
) -> tuple[Table, dict[str, Any]]:
    from snsynth import Synthesizer as SnSynthesizer
    from snsynth.transform import MinMaxTransformer
    from snsynth.transform.table import TableTransformer

    frame, lower, upper = clipped_frame(table, bounds, cfg.bounds_margin)
    n = len(frame)
    if n < 2:
        raise FedFairError(f"DP-CTGAN needs at least 2 rows, got {n}")
    batch = min(cfg.batch_size, n - n % 2)
    q = batch / n
    steps_per_epoch = 2 * max(n // batch, 1)
    rdp_step = _rdp_per_step(q, cfg.sigma)
    epochs = _affordable_epochs(rdp_step, steps_per_epoch, cfg)
    scalers = [MinMaxTransformer(lower=lo, upper=hi) for lo, hi in zip(lower, upper)]
    synth = SnSynthesizer.create(
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
    with quiet(), bar, _reproducible(fit_seed, noise_seed, cfg.threads, on_step=bar.update) as engines:
        synth.fit(frame, transformer=TableTransformer(scalers), preprocessor_eps=0.0)
        _seed(sample_seed)
        sample = synth.sample(n)
    steps = sum(engine.steps for engine in engines)
    return frame_table(sample, table.columns), {
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


def check(cfg: Stage2Config) -> None:
    if cfg.epochs < 1 or cfg.threads < 1 or not cfg.sigma > 0:
        raise FedFairError("stage2.epochs and stage2.threads must be >= 1 and stage2.sigma > 0")
    if cfg.batch_size < 2 or cfg.batch_size % 2:
        raise FedFairError(f"stage2.batch_size must be even and >= 2, got {cfg.batch_size}")
    if cfg.noise_seed is not None and (
        isinstance(cfg.noise_seed, bool) or not isinstance(cfg.noise_seed, int) or not 0 <= cfg.noise_seed < 2**32
    ):
        raise FedFairError(f"stage2.noise_seed must be null or an integer in [0, 2**32), got {cfg.noise_seed!r}")


SYNTHESIZER = Synthesizer(
    "dpctgan", privatize, keys=("epochs", "batch_size", "sigma", "threads", "noise_seed"), check=check
)
