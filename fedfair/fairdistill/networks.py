"""The networks of FairDisCo (Liu et al. 2022, as Sikder et al. §5.3 use it) and the distilled student.

Both encoders map [x, onehot(s)] through one ReLU hidden layer to (μ, log σ²) of a diagonal Gaussian
posterior over z; the teacher's hidden layer has ``hidden`` units, the student's ``student_hidden``
(the paper says only "smaller"). The decoder maps [z, onehot(s)] through one ReLU hidden layer to one
output per column of x: a mean for a numeric feature, a logit for a binary one, a softmax logit per
category of a one-hot group.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def with_s(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """[v, onehot(s)] for 0/1 ``s``."""
    return torch.cat([v, F.one_hot(s.long(), 2).to(v.dtype)], dim=1)


class Encoder(nn.Module):
    """q(z | x, s) = N(μ, diag σ²): returns (μ, log σ²)."""

    def __init__(self, dim: int, hidden: int, z_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim + 2, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.body(with_s(x, s)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """p(x | z, s): the raw outputs (means and logits) of every column of x."""

    def __init__(self, z_dim: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim + 2, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.body(with_s(z, s))


def reparametrise(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε."""
    return mu + torch.exp(0.5 * logvar) * eps
