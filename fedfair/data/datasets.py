"""A loaded :class:`Dataset` and :func:`load_dataset`, which finds a dataset by name in
:data:`fedfair.data.sets.DATASETS` (one module per dataset: its schema, loader and files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fedfair.data.schema import Schema
from fedfair.data.sets import DATASETS
from fedfair.errors import FedFairError
from fedfair.table import Table


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: ``table`` encodes ``frame`` (the raw rows kept, in the same order);
    ``raw_rows`` counts the rows read before any were dropped or filtered out."""

    name: str
    schema: Schema
    table: Table
    raw_rows: int
    frame: pd.DataFrame = field(repr=False)

    def column(self, name: str) -> np.ndarray:
        """A raw column aligned to the rows of :attr:`table` (e.g. to partition by it)."""
        if name not in self.frame.columns:
            raise FedFairError(f"{self.name} has no column '{name}'; it has: {', '.join(self.frame.columns)}")
        return self.frame[name].to_numpy()


def build(schema: Schema, frame: pd.DataFrame, raw_rows: int) -> Dataset:
    """The dataset of the raw rows ``frame`` (``raw_rows`` read before any were dropped), encoded by
    ``schema``."""
    frame = frame.reset_index(drop=True)
    return Dataset(schema.name, schema, schema.encode(frame), raw_rows, frame)


def variant(name: str, variants: dict[str, Schema], sensitive: str) -> Schema:
    """The schema of dataset ``name`` whose sensitive attribute is ``sensitive`` (a one-line error
    naming the choices otherwise)."""
    if sensitive not in variants:
        raise FedFairError(
            f"dataset '{name}' has no sensitive attribute '{sensitive}'; choose one of: {', '.join(variants)}"
        )
    return variants[sensitive]


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> Dataset:
    """Load and encode a dataset by name; files come from ``data_dir`` (default
    :func:`~fedfair.data.files.data_dir`) and are checked by SHA-256 first."""
    spec = DATASETS.lookup(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = ", ".join(spec.options) or "none"
        raise FedFairError(f"dataset '{name}' has no option {', '.join(unknown)}; its options: {takes}")
    return spec.load(None if data_dir is None else Path(data_dir), **options)
