"""One comparison table: one-shot (no DP with the paper's SP penalty or the gap penalties of issue 15;
the Gaussian stage 2 DP first and after stage 1; DP-CTGAN; FADM; fair latent distillation), FedAvg,
FedAvg on FADM- or fair-distillation-augmented clients, FairFed and FairFed with local reweighing on
the same dataset, partition and seeds, through the real CLI (``fedfair run -m``, Flower's simulation
engine).

Writes, through ``fedfair.report``, ``comparison.csv`` (one row per method and parameter: mean and
std over seeds, n), ``comparison.md`` (accuracy, majority-class and selection rates, |SPD|, |EOD|,
DPR, EOR, rounds, bytes up/down, wall time; a gap whose server model was (nearly) constant in k of
the n seeds is marked † k/n) and ``pareto.png`` (accuracy against |SPD| and against |EOD|: one line
per method, its points labelled with ρ, γ, λ_z or β). Communication columns are measured from the
messages, not computed from formulas. Dataset, partition, α and clients default to ``conf/``.

    python scripts/compare.py --dataset adult --partition dirichlet --alpha 0.1 --clients 5 --fadm-domains race
    python scripts/compare.py --dataset law_school --partition iid --clients 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reproduce_paper import DP_FAST

from fedfair import cli, report
from fedfair.config import compose_config
from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError

METHODS: list[tuple[str, str, list[str]]] = [  # (label, swept config key, overrides)
    ("one-shot, no DP", "stage1.rho", ["strategy=oneshot", "stage2=none", "stage1.rho=0,10,100,1000"]),
    # the gap penalties (issue 15; the paper's covariance penalty is the row above)
    ("one-shot, sp_gap", "stage1.gamma", ["strategy=oneshot", "stage2=none", "stage1.penalty=sp_gap",
                                          "stage1.gamma=10,50"]),
    ("one-shot, eo_gap", "stage1.gamma", ["strategy=oneshot", "stage2=none", "stage1.penalty=eo_gap",
                                          "stage1.gamma=100,1000"]),
    ("one-shot, gaussian DP first eps=3", "stage1.rho", ["strategy=oneshot", "stage2=gaussian",
                                                         "stage2.order=before", "stage1.rho=0,100,1000"]),
    ("one-shot, gaussian after stage 1 eps=3", "stage1.rho", ["strategy=oneshot", "stage2=gaussian",
                                                              "stage2.order=after", "stage1.rho=0,100,1000"]),
    ("one-shot, DP-CTGAN eps=3", "stage1.rho", ["strategy=oneshot", *DP_FAST, "stage1.rho=0,1000"]),
    ("one-shot, FADM", "stage1.lambda_z", ["strategy=oneshot", "stage1=fadm", "stage2=none",
                                           "stage1.lambda_z=0,1"]),
    ("one-shot, fair distillation", "", ["strategy=oneshot", "stage1=fairdistill", "stage2=none"]),
    ("FedAvg", "", ["strategy=fedavg"]),
    ("FedAvg + FADM", "", ["strategy=fedavg_fadm"]),
    ("FedAvg + fair distillation", "", ["strategy=fedavg_fairdistill"]),
    ("FairFed", "strategy.beta", ["strategy=fairfed", "strategy.beta=0.5,1,2"]),
    ("FairFed, metric=spd", "strategy.beta", ["strategy=fairfed", "strategy.metric=spd", "strategy.beta=0.5,1,2"]),
    # FairFed as its paper runs it: fairness-aware weights on top of local reweighing (beta=0: FedAvg + it)
    ("FairFed + reweighing", "strategy.beta", ["strategy=fairfed", "strategy.reweigh=true", "strategy.beta=0,1"]),
]
KEYS = ("accuracy", "majority_rate", "selection_rate", "abs_spd", "abs_eod", "dpr", "eor", "rounds", "bytes_up",
        "bytes_down", "total_s")
COLUMNS = (*report.METRIC_COLUMNS, report.Column("DPR", "dpr", 3), report.Column("EOR", "eor", 3))


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sweep_dir(out: Path, label: str, seed: int) -> Path:
    return out / label.replace(" ", "_").replace(",", "").replace("=", "") / f"seed{seed}"


def run(label: str, overrides: list[str], seed: int, common: list[str], out: Path) -> None:
    """One Hydra multirun through the CLI into :func:`sweep_dir`."""
    args = ["run", "-m", *common, *overrides, f"seed={seed}", "progress=false",
            f"hydra.sweep.dir={sweep_dir(out, label, seed)}"]
    log(" ".join(args))
    cmd = cli.command(*args)
    with open(out / "runs.log", "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ)
    if proc.returncode != 0:
        log(f"{label} seed {seed} failed (exit {proc.returncode}); see {out / 'runs.log'}")


def collect(sweep: Path, label: str, key: str) -> list[dict[str, Any]]:
    """One row per run of a sweep: the method, its swept parameter and value, the run's flat row."""
    param = key.rsplit(".", 1)[-1]
    return [{"method": label, "param": param, "value": report.config_value(res, key) if key else None,
             **report.flat_row(res, res.get("overrides"))}
            for res in report.read_runs(sweep, "*/results.json")]


