"""``fedfair run``: one experiment in Flower's simulation engine (Ray); the Hydra task that calls
:func:`simulate` is in ``fedfair/cli.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from clients.client_app import app as client_app
from fedfair import schema, sections
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

