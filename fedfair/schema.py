"""The config schema: ``conf/`` holds every default value and a one-line description of every key
(the comment on its line, else the comment block right above it); the config dataclasses hold the
types and checks and take their defaults from here, so no default is written twice.

:func:`defaults` reads an option's YAML once (following its ``defaults:`` list within its group, as
``fairfed`` extends ``fedavg``); :func:`descriptions` reads the comments; :func:`build` makes a
dataclass from a config section, refusing an unknown key or a value of the wrong type in one line.
The sections no library dataclass owns are in :mod:`fedfair.sections`.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf

from fedfair.env import conf_dir
from fedfair.errors import FedFairError

ROOT = "config"  # conf/config.yaml: the top level, with the group defaults and the hydra node
NOT_KEYS = ("defaults", "hydra")  # nodes of a YAML that are Hydra's, not experiment keys
RUN = {"run": True}  # metadata of a field the run fills in (a client's seed, progress): never a key there
SELECTORS = ("name", "method")  # the key that names an option in its YAML
MAX_SEED = 2**32
_KEY = re.compile(r"^(\s*)([A-Za-z_]\w*):(.*)$")


def _path(group: str | None, option: str) -> Path:
    return conf_dir() / (f"{option}.yaml" if group is None else f"{group}/{option}.yaml")


def options(group: str) -> tuple[str, ...]:
    """The options of a config group (its YAML files), sorted."""
    return tuple(sorted(p.stem for p in (conf_dir() / group).glob("*.yaml")))


@functools.cache
def _load(group: str | None, option: str) -> dict[str, Any]:
    """An option's YAML as read by OmegaConf (as Hydra reads it), once per process."""
    return OmegaConf.to_container(OmegaConf.load(_path(group, option)), resolve=False)  # type: ignore[return-value]


def _parents(group: str | None, option: str) -> list[str]:
    """The same-group options an option's ``defaults:`` list extends (``override /...`` entries,
    which select other groups, are Hydra's business)."""
    listed = _load(group, option).get("defaults", []) if group is not None else []
    return [d for d in listed if isinstance(d, str) and d != "_self_"]


def _defaults(group: str | None, option: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for parent in _parents(group, option):
        values.update(_defaults(group, parent))
    values.update({k: v for k, v in _load(group, option).items() if k not in NOT_KEYS})
    return values


def defaults(group: str | None, *option_names: str) -> dict[str, Any]:
    """The default values of a group's options (``group`` None: conf/config.yaml's top level),
    merged: a key takes its value from the first option that has it. A fresh copy."""
    merged: dict[str, Any] = {}
    for option in reversed(option_names):
        merged.update(_defaults(group, option))
    return copy.deepcopy(merged)


@functools.cache
def _comments(group: str | None, option: str) -> tuple[str, dict[str, str]]:
    """(the option's description: the comment block before its first key, each key's description)."""
    head: list[str] = []
    block: list[str] = []
    stack: list[tuple[int, str]] = []
    described: dict[str, str] = {}
    first = True
    for line in _path(group, option).read_text().splitlines():
        text = line.strip()
        if not text:
            block = []
            continue
        if text.startswith("#"):
            block.append(text.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:  # a list item
            block = []
            continue
        indent, key, rest = len(match[1]), match[2], match[3]
        if first:
            head, block, first = block, [], False
        stack = [(i, k) for i, k in stack if i < indent]
        dotted = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        inline = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        if inline or block:
            described[dotted] = inline or " ".join(block)
        block = []
    return " ".join(head), described


def descriptions(group: str | None, option: str) -> dict[str, str]:
    """Each key's one-line description (dotted for nested keys, e.g. ``simulation.timeout``). The
    key naming the option (``name``, ``partition.method``) has the option's description (the comment
    block before its first key); keys inherited through ``defaults:`` keep their parent's."""
    described: dict[str, str] = {}
    for parent in _parents(group, option):
        described.update(descriptions(group, parent))
    head, own = _comments(group, option)
    described.update(own)
    selector = next((k for k in SELECTORS if k in _load(group, option)), None) if group else None
    if selector is not None:
        described[selector] = head
    return described


def integer(value: Any, where: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (``hi`` None: no upper bound), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FedFairError(f"{where} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise FedFairError(f"{where} must be {span}, got {value}")
    return value


def number(value: Any, where: str, lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FedFairError(f"{where} must be a finite number, got {value!r}")
    if (value < lo or (lo_open and value == lo)) or (value > hi or (hi_open and value == hi)):
        left, right = "(" if lo_open else "[", ")" if hi_open or hi == math.inf else "]"
        upper = "inf" if hi == math.inf else f"{hi:g}"
        raise FedFairError(f"{where} must be in {left}{lo:g}, {upper}{right}, got {value:g}")
    return float(value)


# ---- types and building ------------------------------------------------------------------------

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _accepts(kind: Any, value: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typing.get_origin(kind) is Literal:  # the type here, the choice in the dataclass's own check
        return any(type(value) is type(choice) for choice in typing.get_args(kind))
    return isinstance(value, kind)


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def kind(hint: Any) -> str:
    """What a field of type ``hint`` takes, in words ("a number or null")."""
    words = []
    for alt in _alternatives(hint):
        if alt is type(None):
            continue
        if typing.get_origin(alt) is Literal:
            alt = type(typing.get_args(alt)[0])
        words.append(_KINDS.get(alt, getattr(alt, "__name__", str(alt))))
    return " or ".join(words) + (" or null" if type(None) in _alternatives(hint) else "")


def check_type(value: Any, hint: Any, where: str) -> None:
    """A one-line error unless ``value`` is of type ``hint``."""
    if not any(_accepts(alt, value) for alt in _alternatives(hint)):
        raise FedFairError(f"{where} must be {kind(hint)}, got {value!r}")


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The config fields of a schema dataclass and their types."""
    return typing.get_type_hints(cls)


def keys(cls: type) -> tuple[str, ...]:
    """The config keys a schema dataclass holds: its fields but those the run fills in."""
    return tuple(f.name for f in fields(cls) if not f.metadata.get("run"))


def run_filled(cls: type) -> tuple[str, ...]:
    """The fields of a schema dataclass that the run fills in."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("run"))


def check_section(section: dict[str, Any], classes: tuple[type, ...], where: str, named: bool = True) -> None:
    """Every key of ``section`` belongs to one of ``classes`` (or is ``name``, if ``named``) and has
    its type."""
    types_ = ({"name": str} if named else {}) | {k: hints(cls)[k] for cls in classes for k in keys(cls)}
    for key, value in section.items():
        if any(key in run_filled(cls) for cls in classes):
            raise FedFairError(f"{where}.{key} cannot be set: it is derived from the run {key} (set {key}=...)")
        if key not in types_:
            raise FedFairError(f"unknown key {where}.{key}; known keys: {', '.join(sorted(types_))}")
        check_type(value, types_[key], f"{where}.{key}")


def build(cls: type, section: dict[str, Any], where: str, **extra: Any) -> Any:
    """``cls`` from the keys of ``section`` that are its fields (``extra``: fields the run fills in);
    a missing key takes its default, i.e. its value in ``conf/``."""
    own = {k: v for k, v in section.items() if k in keys(cls) and k != "name"}
    for key, value in own.items():
        check_type(value, hints(cls)[key], f"{where}.{key}" if where else key)
    return cls(**own, **extra)
