"""The fedfair ServerApp: one experiment on a Flower Grid, ending in ``results.json``.

``run_experiment`` is shared by every run mode: the simulation engine (``fedfair run``, which hands
it the config Hydra composed), and ``flwr run .`` / deployment (the module-level ``app`` below, which
composes the config from ``conf/`` plus the ``overrides`` run-config key).
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.exit import ExitCode, flwr_exit

from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from fedfair import metrics
from fedfair.results import sanity, summary_table, write_json
from strategies.base import MeteredFedAvg
from strategies.fairfed import FairFed
from strategies.fedavg import FedAvg
from strategies.oneshot import OneShot

log = logging.getLogger("flwr")


def make_strategy(exp: Experiment) -> tuple[MeteredFedAvg, int]:
    """The strategy named by ``strategy.name`` (one of ``pipeline.STRATEGIES``) and its rounds."""
    section = exp.cfg["strategy"]
    min_clients = section.get("min_clients")
    if exp.strategy == "oneshot":
        return OneShot(exp.num_clients, float(section["lam_theta"]), min_clients), 1
    if exp.strategy == "fedavg" or exp.augment is not None:  # fedavg_<kind>: FedAvg on real + generated rows
        return FedAvg(exp.num_clients, min_clients), exp.rounds()
    timeout = float(exp.cfg["simulation"]["timeout"])
    return FairFed(exp.num_clients, exp.fairfed_config(), timeout, min_clients), exp.rounds()


def wait_for_nodes(grid: Grid, needed: int, timeout: float) -> None:
    """Wait until ``needed`` nodes are connected, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < needed:
        if time.monotonic() > deadline:
            have = len(list(grid.get_node_ids()))
            raise FedFairError(f"only {have} of {needed} nodes connected within {timeout:.0f} s")
        time.sleep(0.5)


def _results(exp: Experiment, strategy: MeteredFedAvg, total_s: float, overrides: list[str]) -> dict[str, Any]:
    uploads = getattr(strategy, "uploads", {})
    client_info = getattr(strategy, "client_info", {})
    per_client = []
    for pid in sorted(strategy.evaluation.per_client):
        entry = {"partition_id": pid, **uploads.get(pid, {}), **client_info.get(pid, {})}
        entry["metrics"] = strategy.evaluation.per_client[pid]["metrics"]
        per_client.append(entry)
    privacies = [u["privacy"] for _, u in sorted(uploads.items())]
    mechanism = privacies[0]["mechanism"] if privacies else "none"
    epsilons = [p["epsilon"] for p in privacies]
    privacy = {
        "mechanism": mechanism,
        "epsilon": None if (not epsilons or None in epsilons) else max(epsilons),
        "delta": max(p["delta"] for p in privacies) if privacies and mechanism != "none" else None,
        "guarantee": privacies[0].get("guarantee") if privacies else None,
        "per_client": privacies,
        "audit": [u.get("audit") for _, u in sorted(uploads.items())],
    }
    pooled = sum((c["counts"] for c in strategy.evaluation.per_client.values()), metrics.Counts.zero())
    single = [pid for pid, u in sorted(uploads.items()) if u["privacy"].get("single_label")]
    return {
        "strategy": exp.strategy,
        "dataset": exp.cfg["dataset"]["name"],
        "num_clients": exp.num_clients,
        "seed": exp.cfg["seed"],
        "overrides": overrides,
        "config": exp.cfg,
        "metrics": strategy.evaluation.pooled,
        "per_client": per_client,
        "clients": strategy.client_status(),
        "communication": strategy.communication.to_dict(),
        "privacy": privacy,
        "degenerate_upload": bool(getattr(strategy, "degenerate_upload", False)),
        "sanity": sanity(strategy.evaluation.pooled, metrics.majority_rate(pooled), single,
                         {pid: u["audit"]["exact_matches"] for pid, u in uploads.items() if u.get("audit")}),
        "timings": {
            "total_s": total_s,
            "stage1_s": [c.get("stage1_s") for c in per_client],
            "stage2_s": [c.get("stage2_s") for c in per_client],
            "server_fit_s": float(getattr(strategy, "server_fit_s", 0.0)),
        },
    }


def run_experiment(grid: Grid, cfg: dict[str, Any], output_dir: Path, overrides: list[str]) -> Path:
    """Run the configured strategy on ``grid`` and write ``output_dir/results.json``."""
    t0 = time.perf_counter()
    exp = Experiment(cfg)
    strategy, rounds = make_strategy(exp)
    sim = cfg["simulation"]
    wait_for_nodes(grid, strategy.min_clients, float(sim["connect_timeout"]))
    job = ConfigRecord({"fedfair": json.dumps(cfg)})
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(),
        num_rounds=rounds,
        timeout=float(sim["timeout"]),
        train_config=job,
        evaluate_config=ConfigRecord({"fedfair": json.dumps(cfg)}),
    )
    if not strategy.evaluation.per_client:
        raise FedFairError("no client evaluated the final model")
    results = _results(exp, strategy, time.perf_counter() - t0, overrides)
    path = write_json(Path(output_dir) / "results.json", results)
    for line in summary_table(results).splitlines():
        (log.warning if "WARNING:" in line else log.info)(line)
    log.info("results: %s", path)
    return path


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run`` and deployment: config from ``conf/`` + run-config overrides."""
    overrides = shlex.split(str(context.run_config.get("overrides", "")))
    try:
        cfg = compose_config(overrides)
        if cfg["stage2"].get("noise_seed") is not None:
            raise FedFairError("stage2.noise_seed is for reproducible simulations; a deployment's DP noise "
                               "is never seeded (remove it)")
        out = str(context.run_config.get("output-dir", "")) or str(
            Path.cwd() / "outputs" / "flwr" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        )
        run_experiment(grid, cfg, Path(out), overrides)
    except FedFairError as exc:  # one line in the run's log, not a traceback
        log.error("error: %s", exc)
        if threading.current_thread() is threading.main_thread():
            # flwr-serverapp (deployment): Flower's exit path flushes the log stream (a bare
            # SystemExit loses this line) and reports the run as failed; the code only sets the log
            # level of Flower's (empty) exit message and the process status.
            flwr_exit(ExitCode.SUCCESS, emit_telemetry=False)
        raise SystemExit(2) from None  # `flwr run . local`: the engine's thread ends, its log is streamed
