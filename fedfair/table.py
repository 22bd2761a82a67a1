"""The in-memory form of a client's data: a = (x, s) features and a label y ∈ {−1, +1}.

Every module of the library passes data as a :class:`Table`. The sensitive attribute ``s`` is binary
(1 = the privileged group named by the dataset schema, so SPD > 0 means the model favours group 1)
and is a feature of the model, as in the paper: ``a = (x, s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedfair.errors import FedFairError


@dataclass(frozen=True)
class Table:
    """``x``: (N, d) float64 non-sensitive features, already encoded and scaled by the schema;
    ``s``: (N,) int {0, 1}; ``y``: (N,) int {−1, +1}; ``feature_names``: the d names of ``x``."""

    x: np.ndarray
    s: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float64)
        s = np.asarray(self.s)
        y = np.asarray(self.y)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise FedFairError(
                f"x has shape {x.shape} but {len(self.feature_names)} feature names were given"
            )
        if s.shape != (x.shape[0],) or y.shape != (x.shape[0],):
            raise FedFairError(f"x, s, y disagree in length: {x.shape[0]}, {s.shape}, {y.shape}")
        if not np.isfinite(x).all():
            raise FedFairError("features contain NaN or infinite values")
        if not np.isin(s, (0, 1)).all():
            raise FedFairError(f"sensitive attribute must be 0/1, got values {np.unique(s)[:5].tolist()}")
        if not np.isin(y, (-1, 1)).all():
            raise FedFairError(f"label must be -1/+1, got values {np.unique(y)[:5].tolist()}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "s", s.astype(np.int64))
        object.__setattr__(self, "y", y.astype(np.int64))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def a(self) -> np.ndarray:
        """The model's input a = (x, s), shape (N, d + 1)."""
        return np.hstack([self.x, self.s[:, None].astype(np.float64)])

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names of :meth:`to_array`: the features, then ``s`` and ``y``."""
        return (*self.feature_names, "s", "y")

    def subset(self, idx: np.ndarray) -> Table:
        return Table(self.x[idx], self.s[idx], self.y[idx], self.feature_names)

    def to_array(self) -> np.ndarray:
        """(N, d + 2) float32 matrix ``[x, s, y01]`` (y as 0/1), the form a client uploads."""
        y01 = (self.y == 1).astype(np.float64)
        return np.hstack([self.x, self.s[:, None], y01[:, None]]).astype(np.float32)

    @classmethod
    def from_array(cls, arr: np.ndarray, columns: tuple[str, ...] | list[str]) -> Table:
        """Inverse of :meth:`to_array`; ``s`` and ``y`` are thresholded at 0.5."""
        columns = tuple(columns)
        if len(columns) < 2 or columns[-2:] != ("s", "y") or arr.ndim != 2 or arr.shape[1] != len(columns):
            raise FedFairError(f"table with shape {arr.shape} does not match columns {columns}")
        arr = np.asarray(arr, dtype=np.float64)
        s = (arr[:, -2] >= 0.5).astype(np.int64)
        y = np.where(arr[:, -1] >= 0.5, 1, -1)
        return cls(arr[:, :-2], s, y, columns[:-2])

    @staticmethod
    def concat(tables: list[Table]) -> Table:
        if not tables:
            raise FedFairError("no tables to concatenate")
        names = tables[0].feature_names
        for t in tables[1:]:
            if t.feature_names != names:
                raise FedFairError("tables have different feature columns")
        return Table(
            np.vstack([t.x for t in tables]),
            np.concatenate([t.s for t in tables]),
            np.concatenate([t.y for t in tables]),
            names,
        )
