"""Secure aggregation (``strategy.secure_aggregation=true``, docs/SECAGG.md): the fixed-point encoding
against Flower's quantiser, real SecAgg+ sums on a fake grid (exact counts, values within the bound,
dropouts), FedAvg and FairFed matching their plain runs, and the server never receiving one client's
statistics or model."""

import json

import numpy as np
import pytest
from fakegrid import FakeGrid
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.compat.common import recorddict_compat as compat

from clients.client_app import app as client_app
from clients.client_app import secure_mod
from fedfair import quantize as fq
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from strategies.registry import make_strategy
from strategies.secure import secure_sum, shares
from strategies.server_app import run_experiment

OVERRIDES = [
    "dataset=synthetic", "num_clients=4", "partition=dirichlet", "progress=false", "strategy.rounds=3",
    "strategy.local_epochs=2", "strategy.batch_size=32", "strategy.lr=2",
]
rng = np.random.default_rng(0)
K, CLIP = 5, 32.0
VALUES = rng.uniform(-CLIP, CLIP, size=(K, 6))
COUNTS = rng.integers(0, 50_000, size=(K, 3))


def test_counts_sum_exactly_and_values_within_the_bound_under_flowers_quantiser():
    """Flower's own quantise → integer sum → dequantise, on fq.encode's vectors."""
    vectors = [fq.encode(v, c, CLIP, "test") for v, c in zip(VALUES, COUNTS)]
    summed = sum(quantize([v], CLIP, fq.LEVELS)[0].astype(np.int64) for v in vectors)
    assert summed.max() < fq.MODULUS  # no wrap-around
    total = dequantize([summed], CLIP, fq.LEVELS)[0] - (K - 1) * CLIP
    values, counts = fq.decode(total, 3)
    assert np.array_equal(counts, COUNTS.sum(axis=0))
    err = np.abs(values - VALUES.sum(axis=0))
    assert err.max() <= fq.error_bound(CLIP, K) and err.max() > 0  # rounded, within K·δ


def test_encoding_limits_are_one_line_errors():
    with pytest.raises(FedFairError, match="magnitude 40 exceeds strategy.secure_clip=32"):
        fq.encode(np.array([1.0, -40.0]), np.array([]), 32, "secure train")
    with pytest.raises(FedFairError, match="counts must be integers of magnitude <= 65536"):
        fq.encode(np.array([]), np.array([70_000]), 1, "secure sizes")
    with pytest.raises(FedFairError, match="power of two in 1..8192, got 3"):
        fq.SecureConfig(True, 3)
    with pytest.raises(FedFairError, match=f"needs 2..{fq.max_clients()} clients, got num_clients=1"):
        fq.check_clients(1)
    assert fq.max_clients() >= 1000 and fq.MODULUS > fq.max_clients() * fq.LEVELS
    assert shares(5) == (5, 3) and shares(100) == (15, 8)


toy = ClientApp()
TOY_FAILING: set[int] = set()  # partitions whose handler fails at the collect stage (after sharing keys)


@toy.train(mods=[secure_mod])
def _toy_train(msg: Message, context) -> Message:
    """Answer the collect stage with this partition's encoded vector."""
    pid = int(context.node_config["partition-id"])
    if pid in TOY_FAILING:
        raise RuntimeError("out of memory")
    vector = fq.encode(VALUES[pid], COUNTS[pid], CLIP, "toy")
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vector]), 1, {})
    return Message(compat.fitres_to_recorddict(fitres, False), reply_to=msg)


def _toy_sum(failing=None, collect_failing=()):
    grid = FakeGrid(toy, K, failing)
    TOY_FAILING.clear()
    TOY_FAILING.update(collect_failing)
    try:
        return secure_sum(grid, {node: (ConfigRecord({}), None) for node in grid.get_node_ids()}, CLIP, 10, 1)
    finally:
        TOY_FAILING.clear()


def test_one_real_secaggplus_sum_and_dropouts():
    result = _toy_sum()
    values, counts = fq.decode(result.total, 3)
    assert sorted(result.included) == [100, 101, 102, 103, 104]
    assert np.array_equal(counts, COUNTS.sum(axis=0))
    assert np.abs(values - VALUES.sum(axis=0)).max() <= fq.error_bound(CLIP, K)
    others = np.delete(COUNTS, 1, axis=0).sum(axis=0)
    # partition 1 drops out after sharing its keys: the sum is over the other four
    result = _toy_sum(collect_failing={1})
    assert sorted(result.included) == [100, 102, 103, 104]
    assert np.array_equal(fq.decode(result.total, 3)[1], others)
    # partition 1 fails from the start: the sum starts again without it
    result = _toy_sum(failing={1: "node down"})
    assert sorted(result.included) == [100, 102, 103, 104]
    assert np.array_equal(fq.decode(result.total, 3)[1], others)
    # three drop out after sharing keys: two left, below the threshold 3: no sum
    assert _toy_sum(collect_failing={0, 1, 2}).total is None


