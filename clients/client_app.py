"""The fedfair ClientApp (Flower Message API).

A node finds its partition in ``context.node_config`` (``partition-id``, ``num-partitions``), set by
the simulation engine or by ``flower-supernode --node-config``. The experiment config travels in
every message as JSON (``config["fedfair"]``), so the server's resolved config governs all nodes.

- train (one-shot): stage 1 + stage 2 on the local training split; the reply carries the final
  synthetic table (float32 rows + column names), its size, the privacy accounted and timings.
  Nothing else derived from a raw row leaves the node.
- evaluate: the confusion counts (and covariance sums) of θ on the local test split.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedfair import pipeline
from fedfair.errors import FedFairError

app = ClientApp()
Handler = Callable[[Message, Context], Message]
BAD_INPUT = 2  # Flower's code for "the ClientApp raised an exception"


def one_line_errors(handler: Handler) -> Handler:
    """Reply to bad input (a FedFairError) with an error message naming the problem, not a traceback."""

    @functools.wraps(handler)
    def wrapped(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except FedFairError as exc:
            return Message(Error(code=BAD_INPUT, reason=str(exc)), reply_to=msg)

    return wrapped


def _experiment(msg: Message, context: Context) -> tuple[pipeline.Experiment, int]:
    exp = pipeline.Experiment(json.loads(str(msg.content["config"]["fedfair"])))
    pid = int(context.node_config["partition-id"])
    k = int(context.node_config["num-partitions"])
    if k != exp.num_clients:
        raise FedFairError(f"this node belongs to a {k}-partition federation, the run has {exp.num_clients}")
    return exp, pid


@app.train()
@one_line_errors
def train(msg: Message, context: Context) -> Message:
    exp, pid = _experiment(msg, context)
    if exp.strategy != "oneshot":
        raise FedFairError(f"strategy '{exp.strategy}' has no client training here")
    dataset = exp.load()
    local_train, _ = exp.client_tables(dataset, pid)
    upload = pipeline.make_upload(exp, dataset, local_train, pid)
    content = RecordDict(
        {
            "upload": ArrayRecord({"rows": Array(upload.table.to_array())}),
            "meta": ConfigRecord(
                {"columns": list(upload.table.columns), "privacy": json.dumps(upload.privacy)}
            ),
            "metrics": MetricRecord(
                {
                    "partition_id": pid,
                    "n_train": upload.n_train,
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
    _, local_test = exp.client_tables(exp.load(), pid)
    theta = np.asarray(msg.content["arrays"]["theta"].numpy(), dtype=np.float64)
    counts = pipeline.evaluate(theta, local_test)
    record = MetricRecord({"partition_id": pid, **counts.to_dict()})
    return Message(RecordDict({"metrics": record}), reply_to=msg)
