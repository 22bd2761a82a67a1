"""Stage 2: config validation, DP-CTGAN accounting and determinism, MST, and the "none" pass-through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import privacy_analysis

from fedfair.errors import FedFairError
from fedfair.stage2 import PrivacyReport, Stage2Config, privatize, upload_size
from fedfair.table import Table

NAMES = ("f0", "f1", "f2")
BOUNDS = {name: (0.0, 1.0) for name in NAMES}
# DP-CTGAN on 200 rows with batches of 50: q = 0.25, two noisy discriminator steps per batch.
FAST = {"epochs": 1, "batch_size": 50, "noise_seed": 7}  # noise_seed: a reproducible simulation


def make_table(n: int, seed: int = 0, s_rate: float = 0.3) -> Table:
    """Features mostly in [0, 1] (a few just outside, like stage-1 output), s ~ Bernoulli(s_rate)."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0.5, 0.25, (n, len(NAMES))), -0.1, 1.1)
    s = (rng.random(n) < s_rate).astype(int)
    y = np.where(rng.random(n) < 0.6 + 0.2 * s, 1, -1)
    return Table(x, s, y, NAMES)


@pytest.fixture(scope="module")
def dpctgan_run() -> tuple[Table, Table, PrivacyReport]:
    table = make_table(200)
    out, report = privatize(table, BOUNDS, Stage2Config("dpctgan", ns2_frac=0.5, **FAST))
    return table, out, report


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "dpctgan", "epsilon": 0.0}, "stage2.epsilon must be > 0, got 0.0"),
        ({"name": "ctgan"}, "unknown stage2 'ctgan'; choose one of: dpctgan, gaussian, mst, none"),
        ({"name": "mst", "delta": 1.0}, "stage2.delta must be in (0, 1), got 1.0"),
        ({"name": "mst", "ns2_frac": 1.5}, "stage2.ns2_frac=1.5 must be in (0, 1]"),
    ],
)
def test_config_errors_are_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(FedFairError) as err:
        Stage2Config(**kwargs)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_missing_bounds_and_unaffordable_epsilon_raise() -> None:
    table = make_table(200)
    with pytest.raises(FedFairError, match="public bounds for feature"):
        privatize(table, {"f0": (0.0, 1.0)}, Stage2Config("mst"))
    with pytest.raises(FedFairError, match="buys no DP-CTGAN epoch") as err:
        privatize(table, BOUNDS, Stage2Config("dpctgan", epsilon=0.5, **FAST))
    assert "\n" not in str(err.value)


def test_dpctgan_rows_columns_and_values(dpctgan_run: tuple[Table, Table, PrivacyReport]) -> None:
    table, out, report = dpctgan_run
    assert len(out) == 200  # N rows are sampled; the client uploads the first N_s2 of them
    assert upload_size(len(out), Stage2Config("dpctgan", ns2_frac=0.5)) == 100
    assert upload_size(len(out), Stage2Config("none", ns2_frac=0.5)) == 200
    assert out.feature_names == table.feature_names
    assert set(np.unique(out.s)) <= {0, 1} and set(np.unique(out.y)) <= {-1, 1}
    assert np.all((out.x >= -0.5) & (out.x <= 1.5))  # [0, 1] widened by the default margin 0.5
    assert report.mechanism == "dpctgan" and report.epochs == 1
    assert report.single_label == bool(np.all(out.y == out.y[0]))


def test_dpctgan_epsilon_is_recomputed_with_opacus(
    dpctgan_run: tuple[Table, Table, PrivacyReport],
) -> None:
    _, _, report = dpctgan_run
    q, steps = 50 / 200, 2 * (200 // 50)  # one epoch, two discriminator steps per batch
    alphas = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = privacy_analysis.compute_rdp(q, 5.0, steps, alphas)
    expected, _ = privacy_analysis.get_privacy_spent(alphas, rdp, 1e-5)
    assert (report.sample_rate, report.steps, report.noise_multiplier) == (q, steps, 5.0)
    assert report.epsilon == pytest.approx(expected, rel=1e-12)
    assert 0 < report.epsilon <= 3.0
    assert report.to_dict()["epsilon"] == report.epsilon


def test_dpctgan_stops_within_the_budget() -> None:
    # ε after 1, 2, 3 epochs is ≈ 0.62, 0.87, 1.07: a budget of 1 buys two epochs, not three.
    _, report = privatize(make_table(200), BOUNDS, Stage2Config("dpctgan", epsilon=1.0, batch_size=50))
    assert report.epochs == 2 and report.steps == 16
    assert 0.8 < report.epsilon <= 1.0


def test_dpctgan_is_deterministic_per_seed_and_restores_threads(
    dpctgan_run: tuple[Table, Table, PrivacyReport],
) -> None:
    table, first, _ = dpctgan_run
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # the fit runs on cfg.threads = 1, then restores this
    np_state = np.random.get_state()[1].copy()
    try:
        again, _ = privatize(table, BOUNDS, Stage2Config("dpctgan", ns2_frac=0.5, **FAST))
        other, _ = privatize(table, BOUNDS, Stage2Config("dpctgan", ns2_frac=0.5, seed=1, **{**FAST, "noise_seed": 8}))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert np.array_equal(first.to_array(), again.to_array())
    assert not np.array_equal(first.to_array(), other.to_array())


def test_dpctgan_noise_is_not_reproducible_without_a_noise_seed() -> None:
    table = make_table(200)
    secure = Stage2Config("dpctgan", ns2_frac=0.5, epochs=1, batch_size=50)
    first, report = privatize(table, BOUNDS, secure)
    second, _ = privatize(table, BOUNDS, secure)
    assert report.reproducible is False
    assert not np.array_equal(first.to_array(), second.to_array())


def test_noise_seed_is_checked() -> None:
    with pytest.raises(Exception, match=r"stage2.noise_seed must be null or an integer in \[0, 2\*\*32\), got -3"):
        Stage2Config("dpctgan", noise_seed=-3)


@pytest.mark.slow
def test_mst_within_bounds_keeps_s_rate_and_reports_epsilon() -> None:
    table = make_table(2000, seed=1)
    out, report = privatize(table, BOUNDS, Stage2Config("mst", epsilon=3.0, bounds_margin=0.0))
    assert len(out) == 2000 and out.feature_names == table.feature_names
    assert np.all((out.x >= 0.0) & (out.x <= 1.0))
    assert abs(out.s.mean() - table.s.mean()) < 0.1
    assert report.mechanism == "mst" and report.epsilon == 3.0 and report.delta == 1e-5


def test_none_returns_the_input_unchanged() -> None:
    table = Table(np.zeros((4, 3)), np.array([0, 1, 0, 1]), np.ones(4), NAMES)
    out, report = privatize(table, {}, Stage2Config("none", ns2_frac=0.5))
    assert out is table
    assert report.mechanism == "none" and report.single_label
    assert report.to_dict()["epsilon"] is None
