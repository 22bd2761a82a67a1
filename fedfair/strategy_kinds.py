"""The strategies a run can name (``strategy.name``), as the library knows them (no Flower here).

Each :class:`StrategyKind` says what the library must check and what a client does; its Flower
server strategy is registered under the same name by its adapter module in ``strategies/``
(``strategies.registry``), imported when a server needs it. So a job's strategy is validated before
anything starts, and the Flower side attaches to these names.

- ``oneshot``: the paper's method (one round; every client uploads its stage-1 + stage-2 table);
- ``fedavg``: FedAvg, T rounds of local training on the real rows;
- ``fairfed``: FairFed, FedAvg with fairness-aware aggregation weights (:mod:`fedfair.fairfed`);
- ``fedavg_<kind>`` for every trained stage-1 generator (:mod:`fedfair.generators`): FedAvg on the
  clients' real plus generated rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedfair import fairfed, generators
from fedfair.errors import FedFairError


@dataclass(frozen=True)
class StrategyKind:
    """One strategy. ``upload``: clients run stage 1 + stage 2 and upload once (one round);
    otherwise they train locally from the global θ for ``strategy.rounds`` rounds. ``config``: the
    dataclass of the strategy's own server keys in the strategy section (besides ``rounds`` and
    ``min_clients``), if any. ``augment``: the stage-1 generator whose rows clients add to theirs.
    ``adapter``: the module of ``strategies/`` that registers its Flower strategy."""

    name: str
    adapter: str
    upload: bool = False
    config: type | None = None
    augment: str | None = None

    @property
    def multi_round(self) -> bool:
        return not self.upload


KINDS: dict[str, StrategyKind] = {}


def register(kind: StrategyKind) -> StrategyKind:
    """Add a strategy; a name registered twice is a programming error."""
    if kind.name in KINDS:
        raise ValueError(f"strategy '{kind.name}' is registered twice")
    KINDS[kind.name] = kind
    return kind


def get(name: str) -> StrategyKind:
    """The strategy called ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in KINDS:
        raise FedFairError(f"unknown strategy '{name}'; choose one of: {', '.join(KINDS)}")
    return KINDS[name]


register(StrategyKind("oneshot", "strategies.oneshot", upload=True))
register(StrategyKind("fedavg", "strategies.fedavg"))
register(StrategyKind("fairfed", "strategies.fairfed", config=fairfed.FairFedConfig))
for _name, _gen in generators.GENERATORS.items():
    if _gen.trained:
        register(StrategyKind(f"fedavg_{_name}", "strategies.fedavg", augment=_name))
