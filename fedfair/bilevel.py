"""Stage 1: the bilevel fair synthesizer (Wu, Curtis & Robinson, eq. 12–15, Algorithm 1 lines 1–17).

A client learns synthetic features x̂ for fixed (ŝ, ŷ) by minimising the penalty problem (eq. 13)

    P(x̂) = ℓ(D, θ(x̂)) + Σ_k ρ/(2N²) (Σ_i w_ik z_iᵀθ(x̂))² + λ_x/(2(N_s·n)²) ‖x̂‖²

over its REAL training set D (N rows), where θ(x̂) = argmin ℓ_r(D̂, θ) is the inner logistic
problem on the synthetic set D̂ (eq. 12) and w_ik = s_i − s̄ (SP) or (s_i − s̄)(1 + y_i)/2 (EO).
``penalty="sp+eo"`` is P_SP + P_EO literally (the loss and λ_x terms count twice).

The gap penalties (``sp_gap``, ``eo_gap``; not in the paper) replace the covariance term by

    (γ/2) (mean_{i∈R, s_i=1} σ(z_iᵀθ(x̂)) − mean_{i∈R, s_i=0} σ(z_iᵀθ(x̂)))²

over the client's real rows R (all of them for SP; those with y = +1 for EO): a smooth surrogate of
SPD / EOD (eq. 5) of the inner model. The covariance (eq. 4) is only a proxy: on Adult (base rate
0.24, skewed scores) a model whose covariance is 0 still has |SPD| ≈ 0.1 (docs/RESULTS.md, "Stage 1 on
every dataset"), while the gap is the quantity itself. Only ∇_θP changes, so the hypergradient below
(one solve u = H⁻¹∇_θP) serves both kinds. ``rho`` weighs the covariance, ``gamma`` the gap.

``prox`` adds (prox/(2N_s)) ‖x̂ − x̂₀‖² to P (gradient prox (x̂ − x̂₀)/N_s, outside the solve). The
outer problem sees x̂ only through θ(x̂), so many sets give the same θ; Adam (which moves every entry
by about ``lr`` whatever its gradient) wanders among them, and the server's fit on the UNION of such
sets, ≈ (H₁ + H₂)⁻¹(H₁θ₁ + H₂θ₂), is neither client's fair model (on Adult: own |EOD| 0.03, union
0.10). Anchoring x̂ to its start keeps each set's Hessian near the real one and the union fair. It
is on by default for the gap penalties only (0 keeps the paper's covariance penalties unchanged).

``anchor`` adds (μ/2) ‖θ_x(x̂) − θ_x(x̂₀)‖² to P (μ = ``anchor``; θ_x: the inner model's feature
coefficients, θ(x̂₀) the initial set's model, without the coefficient of s and the intercept). It is a
term in θ alone, so it only adds μ(θ_x − θ₀_x) to ∇_θP. Without it, a client can close its gap through
a column of tiny spread (COMPAS' juvenile counts, sd 0.02): a move of x̂ too small for the prox turns
that column's coefficient from −2.5 to −30, and the server's fit on the union, which weighs that
direction by the two sets' near-singular Hessians, loses the fairness (COMPAS ``sp_gap`` seed 2:
own models fair, union |SPD| 0.157). The anchor makes such a coefficient cost what it moves and leaves
the coefficient of s free. On by default for the gap penalties (``ANCHOR_GAP``), 0 for the paper's.

``prox_spread`` (off by default) makes the prox scale-free: (prox/2) Σ_ij (x̂_ij − x̂₀_ij)²/σ_j², σ_j²
the variance of the client's real column j (:func:`prox_weights`), summed over rows rather than
averaged. A low-variance column (COMPAS' juvenile counts, sd 0.02) then cannot carry the fairness with
moves that look small but are half its spread. On COMPAS, ``prox_spread=true, prox=1e-3`` meets
|SPD| ≤ 0.05 (``sp_gap``) and |EOD| ≤ 0.05 (``eo_gap``) at the default γ; on Adult it is too weak
(the union loses the clients' fairness: |SPD| 0.085 against own models at 0.013), so it is not the
default (docs/RESULTS.md, "Stage 1 on every dataset").

``best_iterate`` (off by default) returns the recorded iterate (every ``RECORD_EVERY`` steps and the
last) of least P, with θ solved there afresh, instead of the last one: Adam can oscillate under the
prox (an Adult client's gap fell to 0.001 by step 80 and was back at 0.27 at step 1000). The least P
is not the fairest union, though: on COMPAS it helps ``sp_gap`` and hurts ``eo_gap`` (|EOD| 0.073 →
0.098 at the default prox), and on Adult it raised one seed's |SPD|, so it is an option only.

The hypergradient follows eq. 14–15 by implicit differentiation: with v = ∇_θ P and one linear solve
u = H⁻¹v against the inner Hessian H, row i of ∇P is

    −(1/N_s) [r_i u_x + w_i (ẑ_iᵀu) θ_x] + λ_x x̂_i/(N_s·n)²,

where r_i = −ŷ_i σ(−ŷ_i ẑ_iᵀθ), w_i = σ(ẑ_iᵀθ) σ(−ẑ_iᵀθ), and u_x, θ_x are the x-components.
The outer update is Adam (Algorithm 1, line 16); with ``clip`` each step is projected onto the public
box [0, 1] of every encoded feature (``Schema.bounds``), so that x̂ stays a table of the schema.
Two inner solvers: ``lbfgs`` is the paper's (L-BFGS with strong Wolfe line search, solved afresh
from θ = 0 at every outer step); ``newton`` (default) solves the inner problem exactly once, then
tracks its minimiser as x̂ moves with warm-started Newton steps (Newton converges quadratically from
the previous minimiser, which an Adam step of size ``lr`` barely moves) until the inner gradient is
below ``inner_tol``, and solves it to convergence again at the end. ``scripts/bench_stage1.py``
measures that both give the same synthetic set's model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import expit
from tqdm.auto import tqdm

from fedfair import model, schema
from fedfair.env import raise_mmap_threshold
from fedfair.errors import FedFairError
from fedfair.table import Table

log = logging.getLogger("fedfair")
Penalty = Literal["sp", "eo", "sp+eo", "sp_gap", "eo_gap"]
# the covariance terms of each penalty (eq. 4) and the gap penalties' kind of gap
PENALTIES: dict[str, tuple[str, ...]] = {
    "sp": ("sp",), "eo": ("eo",), "sp+eo": ("sp", "eo"), "sp_gap": (), "eo_gap": ()
}
GAPS: dict[str, str] = {"sp_gap": "sp", "eo_gap": "eo"}
# Defaults of the gap penalties (``gamma`` / ``prox`` / ``anchor`` = None), chosen on Adult and COMPAS, 2 IID
# clients (docs/RESULTS.md, "Stage 1 on every dataset"); the covariance penalties keep prox = anchor = 0,
# the paper's.
GAMMA: dict[str, float] = {"sp_gap": 50.0, "eo_gap": 1000.0}
PROX_GAP = 100.0
ANCHOR_GAP = 0.01
RECORD_EVERY = 10


_DEFAULTS = schema.defaults("stage1", "bilevel")  # the defaults below: conf/stage1/bilevel.yaml


@dataclass(frozen=True)
class Stage1Config:
    """Settings of Algorithm 1, lines 3–8. Defaults are the paper's (§4.1) but for ``lr`` (the paper
    does not give Adam's step size) and ``inner`` (the fast solver; ``"lbfgs"`` is the paper's).
    ``gamma`` (the gap penalties' weight), ``prox``, ``anchor``, ``prox_spread``, ``clip`` and
    ``best_iterate`` are ours (module docstring); ``None`` means the penalty's default
    (:attr:`gap_weight`, :attr:`prox_weight`, :attr:`anchor_weight`)."""

    penalty: Penalty = _DEFAULTS["penalty"]
    rho: float = _DEFAULTS["rho"]
    gamma: float | None = _DEFAULTS["gamma"]
    prox: float | None = _DEFAULTS["prox"]
    anchor: float | None = _DEFAULTS["anchor"]
    clip: bool = _DEFAULTS["clip"]
    prox_spread: bool = _DEFAULTS["prox_spread"]
    best_iterate: bool = _DEFAULTS["best_iterate"]
    lam_x: float = _DEFAULTS["lam_x"]
    lam_theta: float = _DEFAULTS["lam_theta"]
    k_max: int = _DEFAULTS["k_max"]
    lr: float = _DEFAULTS["lr"]
    ns1: float | None = _DEFAULTS["ns1"]
    init: Literal["real", "uniform"] = _DEFAULTS["init"]
    inner: Literal["newton", "lbfgs"] = _DEFAULTS["inner"]
    inner_max_iter: int = _DEFAULTS["inner_max_iter"]
    inner_tol: float = _DEFAULTS["inner_tol"]
    seed: int = field(default=0, metadata=schema.RUN)
    progress: bool = field(default=True, metadata=schema.RUN)

    def __post_init__(self) -> None:
        if self.penalty not in PENALTIES:
            raise FedFairError(f"unknown stage-1 penalty '{self.penalty}'; choose sp, eo, sp+eo, sp_gap or eo_gap")
        for key in ("gamma", "prox", "anchor"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
                raise FedFairError(f"stage1.{key} must be a number >= 0 or null, got {value!r}")
        if self.rho < 0 or self.lam_x < 0 or self.lam_theta <= 0:
            raise FedFairError("stage-1 rho and lam_x must be >= 0 and lam_theta > 0")
        if self.k_max < 0 or self.lr <= 0:
            raise FedFairError("stage-1 k_max must be >= 0 and lr > 0")
        if self.inner_max_iter < 1 or self.inner_tol <= 0:
            raise FedFairError("stage-1 inner_max_iter must be >= 1 and inner_tol > 0")
        if self.init not in ("real", "uniform"):
            raise FedFairError(f"unknown stage-1 init '{self.init}'; choose real or uniform")
        if self.inner not in ("newton", "lbfgs"):
            raise FedFairError(f"unknown inner solver '{self.inner}'; choose newton or lbfgs")
        if self.ns1 is not None and self.ns1 <= 0:
            raise FedFairError(f"stage-1 ns1 must be > 0, got {self.ns1}")

    @property
    def gap_weight(self) -> float:
        """γ: ``gamma``, else the gap penalty's default (``GAMMA``; unused by the covariance penalties)."""
        return float(self.gamma) if self.gamma is not None else GAMMA.get(self.penalty, 0.0)

    @property
    def prox_weight(self) -> float:
        """``prox``, else ``PROX_GAP`` for the gap penalties and 0 for the covariance penalties."""
        return float(self.prox) if self.prox is not None else (PROX_GAP if self.penalty in GAPS else 0.0)

    @property
    def anchor_weight(self) -> float:
        """``anchor``, else ``ANCHOR_GAP`` for the gap penalties and 0 for the covariance penalties."""
        return float(self.anchor) if self.anchor is not None else (ANCHOR_GAP if self.penalty in GAPS else 0.0)


@dataclass
class Stage1Result:
    table: Table  # the synthetic set D̂ = (x̂, ŝ, ŷ)
    theta: np.ndarray  # θ(x̂) at the final x̂
    # every RECORD_EVERY outer steps and at the end: P, ℓ(D, θ) and max_k |c_kᵀθ| ("cov", covariance
    # penalties) or the soft gap ("gap", gap penalties); with best_iterate, one more entry for the
    # returned iterate (at its step) when it is not the last
    history: dict[str, list[float]] = field(default_factory=dict)


def synthetic_size(n: int, ns1: float | None) -> int:
    """N_s1 from the config: N, a fraction of N, or an explicit count (at most N)."""
    if ns1 is None:
        return n
    size = int(round(ns1 * n)) if ns1 <= 1 else int(ns1)
    if not 2 <= size <= n:
        raise FedFairError(f"stage-1 ns1={ns1} gives {size} rows; it must give 2..{n} (N = {n})")
    return size


def choose_rows(real: Table, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of real rows whose (s, y) pairs fix (ŝ, ŷ): all rows when N_s1 = N, else a sample
    with the same (s, y) pair proportions (largest remainder rounding), §3.1."""
    n = len(real)
    if size == n:
        return np.arange(n)
    pair = real.s * 2 + (real.y == 1)
    values, counts = np.unique(pair, return_counts=True)
    quota = counts * size / n
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: size - take.sum()]] += 1
    picks = [rng.choice(np.flatnonzero(pair == v), k, replace=False) for v, k in zip(values, take)]
    return np.sort(np.concatenate(picks))


def penalty_vectors(real: Table, penalty: Penalty) -> np.ndarray:
    """Rows c_k = (1/N) Σ_i w_ik z_i, so that the covariance estimate of eq. 4 is c_kᵀθ (no rows for
    the gap penalties)."""
    z = model.design(real)
    centred = real.s - real.s.mean()
    weights = {"sp": centred, "eo": centred * (1 + real.y) / 2}
    return np.array([weights[k] @ z / len(real) for k in PENALTIES[penalty]]).reshape(-1, z.shape[1])


def gap_rows(real: Table, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the real rows in s = 1 and s = 0 over which the gap is taken: all rows (SP) or the
    rows with y = +1 (EO)."""
    rows = np.ones(len(real), dtype=bool) if kind == "sp" else real.y == 1
    return rows & (real.s == 1), rows & (real.s == 0)


def gap_weights(real: Table, kind: str) -> np.ndarray:
    """a with aᵀσ(Zθ) = the soft gap: 1/|R₁| on R's s = 1 rows, −1/|R₀| on its s = 0 rows, 0
    elsewhere; all 0 when R lacks a group (the gap is then 0)."""
    ones, zeros = gap_rows(real, kind)
    if not ones.any() or not zeros.any():
        return np.zeros(len(real))
    return ones / ones.sum() - zeros / zeros.sum()


def prox_weights(real: Table) -> np.ndarray:
    """1/σ_j² per feature column, σ_j² = the variance of the client's real column j, floored at 1/N (a
    column constant on the client): the prox measures each move in units of its column's spread."""
    return 1.0 / np.maximum(real.x.var(axis=0), 1.0 / len(real))


class _Problem:
    """The penalty problem (eq. 13) on one client's real data, for a fixed (ŝ, ŷ).

    ``x`` is x̂, which the outer loop updates in place; ``z`` is the design matrix ẑ = (x̂, ŝ, 1),
    refreshed from ``x`` at each evaluation."""

    def __init__(self, real: Table, s_hat: np.ndarray, y_hat: np.ndarray, x0: np.ndarray, cfg: Stage1Config):
        self.cfg = cfg
        self.z_real = model.design(real)
        self.y_real = real.y.astype(np.float64)
        self.c = penalty_vectors(real, cfg.penalty)
        self.terms = max(1, len(PENALTIES[cfg.penalty]))
        self.gap = cfg.penalty in GAPS
        self.gap_weights = gap_weights(real, GAPS[cfg.penalty]) if self.gap else None
        self.s_hat = s_hat.astype(np.float64)
        self.y_hat = y_hat.astype(np.float64)
        self.n_a = self.z_real.shape[1] - 1  # n = dim(a)
        self.x0 = np.array(x0, dtype=np.float64)
        # prox_spread: the factor N_s/σ_j² per column that turns (prox/2N_s)‖x̂ − x̂₀‖² into (prox/2) Σ_ij Δ_ij²/σ_j²
        self.prox_w = len(x0) * prox_weights(real) if cfg.prox_spread else None
        self.x = self.x0.copy()
        self.z = self.z_hat(self.x)
        self.theta: np.ndarray | None = None
        # anchor: the feature coefficients of θ(x̂₀), the inner model of the initial set
        self.theta0 = self.inner()[0][: x0.shape[1]].copy() if cfg.anchor_weight else None

    def z_hat(self, x_hat: np.ndarray) -> np.ndarray:
        ones = np.ones((x_hat.shape[0], 1))
        return np.hstack([x_hat, self.s_hat[:, None], ones])

    def inner(self, converge: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """θ(x̂), the inner Hessian and σ(ẑᵀθ). ``lbfgs``: solved afresh from θ = 0 (the paper's way).
        ``newton``: solved to convergence the first time (and when ``converge``), then tracked by
        warm-started Newton steps until ‖∇ℓ_r‖_∞ ≤ ``inner_tol`` (usually one per outer step)."""
        cfg = self.cfg
        if cfg.inner == "lbfgs":
            theta = model.lbfgs(self.z, self.y_hat, cfg.lam_theta, max_iter=cfg.inner_max_iter)
            hess = model.hessian(theta, self.z, cfg.lam_theta)
        elif self.theta is None or converge:
            theta, hess = model.newton(self.z, self.y_hat, cfg.lam_theta, self.theta, max_iter=cfg.inner_max_iter)
        else:
            return model.newton_track(
                self.theta, self.z, self.y_hat, cfg.lam_theta, cfg.inner_tol, cfg.inner_max_iter
            )
        return theta, hess, expit(self.z @ theta)

    def reg_x(self, x_hat: np.ndarray) -> float:
        return self.cfg.lam_x / (x_hat.shape[0] * self.n_a) ** 2

    def objective(self, x_hat: np.ndarray, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(P, ℓ(D, θ), the penalised quantities: covariance estimates c_kᵀθ, or the soft gap g)."""
        real_loss = model.loss(theta, self.z_real, self.y_real)
        value = self.terms * (real_loss + 0.5 * self.reg_x(x_hat) * float(np.vdot(x_hat, x_hat)))
        if self.cfg.prox_weight:
            moved = (x_hat - self.x0) ** 2 if self.prox_w is None else (x_hat - self.x0) ** 2 * self.prox_w
            value += 0.5 * self.cfg.prox_weight / len(x_hat) * float(np.sum(moved))
        if self.theta0 is not None:
            shift = theta[: len(self.theta0)] - self.theta0
            value += 0.5 * self.cfg.anchor_weight * float(shift @ shift)
        if self.gap:
            gap = np.array([self.gap_weights @ expit(self.z_real @ theta)])
            return value + 0.5 * self.cfg.gap_weight * float(gap @ gap), real_loss, gap
        cov = self.c @ theta
        return value + 0.5 * self.cfg.rho * float(cov @ cov), real_loss, cov

    def theta_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇_θ P: the real-data loss gradient plus the penalty's ρ Σ_k (c_kᵀθ) c_k, or for a gap
        penalty γ g ∇_θg with ∇_θg = Σ_i a_i σ'(z_iᵀθ) z_i (a = :func:`gap_weights`), plus the
        anchor's μ(θ_x − θ₀_x) on the feature coefficients."""
        grad = self.penalty_gradient(theta)
        if self.theta0 is not None:
            grad[: len(self.theta0)] += self.cfg.anchor_weight * (theta[: len(self.theta0)] - self.theta0)
        return grad

    def penalty_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇_θ of the real-data loss and the covariance or gap penalty (:meth:`theta_gradient` without
        the anchor)."""
        if not self.gap:
            real_grad = model.gradient(theta, self.z_real, self.y_real)
            return self.terms * real_grad + self.cfg.rho * self.c.T @ (self.c @ theta)
        p = expit(self.z_real @ theta)
        residual = (p - (self.y_real + 1) / 2) / len(p)
        gap = self.gap_weights @ p
        return self.z_real.T @ (residual + self.cfg.gap_weight * gap * self.gap_weights * p * (1.0 - p))

    def hypergradient(
        self,
        x_hat: np.ndarray,
        theta: np.ndarray,
        hess: np.ndarray,
        z: np.ndarray | None = None,
        p: np.ndarray | None = None,
    ) -> np.ndarray:
        """∇P(x̂) by implicit differentiation (eq. 14–15); ``hess`` is the inner Hessian at θ,
        ``z`` and ``p`` = σ(ẑᵀθ) may be passed when already computed."""
        z = self.z_hat(x_hat) if z is None else z
        u = np.linalg.solve(hess, self.theta_gradient(theta))
        p = expit(z @ theta) if p is None else p
        r = p - (self.y_hat + 1) / 2  # = −ŷ σ(−ŷ zᵀθ)
        coef = np.column_stack([r, p * (1.0 - p) * (z @ u)])
        d = x_hat.shape[1]
        grad = coef @ np.vstack([u[:d], theta[:d]])
        grad *= -1.0 / x_hat.shape[0]
        grad += self.terms * self.reg_x(x_hat) * x_hat
        if self.cfg.prox_weight:
            pull = x_hat - self.x0 if self.prox_w is None else (x_hat - self.x0) * self.prox_w
            grad += self.cfg.prox_weight / len(x_hat) * pull
        return grad

    def step_gradient(self) -> np.ndarray:
        """∇P at the current x̂ (refreshing ẑ and θ)."""
        self.z[:, : self.x.shape[1]] = self.x
        self.theta, hess, p = self.inner()
        return self.hypergradient(self.x, self.theta, hess, self.z, p)


def synthesize(real: Table, cfg: Stage1Config = Stage1Config()) -> Stage1Result:
    """Learn a fair synthetic set from a client's real training data (Algorithm 1, lines 2–17).

    Degenerate clients (heterogeneous partitions make them) get a documented fallback, with a
    warning, never a NaN: with one sensitive group, s − s̄ = 0 and the covariance penalty vanishes,
    so stage 1 runs with ρ = 0 in effect (likewise the gap penalties, whose gap needs both groups:
    for ``eo_gap``, both among the y = +1 rows); with one label, the inner model has no minimiser, so the
    initial set (x̂ = the real rows with ``init=real``) is returned unchanged."""
    if len(real) == 0:
        raise FedFairError("stage 1 got an empty training table")
    if cfg.penalty in GAPS:
        if not gap_weights(real, GAPS[cfg.penalty]).any():
            log.warning("client lacks a group among its %s rows: the gap is 0 (stage 1 runs as gamma=0)", cfg.penalty)
    elif np.all(real.s == real.s[0]):
        log.warning("client has only s=%d rows: the covariance penalty is 0 (stage 1 runs as rho=0)", real.s[0])
    raise_mmap_threshold()
    rng = np.random.default_rng(cfg.seed)
    rows = choose_rows(real, synthetic_size(len(real), cfg.ns1), rng)
    if cfg.init == "real":
        x0 = real.x[rows]
    else:
        x0 = rng.uniform(0.0, 1.0, size=(len(rows), real.x.shape[1]))
    if np.all(real.y == real.y[0]):
        log.warning("client has only y=%+d rows: no inner model exists, stage 1 returns its initial set", real.y[0])
        return Stage1Result(Table(x0, real.s[rows], real.y[rows], real.feature_names), np.zeros(x0.shape[1] + 2), {})
    problem = _Problem(real, real.s[rows], real.y[rows], x0, cfg)
    x_hat = problem.x
    bar = tqdm(range(1, cfg.k_max + 1), desc="stage 1", disable=not cfg.progress, leave=False)
    measure = "gap" if problem.gap else "cov"
    history: dict[str, list[float]] = {"step": [], "objective": [], "loss": [], measure: []}
    best: dict[str, Any] = {"P": np.inf, "x": None, "step": 0}

    def record(k: int) -> None:
        value, real_loss, penalised = problem.objective(x_hat, problem.theta)
        history["step"].append(k)
        history["objective"].append(value)
        history["loss"].append(real_loss)
        history[measure].append(float(np.abs(penalised).max()))
        bar.set_postfix(P=f"{value:.4f}", **{measure: f"{history[measure][-1]:.4f}"}, refresh=False)
        if cfg.best_iterate and value < best["P"]:
            best.update(P=value, x=x_hat.copy(), step=k)

    m = np.zeros_like(x_hat)
    v = np.zeros_like(x_hat)
    step = np.empty_like(x_hat)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for k in bar:
        grad = problem.step_gradient()
        if k == 1 or k % RECORD_EVERY == 0:
            record(k - 1)  # the state the gradient was taken at
        # Adam (Algorithm 1, line 16) in Kingma & Ba's efficient form, in place
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        np.multiply(grad, grad, out=grad)
        v += (1 - beta2) * grad
        correction = np.sqrt(1 - beta2**k)
        np.sqrt(v, out=step)
        step += eps * correction
        np.divide(m, step, out=step)
        step *= cfg.lr * correction / (1 - beta1**k)
        x_hat -= step
        if cfg.clip:
            np.clip(x_hat, 0.0, 1.0, out=x_hat)
    problem.z[:, : x_hat.shape[1]] = x_hat
    problem.theta = problem.inner(converge=True)[0]
    record(cfg.k_max)
    if cfg.best_iterate and best["step"] != cfg.k_max:
        x_hat[...] = best["x"]
        problem.z[:, : x_hat.shape[1]] = x_hat
        problem.theta = problem.inner(converge=True)[0]
        record(best["step"])
    return Stage1Result(Table(x_hat, real.s[rows], real.y[rows], real.feature_names), problem.theta, history)
