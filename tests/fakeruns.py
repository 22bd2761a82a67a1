"""Hand-made results.json files (every key the reporting reads), for the reporting tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def fake_results(seed: int, accuracy: float, abs_spd: float = 0.1, abs_eod: float = 0.05, selection: float = 0.5,
                 overrides: list[str] | None = None, config: dict[str, Any] | None = None,
                 strategy: str = "oneshot", dataset: str = "synthetic") -> dict[str, Any]:
    metrics = {"accuracy": accuracy, "abs_spd": abs_spd, "abs_eod": abs_eod, "cov_sp": 0.01, "cov_eo": 0.02,
               "dpr": 0.8, "eor": None, "recall": 0.9, "f1": 0.85, "selection_rate": selection}
    return {
        "strategy": strategy, "dataset": dataset, "num_clients": 2, "seed": seed,
        "overrides": overrides if overrides is not None else [f"seed={seed}"],
        "config": config or {"stage1": {"rho": 1000.0}, "strategy": {}},
        "metrics": metrics, "per_client": [],
        "communication": {"rounds": 20, "messages": 80, "bytes_up": 1000 + seed, "bytes_down": 5000},
        "privacy": {"mechanism": "none", "epsilon": None, "delta": None, "audit": [{"mia_auc": 0.5}]},
        "degenerate_upload": False,
        "sanity": {"selection_rate": selection, "majority_rate": 0.75,
                   "constant_model": not 0.015 < selection < 0.985},
        "timings": {"total_s": 10.0 + seed, "server_fit_s": 0.1},
    }


def write_run(job_dir: Path, results: dict[str, Any]) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / "results.json"
    path.write_text(json.dumps(results))
    return path
