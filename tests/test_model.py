"""The logistic model (eq. 10, 12, 16): exact gradients, both solvers agree, clear errors."""

import numpy as np
import pytest

from fedfair import model
from fedfair.errors import FedFairError
from fedfair.table import Table


def _problem(n=300, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    s = (rng.uniform(size=n) < 0.4).astype(int)
    y = np.where(x @ rng.normal(size=d) + 0.8 * s - 0.3 + rng.normal(scale=0.7, size=n) > 0, 1, -1)
    return Table(x, s, y, tuple(f"f{i}" for i in range(d)))


def test_gradient_and_hessian_match_finite_differences():
    t = _problem()
    z, y = model.design(t), t.y.astype(float)
    theta = np.random.default_rng(1).normal(size=z.shape[1])
    lam = 0.5
    h = 1e-6
    eye = np.eye(len(theta))
    fd_grad = [(model.loss(theta + h * e, z, y, lam) - model.loss(theta - h * e, z, y, lam)) / (2 * h) for e in eye]
    fd_hess = [(model.gradient(theta + h * e, z, y, lam) - model.gradient(theta - h * e, z, y, lam)) / (2 * h) for e in eye]
    np.testing.assert_allclose(model.gradient(theta, z, y, lam), fd_grad, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.hessian(theta, z, lam), np.array(fd_hess), rtol=1e-5, atol=1e-8)


def test_newton_reaches_the_minimiser_and_lbfgs_agrees():
    t = _problem()
    z, y = model.design(t), t.y.astype(float)
    theta, hess = model.newton(z, y, 1e-4)
    assert np.max(np.abs(model.gradient(theta, z, y, 1e-4))) < 1e-9
    np.testing.assert_allclose(hess, model.hessian(theta, z, 1e-4), rtol=1e-6)
    theta_lbfgs = model.lbfgs(z, y, 1e-4, max_iter=500)
    np.testing.assert_allclose(theta_lbfgs, theta, atol=1e-3)


def test_newton_converges_where_the_loss_is_flat_to_rounding(monkeypatch):
    """Small problems whose gradient is still above tol when ℓ_r stops changing in floating point:
    each solve ends at tol within a few Newton steps (the line search once backtracked ~30 times per
    step up to max_iter there: thousands of evaluations)."""
    calls = []
    pieces = model._pieces
    monkeypatch.setattr(model, "_pieces", lambda *a: (calls.append(1), pieces(*a))[1])
    for seed in range(40):
        t = _problem(n=30, d=3, seed=seed)
        z, y = model.design(t), t.y.astype(float)
        if np.all(y == y[0]):
            continue
        calls.clear()
        theta, _ = model.newton(z, y, 1e-2)
        assert np.max(np.abs(model.gradient(theta, z, y, 1e-2))) <= 1e-10, seed
        assert len(calls) <= 30, (seed, len(calls))


def test_regularisation_uses_lambda_over_n_squared():
    t = _problem(d=3)  # n = dim(a) = 4
    z = model.design(t)
    theta = np.ones(z.shape[1])
    diff = model.loss(theta, z, t.y, 2.0) - model.loss(theta, z, t.y, 0.0)
    assert diff == pytest.approx(2.0 / (2 * 4**2) * theta @ theta)


def test_predict_is_the_sign_of_the_decision_value():
    t = _problem()
    theta = model.fit(t)
    d = model.decision(theta, t)
    assert set(np.unique(model.predict(theta, t))) <= {-1, 1}
    np.testing.assert_array_equal(model.predict(theta, t) == 1, d > 0)
    majority = max(np.mean(t.y == 1), np.mean(t.y == -1))
    assert (model.predict(theta, t) == t.y).mean() > majority + 0.05


def test_single_class_and_wrong_width_are_clear_errors():
    t = _problem()
    one = Table(t.x, t.s, np.ones(len(t), dtype=int), t.feature_names)
    with pytest.raises(FedFairError, match="all 300 rows have label \\+1"):
        model.fit(one)
    with pytest.raises(FedFairError, match="weights"):
        model.decision(np.zeros(3), t)
