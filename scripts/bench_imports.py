"""Benchmark process start-up: the import wall time of the modules every process loads (a ClientApp
process per message in deployment, a ServerApp, a Ray actor, a ``fedfair`` call) and the wall time
of ``fedfair run ... --cfg job`` (composes and prints the config, runs nothing).

    python scripts/bench_imports.py [--repeat 3]

Each number is the median over fresh subprocesses. The last line of stdout is one JSON object. Run it
alone on the machine (``nice -n 5``): it times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("clients.client_app", "strategies.server_app", "fedfair.cli")
COMMANDS = {"fedfair run stage2=none --cfg job": [sys.executable, "-m", "fedfair.cli", "run", "stage2=none", "--cfg", "job"]}


def _wall(cmd: list[str]) -> float:
    """Seconds one fresh process takes to run ``cmd`` (from the repository root)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per number (median)")
    args = parser.parse_args()
    baseline = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
    print(f"{'python -c pass':<40} {baseline:6.2f} s")
    out = {"python": baseline}
    cases = {f"import {m}": [sys.executable, "-c", f"import {m}"] for m in MODULES} | COMMANDS
    for label, cmd in cases.items():
        out[label] = statistics.median(_wall(cmd) for _ in range(args.repeat))
        print(f"{label:<40} {out[label]:6.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
