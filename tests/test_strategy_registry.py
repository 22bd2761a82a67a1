"""The strategy registry (library kinds, Flower factories, conf/strategy/*.yaml agree; an unknown name
is one line listing the known ones) and the run config sent once per node, metered apart."""

import json
from pathlib import Path

import pytest
from fakegrid import FakeGrid
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from clients.client_app import app as client_app
from fedfair import strategy_kinds
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from strategies import registry
from strategies.base import CONFIG_KEY, DIGEST_KEY, config_digest
from strategies.fedavg import FedAvg
from strategies.oneshot import OneShot
from strategies.server_app import make_strategy

ROOT = Path(__file__).resolve().parents[1]
FEDAVG = ["dataset=synthetic", "num_clients=3", "progress=false", "strategy=fedavg", "strategy.rounds=2"]


def test_an_unknown_strategy_is_one_line_listing_the_known_ones():
    with pytest.raises(FedFairError) as err:
        Experiment(compose_config(["strategy.name=fedprox"]))
    assert str(err.value) == (
        "unknown strategy 'fedprox'; choose one of: oneshot, fedavg, fairfed, fedavg_fadm, fedavg_fairdistill"
    )


def test_every_kind_has_its_yaml_and_its_flower_strategy():
    yamls = {p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml")}
    assert set(strategy_kinds.KINDS) == yamls
    expected = {"oneshot": OneShot, "fedavg": FedAvg, "fairfed": FedAvg, "fedavg_fadm": FedAvg}
    for name, kind in strategy_kinds.KINDS.items():
        strategy, rounds = make_strategy(Experiment(compose_config([f"strategy={name}"])))
        assert name in registry.FACTORIES
        assert rounds == (1 if kind.upload else 20)
        assert isinstance(strategy, expected.get(name, FedAvg))
    assert type(make_strategy(Experiment(compose_config(["strategy=fairfed"])))[0]).__name__ == "FairFed"


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError, match="strategy 'fedavg' is registered twice"):
        registry.register("fedavg")(lambda exp: None)
    with pytest.raises(ValueError, match="strategy 'oneshot' is registered twice"):
        strategy_kinds.register(strategy_kinds.StrategyKind("oneshot", "strategies.oneshot", upload=True))



class RecordingGrid(FakeGrid):
    """A fake grid that keeps every message it delivers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delivered: list[Message] = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.delivered.extend(messages)
        return super().send_and_receive(messages, timeout=timeout)


def _start(overrides):
    cfg = compose_config(overrides)
    strategy, rounds = make_strategy(Experiment(cfg))
    grid = RecordingGrid(client_app, cfg["num_clients"])
    job = json.dumps(cfg)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=rounds, timeout=10,
                   train_config=ConfigRecord({CONFIG_KEY: job}), evaluate_config=ConfigRecord({CONFIG_KEY: job}))
    return strategy, grid, job


@pytest.mark.parametrize("name", ["fedavg", "fairfed"])
def test_the_run_config_goes_once_to_each_node_and_is_metered_apart(name):
    strategy, grid, job = _start([*FEDAVG, f"strategy={name}"])
    digest = config_digest(job)
    first: dict[int, Message] = {}
    for msg in grid.delivered:
        first.setdefault(msg.metadata.dst_node_id, msg)
        record = msg.content["config"]
        assert record[DIGEST_KEY] == digest
        assert (CONFIG_KEY in record) == (msg is first[msg.metadata.dst_node_id])
    assert sorted(first) == sorted(grid.get_node_ids())
    assert json.loads(first[100].content["config"][CONFIG_KEY]) == json.loads(job)
    if name == "fairfed":  # its first message to a node is the group-size query
        assert {m.metadata.message_type for m in first.values()} == {"query.fairfed_groups"}
    comm = strategy.communication
    sent_total = sum(sum(r.count_bytes() for r in m.content.values()) for m in grid.delivered)
    digest_bytes = ConfigRecord({DIGEST_KEY: digest}).count_bytes()
    config_bytes = 3 * ConfigRecord({CONFIG_KEY: job}).count_bytes() + len(grid.delivered) * digest_bytes
    assert comm.config_bytes_down == config_bytes
    assert comm.bytes_down == sent_total - config_bytes
    assert comm.bytes_down < config_bytes  # the old design sent ~4x these payload bytes as config
    assert comm.messages_down == len(grid.delivered)


def test_a_node_without_the_run_config_fails_in_one_line_naming_its_partition():
    strategy, grid, job = _start(FEDAVG)
    later = Message(RecordDict({"arrays": ArrayRecord(),
                                "config": ConfigRecord({DIGEST_KEY: config_digest(job), "server-round": 3})}),
                    message_type="train", dst_node_id=101)
    restarted = Context(1, 101, {"partition-id": 1, "num-partitions": 3}, RecordDict(), {})
    reply = client_app(later, restarted)
    assert reply.has_error()
    assert reply.error.reason == (
        f"partition 1: this node does not hold the run config {config_digest(job)} (sent with its first "
        "message only): it restarted or joined after the run began"
    )
    assert not client_app(later, grid.contexts[101]).has_error()  # the node that kept it answers