class RecordingGrid(FakeGrid):
    """The fake grid, keeping every (request, reply) pair the server exchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exchanged: list[tuple[Message, Message]] = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        replies = super().send_and_receive(messages, timeout=timeout)
        self.exchanged += list(zip(messages, replies))
        return replies


def _run(tmp_path, overrides, grid_cls=FakeGrid):
    cfg = compose_config(overrides)
    grid = grid_cls(client_app, cfg["num_clients"])
    path = run_experiment(grid, cfg, tmp_path, overrides)
    return json.loads(path.read_text()), grid


@pytest.mark.parametrize("strategy", ["fedavg", "fairfed"])
def test_secure_runs_match_the_plain_runs(tmp_path, strategy):
    base = OVERRIDES + [f"strategy={strategy}"]
    plain, _ = _run(tmp_path / "plain", base)
    secure, _ = _run(tmp_path / "secure", base + ["strategy.secure_aggregation=true"])
    for key in ("accuracy", "eod", "spd"):
        assert secure["metrics"][key] == pytest.approx(plain["metrics"][key], abs=1e-4)
    bound = fq.error_bound(fq.SecureConfig().secure_clip, 4)
    for a, b in zip(plain["history"], secure["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        if strategy == "fairfed":
            assert b["global_fairness"] == pytest.approx(a["global_fairness"], abs=bound)
    comm = secure["communication"]
    assert comm["secure_sums"] == (1 + 3 * (3 if strategy == "fairfed" else 1))  # n once, then per round
    assert comm["bytes_up"] > plain["communication"]["bytes_up"] and comm["secure_seconds"] > 0


def test_the_server_never_receives_one_clients_statistics_in_the_clear(tmp_path):
    """Every reply the server gets outside evaluation is a SecAgg+ stage reply: public keys,
    encrypted shares, masked integers or key shares (bytes), node ids, and the legacy FitRes shell
    of weight 1 with its arrays cleared; no MetricRecord of a client, no θ_k, no FairFed query."""
    results, grid = _run(tmp_path, OVERRIDES + ["strategy=fairfed", "strategy.secure_aggregation=true"],
                         RecordingGrid)
    assert results["metrics"]["accuracy"] > results["sanity"]["majority_rate"]
    protocol = [(m, r) for m, r in grid.exchanged if m.metadata.message_type != "evaluate"]
    assert {m.metadata.message_type for m, _ in protocol} == {"train"}
    stages = set()
    for _, reply in protocol:
        assert not reply.has_error()
        assert all(len(rec) == 0 for rec in reply.content.array_records.values())
        assert {k: dict(v) for k, v in reply.content.metric_records.items()} in (
            {}, {"fitres.num_examples": {"num_examples": 1}})
        for name, record in reply.content.config_records.items():
            assert name in ("secaggplus_configs", "fitres.metrics", "fitres.status")
            if name == "fitres.metrics":
                assert len(record) == 0
            for value in record.values():
                items = value if isinstance(value, list) else [value]
                assert all(isinstance(v, bytes) or (isinstance(v, int) and v in grid.contexts) or name == "fitres.status"
                           for v in items), (name, value)
        stages.add(tuple(sorted(reply.content.config_records["secaggplus_configs"])))
    assert len(stages) == 4  # setup, share keys, masked vectors, unmask


def test_the_strategy_gets_no_client_reply_to_aggregate(tmp_path):
    cfg = compose_config(OVERRIDES + ["strategy=fairfed", "strategy.secure_aggregation=true"])
    strategy, rounds = make_strategy(Experiment(cfg))
    seen: list[Message] = []
    aggregate = strategy.aggregate_train
    strategy.aggregate_train = lambda rnd, replies: (seen.extend(replies), aggregate(rnd, replies))[1]
    job = json.dumps(cfg)
    strategy.start(grid=FakeGrid(client_app, 4), initial_arrays=ArrayRecord(), num_rounds=rounds, timeout=10,
                   train_config=ConfigRecord({"fedfair": job}), evaluate_config=ConfigRecord({"fedfair": job}))
    assert seen == [] and strategy.training == {} and strategy.weights == {}
    assert aggregate(4, []) == (None, None)  # nothing kept between rounds


def test_too_many_failing_clients_stop_the_secure_sum_in_one_line(tmp_path):
    cfg = compose_config(OVERRIDES + ["strategy=fedavg", "strategy.secure_aggregation=true"])
    grid = FakeGrid(client_app, 4, {0: "disk full", 1: "disk full", 2: "disk full"})
    with pytest.raises(FedFairError, match=r"secure sizes round 1: too few clients left to unmask the sum "
                                           r"\(each needs 3 of its neighbours\); first error: disk full"):
        run_experiment(grid, cfg, tmp_path, [])


def test_secure_config_is_checked_before_the_run():
    with pytest.raises(FedFairError, match="strategy.secure_clip must be a power of two"):
        Experiment(compose_config(OVERRIDES + ["strategy=fedavg", "strategy.secure_clip=3"]))
    with pytest.raises(FedFairError, match="unknown key strategy.secure_aggregation"):
        Experiment(compose_config(["strategy=oneshot", "+strategy.secure_aggregation=true"]))
