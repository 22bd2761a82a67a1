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
- train with ``strategy.secure_aggregation=true`` (FedAvg, FairFed, docs/SECAGG.md): the SecAgg+
  stages of ``strategies/secure.py``, through Flower's ``secaggplus_mod`` (:func:`secure_mod`); at the
  collect stage the handler answers with one vector (:func:`secure_vector`), masked by the mod, so the
  server only learns its sum over clients: ``sizes`` (group counts, n_k), ``fairfed_stats`` (m_k,
  the weight share p_k, correct predictions, n_k), ``fairfed_gap`` (Δ_k, computed here from the
  broadcast F_global and Acc) and ``train`` (w_k·θ_k, w_k, the loss weighted by n_k/n, n_k/n, with
  FairFed's w_k the client's own weight step from the broadcast mean Δ). The client keeps its FairFed
  weight and statistics in ``context.state``.

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
from flwr.clientapp.typing import ClientAppCallable
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from fedfair import fairfed, pipeline, quantize
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


SECURE_CONFIG = "fitins.config"  # the config record of a SecAgg+ collect-stage message (legacy FitIns)


def _run_config(msg: Message, context: Context) -> str:
    """The run config (JSON) the message names by its digest: carried by the node's first message,
    then kept in ``context.state``."""
    records = msg.content.config_records
    record = records["config"] if "config" in records else records[SECURE_CONFIG]
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


def _training_rows(exp: pipeline.Experiment, pid: int, context: Context) -> tuple[Table, dict[str, float]]:
    """The rows local training uses: the training split, plus the generated rows for fedavg_<kind>."""
    if exp.augment is not None:
        return _augmented(exp, pid, context)
    return _tables(exp, pid)[0], {}


def _local_update(exp: pipeline.Experiment, pid: int, msg: Message, context: Context) -> Message:
    local_train, info = _training_rows(exp, pid, context)
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


def secure_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``secaggplus_mod`` for the messages of a SecAgg+ round, the handler alone for the
    others; a failing handler's one-line error reply is returned as it is."""
    if RECORD_KEY_CONFIGS not in msg.content.config_records:
        return call_next(msg, context)
    failed: list[Message] = []

    def handler(inner: Message, ctx: Context) -> Message:
        reply = call_next(inner, ctx)
        if reply.has_error():
            failed.append(reply)
            raise RuntimeError(reply.error.reason)
        return reply

    try:
        return secaggplus_mod(msg, context, handler)
    except RuntimeError:
        if failed:
            return failed[0]
        raise


def _secure_sizes(exp: pipeline.Experiment, pid: int, context: Context, config: ConfigRecord, theta: np.ndarray | None
                  ) -> tuple[list[float], list[int]]:
    """Counts: the training split's rows by (s, y) and n_k, the rows local training uses."""
    rows, _ = _training_rows(exp, pid, context)
    return [], [*fairfed.group_counts(_tables(exp, pid)[0]).ravel().tolist(), len(rows)]


def _secure_stats(exp: pipeline.Experiment, pid: int, context: Context, config: ConfigRecord, theta: np.ndarray | None
                  ) -> tuple[list[float], list[int]]:
    """FairFed: [m_k, p_k] and counts [correct predictions, n_k] of the global θ on the training
    split; p_k, the client's weight share, starts at n_k/n and then is its last step times the
    broadcast normaliser (``weight-scale``)."""
    local_train, _ = _tables(exp, pid)
    theta = np.zeros(len(local_train.feature_names) + 2) if theta is None else theta
    groups = np.asarray(config["groups"], dtype=np.float64)
    stats = fairfed.local_stats(theta, local_train, exp.fairfed_config().metric, groups)
    if "weight-scale" in config:
        weight = float(context.state["fairfed"]["stepped"]) * float(config["weight-scale"])
    else:  # round 1
        weight = stats.rows / float(config["rows"])
    fairness = {} if stats.fairness is None else {"fairness": stats.fairness}
    context.state["fairfed"] = ConfigRecord({"weight": weight, "accuracy": stats.accuracy, **fairness})
    return [stats.share, weight], [round(stats.accuracy * stats.rows), stats.rows]


def _secure_gap(exp: pipeline.Experiment, pid: int, context: Context, config: ConfigRecord, theta: np.ndarray | None
                ) -> tuple[list[float], list[int]]:
    """FairFed: [Δ_k], from the broadcast F_global and Acc."""
    kept = context.state["fairfed"]
    stats = fairfed.LocalStats(0, float(kept["accuracy"]), kept.get("fairness"), 0.0)
    kept["gap"] = fairfed.gap(stats, float(config["fairness"]), float(config["accuracy"]))
    return [kept["gap"]], []


def _secure_train(exp: pipeline.Experiment, pid: int, context: Context, config: ConfigRecord, theta: np.ndarray | None
                  ) -> tuple[list[float], list[int]]:
    """[w_k·θ_k, w_k, (n_k/n)·loss_k, n_k/n] after local training: FedAvg's w_k = n_k/n; FairFed's
    the client's own step from the broadcast mean Δ and total share (``fedfair.fairfed.step``)."""
    local_train, _ = _training_rows(exp, pid, context)
    start = np.zeros(len(local_train.feature_names) + 2) if theta is None else theta
    result = pipeline.local_update(exp, local_train, start, pid, int(config["server-round"]))
    size = len(local_train) / float(config["rows"])
    weight = size
    if "mean-gap" in config:
        kept = context.state["fairfed"]
        beta = exp.fairfed_config().beta
        weight = float(fairfed.step(kept["weight"], kept["gap"], float(config["mean-gap"]), float(config["total"]), beta))
        kept["stepped"] = weight
    return [*(weight * result.theta), weight, size * result.loss, size], []


SECURE_ACTIONS = {"sizes": _secure_sizes, "fairfed_stats": _secure_stats, "fairfed_gap": _secure_gap,
                  "train": _secure_train}


def secure_vector(msg: Message, context: Context) -> Message:
    """The collect stage of a SecAgg+ round: this client's vector (``fedfair.quantize.encode``), as
    the legacy FitRes of weight 1 the mod masks; only the sum over clients reaches the server."""
    exp, pid = _experiment(msg, context)
    config = msg.content[SECURE_CONFIG]
    arrays = parameters_to_ndarrays(compat.arrayrecord_to_parameters(msg.content["fitins.parameters"], True))
    action = str(config["secure-action"])
    values, counts = SECURE_ACTIONS[action](exp, pid, context, config, arrays[0] if arrays else None)
    vector = quantize.encode(np.asarray(values), np.asarray(counts), exp.secure_config().secure_clip, f"secure {action}")
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vector]), 1, {})
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


@app.train(mods=[secure_mod])
@one_line_errors
def train(msg: Message, context: Context) -> Message:
    if SECURE_CONFIG in msg.content.config_records:
        return secure_vector(msg, context)
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
