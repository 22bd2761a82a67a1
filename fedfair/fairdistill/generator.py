"""The fair-latent-distillation generator (Sikder et al. 2024): configuration, training on one client's
rows (:func:`fit`: the FairDisCo teacher, then the student), and generation (§4.3, x_fair = D_θ(z'),
z' ~ E'_ψ(x, s)) as a :class:`~fedfair.table.Table`.

Generation RE-ENCODES real rows, as §4.3 says; it does not sample the prior. For ``ns`` rows:

1. source rows: a seeded draw stratified by y (``labels=match``: the training class balance;
   ``balanced``: halves), each class's rows taken in a random order, cycling when more are needed;
2. z' ~ q'(z | x, c) of the student (``distill=False``: the teacher's z, the "no distillation" ablation),
   c = the row's s, and its y with ``condition_y`` (networks module);
3. the decoding s̃ is drawn independently of everything, Bernoulli(the client's share of s = 1)
   (``s_decode=random``; the paper names no s for decoding, and this is FADM's convention in fedfair), or
   is each source row's own s (``s_decode=own``, the ablation that keeps the bias). A generated row
   carries s̃ as its sensitive attribute, since it was decoded as a member of that group;
4. x̃ ~ p_θ(x | z', c̃), c̃ = s̃ (and the source row's y with ``condition_y``): a category from the
   softmax of each one-hot group, a Bernoulli bit per binary feature, mean + σ_num ε clipped to [0, 1]
   per numeric one (``decode=mode``: the argmax, the 0.5 threshold and the clipped mean instead);
5. ỹ = the source row's y: FairDisCo does not model y and the paper is silent. With ``condition_y``
   the row is decoded as a member of class ỹ, so its features agree with its label.

So without stage 2 each generated row is a noisy re-encoding of one real row with its true label: no
privacy of its own (see docs/PRIVACY.md's stage-2 argument).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedfair import schema
from fedfair.env import torch_threads
from fedfair.errors import FedFairError
from fedfair.fadm.layout import Layout
from fedfair.fairdistill.losses import DISTILL_LOSSES
from fedfair.fairdistill.networks import Decoder, Encoder, condition, reparametrise
from fedfair.fairdistill.training import Rows, train_student, train_teacher
from fedfair.table import Table

LABELS = ("match", "balanced")
S_DECODE = ("random", "own")
DECODE = ("sample", "mode")
PENALTIES = ("u", "v")
KL_TO = ("teacher", "prior")
GENERATION = ("s_decode", "decode", "distill", "ns", "labels", "progress")  # fields used after training


_DEFAULTS = schema.defaults("stage1", "fairdistill")  # the defaults below: conf/stage1/fairdistill.yaml


@dataclass(frozen=True)
class FairDistillConfig:
    """Teacher (FairDisCo, eq. 3: ``hidden``, ``z_dim``, ``beta``, ``sigma_num``,
    ``teacher_iterations``; ``condition_y``: the networks' condition is (s, y), not s alone), student (eq. 6: ``student_hidden``, ``loss`` ∈ l1 | mse | huber | md,
    ``lam`` λ, ``student_iterations``), both (``batch_size``, Adam ``lr``), and generation (module doc:
    ``s_decode``, ``decode``, ``distill``, ``ns`` rows: None = as many as the training rows, a fraction
    in (0, 1] of them or a count; ``labels``: ``match`` or ``balanced``).

    Where we depart from the proposal (shared/notes/fair-latent-distillation.md; measured on the biased ``synthetic`` set, 2,000
    steps; R²x = the teacher's reconstruction R² of x from μ at β = 0, downstream = fedfair's logistic
    model on the generated rows, majority rate 0.64):

    * ``penalty=u`` with ``beta=1e5``: eq. 2's plug-in (V-statistic) form adds 2p(1 − p)·mean K_ii / B,
      which only shrinks as σ grows. With the V-form, R²x falls to 0.57 at β = 1e5 and 0.31 at 1e6 (every
      σ ≈ 1.1: collapse; downstream accuracy 0.75, then 0.66); FairX's β = 1e7 is beyond that. The
      U-statistic (pairs i ≠ j) has no such pull: at β = 1e5 R²x is 0.76, V² is ~100× below β = 0's and
      downstream accuracy 0.78 (|SPD| 0.00); it too loses the signal at β = 1e7 (R²x 0.30, accuracy
      0.67). ``beta`` is the multiplier of V² itself (the reference sweeps 10^k: the paper's
      "β ∈ {1..10}" is log₁₀ β).
    * ``kl_to=teacher``: the KL of eq. 5–6 is taken to the teacher's posterior q(z | x, s), the
      response-based distillation of §3.2 (eq. 1: a KL between two models' distributions), not to
      N(0, I). With the prior and λ = 1 the KL pulled the student's σ' to ≈ 0.7 where the teacher's
      informative dimensions have σ ≈ 0.01–0.1: R²(μ', μ) 0.22 and downstream accuracy 0.66, against
      0.998 and 0.78 with the teacher's posterior. ``kl_to=prior`` keeps the other reading.
    * ``sigma_num=0.02`` instead of 0.05: with 0.05 the teacher had not left the collapsed posterior
      after 2,000 steps (R²x 0.29 against 0.997).
    * ``condition_y=True`` (ours; FairDisCo conditions on s only): every network is conditioned on s
      AND the label y (c = s + 2·[y = +1]); V² still makes z independent of s, and a generated row is
      decoded with (s̃, its source row's y). Conditioned on s only, a decoded row is a blurred copy of
      its source whose label it keeps, so the downstream model learns a weakened signal (it selects
      too few rows): on Adult (2 IID clients, seed 0; fedfair's logistic model; real rows 0.856 /
      |SPD| 0.186, selection rate 0.20, majority rate 0.752) s-only decoding with each row's own s
      gave accuracy 0.820 and with the random s̃ 0.807 / |SPD| 0.061 (selection rate 0.11); neither
      lower σ_num (0.01: 0.812), twice the teacher steps (0.815), mean decoding (≤ 0.817) nor mixing
      in own-s rows (s_mix 0.5: 0.814 / 0.121) got the cost under 3 pp. Conditioned on y too, own-s
      decoding gives 0.852 and the random s̃ 0.842 / |SPD| 0.092 (selection rate 0.19). The
      generated labels stay independent of s̃ as before, since ỹ is the source's label and s̃ is
      drawn independently of it. ``condition_y=False`` is FairDisCo's (and the paper's) network.

    The reference trains 1000 epochs with batches of 2048 rows (≈ 5 s per step here: V² is quadratic
    in the batch); 2000 steps of 256 rows cost about a minute per client on one core."""

    hidden: int = _DEFAULTS["hidden"]
    student_hidden: int = _DEFAULTS["student_hidden"]
    z_dim: int = _DEFAULTS["z_dim"]
    beta: float = _DEFAULTS["beta"]
    penalty: str = _DEFAULTS["penalty"]
    teacher_iterations: int = _DEFAULTS["teacher_iterations"]
    student_iterations: int = _DEFAULTS["student_iterations"]
    batch_size: int = _DEFAULTS["batch_size"]
    lr: float = _DEFAULTS["lr"]
    loss: str = _DEFAULTS["loss"]
    lam: float = _DEFAULTS["lam"]
    kl_to: str = _DEFAULTS["kl_to"]
    sigma_num: float = _DEFAULTS["sigma_num"]
    condition_y: bool = _DEFAULTS["condition_y"]
    s_decode: str = _DEFAULTS["s_decode"]
    decode: str = _DEFAULTS["decode"]
    distill: bool = _DEFAULTS["distill"]
    ns: float | None = _DEFAULTS["ns"]
    labels: str = _DEFAULTS["labels"]
    seed: int = field(default=0, metadata=schema.RUN)
    threads: int = _DEFAULTS["threads"]
    progress: bool = field(default=True, metadata=schema.RUN)

    def __post_init__(self) -> None:
        ints = ("hidden", "student_hidden", "z_dim", "teacher_iterations", "student_iterations", "batch_size",
                "threads")
        for name in ints:
            if getattr(self, name) < 1:
                raise FedFairError(f"fairdistill {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "sigma_num"):
            if not getattr(self, name) > 0:
                raise FedFairError(f"fairdistill {name} must be > 0, got {getattr(self, name)}")
        for name in ("beta", "lam"):
            value = getattr(self, name)
            if not (value >= 0 and np.isfinite(value)):
                raise FedFairError(f"fairdistill {name} must be a finite number >= 0, got {value}")
        for name, allowed in (("penalty", PENALTIES), ("loss", DISTILL_LOSSES), ("kl_to", KL_TO), ("s_decode", S_DECODE), ("decode", DECODE),
                              ("labels", LABELS)):
            if getattr(self, name) not in allowed:
                raise FedFairError(
                    f"fairdistill {name} must be one of {', '.join(allowed)}, got '{getattr(self, name)}'"
                )
        if self.ns is not None and not self.ns > 0:
            raise FedFairError(f"fairdistill ns must be > 0, got {self.ns}")


def _rows(table: Table, with_y: bool) -> Rows:
    s = torch.from_numpy(table.s)
    return Rows(torch.from_numpy(table.x.astype(np.float32)), s, condition(s, torch.from_numpy(table.y), with_y))


def _frozen(*nets: torch.nn.Module) -> None:
    for net in nets:
        net.eval().requires_grad_(False)


@dataclass
class FairDistill:
    """A trained generator: the teacher's encoder and decoder, the student encoder, and what decoding
    needs (the layout, σ_num, the client's share of s = 1, whether the networks are conditioned on y).
    ``history``: the loss terms of ``teacher``
    and ``student`` training, every 50 iterations."""

    layout: Layout
    feature_names: tuple[str, ...]
    encoder: Encoder
    decoder: Decoder
    student: Encoder
    s_share: float
    sigma_num: float
    condition_y: bool
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the networks and what decoding needs (``torch.save``) to ``path``."""
        torch.save({
            "nets": {k: getattr(self, k).state_dict() for k in ("encoder", "decoder", "student")},
            "shape": {"dim": self.decoder.body[-1].out_features, "hidden": self.encoder.body[0].out_features,
                      "student_hidden": self.student.body[0].out_features,
                      "z_dim": self.encoder.body[-1].out_features // 2},
            "feature_names": list(self.feature_names), "s_share": self.s_share, "sigma_num": self.sigma_num,
            "condition_y": self.condition_y, "history": self.history,
        }, path)

    @classmethod
    def load(cls, path: Path, layout: Layout) -> FairDistill:
        """A generator written by :meth:`save`; it generates exactly as the one saved."""
        blob = torch.load(path, weights_only=True)
        shape, with_y = blob["shape"], bool(blob["condition_y"])
        k = 4 if with_y else 2
        nets = {"encoder": Encoder(shape["dim"], shape["hidden"], shape["z_dim"], k),
                "decoder": Decoder(shape["z_dim"], shape["hidden"], shape["dim"], k),
                "student": Encoder(shape["dim"], shape["student_hidden"], shape["z_dim"], k)}
        for name, net in nets.items():
            net.load_state_dict(blob["nets"][name])
        _frozen(*nets.values())
        return cls(layout, tuple(blob["feature_names"]), nets["encoder"], nets["decoder"], nets["student"],
                   float(blob["s_share"]), float(blob["sigma_num"]), with_y, dict(blob["history"]))

    @torch.no_grad()
    def latent(self, table: Table, eps: torch.Tensor | None = None, distill: bool = True) -> torch.Tensor:
        """The student's (``distill``) or the teacher's z of every row: μ, or μ + σ ⊙ ``eps``."""
        rows = _rows(table, self.condition_y)
        mu, logvar = (self.student if distill else self.encoder)(rows.x, rows.c)
        return mu if eps is None else reparametrise(mu, logvar, eps)

    @torch.no_grad()
    def generate(
        self, source: Table, seed: int, s_decode: str = "random", decode: str = "sample", distill: bool = True,
    ) -> Table:
        """One generated row per row of ``source`` (steps 2–5 of the module doc); deterministic for
        ``seed``."""
        if source.feature_names != self.feature_names:
            raise FedFairError("fairdistill source rows have other feature columns than the training rows")
        gen = torch.Generator().manual_seed(int(seed))
        n, z_dim = len(source), self.encoder.body[-1].out_features // 2
        z = self.latent(source, torch.randn(n, z_dim, generator=gen), distill)
        if s_decode == "own":
            s = torch.from_numpy(source.s)
        elif s_decode == "random":
            s = (torch.rand(n, generator=gen, dtype=torch.float64) < self.s_share).long()
        else:
            raise FedFairError(f"fairdistill s_decode must be one of {', '.join(S_DECODE)}, got '{s_decode}'")
        c = condition(s, torch.from_numpy(source.y), self.condition_y)
        x = self._decode(self.decoder(z, c), decode, gen)
        return Table(x, s.numpy(), source.y, self.feature_names)

    def _decode(self, out: torch.Tensor, how: str, gen: torch.Generator) -> np.ndarray:
        """Decoder outputs → valid encoded rows in [0, 1] (step 4 of the module doc)."""
        if how not in DECODE:
            raise FedFairError(f"fairdistill decode must be one of {', '.join(DECODE)}, got '{how}'")
        x = torch.zeros(out.shape, dtype=torch.float64)
        sample = how == "sample"
        for b in self.layout.blocks:
            o = out[:, b.start:b.stop].double()
            if b.kind == "numeric":
                noise = self.sigma_num * torch.randn(o.shape, generator=gen, dtype=o.dtype) if sample else 0.0
                x[:, b.start:b.stop] = (o + noise).clamp(0.0, 1.0)
            elif b.kind == "binary":
                p = torch.sigmoid(o)
                x[:, b.start:b.stop] = (torch.rand(o.shape, generator=gen, dtype=o.dtype) < p if sample
                                        else p >= 0.5).double()
            else:
                pick = (torch.multinomial(torch.softmax(o, dim=1), 1, generator=gen)[:, 0] if sample
                        else o.argmax(dim=1))
                x[torch.arange(len(o)), b.start + pick] = 1.0
        return x.numpy()


def fit_teacher(table: Table, layout: Layout, cfg: FairDistillConfig) -> FairDistill:
    """The FairDisCo teacher trained on ``table`` (eq. 3); its student is untrained (see :func:`distil`)."""
    if len(table) < 2:
        raise FedFairError(f"fairdistill needs at least 2 training rows, got {len(table)}")
    if table.x.shape[1] != layout.width:
        raise FedFairError(f"fairdistill rows have {table.x.shape[1]} features, the layout {layout.width}")
    dim, rows, k = table.x.shape[1], _rows(table, cfg.condition_y), 4 if cfg.condition_y else 2
    with torch_threads(cfg.threads), torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        encoder, decoder = Encoder(dim, cfg.hidden, cfg.z_dim, k), Decoder(cfg.z_dim, cfg.hidden, dim, k)
        student = Encoder(dim, cfg.student_hidden, cfg.z_dim, k)
        gen = torch.Generator().manual_seed(cfg.seed)
        history = train_teacher(encoder, decoder, rows, layout, cfg.beta, cfg.penalty == "u", cfg.sigma_num, cfg.teacher_iterations,
                                cfg.batch_size, cfg.lr, gen, cfg.progress)
    _frozen(encoder, decoder, student)
    return FairDistill(layout, table.feature_names, encoder, decoder, student, float(table.s.mean()),
                       cfg.sigma_num, cfg.condition_y, {"teacher": history, "student": []})


def distil(model: FairDistill, table: Table, cfg: FairDistillConfig) -> FairDistill:
    """A copy of ``model`` with a fresh student distilled from its teacher on ``table`` (Algorithm 1,
    eq. 6, with ``cfg.loss`` and ``cfg.lam``); the teacher is shared, not copied."""
    with torch_threads(cfg.threads), torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 1)
        student = Encoder(table.x.shape[1], cfg.student_hidden, cfg.z_dim, model.encoder.conditions)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        history = train_student(student, model.encoder, _rows(table, model.condition_y), cfg.loss, cfg.lam,
                                cfg.kl_to, cfg.student_iterations, cfg.batch_size, cfg.lr, gen, cfg.progress)
    _frozen(student)
    return replace(model, student=student, history={**model.history, "student": history})


def fit(table: Table, layout: Layout, cfg: FairDistillConfig) -> FairDistill:
    """The teacher, then the student, on one client's ``table``."""
    return distil(fit_teacher(table, layout, cfg), table, cfg)


def output_size(n: int, ns: float | None) -> int:
    size = n if ns is None else int(round(ns * n)) if ns <= 1 else int(ns)
    if size < 1:
        raise FedFairError(f"fairdistill ns={ns} gives {size} rows for {n} training rows")
    return size


def source_rows(table: Table, size: int, labels: str, seed: int) -> np.ndarray:
    """Indices of ``size`` rows of ``table`` stratified by y (step 1 of the module doc): the training
    class balance (``match``, rounded) or halves (``balanced``)."""
    share = float((table.y == 1).mean()) if labels == "match" else 0.5
    wanted = {1: int(round(share * size))}
    wanted[-1] = size - wanted[1]
    rng = np.random.default_rng(seed)
    picks = []
    for label, count in wanted.items():
        members = np.flatnonzero(table.y == label)
        if count and not len(members):
            raise FedFairError(f"fairdistill labels={labels} needs rows with y = {label:+d}; the client has none")
        if count:
            cycles = -(-count // len(members))
            picks.append(np.concatenate([rng.permutation(members) for _ in range(cycles)])[:count])
    return rng.permutation(np.concatenate(picks))


def sample(model: FairDistill, table: Table, cfg: FairDistillConfig) -> tuple[Table, dict[str, Any]]:
    """``cfg.ns`` generated rows re-encoded from ``table`` (the training rows), with a summary (the
    final training losses)."""
    idx = source_rows(table, output_size(len(table), cfg.ns), cfg.labels, cfg.seed + 2)
    with torch_threads(cfg.threads):
        rows = model.generate(table.subset(idx), cfg.seed + 3, cfg.s_decode, cfg.decode, cfg.distill)
    final = {k: v[-1] for k, v in model.history.items() if v}
    return rows, {"final": final}


def training_key(cfg: FairDistillConfig) -> dict[str, Any]:
    """The settings a trained generator depends on (not the generation ones): generators trained with
    equal keys on equal rows are equal, so a sweep over s_decode, decode, distill, ns or labels can share
    one."""
    return {k: v for k, v in asdict(cfg).items() if k not in GENERATION}
