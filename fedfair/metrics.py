"""Accuracy and group-fairness metrics, computed from sufficient statistics that add across clients.

Conventions: labels and predictions are in {−1, +1} (+1 favourable), ``s`` is in {0, 1} (1 = privileged),
``d`` is the linear decision value aᵀθ (or ``None``). A client reports :class:`Counts`; the server sums
them and calls :func:`compute`, so pooled metrics are exact and never averages of per-client rates.

``None`` means *undefined*: a group is absent, a group has no positives (TPR, EOD, EOR), there are no
rows, no decision values were given (covariances), or a 0/0 outside the ratios. Never NaN.

``eqodds_ratio`` and ``eqodds_diff`` are fairlearn's ``equalized_odds_ratio`` / ``_difference``: the
smaller of the TPR and FPR ratios, the larger of the absolute TPR and FPR gaps (``eor`` is the TPR ratio
alone); ``None`` when a group has no positives or no negatives.

Ratios (``dpr``, ``eor``) are min/max of the two groups' rates (FADM eq. 12/13). When both rates are 0
the groups are treated as perfectly equal and the ratio is 1.0. fairlearn returns NaN there, and where
a group is absent or has no positives it returns 0.0 or 1.0 (and a 0.0 difference); we return ``None``.
Where both are defined, the values match fairlearn's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedfair.errors import FedFairError

_SUMS = ("sum_d", "sum_sd", "sum_d_pos", "sum_sd_pos")
_CELLS = tuple((s, y, p) for s in (0, 1) for y in (0, 1) for p in (0, 1))


def _cell_key(s: int, y: int, p: int) -> str:
    return f"n_s{s}_y{y}_p{p}"


@dataclass(eq=False)
class Counts:
    """Sufficient statistics that add exactly across clients.

    ``n[s, y01, yhat01]``: confusion counts by group (y01 = 1 for y = +1). ``sum_d``, ``sum_sd``: Σ d_i and
    Σ s_i d_i; ``sum_d_pos``, ``sum_sd_pos``: the same over rows with y_i = +1; ``n_scored``: rows that
    came with a decision value (the covariances of eq. 3/4 need every row scored).
    """

    n: np.ndarray = field(default_factory=lambda: np.zeros((2, 2, 2), dtype=np.int64))
    sum_d: float = 0.0
    sum_sd: float = 0.0
    sum_d_pos: float = 0.0
    sum_sd_pos: float = 0.0
    n_scored: int = 0

    def __post_init__(self) -> None:
        n = np.asarray(self.n)
        if n.shape != (2, 2, 2) or not (n >= 0).all() or (n != np.round(n)).any():
            got = n.ravel()[:8].tolist()
            raise FedFairError(f"counts n must be a 2x2x2 array of non-negative integers, got {got}")
        if not (self.n_scored >= 0 and self.n_scored == round(self.n_scored)):
            raise FedFairError(f"n_scored must be a non-negative integer, got {self.n_scored}")
        self.n = n.astype(np.int64)
        self.n_scored = int(self.n_scored)
        for name in _SUMS:
            setattr(self, name, float(getattr(self, name)))

    @classmethod
    def zero(cls) -> Counts:
        """The empty statistics: the identity of ``+``."""
        return cls()

    @property
    def total(self) -> int:
        return int(self.n.sum())

    @property
    def has_scores(self) -> bool:
        """True when every row came with a decision value."""
        return self.n_scored == self.total

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(
            self.n + other.n,
            *(getattr(self, k) + getattr(other, k) for k in _SUMS),
            n_scored=self.n_scored + other.n_scored,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, int | float]:
        """Flat ``{key: number}`` (e.g. ``n_s0_y1_p0``, ``sum_d``), fit for a Flower MetricRecord."""
        out: dict[str, int | float] = {_cell_key(*c): int(self.n[c]) for c in _CELLS}
        out.update({k: float(getattr(self, k)) for k in _SUMS})
        out["n_scored"] = self.n_scored
        return out

    @classmethod
    def from_dict(cls, record: dict[str, int | float]) -> Counts:
        """Inverse of :meth:`to_dict`; extra keys are ignored."""
        keys = [_cell_key(*c) for c in _CELLS] + [*_SUMS, "n_scored"]
        missing = [k for k in keys if k not in record]
        if missing:
            raise FedFairError(f"metric record lacks keys {missing[:3]}")
        n = np.array([record[_cell_key(*c)] for c in _CELLS], dtype=np.float64).reshape(2, 2, 2)
        return cls(n, *(record[k] for k in _SUMS), n_scored=record["n_scored"])


def _vector(name: str, values: object, allowed: tuple[int, ...] | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise FedFairError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if allowed is None:
        if arr.size and (not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all()):
            raise FedFairError(f"{name} must be finite numbers")
        return arr.astype(np.float64)
    if not np.isin(arr, allowed).all():
        bad = np.unique(arr[~np.isin(arr, allowed)])[:5].tolist()
        raise FedFairError(f"{name} must take values in {allowed}, got {bad}")
    return arr.astype(np.int64)


def counts(y_true: object, y_pred: object, s: object, d: object | None = None) -> Counts:
    """Confusion counts by group and the score sums behind eq. 3/4 of paper 000."""
    y = _vector("y_true", y_true, (-1, 1))
    p = _vector("y_pred", y_pred, (-1, 1))
    g = _vector("s", s, (0, 1))
    if not len(y) == len(p) == len(g):
        raise FedFairError(f"y_true, y_pred, s differ in length: {len(y)}, {len(p)}, {len(g)}")
    y01, p01 = (y == 1).astype(np.int64), (p == 1).astype(np.int64)
    n = np.bincount(4 * g + 2 * y01 + p01, minlength=8).reshape(2, 2, 2)
    if d is None:
        return Counts(n)
    dv = _vector("d", d, None)
    if len(dv) != len(y):
        raise FedFairError(f"d has length {len(dv)} but y_true has length {len(y)}")
    pos = y01 == 1
    return Counts(
        n,
        sum_d=dv.sum(),
        sum_sd=dv[g == 1].sum(),
        sum_d_pos=dv[pos].sum(),
        sum_sd_pos=dv[pos & (g == 1)].sum(),
        n_scored=len(dv),
    )


def _div(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _ratio(a: float | None, b: float | None) -> float | None:
    """min/max of two rates (FADM eq. 12/13); 1.0 when both are 0."""
    if a is None or b is None:
        return None
    hi = max(a, b)
    return min(a, b) / hi if hi else 1.0


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def compute(c: Counts) -> dict[str, float | None]:
    """Metrics from summed counts: SPD/EOD (eq. 5), covariances (eq. 3/4) of paper 000; ratios of FADM
    eq. 12/13; fairlearn's equalized-odds ratio and difference; accuracy, recall, precision, F1 of the +1 class. ``None`` = undefined (module docstring)."""
    n = c.n
    total = c.total
    tp, fn, fp = int(n[:, 1, 1].sum()), int(n[:, 1, 0].sum()), int(n[:, 0, 1].sum())
    sel = [_div(n[g, :, 1].sum(), n[g].sum()) for g in (0, 1)]
    tpr = [_div(n[g, 1, 1], n[g, 1].sum()) for g in (0, 1)]
    fpr = [_div(n[g, 0, 1], n[g, 0].sum()) for g in (0, 1)]
    spd, eod, fpd = _diff(sel[1], sel[0]), _diff(tpr[1], tpr[0]), _diff(fpr[1], fpr[0])
    odds = None if eod is None or fpd is None else (_ratio(*tpr), _ratio(*fpr), abs(eod), abs(fpd))
    cov_sp = cov_eo = None
    if total and c.has_scores:
        s_bar = float(n[1].sum()) / total
        cov_sp = (c.sum_sd - s_bar * c.sum_d) / total
        cov_eo = (c.sum_sd_pos - s_bar * c.sum_d_pos) / total
    return {
        "n": total,
        "accuracy": _div(n[:, 0, 0].sum() + n[:, 1, 1].sum(), total),
        "spd": spd,
        "eod": eod,
        "abs_spd": None if spd is None else abs(spd),
        "abs_eod": None if eod is None else abs(eod),
        "cov_sp": cov_sp,
        "cov_eo": cov_eo,
        "dpr": _ratio(*sel),
        "eor": _ratio(*tpr),
        "eqodds_ratio": None if odds is None else min(odds[0], odds[1]),
        "eqodds_diff": None if odds is None else max(odds[2], odds[3]),
        "recall": _div(tp, tp + fn),
        "precision": _div(tp, tp + fp),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "selection_rate": _div(tp + fp, total),
        "sel_rate_s0": sel[0],
        "sel_rate_s1": sel[1],
        "tpr_s0": tpr[0],
        "tpr_s1": tpr[1],
        "fpr_s0": fpr[0],
        "fpr_s1": fpr[1],
    }


def evaluate(y_true: object, y_pred: object, s: object, d: object | None = None) -> dict[str, float | None]:
    """:func:`compute` of :func:`counts` on one data set."""
    return compute(counts(y_true, y_pred, s, d))


def majority_rate(c: Counts) -> float | None:
    """Accuracy of always predicting the more frequent label (None without rows): the floor a
    model's accuracy must clear."""
    if not c.total:
        return None
    positive = float(c.n[:, 1, :].sum()) / c.total
    return max(positive, 1.0 - positive)


def pooled(parts: list[Counts]) -> dict[str, float | None]:
    """Exact metrics over all clients: :func:`compute` of the summed counts."""
    return compute(sum(parts, Counts.zero()))