def markdown(summary: list[dict[str, Any]], title: str) -> str:
    body = []
    for s in summary:
        param = f"{s['param']}={report.plain(s['value'])}" if s["param"] else ""
        body.append([s["method"], param, s["n"], *(report.cell(s, c.key, c.digits) for c in COLUMNS),
                     report.fmt(s["rounds"], digits=0), f"{s['bytes_up']:,.0f}", f"{s['bytes_down']:,.0f}",
                     report.fmt(s["total_s"], digits=0)])
    header = ["method", "param", "n", *(c.header for c in COLUMNS), "rounds", "bytes up", "bytes down", "wall s"]
    notes = f"{report.STD_NOTE} {report.CONSTANT_NOTE}"
    return f"## {title}\n\n{report.table(header, body, 'llr' + 'r' * (len(header) - 3))}\n\n{notes}\n"


def main() -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="dataset (default: conf/)")
    parser.add_argument("--partition", default=None, choices=["iid", "dirichlet"], help="default: conf/")
    parser.add_argument("--alpha", type=float, default=None, help="Dirichlet alpha (default: conf/)")
    parser.add_argument("--clients", type=int, default=None, help="number of clients (default: conf/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--fadm-domains", default=None, help="FADM's meta-learning domain column (adult: race)")
    parser.add_argument("--methods", nargs="+", default=[m[0] for m in METHODS], metavar="LABEL",
                        choices=[m[0] for m in METHODS], help="a subset of the methods, by label")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()

    given = {"dataset": args.dataset, "partition": args.partition, "partition.alpha": args.alpha,
             "num_clients": args.clients}
    common = [f"{k}={v}" for k, v in given.items() if v is not None] + args.extra
    try:
        cfg = compose_config(common)
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    part, clients = cfg["partition"], int(cfg["num_clients"])
    dirichlet = part["method"] == "dirichlet"
    if dirichlet:  # tiny or one-sided clients may fail DP-CTGAN: the one-shot run goes on with the others
        common.append(f"strategy.min_clients={max(1, clients - 2)}")
    where = f"{cfg['dataset']['name']}, {part['method']}" + (f" alpha={part['alpha']}" if dirichlet else "")
    slug = f"{cfg['dataset']['name']}-{part['method']}{'-a' + str(part['alpha']) if dirichlet else ''}-k{clients}"
    out = (args.out or Path("results") / f"compare-{slug}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    common.append(f"cache_dir={out / 'cache'}")  # one FADM fit per client for both FADM methods
    t0 = time.time()
    rows = []
    for label, key, overrides in METHODS:
        if label not in args.methods:
            continue
        if "stage1=fadm" in overrides or "strategy=fedavg_fadm" in overrides:
            overrides = [*overrides, f"stage1.domain_column={args.fadm_domains or 'null'}"]
        for seed in args.seeds:
            if not args.aggregate_only:
                run(label, overrides, seed, common, out)
            rows.extend(collect(sweep_dir(out, label, seed), label, key))
    if not rows:
        log("no results to aggregate")
        return 1
    summary = report.aggregate(rows, ("method", "param", "value"), KEYS)
    title = f"{where}, K={clients}, seeds {' '.join(map(str, args.seeds))}"
    report.write_csv(out / "comparison.csv", summary)
    (out / "comparison.md").write_text(markdown(summary, title))
    shown = [{**s, "series": f"{s['method']} ({s['param']})" if s["param"] else s["method"]} for s in summary]
    report.tradeoff_plot(shown, out / "pareto.png", "series", "value", title,
                         order=lambda s: float(s["value"] or 0))
    print(json.dumps({"out": str(out), "csv": str(out / "comparison.csv"), "md": str(out / "comparison.md"),
                      "plot": str(out / "pareto.png"), "wall_s": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
