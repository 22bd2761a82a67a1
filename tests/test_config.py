"""The config schema: every YAML key under conf/ is a schema field and every field a key, the
dataclass defaults are the YAML's, every key has a one-line description that ``fedfair run --help``
shows, and an unknown key or a wrong type in any section is one line naming it."""

from __future__ import annotations

import logging
from dataclasses import MISSING, fields
from typing import Any

import pytest

from fedfair import schema, sections
from fedfair.cli import GROUPS, run_help
from fedfair.config import compose_config
from fedfair.console import SUMMARY, ConsoleFilter
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from fedfair.stage2 import Stage2Config
from fedfair.validate import check_config, stage1_schema, strategy_schema

OPTIONS = [(group, option) for group in GROUPS for option in schema.options(group)]


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _classes(group: str, option: str) -> tuple[type, ...]:
    """The dataclasses whose fields are an option's keys."""
    if group == "stage1":
        return stage1_schema(option)
    if group == "strategy":
        return strategy_schema(option)
    return {"dataset": (sections.DatasetOptions,), "partition": (sections.Partition,), "stage2": (Stage2Config,)}[group]


def _fields(classes: tuple[type, ...]) -> dict[str, Any]:
    return {k: schema.hints(cls)[k] for cls in classes for k in schema.keys(cls)}


def _keys(group: str, option: str) -> set[str]:
    """An option's keys but the name that selects it (a field of Stage2Config, hence kept there)."""
    return set(schema.defaults(group, option)) - ({"name"} if group != "stage2" else set())


# Groups whose options each have their own dataclasses: the option's keys are exactly its fields.
# In the others one dataclass serves every option, and holds the union of their keys.
@pytest.mark.parametrize("group, option", [(g, o) for g, o in OPTIONS if g in ("stage1", "strategy")])
def test_an_options_keys_are_its_schema_fields(group: str, option: str) -> None:
    assert _keys(group, option) == set(_fields(_classes(group, option)))


@pytest.mark.parametrize("group", ["dataset", "partition", "stage2"])
def test_a_shared_schema_holds_the_union_of_its_options_keys(group: str) -> None:
    union = set().union(*(_keys(group, o) for o in schema.options(group)))
    assert union == set(_fields(_classes(group, schema.options(group)[0])))


def test_the_top_level_and_simulation_keys_are_schema_fields() -> None:
    top = schema.defaults(None, schema.ROOT)
    scalars = {k for k, v in top.items() if not isinstance(v, dict)}
    assert scalars == set(schema.keys(sections.Run))
    assert set(top["simulation"]) == set(schema.keys(sections.Simulation))
    groups = {"dataset", "partition", "stage1", "stage2", "strategy"}
    assert groups == set(GROUPS) and all(schema.options(g) for g in groups)


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_yaml_value_has_its_fields_type(group: str, option: str) -> None:
    types = _fields(_classes(group, option)) | {"name": str}
    for key, value in schema.defaults(group, option).items():
        schema.check_type(value, types[key], f"{group}.{key}")


def _homes() -> list[tuple[type, str, list[str]]]:
    """(dataclass, group, the options it serves)."""
    served: dict[type, tuple[str, list[str]]] = {}
    for group, option in OPTIONS:
        for cls in _classes(group, option):
            served.setdefault(cls, (group, []))[1].append(option)
    return [(cls, group, options) for cls, (group, options) in served.items()]


@pytest.mark.parametrize("cls, group, options", _homes(), ids=lambda v: getattr(v, "__name__", None))
def test_dataclass_defaults_are_the_yaml_values(cls: type, group: str, options: list[str]) -> None:
    """Where every option that sets a key agrees on its value, the default is that value; where
    they differ (stage2.order), it is one of them. DatasetOptions' None means "not set"."""
    if cls is sections.DatasetOptions:
        assert all(f.default is None for f in fields(cls))
        return
    for f in fields(cls):
        if f.metadata.get("run") or f.default is MISSING:
            continue
        values = [schema.defaults(group, o)[f.name] for o in options if f.name in schema.defaults(group, o)]
        assert values, f"{cls.__name__}.{f.name} is in no conf/{group}/*.yaml"
        assert f.default in values and type(f.default) is type(values[0]), (cls.__name__, f.name)
        if len(set(map(repr, values))) == 1:
            assert repr(f.default) == repr(values[0])
    top = schema.defaults(None, schema.ROOT)
    assert sections.Run() == sections.Run(**{k: top[k] for k in schema.keys(sections.Run)})
    assert sections.Simulation() == sections.Simulation(**top["simulation"])


def test_the_local_training_default_is_the_yaml_one() -> None:
    """The disagreement that started it: LocalConfig.lr was 0.1, conf/strategy/fedavg.yaml 0.5."""
    from fedfair.local import LocalConfig

    assert LocalConfig().lr == schema.defaults("strategy", "fedavg")["lr"] == 0.5


@pytest.mark.parametrize("group, option", [(None, schema.ROOT), *OPTIONS])
def test_every_key_has_a_one_line_description(group: str | None, option: str) -> None:
    described = schema.descriptions(group, option)
    for key in _flat(schema.defaults(group, option)):
        text = described.get(key, "")
        assert len(text.split()) >= 2 and "\n" not in text, f"{group}/{option}: {key} has no description"


