"""``stage2=mst``: Private-PGM's MST (through snsynth) on ``mst_bins`` public equal-width bins per
feature (values come back as bin midpoints), ``s`` and ``y`` as two bins; it spends exactly (ε, δ).
Its Gaussian noise comes from OpenDP's secure sampler, so its output is not reproducible
(``reproducible: false`` in its report). What MST prints (its steps, "Fitting with … dimensions")
goes to this module's log at DEBUG, never to the console."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

from fedfair.errors import FedFairError
from fedfair.stage2 import Stage2Config, clipped_frame, frame_table, quiet
from fedfair.synth import Bounds, Synthesizer, Valid
from fedfair.table import Table

log = logging.getLogger(__name__)


def privatize(
    table: Table, bounds: Bounds, cfg: Stage2Config, progress: bool, valid: Valid | None
) -> tuple[Table, dict[str, Any]]:
    from snsynth import Synthesizer as SnSynthesizer
    from snsynth.transform import BinTransformer
    from snsynth.transform.table import TableTransformer

    frame, lower, upper = clipped_frame(table, bounds, cfg.bounds_margin)
    d = frame.shape[1] - 2
    bins = [BinTransformer(bins=cfg.mst_bins, lower=lo, upper=hi) for lo, hi in zip(lower[:d], upper[:d])]
    bins += [BinTransformer(bins=2, lower=0.0, upper=1.0) for _ in range(2)]  # s, y
    synth = SnSynthesizer.create("mst", epsilon=cfg.epsilon, delta=cfg.delta, verbose=True)
    printed = io.StringIO()
    with quiet(), contextlib.redirect_stdout(printed):  # "Fitting with 4398046511104 dimensions", ...
        synth.fit(frame, transformer=TableTransformer(bins), preprocessor_eps=0.0)
        sample = synth.sample(len(table))
    for line in printed.getvalue().splitlines():
        log.debug("MST: %s", line)
    return frame_table(sample, table.columns), {"epsilon": cfg.epsilon, "reproducible": False}


def check(cfg: Stage2Config) -> None:
    if cfg.mst_bins < 2:
        raise FedFairError(f"stage2.mst_bins must be >= 2, got {cfg.mst_bins}")


SYNTHESIZER = Synthesizer("mst", privatize, keys=("mst_bins",), check=check)
