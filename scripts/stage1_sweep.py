"""Stage 1 measured without Flower (issue 15): for each stage-1 setting and seed, every client's
stage 1 (cached on disk), the server's fit on the union (eq. 16) and the pooled test metrics, plus
each client's own model θ(x̂_k) on the same pooled test rows ("own"), which separates what a client's
set achieves from what survives the union.

One JSON line per (setting, seed) is appended to ``--out``; ``--table`` prints mean (sd) per setting
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
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scipy.optimize import minimize

from fedfair import bilevel, metrics, model, pipeline
from fedfair.table import Table

ROOT = Path(__file__).resolve().parents[1]
REPORT = ("accuracy", "abs_spd", "abs_eod", "spd", "eod", "selection_rate", "sel_rate_s0", "sel_rate_s1")


def stage1_section(setting: str) -> dict[str, Any]:
    """The stage-1 config section of one setting string (values parsed as YAML scalars)."""
    if setting == "none":
        return {"name": "none"}
    section = yaml.safe_load((ROOT / "conf" / "stage1" / "bilevel.yaml").read_text())
    for item in setting.split(","):
        key, value = item.split("=", 1)
        section[key] = yaml.safe_load(value)
    return section


def config(args: argparse.Namespace, setting: str, seed: int) -> dict[str, Any]:
    partition: dict[str, Any] = {"method": args.partition, "test_frac": 0.2}
    if args.partition == "dirichlet":
        partition["alpha"] = args.alpha
    return {
        "dataset": {"name": args.dataset}, "partition": partition, "strategy": {"name": "oneshot"},
        "stage1": stage1_section(setting), "stage2": {"name": "none"}, "num_clients": args.clients,
        "seed": seed, "cache_dir": str(args.cache), "progress": False,
    }


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
    theta, _ = pipeline.server_fit(uploads, 1e-4)
    server = pipeline.evaluate(theta, pooled)
    row: dict[str, Any] = {"dataset": args.dataset, "partition": args.partition,
                           "alpha": args.alpha if args.partition == "dirichlet" else None,
                           "setting": setting, "seed": seed}
    row.update({k: metrics.compute(server)[k] for k in REPORT})
    row["majority"] = float(max(np.mean(pooled.y == 1), np.mean(pooled.y == -1)))
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
    """Mean (sd) over seeds per (dataset, partition, alpha, setting), in file order."""
    rows = load([path])
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["partition"], r["alpha"], r["setting"]), []).append(r)
    out = ["| dataset | partition | setting | seeds | acc | abs SPD | abs EOD | selection | majority | "
           "own abs SPD | own abs EOD | stage-1 s/client |", "|" + "---|" * 12]
    for (ds, part, alpha, setting), rs in groups.items():
        def ms(vals: list[float], digits: int = 4) -> str:
            vals = [v for v in vals if v is not None]
            if not vals:
                return "n/a"
            sd = f" ({statistics.stdev(vals):.{digits}f})" if len(vals) > 1 else ""
            return f"{statistics.fmean(vals):.{digits}f}{sd}"
        own = lambda k: [statistics.fmean(o[k] for o in r["own"] if o[k] is not None) for r in rs if r["own"]]
        secs = [c["stage1_s"] for r in rs for c in r["clients"]]
        out.append(
            f"| {ds} | {part}{'' if alpha is None else f' a={alpha}'} | {setting} | {len(rs)} | "
            f"{ms([r['accuracy'] for r in rs])} | {ms([r['abs_spd'] for r in rs])} | {ms([r['abs_eod'] for r in rs])} | "
            f"{ms([r['selection_rate'] for r in rs], 3)} | {rs[0]['majority']:.3f} | {ms(own('abs_spd'))} | "
            f"{ms(own('abs_eod'))} | {statistics.fmean(secs):.1f} |"
        )
    return "\n".join(out)


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
    """Accuracy against |SPD| (top) and |EOD| (bottom) per dataset: mean ± sd over seeds, one line
    per penalty swept over its weight, each point labelled with the weight (the settings ``PLOTTED``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in load(inputs) if r["partition"] == "iid" and r["setting"] in PLOTTED]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    names = list(dict.fromkeys(series(r["setting"])[0] for r in rows))
    style = dict(zip(names, ["*", "o", "P", "s", "D", "^", "v", "X"]))
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.6 * len(datasets), 7.2), squeeze=False)
    for col, ds in enumerate(datasets):
        for row_i, (key, label) in enumerate((("abs_spd", "|SPD|"), ("abs_eod", "|EOD|"))):
            ax = axes[row_i][col]
            for name in names:
                groups: dict[float | None, list[dict[str, Any]]] = {}
                for r in rows:
                    if r["dataset"] == ds and series(r["setting"])[0] == name:
                        groups.setdefault(series(r["setting"])[1], []).append(r)
                if not groups:
                    continue
                pts = sorted(groups.items(), key=lambda kv: -1.0 if kv[0] is None else kv[0])
                xs = [statistics.fmean(r[key] for r in rs) for _, rs in pts]
                ys = [statistics.fmean(r["accuracy"] for r in rs) for _, rs in pts]
                sd = lambda vals: statistics.stdev(vals) if len(vals) > 1 else 0.0
                ax.errorbar(xs, ys, xerr=[sd([r[key] for r in rs]) for _, rs in pts],
                            yerr=[sd([r["accuracy"] for r in rs]) for _, rs in pts], marker=style[name],
                            linestyle="-" if len(pts) > 1 else "none", capsize=2, label=name, markersize=6,
                            elinewidth=0.8, alpha=0.85)
                for (value, _), x, y in zip(pts, xs, ys):
                    if value is not None:
                        ax.annotate(f"{value:g}", (x, y), fontsize=7, xytext=(4, -9), textcoords="offset points")
            ax.set_xlim(left=0)
            ax.set_xlabel(f"{label} (pooled test)")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{ds}: accuracy vs {label}", fontsize=10)
            ax.grid(alpha=0.3)
    legend = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.suptitle("Stage 1, 2 IID clients, stage2=none: mean ± sd over seeds 0-2 (labels: ρ or γ)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--partition", default="iid", choices=["iid", "dirichlet"])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--clients", type=int, default=2)
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
