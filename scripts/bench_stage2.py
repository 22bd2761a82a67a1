"""Benchmark stage 2: DP-CTGAN (until the budget is spent, at most ``--epochs``) and MST at the same
(ε, δ), on a seeded synthetic table shaped like one Law School client (8,319 rows × 12 columns:
10 features in [0, 1], s, y).

Prints one JSON line per synthesizer: its privacy report (``seconds`` = fit + sampling N rows,
``epsilon`` as accounted, ``steps``, ...) plus the row count and the synthetic rates of s and y.

    python scripts/bench_stage2.py [--rows 8319] [--epochs 300] [--epsilon 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fedfair.stage2 import Stage2Config, privatize
from fedfair.table import Table


def synthetic_table(rows: int, seed: int) -> Table:
    """10 correlated features in [0, 1]; s ~ Bernoulli(.85); y from a logistic model of x and s."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, 1))
    x = 1 / (1 + np.exp(-(latent + rng.normal(size=(rows, 10)))))
    s = (rng.random(rows) < 0.85).astype(int)
    logit = 2.0 + 3.0 * (x.mean(axis=1) - 0.5) + 0.5 * s
    y = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), 1, -1)
    return Table(x, s, y, tuple(f"x{i}" for i in range(10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8319)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    table = synthetic_table(args.rows, args.seed)
    bounds = {name: (0.0, 1.0) for name in table.feature_names}
    for name in ("dpctgan", "mst"):
        cfg = Stage2Config(name, epsilon=args.epsilon, epochs=args.epochs, seed=args.seed)
        out, report = privatize(table, bounds, cfg, progress=args.progress)
        rates = {"s_rate": float(out.s.mean()), "y_rate": float((out.y == 1).mean())}
        print(json.dumps({"rows": len(table), **report.to_dict(), **rates}), flush=True)


if __name__ == "__main__":
    main()
