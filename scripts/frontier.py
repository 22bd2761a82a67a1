"""The privacy–fairness–utility frontier of the one-shot method: every stage 2 at several ε, with and
without the fairness penalty, over seeds, on Law School and Adult.

Each run is the one-shot pipeline in this process (``fedfair.pipeline.run_oneshot``: the functions
the Flower client and server apps call, without the engine's start-up per run), with a stage cache
so that stage 1 is computed once per (dataset, seed, ρ) and reused by every stage 2 that runs after
it. Rows are appended to ``frontier.jsonl`` as they finish, so an interrupted run resumes.

Writes, through ``fedfair.report``, ``frontier.csv`` (mean ± std over runs and n per dataset, stage 2,
ρ, ε), ``frontier.md`` and ``frontier.png`` (accuracy and |SPD| against ε). Cells of a (nearly)
constant server model are marked † k/n in the table and circled in the figure: their fairness numbers
are meaningless.

    python scripts/frontier.py --out results/frontier                       # everything (hours)
    python scripts/frontier.py --out results/frontier --datasets law_school --stage2 gaussian-after
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from reproduce_paper import DP_FAST

from fedfair import report
from fedfair.config import compose_config
from fedfair.env import set_offline_defaults
from fedfair.metrics import majority_rate
from fedfair.errors import FedFairError
from fedfair.pipeline import Experiment, run_oneshot
from fedfair.results import sanity

# label → overrides. DP-CTGAN runs reproduce_paper's fast setting (at most 10 epochs; the 93-epoch
# σ = 5 fit costs 4–12 min per client here); fewer epochs where the budget buys fewer.
STAGE2: dict[str, list[str]] = {
    "none": ["stage2=none"],
    "gaussian-after": ["stage2=gaussian", "stage2.order=after"],
    "gaussian-before": ["stage2=gaussian", "stage2.order=before"],
    "mst": ["stage2=mst"],
    "dpctgan": DP_FAST,
}
EPSILONS = (0.5, 1.0, 3.0, 8.0)
RHOS = (0.0, 100.0)


def log(msg: str) -> None:
    print(f"[frontier {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for dataset in args.datasets:
        for label in args.stage2:
            for eps in [None] if label == "none" else args.epsilons:
                for rho in args.rhos:
                    for seed in args.seeds:
                        for draw in range(args.draws if label != "none" else 1):
                            job = {"dataset": dataset, "stage2": label, "epsilon": eps, "rho": rho, "seed": seed}
                            out.append({**job, "draw": draw} if draw else job)
    return out


def key(job: dict[str, Any]) -> str:
    return json.dumps(job, sort_keys=True)


def run(job: dict[str, Any], cache: Path) -> dict[str, Any]:
    """One run; a repeated noise draw (``draw`` > 0) gets a cache of its own, so that its DP release
    is fresh (OpenDP's noise cannot be seeded) and nothing of another draw is reused."""
    if job.get("draw"):
        cache = cache / f"draw{job['draw']}"
    overrides = [f"dataset={job['dataset']}", *STAGE2[job["stage2"]], f"stage1.rho={job['rho']}",
                 f"seed={job['seed']}", "progress=false", f"cache_dir={cache}"]
    if job["epsilon"] is not None:
        overrides.append(f"stage2.epsilon={job['epsilon']}")
    exp = Experiment(compose_config(overrides))
    t0 = time.perf_counter()
    res = run_oneshot(exp, exp.load())
    m, clients = res["metrics"], res["per_client"]
    single = [c["partition_id"] for c in clients if c["privacy"]["single_label"]]
    check = sanity(m, majority_rate(res["counts"]), single)
    eps = [c["privacy"]["epsilon"] for c in clients]
    return {
        **job,
        **{k: m[k] for k in ("accuracy", "abs_spd", "abs_eod", "selection_rate", "sel_rate_s0", "sel_rate_s1")},
        "majority_rate": check["majority_rate"],
        "constant_model": check["constant_model"] or res["degenerate_upload"],
        "single_label_uploads": single,
        "epsilon_spent": None if None in eps else max(eps),
        "stage1_s": max(c["stage1_s"] for c in clients),
        "stage2_s": max(c["stage2_s"] for c in clients),
        "n_upload": [c["n_upload"] for c in clients],
        "mia_auc": max(c["audit"]["mia_auc"] for c in clients),
        "exact_matches": sum(c["audit"]["exact_matches"] for c in clients),
        "wall_s": time.perf_counter() - t0,
    }


KEYS = ("accuracy", "abs_spd", "abs_eod", "selection_rate", "majority_rate", "mia_auc", "stage1_s", "stage2_s")


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over runs (seeds × noise draws) per (dataset, stage 2, ρ, ε), ``fedfair.report``."""
    order = sorted(records, key=lambda r: (r["dataset"], r["stage2"], r["rho"], r["epsilon"] or math.inf))
    rows = report.aggregate(order, ("dataset", "stage2", "rho", "epsilon"), KEYS)
    for row in rows:
        row["single_label_runs"] = sum(bool(r["single_label_uploads"]) for r in records
                                       if all(r[k] == row[k] for k in ("dataset", "stage2", "rho", "epsilon")))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table per dataset: a row per (stage 2, ρ), a column per ε; cells acc / |SPD| (sel)."""
    out = []
    for dataset in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == dataset]
        eps = sorted({r["epsilon"] for r in sub if r["epsilon"] is not None})
        out.append(f"**{dataset}** (cells: accuracy / selection rate / abs SPD ± std, mean over the n runs "
                   f"(seeds × noise draws); majority rate {sub[0]['majority_rate']:.4f}) {report.CONSTANT_NOTE}\n")
        out.append("| stage 2 | ρ | " + " | ".join(f"ε = {e:g}" for e in eps) + " | ε = ∞ | MIA AUC | s/client (stage 1 + 2) |")
        out.append("|---|---|" + "---|" * (len(eps) + 3))
        for label in STAGE2:
            for rho in sorted({r["rho"] for r in sub}):
                cells = {r["epsilon"]: r for r in sub if r["stage2"] == label and r["rho"] == rho}
                if not cells:
                    continue
                texts = []
                for e in [*eps, None]:
                    r = cells.get(e)
                    if r is None:
                        texts.append("–")
                        continue
                    texts.append(f"{report.fmt(r['accuracy'])} / {report.fmt(r['selection_rate'], digits=3)} / "
                                 f"{report.cell(r, 'abs_spd', 3)}")
                aucs = [r["mia_auc"] for r in cells.values()]
                secs = [r["stage1_s"] + r["stage2_s"] for r in cells.values()]
                out.append(f"| {label} | {rho:g} | " + " | ".join(texts) +
                           f" | {min(aucs):.3f}–{max(aucs):.3f} | {min(secs):.1f}–{max(secs):.1f} |")
        out.append("")
    return "\n".join(out)


def figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy (top) and |SPD| (bottom) against ε per dataset: one line per (stage 2, ρ), the runs
    without DP as horizontal lines; circled points had a constant model in some runs."""
    from matplotlib.ticker import NullFormatter

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = report.figure(2 * len(datasets), rows=2, size=(5.5, 3.6))
    colours = dict(zip(STAGE2, ["C0", "C1", "C2", "C3", "C4"]))
    for col, dataset in enumerate(datasets):
        for row_i, (metric, name) in enumerate((("accuracy", "accuracy"), ("abs_spd", "|SPD|"))):
            ax = axes[row_i * len(datasets) + col]
            for label in STAGE2:
                for rho, style in ((0.0, "--"), (100.0, "-")):
                    pts = [r for r in rows if r["dataset"] == dataset and r["stage2"] == label and r["rho"] == rho]
                    if not pts:
                        continue
                    if label == "none":  # no DP: a horizontal reference line
                        ax.axhline(pts[0][metric], color=colours[label], ls=style, lw=1, label=f"{label}, ρ={rho:g}")
                        continue
                    report.draw(ax, pts, "epsilon", metric, label=f"{label}, ρ={rho:g}", color=colours[label],
                                ls=style)
            ax.set_xscale("log")
            ax.set_xlim(0.4, 10)
            ax.set_xticks(list(EPSILONS), [f"{e:g}" for e in EPSILONS])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("ε (δ = 1e-5)")
            ax.set_ylabel(name)
            if metric == "accuracy":
                ax.axhline(next(r["majority_rate"] for r in rows if r["dataset"] == dataset),
                           color="grey", lw=0.8, ls=":", label=report.MAJORITY)
            ax.set_title(f"{dataset}: {name}")
            ax.grid(alpha=0.3)
    return report.save(fig, path)


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/frontier"))
    p.add_argument("--datasets", nargs="+", default=["law_school", "adult"])
    p.add_argument("--stage2", nargs="+", default=list(STAGE2), choices=list(STAGE2))
    p.add_argument("--epsilons", nargs="+", type=float, default=list(EPSILONS))
    p.add_argument("--rhos", nargs="+", type=float, default=list(RHOS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--draws", type=int, default=1, help="DP noise draws per seed (the mean is over all)")
    p.add_argument("--aggregate-only", action="store_true", help="only rebuild the tables and figure")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "frontier.jsonl"
    records = [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    done = {key({k: r[k] for k in ("dataset", "stage2", "epsilon", "rho", "seed", "draw") if k in r}) for r in records}
    todo = [] if args.aggregate_only else [j for j in jobs(args) if key(j) not in done]
    t0 = time.perf_counter()
    for i, job in enumerate(todo, 1):
        try:
            record = run(job, args.out / "cache")
        except FedFairError as exc:  # e.g. an ε that buys DP-CTGAN no epoch: a cell, not a crash
            record = {**job, "error": str(exc)}
            log(f"{i}/{len(todo)} {job}: {exc}")
        records.append(record)
        with store.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if "error" in record:
            continue
        log(f"{i}/{len(todo)} {job}: acc {record['accuracy']:.4f} abs_spd {record['abs_spd']:.4f} "
            f"sel {record['selection_rate']:.4f}{' CONSTANT' if record['constant_model'] else ''} "
            f"({record['wall_s']:.1f} s)")
    if not records:
        log("no results yet")
        return 1
    failed = [r for r in records if "error" in r]
    rows = summarize([r for r in records if "error" not in r])
    report.write_csv(args.out / "frontier.csv", rows)
    (args.out / "frontier.md").write_text(markdown(rows) + "\n")
    figure(rows, args.out / "frontier.png")
    log(f"{len(todo)} runs in {time.perf_counter() - t0:.0f} s; wrote {args.out}/frontier.{{csv,md,png}}")
    print(markdown(rows))
    for r in failed:
        print(f"not run: {r['dataset']} {r['stage2']} eps={r['epsilon']} rho={r['rho']} seed={r['seed']}: {r['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
