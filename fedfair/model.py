"""Regularised logistic regression, the one model of the paper (eq. 10, 12 and 16).

θ acts on z = (a, 1) = (x, s, 1): the features, the sensitive attribute and an intercept. The loss is

    ℓ_r(θ) = (1/N) Σ log(1 + exp(−y_i z_iᵀθ)) + λ/(2n²) ‖θ‖²,

with n = dim(a) as in the paper (the intercept is regularised with the rest). It is strictly convex,
so :func:`newton` (exact Hessian, Armijo backtracking) finds the unique minimiser in a handful of
iterations; :func:`lbfgs` is the paper's solver (L-BFGS, strong Wolfe line search), kept for
faithful reproduction.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from fedfair import schema
from fedfair.errors import FedFairError
from fedfair.table import Table

LAMBDA_THETA = schema.defaults("strategy", "oneshot")["lam_theta"]  # the server model's (eq. 16)
DECREMENT_FLOOR = 1e-24  # below it, a Newton step changes ℓ_r by less than rounding
FLAT = 1e-15  # relative change of ℓ_r within rounding (a few ulps)


def design(table: Table) -> np.ndarray:
    """The matrix of rows z_i = (x_i, s_i, 1)."""
    return np.hstack([table.a, np.ones((len(table), 1))])


def reg_coef(lam: float, z: np.ndarray) -> float:
    """λ/n² with n = dim(a) = z.shape[1] − 1 (eq. 12)."""
    return lam / (z.shape[1] - 1) ** 2


def loss(
    theta: np.ndarray, z: np.ndarray, y: np.ndarray, lam: float = 0.0, weights: np.ndarray | None = None
) -> float:
    """ℓ_r(θ) of eq. 12 (ℓ of eq. 10 when ``lam`` = 0); ``weights`` w_i, if given, weight the rows'
    terms: (1/N) Σ w_i log(1 + exp(−y_i z_iᵀθ)) (Kamiran & Calders reweighing, ``fedfair.local``)."""
    terms = np.logaddexp(0.0, -y * (z @ theta))
    data = np.mean(terms) if weights is None else np.mean(weights * terms)
    return float(data + 0.5 * reg_coef(lam, z) * theta @ theta)


def gradient(
    theta: np.ndarray, z: np.ndarray, y: np.ndarray, lam: float = 0.0, weights: np.ndarray | None = None
) -> np.ndarray:
    """∇ℓ_r(θ) = (1/N) Σ w_i (σ(z_iᵀθ) − (1 + y_i)/2) z_i + λ/n² θ (w_i = 1 unless ``weights``)."""
    residual = expit(z @ theta) - (y + 1) / 2
    if weights is not None:
        residual = weights * residual
    return z.T @ residual / len(y) + reg_coef(lam, z) * theta


def hessian(theta: np.ndarray, z: np.ndarray, lam: float = 0.0) -> np.ndarray:
    return _hessian_at(expit(z @ theta), z, reg_coef(lam, z))


def _hessian_at(p: np.ndarray, z: np.ndarray, coef: float) -> np.ndarray:
    """∇²ℓ_r = (1/N) Σ p_i (1 − p_i) z_i z_iᵀ + λ/n² I, with p = σ(zᵀθ)."""
    h = (z.T * (p * (1.0 - p))) @ z / z.shape[0]
    h[np.diag_indices_from(h)] += coef
    return h


def _check(z: np.ndarray, y: np.ndarray) -> None:
    if z.shape[0] == 0:
        raise FedFairError("cannot fit a logistic model on an empty table")
    if np.all(y == y[0]):
        label = "+1" if y[0] == 1 else "-1"
        raise FedFairError(f"cannot fit a logistic model: all {len(y)} rows have label {label}")


def _pieces(
    theta: np.ndarray, z: np.ndarray, y: np.ndarray, lam: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """ℓ_r, ∇ℓ_r and ∇²ℓ_r at θ."""
    return loss(theta, z, y, lam), gradient(theta, z, y, lam), hessian(theta, z, lam)


def newton_track(
    theta: np.ndarray, z: np.ndarray, y: np.ndarray, lam: float, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow the minimiser from a nearby warm start: full Newton steps (no line search) while each
    one shrinks ‖∇ℓ_r‖_∞, until it is ≤ tol; if a step does not shrink it (near-separable data can
    make undamped Newton overshoot), finish with the damped :func:`newton`. Returns θ, the Hessian
    of the last step and σ(zᵀθ). Used to track the inner minimiser while the synthetic rows move a
    little (``fedfair.bilevel``)."""
    n = len(y)
    y01 = (y + 1) / 2
    coef = reg_coef(lam, z)
    p = expit(z @ theta)
    g = z.T @ (p - y01) / n + coef * theta
    for _ in range(max_iter):
        h = _hessian_at(p, z, coef)
        cand = theta - np.linalg.solve(h, g)
        p_cand = expit(z @ cand)
        g_cand = z.T @ (p_cand - y01) / n + coef * cand
        if np.max(np.abs(g_cand)) >= np.max(np.abs(g)):
            theta, h = newton(z, y, lam, theta, max_iter, tol)
            return theta, h, expit(z @ theta)
        theta, p, g = cand, p_cand, g_cand
        if np.max(np.abs(g)) <= tol:
            break
    return theta, h, p


