"""Stage 2 ``gaussian``: the privacy map against the noise scales, the clipping and sensitivity
bound, the DP row count, and the sampler's faithfulness when the noise is negligible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedfair import cellgauss
from fedfair.stage2 import Stage2Config, privatize
from fedfair.table import Table

D = 4
NAMES = tuple(f"f{i}" for i in range(D))
BOUNDS = {name: (0.0, 1.0) for name in NAMES}
LO, HI = np.zeros(D), np.ones(D)


def biased_table(n: int, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    s = (rng.random(n) < 0.4).astype(int)
    x = np.clip(rng.normal(0.4 + 0.2 * s[:, None], 0.15, (n, D)), 0, 1)
    y = np.where(x[:, 0] + 0.1 * rng.standard_normal(n) > 0.5, 1, -1)
    return Table(x, s, y, NAMES)


def scaled_vector(table: Table, cal: cellgauss.Calibration) -> np.ndarray:
    centre, lo, hi, radius = cellgauss.box(LO, HI, 0.5)
    z = cellgauss.clip_rows(table.x, centre, lo, hi, radius)
    counts, sums, moment = cellgauss.statistics(z, table.s, table.y)
    return np.concatenate([counts / cal.sigma_count, sums.ravel() / cal.sigma_sum, moment / cal.sigma_moment])


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0, 8.0])
def test_epsilon_recomputed_from_noise_scales(epsilon: float) -> None:
    radius = cellgauss.box(LO, HI, 0.5)[3]
    cal = cellgauss.calibrate(epsilon, 1e-5, D, radius)
    # the sensitivity the three noise scales imply, independently of the calibration's μ
    mu = math.sqrt(1 / cal.sigma_count**2 + radius**2 / cal.sigma_sum**2 + radius**4 / cal.sigma_moment**2)
    assert mu == pytest.approx(cal.mu, rel=1e-12)
    assert cal.rho == pytest.approx(mu**2 / 2, rel=1e-9)  # the Gaussian mechanism's zCDP
    _, approx = cellgauss._measurement(cellgauss.vector_size(D), 1e-5)
    assert approx.map(mu)[0] <= epsilon  # never over budget ...
    assert cal.epsilon == pytest.approx(epsilon, rel=1e-6)  # ... and the budget is used
    classic = cal.rho + 2 * math.sqrt(cal.rho * math.log(1 / 1e-5))  # the textbook zCDP → (ε, δ) bound
    assert cal.epsilon <= classic


def test_clipping_bounds_every_row_and_the_sensitivity() -> None:
    rng = np.random.default_rng(1)
    centre, lo, hi, radius = cellgauss.box(LO, HI, 0.5)
    wild = np.vstack([rng.normal(0.5, 3.0, (500, D)), np.full((1, D), 1.5), np.full((1, D), np.nan)])
    z = cellgauss.clip_rows(wild, centre, lo, hi, radius)
    assert np.all(np.isfinite(z))
    assert np.max(np.linalg.norm(z, axis=1)) <= radius
    assert radius == pytest.approx(math.sqrt(D) / 2)
    # add/remove one row: the scaled statistics move by at most μ, whatever the row
    cal = cellgauss.calibrate(3.0, 1e-5, D, radius)
    base = biased_table(50)
    full = scaled_vector(base, cal)
    worst = 0.0
    for i in range(len(base)):
        keep = np.delete(np.arange(len(base)), i)
        worst = max(worst, float(np.linalg.norm(full - scaled_vector(base.subset(keep), cal))))
    corner = Table(np.ones((1, D)) * 1.5, [1], [1], NAMES)  # a row at the clip radius
    extended = scaled_vector(Table.concat([base, corner]), cal)
    worst = max(worst, float(np.linalg.norm(extended - full)))
    assert 0.5 * cal.mu < worst <= cal.mu


def test_noise_scale_matches_the_calibration() -> None:
    """Released counts scatter around the true counts with the calibrated σ (400 draws)."""
    table = biased_table(300)
    cal = cellgauss.calibrate(3.0, 1e-5, D, cellgauss.box(LO, HI, 0.5)[3])
    true = cellgauss.statistics(
        cellgauss.clip_rows(table.x, *cellgauss.box(LO, HI, 0.5)), table.s, table.y
    )[0]
    draws = np.array([cellgauss.release(table, LO, HI, 0.5, cal).counts for _ in range(400)])
    errors = (draws - true).ravel()
    assert abs(errors.mean()) < 4 * cal.sigma_count / math.sqrt(errors.size)
    assert errors.std() == pytest.approx(cal.sigma_count, rel=0.1)


def test_uploaded_row_count_is_a_dp_quantity() -> None:
    table = biased_table(2000)
    sizes = []
    for seed in range(4):
        out, report = privatize(table, BOUNDS, Stage2Config("gaussian", seed=seed))
        assert report.mechanism == "gaussian" and report.epsilon == pytest.approx(3.0, rel=1e-6)
        assert not report.single_label and set(np.unique(out.s)) == {0, 1}
        sizes.append(len(out))
    sigma = report.sigmas["count"]
    assert all(abs(n - 2000) < 2 * 6 * sigma for n in sizes)
    assert len(set(sizes)) > 1  # fresh noise each time: the exact N is not what is uploaded


def test_negligible_noise_keeps_cells_means_and_covariance() -> None:
    table = biased_table(4000)
    out, _ = privatize(table, BOUNDS, Stage2Config("gaussian", epsilon=500.0))
    assert abs(len(out) - len(table)) <= 5
    for s in (0, 1):
        for y in (-1, 1):
            real, synth = table.x[(table.s == s) & (table.y == y)], out.x[(out.s == s) & (out.y == y)]
            assert abs(len(synth) - len(real)) <= 3
            assert np.allclose(synth.mean(axis=0), real.mean(axis=0), atol=0.02)
    assert np.allclose(np.cov(out.x.T), np.cov(table.x.T), atol=0.006)


def test_bad_epsilon_is_one_line() -> None:
    with pytest.raises(Exception, match=r"stage2.epsilon must be > 0, got -1"):
        Stage2Config("gaussian", epsilon=-1.0)
    with pytest.raises(Exception, match=r"stage2.order must be before or after, got 'first'"):
        Stage2Config("gaussian", order="first")
