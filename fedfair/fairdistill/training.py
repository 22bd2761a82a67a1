"""Training, one client's rows at a time: the FairDisCo teacher (eq. 3), then the distilled student
(Algorithm 1, eq. 6). Both use Adam and batches of ``batch_size`` rows drawn with replacement from a
seeded ``torch.Generator``; the teacher is frozen while the student learns.

The networks are conditioned on each row's condition c (s, or s and y: ``condition_y``); the penalty is
always on s.

Teacher: L_T = rec + KL(q(z | x, c) ‖ N(0, I)) + β V²(z, s), with V² over the batch's posteriors
(:func:`~fedfair.fairdistill.penalty.dependence`, the V- or U-statistic); β = 0 switches the penalty off.

Student: z = μ + σ ⊙ ε from the teacher and z' = μ' + σ' ⊙ ε from the student with the SAME ε (ours;
with independent noise the L2-type losses reward σ' → 0), and L_S = Σ_j ℓ(z_j, z'_j) + λ KL(q'(z' | x, c) ‖ p),
with p the teacher's posterior q(z | x, c) (``kl_to=teacher``) or the prior N(0, I) (``kl_to=prior``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from fedfair.fadm.layout import Layout
from fedfair.fairdistill.losses import distillation, kl_gaussians, kl_standard_normal, reconstruction
from fedfair.fairdistill.networks import Decoder, Encoder, reparametrise
from fedfair.fairdistill.penalty import dependence

RECORD_EVERY = 50  # iterations between two entries of the loss history


@dataclass(frozen=True)
class Rows:
    """A client's training rows as tensors: features in [0, 1], the 0/1 sensitive attribute and the
    networks' condition index (:func:`~fedfair.fairdistill.networks.condition`)."""

    x: torch.Tensor
    s: torch.Tensor
    c: torch.Tensor


def _batches(n: int, batch_size: int, iterations: int, gen: torch.Generator, desc: str, progress: bool):
    bar = tqdm(range(1, iterations + 1), desc=desc, disable=not progress, leave=False)
    for it in bar:
        yield it, bar, torch.randint(n, (min(batch_size, n),), generator=gen)


def train_teacher(
    encoder: Encoder, decoder: Decoder, rows: Rows, layout: Layout, beta: float, unbiased: bool, sigma_num: float,
    iterations: int, batch_size: int, lr: float, gen: torch.Generator, progress: bool,
) -> list[dict[str, float]]:
    """Minimise L_T (eq. 3); returns the loss terms every :data:`RECORD_EVERY` iterations."""
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    history: list[dict[str, float]] = []
    for it, bar, idx in _batches(len(rows.x), batch_size, iterations, gen, "FairDisCo teacher", progress):
        x, s, c = rows.x[idx], rows.s[idx], rows.c[idx]
        mu, logvar = encoder(x, c)
        z = reparametrise(mu, logvar, torch.randn(mu.shape, generator=gen, dtype=mu.dtype))
        rec = reconstruction(decoder(z, c), x, layout, sigma_num)
        kl = kl_standard_normal(mu, logvar)
        v2 = dependence(mu, logvar, s, unbiased) if beta else torch.zeros(())
        loss = rec + kl + beta * v2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % RECORD_EVERY == 0 or it == iterations:
            record = {k: float(v.detach()) for k, v in (("rec", rec), ("kl", kl), ("v2", v2), ("loss", loss))}
            history.append({"iteration": it, **record})
            bar.set_postfix(rec=f"{record['rec']:.2f}", v2=f"{record['v2']:.2e}")
    return history


def train_student(
    student: Encoder, teacher: Encoder, rows: Rows, loss: str, lam: float, kl_to: str, iterations: int, batch_size: int,
    lr: float, gen: torch.Generator, progress: bool,
) -> list[dict[str, float]]:
    """Minimise L_S (eq. 6) against the frozen ``teacher``; returns the loss terms every
    :data:`RECORD_EVERY` iterations."""
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    for it, bar, idx in _batches(len(rows.x), batch_size, iterations, gen, f"student ({loss})", progress):
        x, c = rows.x[idx], rows.c[idx]
        with torch.no_grad():
            mu, logvar = teacher(x, c)
        mu_s, logvar_s = student(x, c)
        eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
        dist = distillation(reparametrise(mu, logvar, eps), reparametrise(mu_s, logvar_s, eps), loss)
        kl = kl_gaussians(mu_s, logvar_s, mu, logvar) if kl_to == "teacher" else kl_standard_normal(mu_s, logvar_s)
        total = dist + lam * kl
        opt.zero_grad()
        total.backward()
        opt.step()
        if it % RECORD_EVERY == 0 or it == iterations:
            record = {k: float(v.detach()) for k, v in (("distill", dist), ("kl", kl), ("loss", total))}
            history.append({"iteration": it, **record})
            bar.set_postfix(distill=f"{record['distill']:.3f}")
    return history