@pytest.mark.parametrize("group, option", OPTIONS)
def test_run_help_lists_every_key_its_value_and_description(group: str, option: str) -> None:
    text = " ".join(run_help([f"{group}={option}"], width=100).split())
    assert f"{group} " in text and f"{option}*" in text
    cfg = compose_config([f"{group}={option}"])
    for key, value in cfg[group].items():
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert f"{group}.{key} = {shown} {' '.join(schema.descriptions(group, option)[key].split())}" in text


def test_run_help_lists_the_top_level_and_simulation_keys() -> None:
    text = " ".join(run_help([], width=100).split())
    described = schema.descriptions(None, schema.ROOT)
    for key, value in _flat({k: v for k, v in schema.defaults(None, schema.ROOT).items()}).items():
        assert f"{key} = " in text and " ".join(described[key].split()) in text
    assert "fedfair run -m" in text and "--cfg job" in text


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+bogus=1"], "unknown key bogus; known keys: audit, cache_dir, data_dir, dataset, num_clients, partition, "
                       "progress, seed, simulation, stage1, stage2, strategy"),
        (["audit=maybe"], "audit must be true or false, got 'maybe'"),
        (["cache_dir=3"], "cache_dir must be a string or null, got 3"),
        (["+simulation.gpus=1"], "unknown key simulation.gpus; known keys: client_cpus, connect_timeout, num_cpus, "
                                 "ray_address, timeout"),
        (["simulation.num_cpus=two"], "simulation.num_cpus must be an integer, got 'two'"),
        (["simulation.timeout=1.5"], None),
        (["+dataset.colour=red"], "unknown key dataset.colour; known keys: name, rows, sensitive"),
        (["dataset=synthetic", "dataset.rows=many"], "dataset.rows must be an integer or null, got 'many'"),
        (["+partition.shards=3"], "unknown key partition.shards; known keys: alpha, column, method, test_frac"),
        (["partition=dirichlet", "partition.alpha=lots"], "partition.alpha must be a number, got 'lots'"),
        (["+stage1.rate=1"], "unknown key stage1.rate; known keys: anchor, best_iterate, clip, gamma, init, inner, "
                             "inner_max_iter, inner_tol, k_max, lam_theta, lam_x, lr, name, ns1, penalty, prox, prox_spread, rho"),
        (["stage1.k_max=1.5"], "stage1.k_max must be an integer, got 1.5"),
        (["+stage1.progress=false"], "stage1.progress cannot be set: it is derived from the run progress "
                                     "(set progress=...)"),
        (["stage2=mst", "+stage2.bins=3"], "unknown key stage2.bins; known keys: batch_size, bounds_margin, delta, "
                                           "epochs, epsilon, mst_bins, name, noise_seed, ns2_frac, order, sigma, threads"),
        (["stage2.epsilon=high"], "stage2.epsilon must be a number, got 'high'"),
        (["+strategy.rounds=3"], "unknown key strategy.rounds; known keys: lam_theta, min_clients, name"),
        (["strategy=fedavg", "strategy.reweigh=1"], "strategy.reweigh must be true or false, got 1"),
        (["strategy=fairfed", "strategy.metric=1"], "strategy.metric must be a string, got 1"),
    ],
)
def test_a_bad_key_or_type_in_any_section_is_one_line(overrides: list[str], message: str | None) -> None:
    cfg = compose_config(overrides)
    if message is None:  # an integer where a number is expected is fine
        check_config(cfg)
        return
    with pytest.raises(FedFairError) as err:
        Experiment(cfg)
    assert str(err.value) == message


def test_a_partial_config_takes_the_yaml_defaults() -> None:
    """Scripts build configs by hand: a missing key is its value in conf/, not a copy in the code."""
    cfg = {"dataset": {"name": "synthetic"}, "partition": {"method": "dirichlet"}, "strategy": {"name": "fedavg"},
           "stage1": {"name": "none"}, "stage2": {"name": "none"}, "num_clients": 2, "seed": 0}
    exp = Experiment(cfg)
    assert exp.run == sections.Run(num_clients=2, seed=0)
    assert exp.rounds() == schema.defaults("strategy", "fedavg")["rounds"]
    part = schema.build(sections.Partition, cfg["partition"], "partition")
    assert (part.alpha, part.test_frac) == (schema.defaults("partition", "dirichlet")["alpha"],
                                            schema.defaults("partition", "dirichlet")["test_frac"])


def _record(level: int, msg: str, name: str = "flwr", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_the_console_keeps_warnings_and_the_summary_only() -> None:
    keep = ConsoleFilter().filter
    assert keep(_record(logging.INFO, "accuracy=0.74", **SUMMARY))
    assert keep(_record(logging.WARNING, "client 1 failed: timeout"))
    assert not keep(_record(logging.INFO, "[ROUND 1/1]"))
    assert not keep(_record(logging.WARNING, "DEPRECATED FEATURE: %s\n", name="flwr"))
    assert not keep(_record(logging.WARNING, "FutureWarning: ...", name="py.warnings"))
