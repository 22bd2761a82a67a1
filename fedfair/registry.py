"""Extension points found by name: every module of a package that defines one entry (no Flower here).

A :class:`Registry` lists the public modules of its package (``pkgutil`` over the package's
``__path__``, so a module dropped into the package, or a directory appended to ``__path__``, is
found with no central list to edit) and reads each one's entry attribute. The module's name is the
entry's name: ``conf/<group>/<name>.yaml`` selects ``<package>/<name>.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from fedfair.errors import FedFairError

T = TypeVar("T")


def unknown(kind: str, name: str, known: Iterable[str]) -> FedFairError:
    """The one-line error for a name no entry of ``kind`` has."""
    return FedFairError(f"unknown {kind} '{name}'; choose one of: {', '.join(known)}")


class Registry(Mapping[str, T], Generic[T]):
    """The entries of ``package`` by name, sorted: each public module (no leading ``_``) defines
    ``attribute``, an object whose ``name`` is the module's name. Modules are listed on every access
    (imports are cached by Python), so the registry is never stale."""

    def __init__(self, kind: str, package: str, attribute: str) -> None:
        self.kind, self.package, self.attribute = kind, package, attribute

    def _entries(self) -> dict[str, T]:
        path = importlib.import_module(self.package).__path__
        entries: dict[str, T] = {}
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{self.package}.{info.name}")
            entry: Any = getattr(module, self.attribute, None)
            if getattr(entry, "name", None) != info.name:
                raise FedFairError(f"{module.__name__} must define {self.attribute} with name '{info.name}'")
            entries[info.name] = entry
        return entries

    def __getitem__(self, name: str) -> T:
        return self._entries()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def lookup(self, name: str) -> T:
        """The entry called ``name``; an unknown name is a one-line error listing the known ones."""
        entries = self._entries()
        if name not in entries:
            raise unknown(self.kind, name, entries)
        return entries[name]
