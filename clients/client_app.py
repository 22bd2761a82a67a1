"""The fedfair ClientApp (Flower Message API).

A node finds its partition in ``context.node_config`` (``partition-id``, ``num-partitions``), set by
the simulation engine or by ``flower-supernode --node-config``. The experiment config (the server's
resolved config, as JSON) comes in the first message to the node (``config["fedfair"]``), which the
node keeps in its ``context.state`` for the rest of the run; every message names it by its digest
(``config["fedfair-digest"]``), so the server's config governs all nodes.

- train (one-shot): stage 1 + stage 2 on the local training split; the reply carries the final
  synthetic table (float32 rows + column names), the privacy accounted, the privacy audit (numbers
  computed here against the training and test splits, ``fedfair.audit``; ``audit=false`` sends none)
  and timings. Not the exact training row count; nothing else derived from a raw row leaves the node.
- train (FedAvg, FairFed): local SGD from the received θ (θ⁰ = 0 when none is sent) on the local
  training split; the reply carries θ_k, the example count and the final local loss.
- train (fedavg_<kind>, e.g. fedavg_fadm, fedavg_fairdistill): the same on the training split plus the
  rows of the stage-1 generator <kind>, generated at the first round and kept in the node's
  ``context.state`` (and in ``cache_dir``, if set) for the later rounds.
- query ``fairfed_groups`` (FairFed, once): the training split's row counts by (s, y).
- query ``fairfed_stats`` (FairFed, each round): accuracy, local metric F_k and share m_k of the
  received θ on the training split (``fedfair.fairfed.local_stats``).
- evaluate: the confusion counts (and covariance sums) of θ on the local test split.

Every reply names its ``partition_id``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedfair import fairfed, pipeline
from fedfair.data import Dataset, data_dir
from fedfair.errors import FedFairError
from fedfair.table import Table

app = ClientApp()
log = logging.getLogger("flwr")
Handler = Callable[[Message, Context], Message]
BAD_INPUT = 2  # Flower's code for "the ClientApp raised an exception"


def one_line_errors(handler: Handler) -> Handler:
    """Reply to any failure with an error message of one line, ``partition <id>: <problem>``, so the
    server can report which partition failed and why (bad input: the FedFairError's text; anything
    else: the exception's type and first line). The traceback stays in this node's log."""

    @functools.wraps(handler)
    def wrapped(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one reported line
            if not isinstance(exc, FedFairError):
                log.exception("partition %s failed", context.node_config.get("partition-id", "?"))
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            problem = text if isinstance(exc, FedFairError) else f"{type(exc).__name__}: {text}".rstrip(": ")
            pid = context.node_config.get("partition-id", "?")
            return Message(Error(code=BAD_INPUT, reason=f"partition {pid}: {problem}"), reply_to=msg)

    return wrapped


def _run_config(msg: Message, context: Context) -> str:
    """The run config (JSON) the message names by its digest: carried by the node's first message,
    then kept in ``context.state``."""
    record = msg.content["config"]
    digest = str(record["fedfair-digest"])
    if "fedfair" in record:
        context.state["fedfair"] = ConfigRecord({"digest": digest, "config": str(record["fedfair"])})
    kept = context.state.config_records.get("fedfair")
    if kept is None or kept["digest"] != digest:
        raise FedFairError(f"this node does not hold the run config {digest} (sent with its first message "
                           "only): it restarted or joined after the run began")
    return str(kept["config"])


def _experiment(msg: Message, context: Context) -> tuple[pipeline.Experiment, int]:
    exp = pipeline.Experiment(json.loads(_run_config(msg, context)))
    pid = int(context.node_config["partition-id"])
    k = int(context.node_config["num-partitions"])
    if k != exp.num_clients:
        raise FedFairError(f"this node belongs to a {k}-partition federation, the run has {exp.num_clients}")
    return exp, pid


_DATASET: dict[str, Dataset] = {}  # the dataset this process loaded last, by its configuration


def _dataset(exp: pipeline.Experiment) -> Dataset:
    """The dataset, read once per process and configuration (a speed-up only: in simulation one Ray
    actor serves many messages; deployment starts a process per message)."""
    key = json.dumps([exp.cfg["dataset"], str(exp.cfg.get("data_dir") or data_dir())], sort_keys=True)
    if key not in _DATASET:
        _DATASET.clear()
        _DATASET[key] = exp.load()
    return _DATASET[key]


def _tables(exp: pipeline.Experiment, pid: int) -> tuple[Table, Table]:
    """This node's (train, test)."""
    return exp.client_tables(_dataset(exp), pid)


def _theta(msg: Message, table: Table) -> np.ndarray:
    """The global θ the message carries, or θ⁰ = 0 for FedAvg's first round (no θ sent)."""
    arrays = msg.content["arrays"]
    if "theta" not in arrays:
        return np.zeros(len(table.feature_names) + 2)
    return np.asarray(arrays["theta"].numpy(), dtype=np.float64)


def _augmented(exp: pipeline.Experiment, pid: int, context: Context) -> tuple[Table, dict[str, float]]:
    """fedavg_<kind>: the training split plus this node's generated rows, made at its first round and
    kept in ``context.state`` (one per run and node); with the generator's seconds and row count."""
    local_train, _ = _tables(exp, pid)
    state = context.state
    if "generated" not in state:
        rows, seconds = pipeline.augmentation(exp, _dataset(exp), local_train, pid)
        state["generated"] = ArrayRecord({"x": Array(rows.x), "s": Array(rows.s), "y": Array(rows.y)})
        state["generated_meta"] = ConfigRecord({"seconds": seconds})
    kept, meta = state["generated"], state["generated_meta"]
    rows = Table(kept["x"].numpy(), kept["s"].numpy(), kept["y"].numpy(), local_train.feature_names)
    info = {"stage1_s": float(meta["seconds"]), "n_synthetic": len(rows)}
    return Table.concat([local_train, rows]), info


def _local_update(exp: pipeline.Experiment, pid: int, msg: Message, context: Context) -> Message:
    info: dict[str, float] = {}
    if exp.augment is not None:
        local_train, info = _augmented(exp, pid, context)
    else:
        local_train, _ = _tables(exp, pid)
    server_round = int(msg.content["config"]["server-round"])
    result = pipeline.local_update(exp, local_train, _theta(msg, local_train), pid, server_round)
    content = RecordDict(
        {
            "arrays": ArrayRecord({"theta": Array(result.theta)}),
            "metrics": MetricRecord(
                {"partition_id": pid, "num-examples": len(local_train), "train_loss": result.loss, **info}
            ),
        }
    )
    return Message(content, reply_to=msg)


@app.train()
@one_line_errors
def train(msg: Message, context: Context) -> Message:
    exp, pid = _experiment(msg, context)
    if not exp.kind.upload:
        return _local_update(exp, pid, msg, context)
    local_train, local_test = _tables(exp, pid)
    upload = pipeline.make_upload(exp, _dataset(exp), local_train, pid, holdout=local_test)
    content = RecordDict(
        {
            "upload": ArrayRecord({"rows": Array(upload.table.to_array())}),
            "meta": ConfigRecord(
                {
                    "columns": list(upload.table.columns),
                    "privacy": json.dumps(upload.privacy),
                    "audit": json.dumps(upload.audit),
                }
            ),
            "metrics": MetricRecord(
                {
                    "partition_id": pid,
                    "stage1_s": upload.stage1_s,
                    "stage2_s": upload.stage2_s,
                }
            ),
        }
    )
    return Message(content, reply_to=msg)


@app.evaluate()
@one_line_errors
def evaluate(msg: Message, context: Context) -> Message:
    exp, pid = _experiment(msg, context)
    _, local_test = _tables(exp, pid)
    theta = np.asarray(msg.content["arrays"]["theta"].numpy(), dtype=np.float64)
    counts = pipeline.evaluate(theta, local_test)
    record = MetricRecord({"partition_id": pid, **counts.to_dict()})
    return Message(RecordDict({"metrics": record}), reply_to=msg)


@app.query("fairfed_groups")
@one_line_errors
def fairfed_groups(msg: Message, context: Context) -> Message:
    exp, pid = _experiment(msg, context)
    local_train, _ = _tables(exp, pid)
    counts = fairfed.group_counts(local_train).ravel().tolist()
    record = MetricRecord({"partition_id": pid, "num-examples": len(local_train), "groups": counts})
    return Message(RecordDict({"metrics": record}), reply_to=msg)


@app.query("fairfed_stats")
@one_line_errors
def fairfed_stats(msg: Message, context: Context) -> Message:
    exp, pid = _experiment(msg, context)
    local_train, _ = _tables(exp, pid)
    groups = np.asarray(msg.content["config"]["groups"], dtype=np.float64)
    stats = fairfed.local_stats(_theta(msg, local_train), local_train, exp.fairfed_config().metric, groups)
    values = {"accuracy": stats.accuracy, "share": stats.share}
    if stats.fairness is not None:
        values["fairness"] = stats.fairness
    record = MetricRecord({"partition_id": pid, "num-examples": stats.rows, **values})
    return Message(RecordDict({"metrics": record}), reply_to=msg)
