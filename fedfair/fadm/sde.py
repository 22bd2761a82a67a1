"""The VP-SDE of FADM §4.1 (Song et al. 2021): the forward SDE dx = −½β(t)x dt + √β(t) dw (eq. 2), the
continuous limit of DDPM's chain (eq. 1) with β(t) = β_min + t(β_max − β_min) on t ∈ [0, 1], and the
denoising score-matching loss (eq. 4) with the weight λ(t) ∝ σ(t)² of eq. 5.

The perturbation kernel is p_0t(x_t | x_0) = N(m(t)x_0, σ(t)²I) with m(t) = exp(−¼t²(β_max − β_min)
− ½tβ_min) and σ(t)² = 1 − m(t)², so ∇log p_0t = −ε/σ(t) for x_t = m x_0 + σ ε. With λ(t) = σ(t)² the
loss of eq. 4 is E‖σ(t)s_θ(x_t, t) + ε‖²: the score network predicts −ε/σ, which we parametrise as
s_θ(x, t) = −ε_θ(x, t)/σ(t) (the paper leaves the parametrisation open).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

T_MIN = 1e-3  # the smallest time trained and sampled (σ(T_MIN) ≈ 0.01): avoids σ → 0


@dataclass(frozen=True)
class VPSDE:
    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        """m(t) = exp(−½∫₀ᵗβ(u)du)."""
        return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)

    def std(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) = √(1 − m(t)²)."""
        return torch.sqrt(-torch.expm1(-0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min))

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = m(t)x_0 + σ(t)ε, a draw from p_0t(· | x_0)."""
        return self.mean_coef(t)[:, None] * x0 + self.std(t)[:, None] * noise
