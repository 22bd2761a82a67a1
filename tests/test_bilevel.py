"""Stage 1 (eq. 12–15): the hypergradient against finite differences, the solvers agree, the
(ŝ, ŷ) choice, determinism and clear errors. The fairness gain on real data is in test_fairness_gain."""

import numpy as np
import pytest

from fedfair import bilevel, model
from fedfair.errors import FedFairError
from fedfair.table import Table


def _real(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    s = (rng.uniform(size=n) < 0.5).astype(int)
    y = np.where(x @ np.array([1.0, -1.0, 0.5])[:d] + s - 0.5 + rng.normal(scale=0.5, size=n) > 0, 1, -1)
    return Table(x, s, y, tuple(f"f{i}" for i in range(d)))


@pytest.mark.parametrize("penalty", ["sp", "eo", "sp+eo"])
def test_hypergradient_matches_finite_differences(penalty):
    real = _real()
    cfg = bilevel.Stage1Config(penalty=penalty, rho=10.0, lam_theta=1e-2, lam_x=1.0, progress=False)
    rows = np.arange(25)
    x_hat = real.x[rows] + np.random.default_rng(1).normal(scale=0.1, size=(25, 3))
    prob = bilevel._Problem(real, real.s[rows], real.y[rows], x_hat, cfg)

    def value(xh):
        theta = model.newton(prob.z_hat(xh), prob.y_hat, cfg.lam_theta, tol=1e-12)[0]
        return prob.objective(xh, theta)[0]

    theta, hess = model.newton(prob.z_hat(x_hat), prob.y_hat, cfg.lam_theta, tol=1e-12)
    grad = prob.hypergradient(x_hat, theta, hess)
    fd = np.zeros_like(x_hat)
    h = 1e-5
    for idx in np.ndindex(*x_hat.shape):
        e = np.zeros_like(x_hat)
        e[idx] = h
        fd[idx] = (value(x_hat + e) - value(x_hat - e)) / (2 * h)
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-4


def test_penalty_lowers_the_covariance_on_the_real_data():
    real = _real(n=200, d=3, seed=3)
    base = bilevel.synthesize(real, bilevel.Stage1Config(rho=0.0, k_max=150, progress=False))
    fair = bilevel.synthesize(real, bilevel.Stage1Config(rho=1000.0, k_max=150, progress=False))
    c = bilevel.penalty_vectors(real, "sp")[0]
    assert abs(c @ fair.theta) < 0.2 * abs(c @ base.theta)
    assert fair.history["cov"][-1] < fair.history["cov"][0]


def test_newton_and_lbfgs_inner_solvers_give_the_same_synthetic_set():
    real = _real(n=120)
    kw = dict(rho=100.0, k_max=30, progress=False)
    fast = bilevel.synthesize(real, bilevel.Stage1Config(inner="newton", **kw))
    faithful = bilevel.synthesize(real, bilevel.Stage1Config(inner="lbfgs", **kw))
    np.testing.assert_allclose(fast.table.x, faithful.table.x, atol=1e-3)
    np.testing.assert_allclose(fast.theta, faithful.theta, atol=2e-3)


def test_same_seed_same_result_and_uniform_init_depends_on_seed():
    real = _real(n=80)
    a = bilevel.synthesize(real, bilevel.Stage1Config(init="uniform", seed=1, k_max=20, progress=False))
    b = bilevel.synthesize(real, bilevel.Stage1Config(init="uniform", seed=1, k_max=20, progress=False))
    c = bilevel.synthesize(real, bilevel.Stage1Config(init="uniform", seed=2, k_max=20, progress=False))
    np.testing.assert_array_equal(a.table.x, b.table.x)
    assert not np.allclose(a.table.x, c.table.x)


def test_ns1_keeps_the_pair_proportions():
    real = _real(n=200, seed=5)
    res = bilevel.synthesize(real, bilevel.Stage1Config(ns1=0.25, k_max=2, progress=False))
    assert len(res.table) == 50
    for s in (0, 1):
        for y in (-1, 1):
            want = np.mean((real.s == s) & (real.y == y)) * 50
            got = np.sum((res.table.s == s) & (res.table.y == y))
            assert abs(got - want) < 1
    assert len(bilevel.synthesize(real, bilevel.Stage1Config(k_max=1, progress=False)).table) == 200


def test_degenerate_clients_get_the_documented_fallback(caplog):
    real = _real()
    one_group = Table(real.x, np.ones(len(real), dtype=int), real.y, real.feature_names)
    fair = bilevel.synthesize(one_group, bilevel.Stage1Config(rho=1000.0, k_max=20, progress=False))
    plain = bilevel.synthesize(one_group, bilevel.Stage1Config(rho=0.0, k_max=20, progress=False))
    np.testing.assert_array_equal(fair.table.x, plain.table.x)  # the penalty vanishes
    assert "covariance penalty is 0" in caplog.text
    one_label = Table(real.x, real.s, np.ones(len(real), dtype=int), real.feature_names)
    res = bilevel.synthesize(one_label, bilevel.Stage1Config(k_max=20, progress=False))
    np.testing.assert_array_equal(res.table.x, real.x)  # the initial set, unchanged
    assert "no inner model exists" in caplog.text


def test_bad_stage1_input_is_a_one_line_error():
    real = _real()
    with pytest.raises(FedFairError, match="empty") as err:
        bilevel.synthesize(real.subset(np.arange(0)), bilevel.Stage1Config(progress=False))
    assert "\n" not in str(err.value)
    with pytest.raises(FedFairError, match="penalty"):
        bilevel.Stage1Config(penalty="xx")
    with pytest.raises(FedFairError, match="ns1"):
        bilevel.synthesize(real, bilevel.Stage1Config(ns1=1.0e6, progress=False))
