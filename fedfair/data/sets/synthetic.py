"""``dataset=synthetic``: a seeded biased dataset generated in memory (no files), for demos and
tests."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd

from fedfair.data.datasets import Dataset, build
from fedfair.data.schema import Binary, Numeric, Schema
from fedfair.data.sets import DatasetSpec
from fedfair.errors import FedFairError

SYNTHETIC = Schema(
    "synthetic",
    sensitive=Binary("group", one=(1,), zero=(0,), role="sensitive"),
    label=Binary("label", one=(1,), zero=(0,), role="label"),
    # Each feature is N(mean, 1) with |mean| ≤ 1, so (−5, 5) clips at most ~3e-5 of the values.
    features=tuple(Numeric(f"x{i}", -5, 5) for i in range(1, 5)),
)


def synthetic(rows: int = 2000, seed: int = 0, minority: float = 0.3, shift: float = 1.0) -> Dataset:
    """A seeded biased dataset, generated in memory. A fraction ``minority`` of the rows has s = 0.
    x1 ~ N(shift·s, 1) and x2 ~ N(shift·s/2, 1) depend on the group, x3, x4 ~ N(0, 1) do not, and
    y = +1 with probability σ(1.5·x1 + x2 − 0.8·x3 + 0.5·x4 − 0.5): the label depends on s only
    through the features, and group 1 has a clearly higher positive rate (for ``shift`` = 1)."""
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise FedFairError(f"synthetic rows must be a positive integer, got {rows!r}")
    if not 0 < minority < 1:
        raise FedFairError(f"synthetic minority must be in (0, 1), got {minority!r}")
    rng = np.random.default_rng(seed)
    s = (rng.random(rows) >= minority).astype(np.int64)
    x = rng.normal(size=(rows, 4)) + np.outer(s, [shift, shift / 2, 0.0, 0.0])
    logit = x @ np.array([1.5, 1.0, -0.8, 0.5]) - 0.5
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 5)]).assign(group=s, label=label)
    return build(SYNTHETIC, frame, rows)


def load(root: Path | None, **options: object) -> Dataset:
    return synthetic(**options)


DATASET = DatasetSpec("synthetic", load, (), tuple(inspect.signature(synthetic).parameters))
