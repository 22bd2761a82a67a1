"""``fedfair run``: one experiment in Flower's simulation engine (Ray), configured by Hydra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from clients.client_app import app as client_app
from fedfair import schema, sections
from fedfair.env import conf_dir
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
from strategies.engine import backend_config, run_simulation
from strategies.server_app import run_experiment


def simulate(cfg: dict[str, Any], output_dir: Path, overrides: list[str]) -> Path:
    """Run the experiment with ``num_clients`` virtual SuperNodes; return the results.json path."""
    exp = Experiment(cfg)
    outcome: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            outcome["path"] = run_experiment(grid, cfg, output_dir, overrides)
        except Exception as exc:  # re-raised below, outside the engine's thread
            outcome["error"] = exc

    sim = schema.build(sections.Simulation, cfg["simulation"], "simulation")
    run_simulation(server_app, client_app, exp.num_clients,
                   backend_config(sim.num_cpus, sim.client_cpus, exp.run.progress, sim.ray_address))
    if "error" in outcome:
        raise outcome["error"]
    if "path" not in outcome:
        raise FedFairError("the simulation ended without results (see the log above)")
    return outcome["path"]


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra task: compose → simulate (the ServerApp logs the summary) → ``results: <path>``."""
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    hc = HydraConfig.get()
    try:
        path = simulate(resolved, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"results: {path}", flush=True)
