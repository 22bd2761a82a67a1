"""How FADM sees a row: the encoded features of a :class:`~fedfair.table.Table` mapped to [−1, 1].

The schema already scales every feature into [0, 1] with public bounds, so the map 2x − 1 is fixed by
the schema, never by data (the paper does not say how it standardises; this is our choice). Decoding
makes every sample a valid row: numeric features are clipped to [0, 1], binary ones thresholded at
0, and each one-hot group of a categorical column becomes the one-hot of its largest coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedfair.data.schema import Binary, Categorical, Numeric, Schema
from fedfair.errors import FedFairError


@dataclass(frozen=True)
class Block:
    """One schema feature: its kind (numeric | binary | onehot), raw column and columns in x."""

    kind: str
    column: str
    start: int
    stop: int


@dataclass(frozen=True)
class Layout:
    """The blocks of x, in order, covering all its columns."""

    blocks: tuple[Block, ...]

    @classmethod
    def from_schema(cls, schema: Schema) -> Layout:
        blocks, start = [], 0
        for f in schema.features:
            width = len(f.names)
            kind = {Numeric: "numeric", Binary: "binary", Categorical: "onehot"}[type(f)]
            blocks.append(Block(kind, f.column, start, start + width))
            start += width
        return cls(tuple(blocks))

    @property
    def width(self) -> int:
        return self.blocks[-1].stop if self.blocks else 0

    def block(self, column: str) -> Block:
        for b in self.blocks:
            if b.column == column:
                return b
        names = ", ".join(b.column for b in self.blocks)
        raise FedFairError(f"no feature column '{column}' to take domains from; features: {names}")

    def domains(self, x: np.ndarray, column: str) -> np.ndarray:
        """Each row's domain id from one feature column: the category index of a one-hot group, the
        bit of a binary feature (a numeric column cannot define domains)."""
        b = self.block(column)
        if b.kind == "numeric":
            raise FedFairError(f"domain column '{column}' is numeric; use a categorical or binary feature")
        part = x[:, b.start:b.stop]
        return part.argmax(axis=1) if b.kind == "onehot" else (part[:, 0] >= 0.5).astype(np.int64)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """[0, 1] features → the diffusion's space [−1, 1]."""
        if x.shape[1] != self.width:
            raise FedFairError(f"rows have {x.shape[1]} features, the layout {self.width}")
        return 2.0 * x - 1.0

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Samples in [−1, 1]-space → valid encoded rows in [0, 1]."""
        out = np.empty_like(z, dtype=np.float64)
        for b in self.blocks:
            part = z[:, b.start:b.stop]
            if b.kind == "numeric":
                out[:, b.start:b.stop] = np.clip((part + 1.0) / 2.0, 0.0, 1.0)
            elif b.kind == "binary":
                out[:, b.start:b.stop] = (part > 0).astype(np.float64)
            else:
                hot = np.zeros_like(part, dtype=np.float64)
                hot[np.arange(len(part)), part.argmax(axis=1)] = 1.0
                out[:, b.start:b.stop] = hot
        return out
