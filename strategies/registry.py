"""The Flower strategy of every name in ``fedfair.strategy_kinds``: each adapter module registers a
factory (the strategy from the experiment) under its names; the server imports the module a kind
names (``StrategyKind.adapter``) when it needs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from strategies.base import MeteredFedAvg

Factory = Callable[[Experiment], MeteredFedAvg]
FACTORIES: dict[str, Factory] = {}


def register(*names: str) -> Callable[[Factory], Factory]:
    """Decorator: ``factory`` makes the strategy of each of ``names``."""

    def add(factory: Factory) -> Factory:
        for name in names:
            if name in FACTORIES:
                raise ValueError(f"strategy '{name}' is registered twice")
            FACTORIES[name] = factory
        return factory

    return add


def make_strategy(exp: Experiment) -> tuple[MeteredFedAvg, int]:
    """The strategy named by ``strategy.name`` and its number of rounds."""
    kind = exp.kind
    importlib.import_module(kind.adapter)
    if kind.name not in FACTORIES:
        raise FedFairError(f"strategy '{kind.name}': its module {kind.adapter} registers no Flower strategy")
    return FACTORIES[kind.name](exp), exp.rounds()
