"""The networks of FairDisCo (Liu et al. 2022, as Sikder et al. §5.3 use it) and the distilled student.

Every network is conditioned on a condition c: c = s (``conditions=2``, FairDisCo's), or c = s + 2·[y = +1]
(``conditions=4``: s and the label, ``condition_y``; see :class:`~fedfair.fairdistill.FairDistillConfig`).
Both encoders map [x, onehot(c)] through one ReLU hidden layer to (μ, log σ²) of a diagonal Gaussian
posterior over z; the teacher's hidden layer has ``hidden`` units, the student's ``student_hidden``
(the paper says only "smaller"). The decoder maps [z, onehot(c)] through one ReLU hidden layer to one
output per column of x: a mean for a numeric feature, a logit for a binary one, a softmax logit per
category of a one-hot group.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def condition(s: torch.Tensor, y: torch.Tensor, with_y: bool) -> torch.Tensor:
    """The condition index of each row: s (0/1), or s + 2·[y = +1] for ``with_y`` (y in {−1, +1})."""
    return s.long() + 2 * (y == 1).long() if with_y else s.long()


def with_c(v: torch.Tensor, c: torch.Tensor, conditions: int) -> torch.Tensor:
    """[v, onehot(c)] for a condition index ``c`` in 0..conditions − 1."""
    return torch.cat([v, F.one_hot(c.long(), conditions).to(v.dtype)], dim=1)


class Encoder(nn.Module):
    """q(z | x, c) = N(μ, diag σ²): returns (μ, log σ²)."""

    def __init__(self, dim: int, hidden: int, z_dim: int, conditions: int = 2) -> None:
        super().__init__()
        self.conditions = conditions
        self.body = nn.Sequential(nn.Linear(dim + conditions, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.body(with_c(x, c, self.conditions)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """p(x | z, c): the raw outputs (means and logits) of every column of x."""

    def __init__(self, z_dim: int, hidden: int, dim: int, conditions: int = 2) -> None:
        super().__init__()
        self.conditions = conditions
        self.body = nn.Sequential(nn.Linear(z_dim + conditions, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.body(with_c(z, c, self.conditions))


def reparametrise(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε."""
    return mu + torch.exp(0.5 * logvar) * eps
