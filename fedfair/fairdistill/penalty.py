"""FairDisCo's dependence penalty V²(z, s) (Liu et al. 2022; Sikder et al. eq. 2):

    V² = Σ_g ∫ |p(z, s = g) − p(z) p(s = g)|² dz

for the batch's mixture posterior p(z) = (1/B) Σ_i N(z; μ_i, diag σ_i²). Every integral of a product of
two posteriors is a Gaussian kernel, K_ij = ∫ N(z; μ_i, σ_i²) N(z; μ_j, σ_j²) dz = N(μ_i − μ_j; 0,
diag(σ_i² + σ_j²)), so

    V² = Σ_g (n_g / B)² [mean K + mean_{g,g} K − 2 mean_{g,·} K],

which is the biased HSIC tr(K H L H) / B² with L_ij = 1[s_i = s_j] and H = I − 11ᵀ/B. K is built once per
batch (the reference code builds it five times). A batch with one group only gives V² = 0.

This plug-in (V-statistic) form counts each row's posterior against itself: the diagonal K_ii =
N(0; 0, 2σ_i²) adds 2 p (1 − p) mean_i K_ii / B to V² (p = the share of s = 1) whatever the dependence,
and β times it drives every σ_i up until the posterior collapses. ``unbiased=True`` leaves the pairs
i = j out of every mean (a U-statistic): it is 0 in expectation when z is independent of s, and has no
pull on σ.
"""

from __future__ import annotations

import math

import torch


def kernel(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """K_ij = N(μ_i − μ_j; 0, diag(σ_i² + σ_j²)), shape (B, B)."""
    var = logvar.exp()
    v = var[:, None, :] + var[None, :, :]
    diff = mu[:, None, :] - mu[None, :, :]
    return torch.exp(-0.5 * (diff.square() / v + torch.log(2 * math.pi * v)).sum(dim=-1))


def dependence(mu: torch.Tensor, logvar: torch.Tensor, s: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """V²(z, s) of eq. 2 for posteriors N(μ_i, diag exp(logvar_i)) and integer groups ``s``; with
    ``unbiased`` the means run over pairs i ≠ j only (module doc). A group of one row has no pair i ≠ j
    inside it: its within-group mean is then taken as 0 · its share², i.e. the group is skipped."""
    k = kernel(mu, logvar)
    b = len(s)
    if unbiased:
        k = k - torch.diag_embed(torch.diagonal(k))
    total = k.sum() / (b * (b - 1) if unbiased else b * b)
    out = torch.zeros((), dtype=mu.dtype)
    for g in torch.unique(s):
        member = s == g
        n = int(member.sum())
        if unbiased and n < 2:
            continue
        within = k[member][:, member].sum() / (n * (n - 1) if unbiased else n * n)
        across = k[member].sum() / (n * (b - 1) if unbiased else n * b)
        out = out + (n / b) ** 2 * (total + within - 2 * across)
    return out
