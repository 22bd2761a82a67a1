"""Stage 1 measured without Flower (issue 15): for each stage-1 setting and seed, every client's
stage 1 (cached on disk), the server's fit on the union (eq. 16) and the pooled test metrics, plus
each client's own model θ(x̂_k) on the same pooled test rows ("own"), which separates what a client's
set achieves from what survives the union.

One JSON line per (setting, seed) is appended to ``--out``; ``--table`` prints mean ± std (n) per setting
from that file. A setting is ``none`` (the real rows, no stage 1) or comma-separated stage-1 keys on
top of ``conf/stage1/bilevel.yaml``:

    python scripts/stage1_sweep.py --dataset adult --seeds 0 1 2 --settings rho=0 penalty=sp_gap,gamma=100
    python scripts/stage1_sweep.py --dataset adult --partition dirichlet --alpha 0.1 --settings rho=0
    python scripts/stage1_sweep.py --table --out /tmp/issue15/adult.jsonl
    python scripts/stage1_sweep.py --proxy --dataset adult   # the penalties without the bilevel problem
    python scripts/stage1_sweep.py --plot docs/figures/stage1_gap.png --inputs adult.jsonl compas.jsonl law.jsonl

``--proxy`` separates the proxy from the bilevel optimisation: it minimises stage 1's outer
objective P over θ DIRECTLY (no synthetic set: the best any θ(x̂) could do) for client 0's real rows,
and reports its train and test metrics.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from fedfair import bilevel, metrics, model, pipeline, report
from fedfair.config import compose_config
from fedfair.table import Table

REPORT = ("accuracy", "abs_spd", "abs_eod", "spd", "eod", "selection_rate", "sel_rate_s0", "sel_rate_s1")


def stage1_overrides(setting: str) -> list[str]:
    """The stage-1 overrides of one setting string: ``none`` (no stage 1) or ``k=v,k=v`` over
    ``conf/stage1/bilevel.yaml``."""
    return ["stage1=none"] if setting == "none" else [f"stage1.{item}" for item in setting.split(",")]


@functools.lru_cache(maxsize=None)
def stage1_section(setting: str) -> dict[str, Any]:
    """The composed stage-1 config section of one setting string."""
    return compose_config(stage1_overrides(setting))["stage1"]


def config(args: argparse.Namespace, setting: str, seed: int) -> dict[str, Any]:
    """The composed config of one run: ``conf/`` with this script's arguments as overrides."""
    overrides = [f"dataset={args.dataset}", f"partition={args.partition}", "strategy=oneshot", "stage2=none",
                 f"seed={seed}", f"cache_dir={args.cache}", "progress=false", *stage1_overrides(setting)]
    overrides += [] if args.clients is None else [f"num_clients={args.clients}"]
    overrides += [] if args.alpha is None else [f"partition.alpha={args.alpha}"]
    return compose_config(overrides)


def one_run(args: argparse.Namespace, setting: str, seed: int) -> dict[str, Any]:
    exp = pipeline.Experiment(config(args, setting, seed))
    dataset = exp.load()
    uploads, tests, info = [], [], []
    for k in range(exp.num_clients):
        train, test = exp.client_tables(dataset, k)
        tests.append(test)
        if len(train) == 0:
            continue
        up = pipeline.make_upload(exp, dataset, train, k)
        uploads.append(up.table)
        x = up.table.x
        info.append({"n": len(train), "s1_share": float(np.mean(train.s)), "stage1_s": round(up.stage1_s, 2),
                     "outside_box": float(np.mean((x < 0) | (x > 1)))})
    pooled = Table.concat(tests)
    theta, _ = pipeline.server_fit(uploads, float(exp.cfg["strategy"]["lam_theta"]))
    server = pipeline.evaluate(theta, pooled)
    row: dict[str, Any] = {"dataset": args.dataset, "partition": args.partition,
                           "alpha": exp.cfg["partition"].get("alpha"),
                           "setting": setting, "seed": seed}
    row.update({k: metrics.compute(server)[k] for k in REPORT})
    row["majority"] = metrics.majority_rate(server)
    row["theta_norm"] = float(np.linalg.norm(theta))
    keys = ("accuracy", "abs_spd", "abs_eod", "selection_rate")
    own, thetas, sizes = [], [], []
    for table in uploads:
        if len(np.unique(table.y)) < 2:
            continue
        thetas.append(t := model.fit(table))
        sizes.append(len(table))
        m = metrics.evaluate(pooled.y, model.predict(t, pooled), pooled.s, model.decision(t, pooled))
        own.append({k: m[k] for k in keys})
    row["own"] = own
    # the row-weighted average of the clients' own models: what the union's fit would be if it
    # merged the models instead of the sets (a server-side alternative, measured, not the method)
    avg = np.average(thetas, axis=0, weights=sizes)
    m = metrics.evaluate(pooled.y, model.predict(avg, pooled), pooled.s, model.decision(avg, pooled))
    row["avg"] = {k: m[k] for k in keys}
    row["clients"] = info
    return row


