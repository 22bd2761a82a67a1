"""The gap penalties of stage 1 (``sp_gap``, ``eo_gap``): ∇_θP and the hypergradient against
central finite differences, the covariance penalties untouched by ``gamma``, the prox in units of
each column's spread (``prox_spread``), the anchor on θ's feature coefficients (``anchor``),
the best iterate (``best_iterate``), the last one by default, the projection onto the box, the
degenerate-client fallback, config errors, and the fairness gain on real Adult rows."""

import numpy as np
import pytest

from fedfair import bilevel, metrics, model, pipeline
from fedfair.data import load_dataset
from fedfair.errors import FedFairError
from fedfair.partition import client_data
from fedfair.table import Table


def _real(n=80, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    s = (rng.uniform(size=n) < 0.4).astype(int)
    y = np.where(x @ np.array([1.0, -1.0, 0.5])[:d] + s - 0.5 + rng.normal(scale=0.5, size=n) > 0, 1, -1)
    return Table(x, s, y, tuple(f"f{i}" for i in range(d)))


def _problem(penalty, gamma=50.0, prox=0.0, spread=False, anchor=0.0):
    real = _real()
    cfg = bilevel.Stage1Config(penalty=penalty, gamma=gamma, prox=prox, prox_spread=spread, anchor=anchor,
                               lam_theta=1e-2, lam_x=1.0, progress=False)
    rows = np.arange(30)
    x_hat = real.x[rows] + np.random.default_rng(1).normal(scale=0.1, size=(30, 3))
    # x̂₀ = the real rows, x̂ away from them: the prox and the anchor have a gradient at x̂
    return bilevel._Problem(real, real.s[rows], real.y[rows], real.x[rows], cfg), x_hat, cfg


def _inner(prob, x_hat, lam):
    """θ(x̂) to machine precision: Newton's solve, then three plain Newton steps (its line search
    stops at ~1e-8, where ℓ_r stops changing in floating point; finite differences need more)."""
    z = prob.z_hat(x_hat)
    theta = model.newton(z, prob.y_hat, lam)[0]
    for _ in range(3):
        theta = theta - np.linalg.solve(model.hessian(theta, z, lam), model.gradient(theta, z, prob.y_hat, lam))
    return theta, model.hessian(theta, z, lam)


def _central(f, x, h=1e-5):
    fd = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return fd


@pytest.mark.parametrize("penalty,anchor", [("sp_gap", 0.0), ("eo_gap", 0.0), ("sp_gap", 2.0), ("sp", 2.0)])
def test_theta_gradient_matches_finite_differences(penalty, anchor):
    prob, x_hat, cfg = _problem(penalty, anchor=anchor)
    theta = np.random.default_rng(2).normal(size=x_hat.shape[1] + 2)
    fd = _central(lambda t: prob.objective(x_hat, t)[0], theta)
    np.testing.assert_allclose(prob.theta_gradient(theta), fd, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("penalty,prox,spread,anchor", [
    ("sp_gap", 0.0, False, 0.0), ("eo_gap", 0.0, False, 0.0), ("sp_gap", 5.0, False, 0.0), ("sp", 5.0, False, 0.0),
    ("sp_gap", 0.05, True, 0.0), ("sp_gap", 5.0, False, 2.0), ("eo_gap", 0.0, False, 2.0), ("sp", 0.0, False, 2.0)])
def test_hypergradient_matches_finite_differences(penalty, prox, spread, anchor):
    prob, x_hat, cfg = _problem(penalty, prox=prox, spread=spread, anchor=anchor)

    def value(xh):
        return prob.objective(xh, _inner(prob, xh, cfg.lam_theta)[0])[0]

    theta, hess = _inner(prob, x_hat, cfg.lam_theta)
    assert abs(prob.objective(x_hat, theta)[2][0]) > 0.05  # the gap (or covariance) is there to be penalised
    grad = prob.hypergradient(x_hat, theta, hess)
    fd = _central(value, x_hat)
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-6


def test_the_gap_is_the_soft_spd_and_eod_of_the_real_rows():
    real = _real()
    theta = np.random.default_rng(3).normal(size=5)
    p = 1 / (1 + np.exp(-model.design(real) @ theta))
    pos = real.y == 1
    want = {"sp": p[real.s == 1].mean() - p[real.s == 0].mean(),
            "eo": p[pos & (real.s == 1)].mean() - p[pos & (real.s == 0)].mean()}
    for kind in ("sp", "eo"):
        assert bilevel.gap_weights(real, kind) @ p == pytest.approx(want[kind], rel=1e-12)


def test_null_gamma_and_prox_resolve_per_penalty():
    assert (bilevel.Stage1Config(penalty="sp_gap").gap_weight, bilevel.Stage1Config(penalty="eo_gap").gap_weight) == (
        50.0, 1000.0)
    assert bilevel.Stage1Config(penalty="sp_gap").prox_weight == bilevel.Stage1Config(penalty="eo_gap").prox_weight == 100.0
    assert bilevel.Stage1Config(penalty="sp").prox_weight == 0.0  # the paper's penalty stays as it was
    assert bilevel.Stage1Config(penalty="eo_gap", gamma=5, prox=0).gap_weight == 5.0
    anchors = [bilevel.Stage1Config(penalty=p).anchor_weight for p in ("sp_gap", "eo_gap")]
    assert anchors == [0.01, 0.01]
    assert bilevel.Stage1Config(penalty="sp+eo").anchor_weight == 0.0


def test_the_anchor_holds_thetas_feature_coefficients_near_the_initial_sets():
    """θ₀ is the feature part of the initial set's inner model; the anchor is a term of P in θ alone,
    and a strong anchor keeps θ(x̂)'s feature coefficients nearer θ₀ than none does."""
    real = _real(n=200, seed=3)
    kw = dict(penalty="sp_gap", gamma=100.0, prox=0.0, lr=0.05, k_max=100, progress=False)
    prob = bilevel._Problem(real, real.s, real.y, real.x, bilevel.Stage1Config(anchor=3.0, **kw))
    np.testing.assert_allclose(prob.theta0, model.fit(real, 1e-4)[:3], atol=1e-6)
    theta = np.random.default_rng(5).normal(size=5)
    free = bilevel._Problem(real, real.s, real.y, real.x, bilevel.Stage1Config(anchor=0.0, **kw))
    assert free.theta0 is None
    shift = theta[:3] - prob.theta0
    assert prob.objective(real.x, theta)[0] - free.objective(real.x, theta)[0] == pytest.approx(1.5 * shift @ shift)
    runs = {a: bilevel.synthesize(real, bilevel.Stage1Config(anchor=a, **kw)) for a in (0.0, 3.0)}
    drift = {a: np.linalg.norm(r.theta[:3] - prob.theta0) for a, r in runs.items()}
    assert drift[3.0] < 0.5 * drift[0.0]
    assert runs[3.0].history["gap"][-1] < 0.5 * runs[3.0].history["gap"][0]  # the gap still shrinks


def test_prox_is_measured_in_units_of_each_columns_spread():
    """Rescaling a feature column (and its moves) leaves the prox term unchanged; a column constant on
    the client gets the floor 1/N instead of a division by zero."""
    real = _real(n=100)
    x = real.x.copy()
    x[:, 2] = 0.0
    real = Table(x, real.s, real.y, real.feature_names)
    w = bilevel.prox_weights(real)
    np.testing.assert_allclose(w[:2], 1 / real.x[:, :2].var(axis=0))
    assert w[2] == 100.0
    move = np.random.default_rng(4).normal(scale=0.05, size=x.shape)
    scaled_x = x * np.array([10.0, 1.0, 1.0])
    scaled = Table(scaled_x, real.s, real.y, real.feature_names)
    cfg = bilevel.Stage1Config(penalty="sp_gap", prox=7.0, prox_spread=True, lam_x=0.0, progress=False)
    prox = []
    for table, m in ((real, move), (scaled, move * np.array([10.0, 1.0, 1.0]))):
        prob = bilevel._Problem(table, table.s, table.y, table.x, cfg)
        theta = np.zeros(x.shape[1] + 2)
        prox.append(prob.objective(table.x + m, theta)[0] - prob.objective(table.x, theta)[0])
    assert prox[0] > 0 and prox[0] == pytest.approx(prox[1], rel=1e-12)
    assert prox[0] == pytest.approx(0.5 * 7.0 * np.sum(move**2 * w), rel=1e-12)  # summed over rows, not averaged


def test_the_gap_penalties_return_the_best_recorded_iterate():
    """An lr large enough to make Adam oscillate: the returned set is the recorded one of least P,
    with θ re-solved there (its P equals that minimum and is below the last iterate's)."""
    real = _real(n=200, seed=3)
    kw = dict(penalty="sp_gap", gamma=100.0, prox=1.0, lr=0.3, k_max=200, progress=False)
    best = bilevel.synthesize(real, bilevel.Stage1Config(best_iterate=True, **kw))
    last = bilevel.synthesize(real, bilevel.Stage1Config(**kw))
    trail = last.history["objective"]  # the same trajectory: best_iterate only changes what is returned
    np.testing.assert_array_equal(best.history["objective"][: len(trail)], trail)
    assert min(trail) < trail[-1] - 5e-3  # the oscillation this guards against: the last is not the best
    prob = bilevel._Problem(real, best.table.s, best.table.y, real.x, bilevel.Stage1Config(**kw))
    returned = prob.objective(best.table.x, best.theta)[0]
    assert returned == pytest.approx(min(trail), rel=1e-6) and best.history["objective"][-1] == returned
    assert best.history["step"][-1] == last.history["step"][trail.index(min(trail))] < last.history["step"][-1]
    np.testing.assert_allclose(best.theta, model.fit(best.table), atol=1e-6)


@pytest.mark.parametrize("penalty", ["sp", "eo", "sp+eo", "sp_gap"])
def test_by_default_the_last_iterate_is_returned(penalty):
    real = _real(n=100)
    res = bilevel.synthesize(real, bilevel.Stage1Config(penalty=penalty, lr=0.3, k_max=30, progress=False))
    assert res.history["step"][-2:] == [29, 30]
    prob = bilevel._Problem(real, res.table.s, res.table.y, real.x, bilevel.Stage1Config(penalty=penalty))
    assert prob.objective(res.table.x, res.theta)[0] == pytest.approx(res.history["objective"][-1], rel=1e-9)


def test_gamma_leaves_the_covariance_penalties_alone():
    real = _real(n=100)
    runs = [bilevel.synthesize(real, bilevel.Stage1Config(penalty="sp", gamma=g, k_max=20, progress=False))
            for g in (0.0, 1e6)]
    np.testing.assert_array_equal(runs[0].table.x, runs[1].table.x)
    assert "cov" in runs[0].history and "gap" not in runs[0].history


def test_gap_penalty_shrinks_the_gap_and_clip_keeps_the_box():
    real = _real(n=200, seed=3)
    kw = dict(penalty="sp_gap", prox=0.0, k_max=150, progress=False)
    base = bilevel.synthesize(real, bilevel.Stage1Config(gamma=0.0, **kw))
    fair = bilevel.synthesize(real, bilevel.Stage1Config(gamma=100.0, **kw))
    assert fair.history["gap"][-1] < 0.3 * base.history["gap"][-1]
    boxed = bilevel.synthesize(real, bilevel.Stage1Config(gamma=100.0, clip=True, **kw))
    assert boxed.table.x.min() >= 0.0 and boxed.table.x.max() <= 1.0
    assert fair.table.x.min() < 0.0 or fair.table.x.max() > 1.0  # without clip, x̂ leaves the box


def test_prox_keeps_the_set_near_its_start():
    real = _real(n=200, seed=3)
    runs = {p: bilevel.synthesize(real, bilevel.Stage1Config(penalty="sp_gap", prox=p, k_max=150, progress=False))
            for p in (0.0, 100.0)}
    moved = {p: np.abs(r.table.x - real.x).mean() for p, r in runs.items()}
    assert moved[100.0] < 0.5 * moved[0.0]


def test_a_client_without_a_group_gets_gamma_zero(caplog):
    real = _real()
    no_positive_s0 = Table(real.x, real.s, np.where(real.s == 0, -1, real.y), real.feature_names)
    cfg = dict(penalty="eo_gap", k_max=20, progress=False)
    fair = bilevel.synthesize(no_positive_s0, bilevel.Stage1Config(gamma=100.0, **cfg))
    plain = bilevel.synthesize(no_positive_s0, bilevel.Stage1Config(gamma=0.0, **cfg))
    np.testing.assert_array_equal(fair.table.x, plain.table.x)
    assert "eo_gap" in caplog.text and "gamma=0" in caplog.text


def test_bad_gap_settings_are_one_line_errors():
    with pytest.raises(FedFairError, match=r"^stage1.gamma must be a number >= 0 or null, got -1.0$"):
        bilevel.Stage1Config(penalty="sp_gap", gamma=-1.0)
    with pytest.raises(FedFairError, match=r"^stage1.prox must be a number >= 0 or null, got -0.5$"):
        bilevel.Stage1Config(prox=-0.5)
    with pytest.raises(FedFairError, match=r"^stage1.anchor must be a number >= 0 or null, got -1$"):
        bilevel.Stage1Config(penalty="sp_gap", anchor=-1)
    with pytest.raises(FedFairError, match="sp_gap or eo_gap"):
        bilevel.Stage1Config(penalty="gap")

    section = {"name": "bilevel", "penalty": "sp_gap"}
    cfg = {"dataset": {"name": "synthetic"}, "partition": {"method": "iid"}, "strategy": {"name": "oneshot"},
           "stage2": {"name": "none"}, "num_clients": 2, "seed": 0}
    with pytest.raises(FedFairError, match=r"^stage1.gamma must be a number or null, got 'high'$"):
        pipeline.Experiment({**cfg, "stage1": {**section, "gamma": "high"}})
    for key in ("clip", "prox_spread", "best_iterate"):
        with pytest.raises(FedFairError, match=rf"stage1.{key} must be true or false"):
            pipeline.Experiment({**cfg, "stage1": {**section, key: 1}})


@pytest.fixture(scope="module")
def adult():
    """2,500 training rows of an IID Adult client, and all its 4,522 test rows (fewer make |EOD|
    noisy: it rests on the few s = 0 rows with y = +1)."""
    train, test = client_data(load_dataset("adult"), "iid", 2, 0, seed=0)
    rows = np.random.default_rng(0).choice(len(train), 2500, replace=False)
    return train.subset(np.sort(rows)), test


def _score(train, test, **kw):
    res = bilevel.synthesize(train, bilevel.Stage1Config(k_max=300, progress=False, **kw))
    theta = model.fit(res.table)
    return metrics.evaluate(test.y, model.predict(theta, test), test.s, model.decision(theta, test))


@pytest.mark.slow
def test_gap_penalties_cut_the_gaps_on_real_adult_rows(adult):
    train, test = adult
    majority = max(np.mean(test.y == 1), np.mean(test.y == -1))
    base = _score(train, test, rho=0.0)
    sp = _score(train, test, penalty="sp_gap")
    eo = _score(train, test, penalty="eo_gap")  # the defaults: gamma and prox null
    assert base["abs_spd"] > 0.12 and base["abs_eod"] > 0.08  # Adult is biased against s = 0
    assert sp["abs_spd"] < 0.4 * base["abs_spd"]
    assert eo["abs_eod"] < 0.5 * base["abs_eod"]
    for res in (sp, eo):
        assert res["accuracy"] > majority + 0.03 and res["accuracy"] > base["accuracy"] - 0.03
        assert 0.05 < res["selection_rate"] < 0.95 and res["sel_rate_s0"] > 0  # not a constant model
