"""Benchmark stage 1: the paper-faithful inner solver (L-BFGS, strong Wolfe, afresh every outer step)
against the fast default (Newton, warm-started), on the same input.

One Law School client (a seeded half of the rows, its 80% train part), SP penalty, ρ = 1000,
k_max = 1000. Each synthetic set trains the server model; both are scored on the client's test part.
The last line of stdout is one JSON object.

    python scripts/bench_stage1.py [--k-max 1000] [--rho 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

from threadpoolctl import threadpool_limits

from fedfair import bilevel, metrics, model
from fedfair.data import load_dataset
from fedfair.partition import client_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k-max", type=int, default=1000)
    parser.add_argument("--rho", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    train, test = client_data(load_dataset("law_school"), "iid", 2, 0, args.seed)
    out: dict[str, float | int] = {"n_train": len(train), "n_test": len(test), "k_max": args.k_max,
                                   "rho": args.rho}
    for inner, key in (("lbfgs", "faithful"), ("newton", "fast")):
        cfg = bilevel.Stage1Config(penalty="sp", rho=args.rho, k_max=args.k_max, inner=inner,
                                   seed=args.seed, progress=args.progress)
        with threadpool_limits(1):
            t0 = time.perf_counter()
            result = bilevel.synthesize(train, cfg)
            out[f"{key}_s"] = time.perf_counter() - t0
        theta = model.fit(result.table)
        m = metrics.evaluate(test.y, model.predict(theta, test), test.s)
        out[f"{key}_accuracy"] = m["accuracy"]
        out[f"{key}_abs_spd"] = m["abs_spd"]
        print(f"{key:>8} ({inner}): {out[f'{key}_s']:.1f} s  accuracy {m['accuracy']:.4f}  "
              f"|SPD| {m['abs_spd']:.4f}", flush=True)
    out["ratio"] = out["faithful_s"] / out["fast_s"]
    out["accuracy_diff_pp"] = 100 * abs(out["faithful_accuracy"] - out["fast_accuracy"])
    out["abs_spd_diff"] = abs(out["faithful_abs_spd"] - out["fast_abs_spd"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
