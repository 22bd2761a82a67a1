"""One fixed encoding per dataset, from raw DataFrame columns to a :class:`~fedfair.table.Table`.

A :class:`Schema` names the sensitive column, the label column and the feature specs. Every bound
and category list in it is PUBLIC (domain knowledge, written in the schema), so the encoding of a row
never depends on which other rows are present: a client's partition encodes exactly as the whole
dataset does, and :meth:`Schema.bounds` can serve as public bounds for differential privacy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedfair.errors import FedFairError
from fedfair.table import Table

UNIT = (0.0, 1.0)


def _values(values: list[Any], limit: int = 5) -> str:
    """``values`` for a one-line message: sorted, at most ``limit`` shown."""
    shown = sorted(values, key=repr)[:limit]
    more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
    return f"[{', '.join(map(repr, shown))}]{more}"


@dataclass(frozen=True)
class Numeric:
    """A number with public domain bounds: encoded as ``(v - lo) / (hi - lo)`` clipped to [0, 1]; an
    infinite value is an error, not a clipped bound."""

    column: str
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo < self.hi:
            raise FedFairError(f"numeric feature '{self.column}' needs lo < hi, got ({self.lo}, {self.hi})")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.column,)

    def encode(self, col: pd.Series, where: str) -> np.ndarray:
        if not pd.api.types.is_numeric_dtype(col):
            raise FedFairError(f"{where}: column '{self.column}' is not numeric (dtype {col.dtype})")
        v = col.to_numpy(dtype=np.float64)
        infinite = int(np.isinf(v).sum())
        if infinite:
            raise FedFairError(
                f"{where}: column '{self.column}' has infinite values ({infinite} row{'s' if infinite > 1 else ''})"
            )
        return np.clip((v - self.lo) / (self.hi - self.lo), 0.0, 1.0)[:, None]


@dataclass(frozen=True)
class Binary:
    """A two-valued column: raw values in ``one`` map to 1, values in ``zero`` map to 0.

    ``one=None`` (or ``zero=None``) means "every value not in the other list". Any value in neither
    list is an error naming the values, so an unexpected group never passes silently.
    """

    column: str
    one: tuple[Any, ...] | None
    zero: tuple[Any, ...] | None = None
    role: str = "binary"

    def __post_init__(self) -> None:
        if self.one is None and self.zero is None:
            raise FedFairError(f"binary column '{self.column}' needs the values of at least one side")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.column,)

    def bits(self, col: pd.Series, where: str) -> np.ndarray:
        """The 0/1 value of every row."""
        is_one = col.isin(self.one) if self.one is not None else ~col.isin(self.zero)
        is_zero = col.isin(self.zero) if self.zero is not None else ~is_one
        bad = ~(is_one | is_zero)
        if bad.any():
            one = "any other value" if self.one is None else _values(list(self.one))
            zero = "any other value" if self.zero is None else _values(list(self.zero))
            raise FedFairError(
                f"{where}: {self.role} column '{self.column}' has unexpected values "
                f"{_values(col[bad].unique().tolist())}; expected {one} for 1, {zero} for 0"
            )
        return is_one.to_numpy(dtype=np.int64)

    def encode(self, col: pd.Series, where: str) -> np.ndarray:
        return self.bits(col, where).astype(np.float64)[:, None]


@dataclass(frozen=True)
class Categorical:
    """One-hot over a FIXED category list, one column ``"<column>=<category>"`` per category.

    A value outside the list encodes as an all-zero row (no error): the list is public and fixed, so
    rare or new categories never change the encoding.
    """

    column: str
    categories: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.column}={c}" for c in self.categories)

    def encode(self, col: pd.Series, where: str) -> np.ndarray:
        codes = pd.Categorical(col, categories=self.categories).codes
        out = np.zeros((len(col), len(self.categories)))
        known = np.flatnonzero(codes >= 0)
        out[known, codes[known]] = 1.0
        return out


Feature = Numeric | Binary | Categorical


@dataclass(frozen=True)
class Schema:
    """The encoding of one dataset: ``s`` = 1 for the privileged group, ``y`` = +1 for the
    favourable label, and the features of ``x`` in order, each scaled into [0, 1]."""

    name: str
    sensitive: Binary
    label: Binary
    features: tuple[Feature, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(n for f in self.features for n in f.names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of the encoded :class:`Table` (``Table.columns``): features, ``s``, ``y``."""
        return (*self.feature_names, "s", "y")

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """The raw columns :meth:`encode` reads."""
        return (*(f.column for f in self.features), self.sensitive.column, self.label.column)

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Public (lower, upper) of every encoded column, in :attr:`columns` order; ``y`` as 0/1
        (the form of ``Table.to_array``). From the schema alone, never from data."""
        return {c: UNIT for c in self.columns}

    def encode(self, frame: pd.DataFrame) -> Table:
        """Encode raw rows; a missing column, a missing value (NaN) in a used column or a sensitive,
        label or binary value outside its declared groups raises a one-line :class:`FedFairError`."""
        missing = [c for c in dict.fromkeys(self.raw_columns) if c not in frame.columns]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise FedFairError(f"{self.name}: missing column{plural} {', '.join(map(repr, missing))}")
        nans = {c: int(n) for c in dict.fromkeys(self.raw_columns) if (n := frame[c].isna().sum())}
        if nans:
            listed = ", ".join(f"'{c}' ({n} row{'s' if n > 1 else ''})" for c, n in nans.items())
            raise FedFairError(f"{self.name}: missing values (NaN) in column {listed}")
        s = self.sensitive.bits(frame[self.sensitive.column], self.name)
        y = 2 * self.label.bits(frame[self.label.column], self.name) - 1
        parts = [f.encode(frame[f.column], self.name) for f in self.features]
        x = np.hstack(parts) if parts else np.zeros((len(frame), 0))
        return Table(x, s, y, self.feature_names)
