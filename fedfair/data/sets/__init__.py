"""The datasets, one module each: ``fedfair/data/sets/<name>.py`` defines its schema, its loader, the
files it reads (with their public URL and SHA-256) and ``DATASET = DatasetSpec("<name>", ...)``;
``conf/dataset/<name>.yaml`` selects it (``dataset=<name>``). :data:`DATASETS` finds every module of
this package, so adding a dataset edits no list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedfair.registry import Registry

if TYPE_CHECKING:
    from fedfair.data.datasets import Dataset
    from fedfair.data.files import Source


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: the loader ``load(root, **options)`` (``root``: the data directory, None
    for the default), its source files (none for a dataset generated in memory) and the options
    its ``conf/dataset/<name>.yaml`` may set."""

    name: str
    load: Callable[..., Dataset]
    sources: tuple[Source, ...]
    options: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(src.file for src in self.sources)


DATASETS: Registry[DatasetSpec] = Registry("dataset", __name__, "DATASET")
