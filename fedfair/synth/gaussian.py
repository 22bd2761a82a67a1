"""``stage2=gaussian``: one Gaussian mechanism (OpenDP) releases the (s, y)-cell counts, cell feature
sums and one pooled second moment; rows are sampled from them (:mod:`fedfair.cellgauss`). It keeps the
joint (x, s, y) structure the logistic model and the fairness penalty depend on, takes well under a
second, and its row count is itself DP (round of the noisy counts), never the exact N. Its noise
comes from OpenDP's secure sampler, so its output is not reproducible."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fedfair import cellgauss
from fedfair.stage2 import Stage2Config, public_box
from fedfair.synth import Bounds, Synthesizer, Valid
from fedfair.table import Table


@functools.cache
def _calibration(epsilon: float, delta: float, d: int, radius: float) -> cellgauss.Calibration:
    return cellgauss.calibrate(epsilon, delta, d, radius)


def privatize(
    table: Table, bounds: Bounds, cfg: Stage2Config, progress: bool, valid: Valid | None
) -> tuple[Table, dict[str, Any]]:
    lo, hi = public_box(table, bounds)
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


SYNTHESIZER = Synthesizer("gaussian", privatize)
