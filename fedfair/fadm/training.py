"""FADM's meta-training (Algorithm 1): the score network and both classifiers trained together in
the MAML-style domain-generalisation scheme of Li et al. (2018).

Per iteration, for each network with parameters θ and loss L (eq. 4 for the score network,
cross-entropy on noisy rows for the classifiers):

    θ̂ = θ − α ∇_θ L(B_in, θ)                          (meta-train, lines 7–12)
    θ ← θ − γ ∂[L(B_in, θ) + β L(B_out, θ̂)] / ∂θ      (meta-test and update, lines 14–18)

with the second-order term kept (the gradient flows through θ̂). Where the paper is silent, our
choices: B_src holds ``batch_size // D`` rows drawn from each of the D domains (so a small domain
is seen as often as a large one); B_out is one domain picked uniformly, B_in the other D − 1; the
three networks share α, β, γ and one draw of (t, ε) per row; the outer step is Adam with step size
γ instead of the plain gradient step of lines 16–18 (far faster for diffusion models). With one
domain there is no B_out: the update is plain training on L(B_in, θ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call
from torch.nn import functional as F
from tqdm.auto import tqdm

from fedfair.fadm.sde import T_MIN, VPSDE

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """Rows in diffusion space with their 0/1 label and sensitive attribute, and the (t, ε) of the
    forward process drawn for them."""

    x0: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor

    def rows(self, mask: torch.Tensor) -> Batch:
        return Batch(self.x0[mask], self.y[mask], self.z[mask], self.t[mask], self.noise[mask])


def score_loss(net: torch.nn.Module, params: Params, sde: VPSDE, b: Batch) -> torch.Tensor:
    """Eq. 4 with λ(t) = σ(t)² (eq. 5): mean ‖ε_θ(x_t, t) − ε‖² per coordinate."""
    xt = sde.perturb(b.x0, b.t, b.noise)
    return F.mse_loss(functional_call(net, params, (xt, b.t)), b.noise)


def classifier_loss(
    net: torch.nn.Module, params: Params, sde: VPSDE, b: Batch, target: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of a noise-conditional classifier on x_t (lines 9 and 11)."""
    xt = sde.perturb(b.x0, b.t, b.noise)
    return F.binary_cross_entropy_with_logits(functional_call(net, params, (xt, b.t))[:, 0], target)


def meta_objective(
    net: torch.nn.Module,
    loss: Callable[[Params, Batch], torch.Tensor],
    b_in: Batch,
    b_out: Batch | None,
    inner_lr: float,
    meta_weight: float,
) -> torch.Tensor:
    """L(B_in, θ) + β L(B_out, θ − α∇L(B_in, θ)) for one network (lines 7–8, 14, 16)."""
    params = dict(net.named_parameters())
    inner = loss(params, b_in)
    if b_out is None:
        return inner
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
    adapted = {k: p - inner_lr * g for (k, p), g in zip(params.items(), grads)}
    return inner + meta_weight * loss(adapted, b_out)


@dataclass(frozen=True)
class TrainSettings:
    iterations: int
    batch_size: int
    lr: float
    inner_lr: float
    meta_weight: float
    progress: bool


def meta_train(
    nets: dict[str, torch.nn.Module],
    sde: VPSDE,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    domains: np.ndarray,
    settings: TrainSettings,
    gen: torch.Generator,
) -> list[dict[str, float]]:
    """Algorithm 1 on rows ``x`` (diffusion space), 0/1 ``y`` and ``z`` and integer ``domains``;
    ``nets`` holds ``score``, ``label`` and ``sensitive``. Returns the losses every 50 iterations."""
    names = np.unique(domains)
    members = [torch.from_numpy(np.flatnonzero(domains == d)) for d in names]
    per_domain = max(1, settings.batch_size // len(names))
    params = [p for net in nets.values() for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=settings.lr)
    losses: dict[str, Callable[[Params, Batch], torch.Tensor]] = {
        "score": lambda p, b: score_loss(nets["score"], p, sde, b),
        "label": lambda p, b: classifier_loss(nets["label"], p, sde, b, b.y),
        "sensitive": lambda p, b: classifier_loss(nets["sensitive"], p, sde, b, b.z),
    }
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, settings.iterations + 1), desc="FADM", disable=not settings.progress, leave=False)
    for it in bar:
        idx = torch.cat([m[torch.randint(len(m), (per_domain,), generator=gen)] for m in members])
        which = torch.repeat_interleave(torch.arange(len(names)), per_domain)
        n = len(idx)
        t = T_MIN + (1.0 - T_MIN) * torch.rand(n, generator=gen, dtype=x.dtype)
        batch = Batch(x[idx], y[idx], z[idx], t, torch.randn(n, x.shape[1], generator=gen, dtype=x.dtype))
        if len(names) > 1:
            out = int(torch.randint(len(names), (1,), generator=gen))
            b_in, b_out = batch.rows(which != out), batch.rows(which == out)
        else:
            b_in, b_out = batch, None
        objectives = {
            k: meta_objective(nets[k], loss, b_in, b_out, settings.inner_lr, settings.meta_weight)
            for k, loss in losses.items()
        }
        opt.zero_grad()
        sum(objectives.values()).backward()
        opt.step()
        if it % 50 == 0 or it == settings.iterations:
            record = {k: float(v.detach()) for k, v in objectives.items()}
            history.append({"iteration": it, **record})
            bar.set_postfix(score=f"{record['score']:.3f}")
    return history
