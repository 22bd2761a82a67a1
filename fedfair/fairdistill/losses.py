"""The losses: the teacher's reconstruction per feature block and KL (FairDisCo's VAE terms of eq. 3), and
the student's distillation losses ℓ(z_j, z'_j) of eq. 4, summed over latent dimensions j (eq. 4) and
averaged over the batch.

Reconstruction (ours; the reference discretises every column and uses cross-entropy throughout): a
one-hot group → cross-entropy of its softmax, a binary feature → binary cross-entropy, a numeric
feature → Gaussian negative log-likelihood with a FIXED standard deviation ``sigma_num``, up to its
constant, 0.5 ((x − m) / σ_num)². A learned σ collapsed the posterior in the prototype.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fedfair.fadm.layout import Layout

DISTILL_LOSSES = ("l1", "mse", "huber", "md")


def reconstruction(out: torch.Tensor, x: torch.Tensor, layout: Layout, sigma_num: float) -> torch.Tensor:
    """−log p(x | z, s) up to constants, summed over the blocks of ``layout``, mean over rows."""
    total = torch.zeros(len(x), dtype=out.dtype)
    for b in layout.blocks:
        o, t = out[:, b.start:b.stop], x[:, b.start:b.stop]
        if b.kind == "numeric":
            total = total + 0.5 * ((t - o) / sigma_num).square().sum(dim=1)
        elif b.kind == "binary":
            total = total + F.binary_cross_entropy_with_logits(o, t, reduction="none").sum(dim=1)
        else:  # an all-zero group (a category outside the schema's list) contributes 0
            total = total - (t * F.log_softmax(o, dim=1)).sum(dim=1)
    return total.mean()


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), mean over rows (eq. 5)."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def kl_gaussians(mu: torch.Tensor, logvar: torch.Tensor, mu_to: torch.Tensor, logvar_to: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(μ₀, diag σ₀²)) = ½ Σ_j (log σ₀²/σ² + (σ² + (μ − μ₀)²)/σ₀² − 1), mean over rows."""
    return 0.5 * (logvar_to - logvar + (logvar.exp() + (mu - mu_to).square()) / logvar_to.exp() - 1.0).sum(dim=1).mean()


def distillation(z: torch.Tensor, z_student: torch.Tensor, kind: str) -> torch.Tensor:
    """Σ_j ℓ(z_j, z'_j) (eq. 4): ``l1`` |z − z'|, ``mse`` (z − z')², ``huber`` (δ = 1), each averaged
    over the batch; ``md`` |mean_B z_j − mean_B z'_j| (our reading of "mean-difference")."""
    if kind == "md":
        return (z.mean(dim=0) - z_student.mean(dim=0)).abs().sum()
    per = {
        "l1": lambda: (z - z_student).abs(),
        "mse": lambda: (z - z_student).square(),
        "huber": lambda: F.huber_loss(z_student, z, reduction="none", delta=1.0),
    }[kind]()
    return per.sum(dim=1).mean()
