"""The stage-2 synthesizers, one module each (no Flower here).

``fedfair/synth/<name>.py`` defines ``SYNTHESIZER = Synthesizer("<name>", ...)`` and
``conf/stage2/<name>.yaml`` selects it (``stage2=<name>``); :data:`SYNTHESIZERS` finds every module of
this package, so adding a synthesizer edits no list. ``stage2=none`` (no DP) is no module:
:func:`fedfair.stage2.synthesizer` returns None for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fedfair.registry import Registry
from fedfair.table import Table

if TYPE_CHECKING:
    from fedfair.stage2 import Stage2Config

Bounds = dict[str, tuple[float, float]]
Valid = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Synthesizer:
    """One stage-2 synthesizer.

    ``privatize(table, bounds, cfg, progress, valid)`` fits it to ``table`` (never empty) and returns
    the DP table (same feature names) and its accounting: keyword arguments of
    :class:`fedfair.stage2.PrivacyReport`, at least ``epsilon`` (``delta`` defaults to
    ``cfg.delta``). ``bounds`` are the schema's public feature bounds; ``valid`` (may be None) maps
    sampled feature rows to valid rows of the schema when ``table`` holds real rows.
    ``keys``: the ``stage2`` keys it reads beyond the common ones (:data:`fedfair.stage2.COMMON_KEYS`);
    a section holding another synthesizer's key is refused. ``orders``: the ``stage2.order`` values
    it supports. ``check(cfg)``: its keys' checks, each a one-line :class:`FedFairError`."""

    name: str
    privatize: Callable[[Table, Bounds, Stage2Config, bool, Valid | None], tuple[Table, dict[str, Any]]]
    keys: tuple[str, ...] = ()
    orders: tuple[str, ...] = ("before", "after")
    check: Callable[[Stage2Config], None] | None = None


SYNTHESIZERS: Registry[Synthesizer] = Registry("stage2", __name__, "SYNTHESIZER")