PROXY = ("penalty=sp,rho=0", "penalty=sp,rho=1000", "penalty=sp,rho=100000", "penalty=sp_gap,gamma=10",
         "penalty=sp_gap,gamma=100", "penalty=eo,rho=100000", "penalty=eo_gap,gamma=100")


def proxy(args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    """argmin_θ P(θ) on client 0's real rows for each penalty of ``PROXY`` (L-BFGS, exact gradient)."""
    exp = pipeline.Experiment(config(args, "rho=0", seed))
    train, test = exp.client_tables(exp.load(), 0)
    out = []
    for setting in PROXY:
        section = {k: v for k, v in stage1_section(setting).items() if k != "name"}
        prob = bilevel._Problem(train, train.s, train.y, train.x, bilevel.Stage1Config(**section, progress=False))
        fit = minimize(lambda t: prob.objective(prob.x, t)[0], np.zeros(prob.z.shape[1]), jac=prob.theta_gradient,
                       method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-9})
        row: dict[str, Any] = {"dataset": args.dataset, "seed": seed, "setting": setting, "iters": int(fit.nit),
                               "penalised": prob.objective(prob.x, fit.x)[2].tolist()}
        for name, table in (("train", train), ("test", test)):
            m = metrics.evaluate(table.y, model.predict(fit.x, table), table.s, model.decision(fit.x, table))
            row[name] = {k: m[k] for k in ("accuracy", "spd", "eod", "cov_sp", "selection_rate")}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of JSON-lines files; a later row for the same (dataset, partition, alpha, setting,
    seed) replaces an earlier one (a rerun from the cache adds columns)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(r["dataset"], r["partition"], r["alpha"], r["setting"], r["seed"])] = r
    return list(rows.values())


def summary(path: Path) -> str:
    """Mean ± std over seeds per (dataset, partition, alpha, setting), in file order (``fedfair.report``)."""
    rows = []
    for r in load([path]):
        own = {f"own_{k}": statistics.fmean(o[k] for o in r["own"] if o[k] is not None) if r["own"] else None
               for k in ("abs_spd", "abs_eod")}
        rows.append({**r, **own, "majority_rate": r["majority"],
                     "stage1_s": statistics.fmean(c["stage1_s"] for c in r["clients"])})
    keys = ("accuracy", "abs_spd", "abs_eod", "selection_rate", "majority_rate", "own_abs_spd", "own_abs_eod", "stage1_s")
    summary = report.aggregate(rows, ("dataset", "partition", "alpha", "setting"), keys)
    columns = (*report.METRIC_COLUMNS, report.Column("own abs SPD", "own_abs_spd"),
               report.Column("own abs EOD", "own_abs_eod"), report.Column("stage-1 s/client", "stage1_s", 1))
    return report.markdown(summary, ("dataset", "partition", "alpha", "setting"), columns)