def newton(
    z: np.ndarray,
    y: np.ndarray,
    lam: float = LAMBDA_THETA,
    theta0: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ℓ_r by Newton's method with backtracking; stops when ‖∇ℓ_r‖_∞ ≤ tol or the Newton
    decrement ∇ℓ_rᵀH⁻¹∇ℓ_r falls below ``DECREMENT_FLOOR``.

    Returns θ and the Hessian ∇²ℓ_r(θ) (the matrix of the implicit-differentiation solve, eq. 15)."""
    _check(z, y)
    theta = np.zeros(z.shape[1]) if theta0 is None else np.array(theta0, dtype=np.float64)
    f, g, h = _pieces(theta, z, y, lam)
    for _ in range(max_iter):
        if np.max(np.abs(g)) <= tol:
            break
        step = np.linalg.solve(h, -g)
        slope = g @ step
        if -slope <= DECREMENT_FLOOR:  # the Newton decrement: ℓ_r cannot improve in floating point
            break
        t = 1.0
        while True:
            cand = theta + t * step
            f_new, g_new, h_new = _pieces(cand, z, y, lam)
            if f_new <= f + 1e-4 * t * slope or t < 1e-10:
                break
            # Next to the minimum ℓ_r is flat to rounding and Armijo cannot judge a step (it used to
            # halve t ~30 times per iteration up to max_iter): a step that shrinks the gradient is taken.
            if abs(f_new - f) <= FLAT * abs(f) and np.max(np.abs(g_new)) < np.max(np.abs(g)):
                break
            t *= 0.5
        theta, f, g, h = cand, f_new, g_new, h_new
    return theta, h


def lbfgs(
    z: np.ndarray,
    y: np.ndarray,
    lam: float = LAMBDA_THETA,
    theta0: np.ndarray | None = None,
    max_iter: int = 100,
) -> np.ndarray:
    """Minimise ℓ_r by L-BFGS with a strong Wolfe line search (the paper's inner solver, §3.3)."""
    import torch  # torch only for the paper's L-BFGS: keeps process start-up light

    _check(z, y)
    zt = torch.from_numpy(z)
    yt = torch.from_numpy(y.astype(np.float64))
    start = np.zeros(z.shape[1]) if theta0 is None else theta0
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    coef = reg_coef(lam, z)
    opt = torch.optim.LBFGS([theta], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.softplus(-yt * (zt @ theta)).mean() + 0.5 * coef * theta @ theta
        value.backward()
        return value

    opt.step(closure)
    return theta.detach().numpy().copy()


def fit(table: Table, lam: float = LAMBDA_THETA, max_iter: int = 100) -> np.ndarray:
    """θ(table) = argmin ℓ_r (eq. 16: the server model; eq. 12: the inner problem)."""
    return newton(design(table), table.y.astype(np.float64), lam, max_iter=max_iter)[0]


def decision(theta: np.ndarray, table: Table) -> np.ndarray:
    """Decision values d_θ(a) = zᵀθ (the signed score the covariance estimates use, eq. 3)."""
    if theta.shape != (len(table.feature_names) + 2,):
        raise FedFairError(
            f"model has {theta.shape[0]} weights but the table needs {len(table.feature_names) + 2}"
        )
    return design(table) @ theta


def predict(theta: np.ndarray, table: Table) -> np.ndarray:
    """Labels in {−1, +1}: +1 where zᵀθ > 0."""
    return np.where(decision(theta, table) > 0, 1, -1)
