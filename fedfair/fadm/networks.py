"""FADM's three networks, all MLPs of (x_t, t): the score network s_θ (§4.1) and the two
noise-conditional classifiers f_θy ≈ p_t(y | x_t) (eq. 7) and f_θz ≈ p_t(z | x_t) (eq. 10).

The paper gives no architecture; ours: t enters through a sinusoidal embedding (as in DDPM), then
``layers`` hidden SiLU layers of width ``hidden``. The score network outputs ε_θ(x, t) (see
:mod:`fedfair.fadm.sde`); a classifier outputs one logit (binary y or z).
"""

from __future__ import annotations

import math

import torch
from torch import nn

EMBED = 32  # width of the time embedding


def time_embedding(t: torch.Tensor, width: int = EMBED) -> torch.Tensor:
    """Sinusoidal features of t ∈ [0, 1] (frequencies 1 … 1000 on a log scale), shape (N, width)."""
    half = width // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, dtype=t.dtype, device=t.device))
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TimeMLP(nn.Module):
    """An MLP of (x, t) with ``out`` outputs."""

    def __init__(self, dim: int, out: int, hidden: int, layers: int) -> None:
        super().__init__()
        widths = [dim + EMBED, *([hidden] * layers)]
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Linear(a, b), nn.SiLU()]
        self.body = nn.Sequential(*body, nn.Linear(widths[-1], out))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, time_embedding(t)], dim=1))


def score_net(dim: int, hidden: int, layers: int) -> TimeMLP:
    """ε_θ(x_t, t): the noise in x_t; the score is −ε_θ/σ(t)."""
    return TimeMLP(dim, dim, hidden, layers)


def classifier(dim: int, hidden: int, layers: int) -> TimeMLP:
    """The logit of a binary attribute (y or z) given the noisy row x_t at time t."""
    return TimeMLP(dim, 1, hidden, layers)
