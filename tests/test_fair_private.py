"""Fairness survives differential privacy on real data: Law School, 2 IID clients, ε = 3, the
Gaussian stage 2 in both orders, with the SP penalty against none (ρ = 0): the default run (DP first,
ρ = 1000) and the paper's order at ρ = 100. (DP first at ρ = 100 passes ≥ 98.5 % of the rows in 3 of
15 noise draws, docs/RESULTS.md; at ρ = 1000 in none.)

OpenDP's noise cannot be seeded, and one noise draw in ~15 leaves the end-to-end order's |SPD| above
.10 (docs/RESULTS.md: .033 ± .033 over 15 draws). So that the test is deterministic, OpenDP's sampler
is replaced here — and only here — by a seeded Gaussian of exactly the calibrated scale (unit scale
on the scaled vector, as OpenDP's); ``tests/test_cellgauss.py`` checks that OpenDP's own draws have
that scale. The mean over three seeded draws is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedfair import cellgauss
from fedfair.config import compose_config
from fedfair.metrics import majority_rate
from fedfair.pipeline import Experiment, run_oneshot
from fedfair.results import CONSTANT_RATE

pytestmark = pytest.mark.slow


class SeededUnitGaussian:
    """OpenDP's measurement with its sampler replaced by a seeded standard normal of the same scale."""

    def __init__(self, real, rng: np.random.Generator) -> None:
        self.real, self.rng = real, rng

    def __call__(self, vector: list[float]) -> list[float]:
        return (np.asarray(vector) + self.rng.standard_normal(len(vector))).tolist()

    def map(self, d_in: float) -> float:  # the privacy map is OpenDP's own
        return self.real.map(d_in)


def one_shot(order: str, rho: float, draw: int, monkeypatch) -> dict:
    rng = np.random.default_rng(draw)
    real = cellgauss._measurement

    def seeded(size: int, delta: float):
        gaussian, approx = real(size, delta)
        return SeededUnitGaussian(gaussian, rng), approx

    monkeypatch.setattr(cellgauss, "_measurement", seeded)
    exp = Experiment(compose_config(["stage2=gaussian", f"stage2.order={order}", f"stage1.rho={rho}",
                                     "progress=false", "audit=false"]))
    return run_oneshot(exp, exp.load())


@pytest.mark.parametrize("order, rho, bound", [("before", 1000.0, 0.05), ("after", 100.0, 0.03)])
def test_fairness_survives_the_gaussian_stage2(order: str, rho: float, bound: float, monkeypatch) -> None:
    plain = one_shot(order, 0.0, 0, monkeypatch)
    fair = [one_shot(order, rho, draw, monkeypatch) for draw in range(3)]
    majority = majority_rate(plain["counts"])  # 0.89: always predicting "pass"
    for run in (plain, *fair):
        m = run["metrics"]
        assert 1 - CONSTANT_RATE < m["selection_rate"] < CONSTANT_RATE  # not a constant model
        assert m["sel_rate_s0"] < CONSTANT_RATE  # the disadvantaged group is not all "pass" either
        assert m["accuracy"] >= majority - 0.01
        assert not any(c["privacy"]["single_label"] for c in run["per_client"])
        assert all(c["privacy"]["epsilon"] == pytest.approx(3.0, rel=1e-6) for c in run["per_client"])
    assert plain["metrics"]["abs_spd"] >= 0.12  # the bias is still there without the penalty ...
    assert np.mean([r["metrics"]["abs_spd"] for r in fair]) <= bound  # ... and the penalty's fairness survives DP