def series(setting: str) -> tuple[str, float | None]:
    """(the curve a setting belongs to in the plot, its swept value)."""
    if setting == "none":
        return "real rows (no stage 1)", None
    section = {k: v for k, v in stage1_section(setting).items() if k != "name"}
    cfg = bilevel.Stage1Config(**section)
    if cfg.penalty in bilevel.GAPS:
        extra = "".join([f", prox {cfg.prox_weight:g}", " + clip" if cfg.clip else ""])
        return f"{cfg.penalty} (γ){extra}", cfg.gap_weight
    return f"covariance {cfg.penalty}, the paper's (ρ)", cfg.rho


PLOTTED = ("none", "rho=0", "rho=100", "rho=1000", "penalty=sp_gap,gamma=10,prox=0", "penalty=sp_gap,gamma=100,prox=0",
           "penalty=eo_gap,gamma=100,prox=0", "penalty=eo_gap,gamma=1000,prox=0", "penalty=sp_gap,gamma=100,prox=100",
           "penalty=eo_gap,gamma=100,prox=100", "penalty=eo_gap,gamma=1000,prox=100")


def plot(inputs: list[Path], out: Path) -> None:
    """Accuracy against |SPD| (top) and |EOD| (bottom) per dataset: mean ± std over seeds, one line
    per penalty swept over its weight, each point labelled with the weight (the settings ``PLOTTED``)."""
    rows = [{**r, "series": series(r["setting"])[0], "weight": series(r["setting"])[1]}
            for r in load(inputs) if r["partition"] == "iid" and r["setting"] in PLOTTED]
    summary = report.aggregate(rows, ("dataset", "series", "weight"), ("accuracy", "abs_spd", "abs_eod"))
    datasets = list(dict.fromkeys(r["dataset"] for r in summary))
    names = list(dict.fromkeys(r["series"] for r in summary))
    markers = dict(zip(names, ["*", "o", "P", "s", "D", "^", "v", "X"]))
    fig, axes = report.figure(2 * len(datasets), rows=2, size=(4.6, 3.6))
    for col, ds in enumerate(datasets):
        for row_i, (key, label) in enumerate(report.FAIRNESS.items()):
            ax = axes[row_i * len(datasets) + col]
            for name in names:
                pts = sorted((r for r in summary if r["dataset"] == ds and r["series"] == name),
                             key=lambda r: -1.0 if r["weight"] is None else r["weight"])
                report.draw(ax, pts, key, "accuracy", label=name, point_labels="weight", marker=markers[name],
                            alpha=0.85)
            ax.set_xlabel(f"{label} (pooled test)")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{ds}: accuracy vs {label}", fontsize=10)
            ax.grid(alpha=0.3)
    report.save(fig, out, "Stage 1, 2 IID clients, stage2=none: mean ± std over seeds (labels: ρ or γ)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--partition", default="iid", choices=["iid", "dirichlet"])
    parser.add_argument("--alpha", type=float, default=None, help="Dirichlet alpha (default: conf/)")
    parser.add_argument("--clients", type=int, default=None, help="number of clients (default: conf/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["rho=0"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/issue15/sweep.jsonl"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/issue15/cache"))
    parser.add_argument("--table", action="store_true", help="print the summary of --out and stop")
    parser.add_argument("--proxy", action="store_true", help="direct fits on real rows (see above) and stop")
    parser.add_argument("--plot", type=Path, default=None, help="write the accuracy-fairness plot of --inputs")
    parser.add_argument("--inputs", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    if args.plot:
        plot(args.inputs, args.plot)
        return 0
    if args.proxy:
        for seed in args.seeds:
            proxy(args, seed)
        return 0
    if args.table:
        print(summary(args.out))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        for seed in args.seeds:
            t0 = time.time()
            row = one_run(args, setting, seed)
            row["wall_s"] = round(time.time() - t0, 1)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{args.dataset} {setting} seed {seed}: acc {row['accuracy']:.4f} |SPD| {row['abs_spd']:.4f} "
                  f"|EOD| {row['abs_eod']:.4f} sel {row['selection_rate']:.3f} ({row['wall_s']} s)",
                  file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
