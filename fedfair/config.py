"""Compose an experiment config from ``conf/`` with Hydra overrides (the Compose API).

Used where ``@hydra.main`` cannot own argv: Flower's ``flwr run`` / deployment ServerApp, and the CLI's
check of every job of a run or sweep before anything starts.
"""

from __future__ import annotations

import itertools
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedfair.env import conf_dir
from fedfair.errors import FedFairError


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()).split(" Config search path:")[0]
    return text.replace(" Available options in", "; available options in")


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved experiment config (without the ``hydra`` node) for these overrides."""
    task = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = compose(config_name="config", overrides=task)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as exc:
        raise FedFairError(f"bad config: {_one_line(exc)}") from None
    finally:
        GlobalHydra.instance().clear()


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The override lists of every job of a sweep (``k=a,b`` → one job per value), as Hydra's
    basic sweeper would run them."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise FedFairError(f"bad override: {_one_line(exc)}") from None
    choices = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    return [list(job) for job in itertools.product(*choices)]
