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

from fedfair import console
from fedfair.config import compose_config
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from fedfair.results import build, plot_history, summary_table, write_json
from strategies.base import CONFIG_KEY
from strategies.registry import make_strategy

log = logging.getLogger("flwr")


def wait_for_nodes(grid: Grid, needed: int, timeout: float) -> None:
    """Wait until ``needed`` nodes are connected, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < needed:
        if time.monotonic() > deadline:
            have = len(list(grid.get_node_ids()))
            raise FedFairError(f"only {have} of {needed} nodes connected within {timeout:.0f} s")
        time.sleep(0.5)


def run_experiment(grid: Grid, cfg: dict[str, Any], output_dir: Path, overrides: list[str]) -> Path:
    """Run the configured strategy on ``grid`` and write ``output_dir/results.json``."""
    t0 = time.perf_counter()
    exp = Experiment(cfg)
    strategy, rounds = make_strategy(exp)
    sim = cfg["simulation"]
    wait_for_nodes(grid, strategy.min_clients, float(sim["connect_timeout"]))
    job = json.dumps(cfg)  # sent once per node (strategies.base), then named by its digest
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(),
        num_rounds=rounds,
        timeout=float(sim["timeout"]),
        train_config=ConfigRecord({CONFIG_KEY: job}),
        evaluate_config=ConfigRecord({CONFIG_KEY: job}),
    )
    if not strategy.evaluation.per_client:
        raise FedFairError("no client evaluated the final model")
    results = build(strategy.report(), cfg, overrides, time.perf_counter() - t0)
    path = write_json(Path(output_dir) / "results.json", results)
    if exp.kind.multi_round:
        plot_history(results, path.parent / "history.png")
    shown = console.SUMMARY if exp.run.progress else None  # progress=false: the summary stays in the log file
    for line in summary_table(results).splitlines():
        (log.warning if "WARNING:" in line else log.info)(line, extra=shown)
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
