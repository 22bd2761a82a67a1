"""FADM's guided reverse-time sampling (eq. 11):

    dx = [f(x, t) − g(t)² (∇log p_t(x) + λ_y ∇log p_θy,t(y | x) + λ_z ∇H(p_θz,t(z | x)))] dt̄ + g(t) dw̄

solved by Euler–Maruyama from t = 1 to t = T_MIN on an even grid of ``steps`` steps, the last step
without noise (the paper does not name a solver). ∇log p_t(x) = −ε_θ(x, t)/σ(t); the two guidance
gradients come from autograd through the noise-conditional classifiers. The entropy of the binary
sensitive classifier, H(p) = −p log p − (1 − p) log(1 − p), is largest where z cannot be told apart,
so its gradient (eq. 10) moves samples toward the fair space.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from fedfair.fadm.sde import T_MIN, VPSDE


def binary_entropy(logit: torch.Tensor) -> torch.Tensor:
    """H(σ(l)) in nats, computed stably: p·softplus(−l) + (1 − p)·softplus(l)."""
    p = torch.sigmoid(logit)
    return p * F.softplus(-logit) + (1 - p) * F.softplus(logit)


def entropy_gradient(classifier: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∇_x H(p_θz,t(z | x)) for every row (eq. 10's log-gradient; C_t drops out)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        h = binary_entropy(classifier(x, t)[:, 0]).sum()
        return torch.autograd.grad(h, x)[0]


def label_gradient(
    classifier: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """∇_x log p_θy,t(y | x) for ±1 labels ``y`` (eq. 7)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logp = F.logsigmoid(y * classifier(x, t)[:, 0]).sum()
        return torch.autograd.grad(logp, x)[0]


@torch.no_grad()
def reverse_sde(
    score: torch.nn.Module,
    label: torch.nn.Module,
    sensitive: torch.nn.Module,
    sde: VPSDE,
    y: torch.Tensor,
    lambda_y: float,
    lambda_z: float,
    steps: int,
    gen: torch.Generator,
    progress: bool = False,
) -> torch.Tensor:
    """Samples of eq. 11 for the ±1 labels ``y`` (one row each), in diffusion space."""
    n, dim = len(y), score.body[-1].out_features
    dtype = next(score.parameters()).dtype
    x = torch.randn(n, dim, generator=gen, dtype=dtype)
    grid = torch.linspace(1.0, T_MIN, steps + 1, dtype=dtype)
    for i in tqdm(range(steps), desc="FADM sampling", disable=not progress, leave=False):
        t = grid[i].expand(n)
        dt = float(grid[i] - grid[i + 1])  # > 0: the reverse step |dt̄|
        drift = -score(x, t) / sde.std(t)[:, None]
        if lambda_y:
            drift = drift + lambda_y * label_gradient(label, x, t, y)
        if lambda_z:
            drift = drift + lambda_z * entropy_gradient(sensitive, x, t)
        beta = sde.beta(t)[:, None]
        x = x + (0.5 * beta * x + beta * drift) * dt
        if i < steps - 1:
            x = x + torch.sqrt(beta * dt) * torch.randn(n, dim, generator=gen, dtype=dtype)
    return x
