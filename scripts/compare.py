"""One comparison table: one-shot (no DP with the paper's SP penalty or the gap penalties of issue 15;
the Gaussian stage 2 DP first and after stage 1; DP-CTGAN; FADM; fair latent distillation), FedAvg,
FedAvg on FADM- or fair-distillation-augmented clients, FairFed and FairFed with local reweighing on
the same dataset, partition and seeds, through the real CLI (``fedfair run -m``, Flower's simulation
engine).

Writes ``comparison.csv`` (one row per method and parameter: mean and std over seeds),
``comparison.md`` (accuracy, |SPD|, |EOD|, DPR, EOR, selection rate, rounds, bytes up/down, wall
time; a cell whose server model was (nearly) constant in some seeds is marked † k/n) and
``pareto.png`` (accuracy against |SPD| and against |EOD|: one marker per method, one line per ρ or
β / γ sweep). Communication columns are measured from the messages, not computed from formulas.

    python scripts/compare.py --dataset adult --partition dirichlet --alpha 0.1 --clients 5 --fadm-domains race
    python scripts/compare.py --dataset law_school --partition iid --clients 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# DP-CTGAN for 10 epochs at σ = 1.85 (ε ≤ 3 for an 8,319-row client, see reproduce_paper.py); a
# client where fewer epochs fit in ε = 3 trains fewer (fedfair.stage2 caps epochs at the budget).
DP_FAST = ["stage2=dpctgan", "stage2.epochs=10", "stage2.sigma=1.85"]
METHODS: list[tuple[str, str, list[str]]] = [  # (label, swept parameter, overrides)
    ("one-shot, no DP", "rho", ["strategy=oneshot", "stage2=none", "stage1.rho=0,10,100,1000"]),
    # the gap penalties (issue 15; the paper's covariance penalty is the row above)
    ("one-shot, sp_gap", "gamma", ["strategy=oneshot", "stage2=none", "stage1.penalty=sp_gap",
                                   "stage1.gamma=10,100"]),
    ("one-shot, eo_gap", "gamma", ["strategy=oneshot", "stage2=none", "stage1.penalty=eo_gap",
                                   "stage1.gamma=100,1000"]),
    ("one-shot, gaussian DP first eps=3", "rho", ["strategy=oneshot", "stage2=gaussian", "stage2.order=before",
                                                  "stage1.rho=0,100,1000"]),
    ("one-shot, gaussian after stage 1 eps=3", "rho", ["strategy=oneshot", "stage2=gaussian",
                                                       "stage2.order=after", "stage1.rho=0,100,1000"]),
    ("one-shot, DP-CTGAN eps=3", "rho", ["strategy=oneshot", *DP_FAST, "stage1.rho=0,1000"]),
    ("one-shot, FADM", "lambda_z", ["strategy=oneshot", "stage1=fadm", "stage2=none", "stage1.lambda_z=0,1"]),
    ("one-shot, fair distillation", "", ["strategy=oneshot", "stage1=fairdistill", "stage2=none"]),
    ("FedAvg", "", ["strategy=fedavg"]),
    ("FedAvg + FADM", "", ["strategy=fedavg_fadm"]),
    ("FedAvg + fair distillation", "", ["strategy=fedavg_fairdistill"]),
    ("FairFed", "beta", ["strategy=fairfed", "strategy.beta=0.5,1,2"]),
    ("FairFed, metric=spd", "beta", ["strategy=fairfed", "strategy.metric=spd", "strategy.beta=0.5,1,2"]),
    # FairFed as its paper runs it: fairness-aware weights on top of local reweighing (beta=0: FedAvg + it)
    ("FairFed + reweighing", "beta", ["strategy=fairfed", "strategy.reweigh=true", "strategy.beta=0,1"]),
]
COLUMNS = ("accuracy", "abs_spd", "abs_eod", "dpr", "eor")


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(label: str, overrides: list[str], seed: int, common: list[str], out: Path) -> Path:
    """One Hydra multirun; returns its sweep directory."""
    sweep = out / label.replace(" ", "_").replace(",", "").replace("=", "") / f"seed{seed}"
    fedfair = str(Path(sys.executable).parent / "fedfair")
    cmd = [fedfair, "run", "-m", *common, *overrides, f"seed={seed}", "progress=false",
           f"hydra.sweep.dir={sweep}"]
    log(" ".join(cmd[1:]))
    with open(out / "runs.log", "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ)
    if proc.returncode != 0:
        log(f"{label} seed {seed} failed (exit {proc.returncode}); see {out / 'runs.log'}")
    return sweep


def collect(sweep: Path, label: str, param: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(sweep.glob("*/results.json")):
        res = json.loads(path.read_text())
        cfg = res["config"]
        swept = {"rho": cfg["stage1"].get("rho"), "beta": cfg["strategy"].get("beta"),
                 "lambda_z": cfg["stage1"].get("lambda_z"), "gamma": cfg["stage1"].get("gamma")}
        value = swept.get(param, "")
        row = {"method": label, "param": param, "value": value, "seed": res["seed"]}
        row.update({k: res["metrics"].get(k) for k in (*COLUMNS, "selection_rate")})
        # a (nearly) constant server model: its fairness numbers are meaningless (marked in the table)
        row["constant"] = res.get("sanity", {}).get("constant_model", res["metrics"].get("selection_rate") in (0.0, 1.0))
        row.update({k: res["communication"][k] for k in ("rounds", "bytes_up", "bytes_down")})
        row["wall_s"] = res["timings"]["total_s"]
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds for each (method, parameter value)."""
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["value"]), []).append(r)
    out = []
    for (method, value), rs in groups.items():
        s: dict[str, Any] = {"method": method, "param": rs[0]["param"], "value": value, "seeds": len(rs)}
        s["constant_runs"] = sum(bool(r["constant"]) for r in rs)
        for k in (*COLUMNS, "selection_rate", "rounds", "bytes_up", "bytes_down", "wall_s"):
            vals = [r[k] for r in rs if r[k] is not None]
            s[k] = statistics.fmean(vals) if vals else None
            s[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(s)
    return out


def markdown(summary: list[dict[str, Any]], title: str) -> str:
    def pm(s: dict[str, Any], k: str, digits: int = 4) -> str:
        if s[k] is None:
            return "n/a"
        return f"{s[k]:.{digits}f} ± {s[k + '_std']:.{digits}f}" if s["seeds"] > 1 else f"{s[k]:.{digits}f}"

    lines = [f"## {title}", "", "| method | param | accuracy | abs SPD | abs EOD | DPR | EOR | selection | "
             "rounds | bytes up | bytes down | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        param = f"{s['param']}={s['value']}" if s["param"] else ""
        mark = f" † {s['constant_runs']}/{s['seeds']}" if s.get("constant_runs") else ""
        lines.append(
            f"| {s['method']} | {param} | {pm(s, 'accuracy')} | {pm(s, 'abs_spd')}{mark} | {pm(s, 'abs_eod')}{mark} | "
            f"{pm(s, 'dpr', 3)} | {pm(s, 'eor', 3)} | {pm(s, 'selection_rate', 3)} | {s['rounds']:.0f} | "
            f"{s['bytes_up']:,.0f} | {s['bytes_down']:,.0f} | {s['wall_s']:.0f} |"
        )
    lines.append(f"\nmean ± std over seeds ({max(s['seeds'] for s in summary)} at most). † k/n: in k of the n "
                 "runs the server model (nearly) predicted one class (selection rate ≥ 0.985 or ≤ 0.015), so "
                 "its fairness numbers are meaningless.")
    return "\n".join(lines) + "\n"


def pareto(summary: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = dict(zip([m[0] for m in METHODS], itertools.cycle("oXhsPD*^<v>p8H")))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, name in zip(axes, ("abs_spd", "abs_eod"), ("|SPD|", "|EOD|")):
        for method, _, _ in METHODS:
            pts = sorted((s for s in summary if s["method"] == method and s[key] is not None),
                         key=lambda s: float(s["value"] or 0))
            if not pts:
                continue
            xs, ys = [p[key] for p in pts], [p["accuracy"] for p in pts]
            ax.errorbar(xs, ys, xerr=[p[f"{key}_std"] for p in pts], yerr=[p["accuracy_std"] for p in pts],
                        marker=markers[method], linestyle="-" if len(pts) > 1 else "none", capsize=2,
                        label=method)
            for p in pts:
                if p["param"]:
                    ax.annotate(f"{p['param']}={p['value']:g}", (p[key], p["accuracy"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"{name} (pooled test)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="law_school")
    parser.add_argument("--partition", default="iid", choices=["iid", "dirichlet"])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--fadm-domains", default=None, help="FADM's meta-learning domain column (adult: race)")
    parser.add_argument("--methods", nargs="+", default=[m[0] for m in METHODS], metavar="LABEL",
                        choices=[m[0] for m in METHODS], help="a subset of the methods, by label")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()

    common = [f"dataset={args.dataset}", f"partition={args.partition}", f"num_clients={args.clients}",
              *args.extra]
    if args.partition == "dirichlet":
        common.append(f"partition.alpha={args.alpha}")
        # tiny or one-sided clients may fail DP-CTGAN: the one-shot run goes on with the others
        common.append(f"strategy.min_clients={max(1, args.clients - 2)}")
    slug = f"{args.dataset}-{args.partition}{'-a' + str(args.alpha) if args.partition == 'dirichlet' else ''}-k{args.clients}"
    out = (args.out or Path("results") / f"compare-{slug}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    common.append(f"cache_dir={out / 'cache'}")  # one FADM fit per client for both FADM methods
    t0 = time.time()
    rows = []
    for label, param, overrides in METHODS:
        if label not in args.methods:
            continue
        if "stage1=fadm" in overrides or "strategy=fedavg_fadm" in overrides:
            overrides = [*overrides, f"stage1.domain_column={args.fadm_domains or 'null'}"]
        for seed in args.seeds:
            sweep = out / label.replace(" ", "_").replace(",", "").replace("=", "") / f"seed{seed}"
            if not args.aggregate_only:
                run(label, overrides, seed, common, out)
            rows.extend(collect(sweep, label, param))
    if not rows:
        log("no results to aggregate")
        return 1
    summary = summarize(rows)
    title = (f"{args.dataset}, {args.partition}" + (f" alpha={args.alpha}" if args.partition == "dirichlet" else "")
             + f", K={args.clients}, seeds {' '.join(map(str, args.seeds))}")
    with open(out / "comparison.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    (out / "comparison.md").write_text(markdown(summary, title))
    pareto(summary, out / "pareto.png", title)
    print(json.dumps({"out": str(out), "csv": str(out / "comparison.csv"), "md": str(out / "comparison.md"),
                      "plot": str(out / "pareto.png"), "wall_s": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
