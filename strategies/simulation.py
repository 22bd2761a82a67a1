"""``fedfair run``: one experiment in Flower's simulation engine (Ray), configured by Hydra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from clients.client_app import app as client_app
from fedfair.env import conf_dir
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment
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

    sim = cfg["simulation"]
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=exp.num_clients,
        backend_config={
            "client_resources": {"num_cpus": int(sim["client_cpus"]), "num_gpus": 0.0},
            "init_args": {
                "num_cpus": int(sim["num_cpus"]),
                "log_to_driver": bool(cfg.get("progress")),
                "include_dashboard": False,
            },
        },
    )
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
