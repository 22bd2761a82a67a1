"""Reproduce the paper's experiment (Wu, Curtis & Robinson §4): Tables 1–2 and Figures 2–3 on Law School.

Drives Hydra multiruns through the real CLI (``fedfair run -m ...``): 2 IID clients (80/20 each, the
config defaults), ρ ∈ {0, 10, 100, 1000, 10000}, penalties SP and EO, N_s1 = N, for every seed:

* syn_1(100%): ``stage2=none`` (the stage-1 fair set itself is uploaded);
* syn_2(100%) and syn_2(10%): ``stage2=dpctgan stage2.ns2_frac=1.0,0.1`` (ε = 3, δ = 1e-5).

All sweeps share one ``cache_dir``, so stage 1 runs once per (seed, penalty, ρ, client) and DP-CTGAN
once per (seed, penalty, ρ, client): syn_2(10%) is the first 10% of the same N-row DP-CTGAN sample
as syn_2(100%). Clients run in parallel (the simulation gives each client one CPU).

Then it aggregates every run's ``results.json`` (``fedfair.report``) into ``tables.md`` /
``tables.csv`` (mean ± sample std over seeds, n), ``comparison.md`` (ours next to the paper's Tables
1–2, with the selection and majority-class rates) and ``fig2_sp.png`` / ``fig3_eo.png`` (accuracy,
covariance estimate, |SPD| or |EOD| against ρ).

    python scripts/reproduce_paper.py [--seeds 0 1 2] [--out results/paper] [--dp fast|paper]
                                      [--quick] [--rhos 0 1000] [--penalties sp eo]
                                      [--extra dataset=synthetic ...] [--aggregate-only]

``--dp paper``: DP-CTGAN's defaults as the paper used them (σ = 5, training until ε = 3 is spent:
93 epochs, ≈210 s per client). ``--dp fast`` (default): 10 epochs at the smallest σ that spends at
most ε = 3 in them (≈30 s per client; equally poor quality at ε = 3, see the docs).
``--quick``: a smoke test (k_max 20, 1 DP-CTGAN epoch, 1 seed, ρ ∈ {0, 1000}).
``--aggregate-only``: re-make the tables and figures from the results already in ``--out`` (pass
the same ``--dp`` / ``--quick`` / ``--extra`` as the run). ``--extra``: overrides for every run
over ``conf/`` (whose defaults are the paper's setting). Progress goes to stderr; the last stdout line is JSON
with the output paths and the wall time. Finished sweeps (every job has its results.json) are
skipped on a re-run, so an interrupted reproduction can be resumed.
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

from fedfair import cli, report
from fedfair.config import compose_config
from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError

RHOS = (0, 10, 100, 1000, 10000)
QUICK_RHOS = (0, 1000)
PENALTIES = ("sp", "eo")
COLUMNS = ("syn_1(100%)", "syn_2(100%)", "syn_2(10%)")
TITLES = {"sp": "Table 1: accuracy and |SPD| (SP penalty)", "eo": "Table 2: accuracy and |EOD| (EO penalty)"}
FAIRNESS = {"sp": ("abs_spd", "|SPD|", "cov_sp"), "eo": ("abs_eod", "|EOD|", "cov_eo")}
FIGURES = {"sp": "fig2_sp.png", "eo": "fig3_eo.png"}
KEYS = ("accuracy", "majority_rate", "selection_rate", "abs_spd", "abs_eod", "cov_sp", "cov_eo", "epsilon")
# The paper's Tables 1 and 2: ρ -> (accuracy %, |SPD| or |EOD|) for syn_1(100%), syn_2(100%),
# syn_2(10%) (one run each, no spread given); its ρ = 0 syn_1 cell is the baseline.
PAPER = {
    "sp": {
        0: ((88.49, 0.4377), (87.88, 0.1123), (87.67, 0.1572)),
        10: ((87.98, 0.0903), (87.86, 0.0917), (87.79, 0.0963)),
        100: ((85.99, 0.0465), (87.33, 0.1315), (87.55, 0.1208)),
        1000: ((85.02, 0.0408), (88.29, 0.0887), (88.22, 0.0749)),
        10000: ((84.18, 0.0401), (87.64, 0.1208), (87.31, 0.1234)),
    },
    "eo": {
        0: ((88.49, 0.3313), (87.74, 0.1681), (88.08, 0.1241)),
        10: ((87.21, 0.0435), (87.88, 0.1247), (87.72, 0.1393)),
        100: ((83.34, 0.0122), (73.77, 0.0120), (72.67, 0.0334)),
        1000: ((82.88, 0.0086), (88.08, 0.1143), (88.17, 0.1060)),
        10000: ((82.60, 0.0121), (87.88, 0.0931), (87.91, 0.0910)),
    },
}

# --dp fast: DP-CTGAN for 10 epochs at the smallest σ (rounded UP to 0.01) whose 10-epoch ε is <= 3
# for one Law School client (n = 8,319 training rows, batch B = 500; q = B/n, 2·⌊n/B⌋ = 32 noisy
# discriminator steps per epoch), with opacus' RDP accountant exactly as fedfair/stage2.py does:
#     from fedfair.stage2 import _rdp_per_step, _epsilon
#     n, B = 8319, 500
#     min(s / 100 for s in range(100, 500)
#         if _epsilon(_rdp_per_step(B / n, s / 100), 10 * 2 * (n // B), 1e-5) <= 3)   # -> 1.85
# (ε = 2.980 at σ = 1.85; σ = 1.84 would spend 3.003). tests/test_reproduce.py re-derives it.
FAST_SIGMA = 1.85
FAST_EPOCHS = 10
DP_OVERRIDES = {
    "paper": [],  # conf/stage2/dpctgan.yaml as it is: trains 93 epochs until ε = 3 is spent
    "fast": [f"stage2.epochs={FAST_EPOCHS}", f"stage2.sigma={FAST_SIGMA}"],
}
# The one home of the fast DP-CTGAN setting: compare.py and frontier.py run it too.
DP_FAST = ["stage2=dpctgan", *DP_OVERRIDES["fast"]]
QUICK_OVERRIDES = ["stage1.k_max=20"]
QUICK_DP = ["stage2.epochs=1"]


def log(msg: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Running the sweeps


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The sweeps to run: per seed, syn_1 (stage2=none) then syn_2 (DP-CTGAN, both N_s2)."""
    common = [*args.extra, "stage1.penalty=" + ",".join(args.penalties),
              "stage1.rho=" + ",".join(f"{r:g}" for r in args.rhos)]
    common += QUICK_OVERRIDES if args.quick else []
    dp = DP_OVERRIDES[args.dp] + (QUICK_DP if args.quick else [])
    cells = len(args.penalties) * len(args.rhos)
    sweeps = []
    for seed in args.seeds:
        sweeps.append({"name": f"seed{seed}-syn1", "jobs": cells,
                       "overrides": [f"seed={seed}", *common, "stage2=none"]})
        # ns2_frac last: Hydra's basic sweeper varies the last override fastest, so the 10% job
        # follows its 100% twin and reads the DP-CTGAN sample from the cache.
        sweeps.append({"name": f"seed{seed}-syn2-{args.dp}", "jobs": 2 * cells,
                       "overrides": [f"seed={seed}", *common, "stage2=dpctgan", *dp, "stage2.ns2_frac=1.0,0.1"]})
    return sweeps


def sweep_done(sweep_dir: Path, jobs: int) -> bool:
    return len(list(sweep_dir.glob("*/results.json"))) >= jobs and (sweep_dir / "summary.csv").exists()


def run_sweep(sweep: dict[str, Any], out: Path, done_before: int, total: int, t0: float) -> int:
    """Run one multirun through the CLI (its output to ``<out>/logs/<name>.log``), logging each job's
    results.json as it appears. Returns the number of jobs finished."""
    sweep_dir = out / sweep["name"]
    cmd = [*cli.command("run", "-m"), *sweep["overrides"], f"hydra.sweep.dir={sweep_dir}",
           "progress=false", f"cache_dir={out / 'cache'}"]
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{sweep['name']}.log"
    log(f"sweep {sweep['name']}: {sweep['jobs']} jobs -> {sweep_dir} (log {log_path})")
    seen = set(sweep_dir.glob("*/results.json"))

    def report_new() -> None:
        for path in sorted(set(sweep_dir.glob("*/results.json")) - seen):
            seen.add(path)
            log(f"[{done_before + len(seen)}/{total}] {sweep['name']} {_one_result(path)} "
                f"({time.perf_counter() - t0:.0f} s)")

    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1.0)
            report_new()
    report_new()
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"error: sweep {sweep['name']} failed (exit {proc.returncode}); see {log_path}:\n"
                         + "\n".join(tail))
    return len(seen)


def _one_result(path: Path) -> str:
    """A job's overrides and pooled metrics, from its results.json."""
    try:
        r = json.loads(path.read_text())
        m = r["metrics"]
        shown = " ".join(o for o in r["overrides"] if o.split("=")[0] in
                         ("seed", "stage1.penalty", "stage1.rho", "stage2", "stage2.ns2_frac"))
        return f"{shown} acc={m['accuracy']:.4f} |SPD|={m['abs_spd']:.4f} |EOD|={m['abs_eod']:.4f}"
    except (OSError, KeyError, TypeError, ValueError):
        return f"{path} (unreadable)"


# --------------------------------------------------------------------------------------------------
# Aggregation


def _column(cfg: dict[str, Any]) -> str | None:
    s2 = cfg["stage2"]
    if s2["name"] == "none":
        return COLUMNS[0]
    if s2["name"] == "dpctgan":
        frac = float(s2["ns2_frac"])
        return COLUMNS[1] if frac == 1.0 else COLUMNS[2] if frac == 0.1 else None
    return None


def expected(args: argparse.Namespace) -> dict[str, Any]:
    """The config this run mode composes (``--extra``, ``--quick``, ``--dp``): other results in
    ``--out`` are ignored."""
    return compose_config([*args.extra, *(QUICK_OVERRIDES + QUICK_DP if args.quick else []), "stage2=dpctgan",
                           *DP_OVERRIDES[args.dp]])


def collect(out: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """One row per (penalty, ρ, column, seed) from every results.json under ``out`` that matches
    this run mode (the newest file wins a duplicate). Returns (rows, number skipped)."""
    cfg = expected(args)
    dp = {k: cfg["stage2"][k] for k in ("epochs", "sigma")}
    chosen: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
    skipped = 0
    for res in report.read_runs(out, "*/*/results.json"):
        run_cfg = res["config"]
        column = _column(run_cfg)
        s1, s2 = run_cfg["stage1"], run_cfg["stage2"]
        ok = (
            res["dataset"] == cfg["dataset"]["name"] and res["strategy"] == "oneshot" and column is not None
            and s1.get("name") == "bilevel" and int(s1["k_max"]) == int(cfg["stage1"]["k_max"])
            and s1["penalty"] in args.penalties
            and (s2["name"] == "none" or all(float(s2[k]) == float(v) for k, v in dp.items()))
        )
        if not ok:
            skipped += 1
            continue
        row = {"penalty": s1["penalty"], "rho": float(s1["rho"]), "data": column, **report.flat_row(res)}
        # an all-one-label union makes the server fall back to a constant model
        row["constant_model"] = bool(row["constant_model"] or res.get("degenerate_upload"))
        key = (row["penalty"], row["rho"], column, row["seed"])
        mtime = Path(res["path"]).stat().st_mtime
        if key not in chosen or chosen[key][0] < mtime:
            chosen[key] = (mtime, row)
    return [row for _, row in chosen.values()], skipped


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (penalty, ρ, column): mean ± std over seeds (``fedfair.report``), the table it
    belongs to, its seeds and the largest ε spent."""
    order = sorted(rows, key=lambda r: (PENALTIES.index(r["penalty"]), r["rho"], COLUMNS.index(r["data"])))
    out = []
    for agg in report.aggregate(order, ("penalty", "rho", "data"), KEYS):
        runs = [r for r in rows if (r["penalty"], r["rho"], r["data"]) == (agg["penalty"], agg["rho"], agg["data"])]
        eps = [r["epsilon"] for r in runs if r["epsilon"] is not None]
        out.append({"table": 1 if agg["penalty"] == "sp" else 2, **agg,
                    "fairness_metric": FAIRNESS[agg["penalty"]][1],
                    "seeds": " ".join(str(s) for s in sorted(r["seed"] for r in runs)),
                    "epsilon_max": max(eps) if eps else None})
    return out


def tables_markdown(rows: list[dict[str, Any]], note: str, dataset: str) -> str:
    lines = [f"# Reproduction of Tables 1 and 2 ({dataset})\n\n{note}\n"]
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        metric, label, _ = FAIRNESS[penalty]
        label = label.replace("|", "\\|")
        header = ["ρ", *(f"{c} {h}" for c in COLUMNS for h in ("acc. (%)", label))]
        body = []
        for rho in sorted({r["rho"] for r in sub}):
            cells = []
            for column in COLUMNS:
                match = [r for r in sub if r["rho"] == rho and r["data"] == column]
                star = "*" if rho == 0 and column == COLUMNS[0] else ""
                cells += ([report.cell(match[0], "accuracy", 2, 100) + star, report.cell(match[0], metric) + star]
                          if match else ["", ""])
            body.append([f"{rho:g} (baseline)" if rho == 0 else f"{rho:g}", *cells])
        n = "/".join(map(str, sorted({r["n"] for r in sub})))
        lines += [f"## {TITLES[penalty]}\n", report.table(header, body, "r" * len(header)),
                  f"\n{report.STD_NOTE} n = {n}. * = baseline (ρ = 0: stage 1 without a fairness penalty, x̂ "
                  f"initialised at the real rows; no stage 2). {report.CONSTANT_NOTE}\n"]
    return "\n".join(lines)


def comparison_markdown(rows: list[dict[str, Any]], dataset: str) -> str:
    """Ours (mean ± std) next to the paper's number, one line per (ρ, column), with our selection
    rate beside the majority-class rate."""
    lines = [f"# Ours vs the paper ({dataset})\n",
             "Ours: mean ± sample std over seeds; paper: Tables 1–2 (one run, Law School). Selection rate = "
             "share of test rows predicted to pass (ours), beside the majority-class rate.\n"]
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        metric, label, _ = FAIRNESS[penalty]
        label = label.replace("|", "\\|")
        body = []
        for r in sub:
            paper = PAPER[penalty].get(int(r["rho"]))
            p_acc, p_gap = paper[COLUMNS.index(r["data"])] if paper else (None, None)
            body.append([f"{r['rho']:g}", r["data"], r["n"], report.cell(r, "accuracy", 2, 100),
                         "" if p_acc is None else f"{p_acc:.2f}", report.cell(r, "majority_rate", 2, 100),
                         report.cell(r, "selection_rate", 3), report.cell(r, metric),
                         "" if p_gap is None else f"{p_gap:.4f}"])
        header = ["ρ", "data", "n", "acc. (%) ours", "acc. (%) paper", "majority (%)", "selection ours",
                  f"{label} ours", f"{label} paper"]
        lines += [f"## {TITLES[penalty]}\n", report.table(header, body, "rlr" + "r" * 6), ""]
    lines.append(report.CONSTANT_NOTE + "\n")
    return "\n".join(lines)


def write_figures(rows: list[dict[str, Any]], out: Path, dataset: str) -> list[Path]:
    """Fig. 2 (SP) and Fig. 3 (EO): accuracy, covariance estimate and |SPD| / |EOD| against ρ."""
    paths = []
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        metric, label, cov = FAIRNESS[penalty]
        n = "/".join(map(str, sorted({r["n"] for r in sub})))
        paths.append(report.sweep_plot(
            sub, out / FIGURES[penalty], "rho", series=lambda r: r["data"],
            panels=(("accuracy", "accuracy"), (cov, f"covariance estimate ({cov})"), (metric, label)),
            title=f"{dataset}, {penalty.upper()} penalty: mean ± std over {n} seed(s)", xlabel="ρ"))
    return paths


def aggregate(out: Path, args: argparse.Namespace, wall_s: float | None) -> dict[str, Any]:
    records, skipped = collect(out, args)
    if skipped:
        log(f"ignored {skipped} results.json under {out} from another run mode")
    if not records:
        raise SystemExit(f"error: no matching results.json under {out}")
    rows = summarize(records)
    cfg = expected(args)
    dataset, s1, s2 = cfg["dataset"]["name"], cfg["stage1"], cfg["stage2"]
    seeds = sorted({r["seed"] for r in records})
    note = (f"{dataset}, {cfg['num_clients']} {cfg['partition']['method']} clients, N_s1 = N, "
            f"k_max = {s1['k_max']}; DP-CTGAN ε = {s2['epsilon']:g}, δ = {s2['delta']:g}, `--dp {args.dp}` "
            f"(stage2.epochs = {s2['epochs']}, stage2.sigma = {s2['sigma']}); seeds {', '.join(map(str, seeds))}; "
            f"{len(records)} runs; pooled test metrics of all clients.")
    if wall_s is not None:
        note += f" Wall time of the sweeps: {wall_s:.0f} s."
    md, csv_path = out / "tables.md", out / "tables.csv"
    md.write_text(tables_markdown(rows, note, dataset))
    (out / "comparison.md").write_text(comparison_markdown(rows, dataset))
    report.write_csv(csv_path, rows)
    figs = write_figures(rows, out, dataset)
    log(f"aggregated {len(records)} runs into {md}, {csv_path}, {', '.join(map(str, figs))}")
    return {"tables_md": str(md), "tables_csv": str(csv_path), "comparison_md": str(out / "comparison.md"),
            "figures": [str(p) for p in figs], "runs": len(records), "seeds": seeds}


def parse_seeds(values: list[str]) -> list[int]:
    seeds = [int(v) for value in values for v in value.replace(",", " ").split()]
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return sorted(set(seeds), key=seeds.index)


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--out", type=Path, default=Path("results/paper"))
    parser.add_argument("--dp", choices=sorted(DP_OVERRIDES), default="fast")
    parser.add_argument("--quick", action="store_true", help="smoke test: k_max 20, 1 DP epoch, 1 seed, ρ ∈ {0, 1000}")
    parser.add_argument("--rhos", type=float, nargs="+", default=None,
                        help=f"ρ values (default {' '.join(map(str, RHOS))}; --quick: {' '.join(map(str, QUICK_RHOS))})")
    parser.add_argument("--penalties", nargs="+", choices=PENALTIES, default=list(PENALTIES))
    parser.add_argument("--extra", nargs="*", default=[], metavar="OVERRIDE",
                        help="Hydra overrides for every run (default: the paper's setting of conf/)")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args(argv)
    args.seeds = parse_seeds(args.seeds) if args.seeds else ([0] if args.quick else [0, 1, 2])
    args.rhos = args.rhos or list(QUICK_RHOS if args.quick else RHOS)
    try:
        expected(args)  # a bad override fails here, in one line, before any run
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest_path = out / "run.json"
    wall_s = None
    if not args.aggregate_only:
        sweeps = plan(args)
        total = sum(s["jobs"] for s in sweeps)
        log(f"{len(sweeps)} sweeps, {total} jobs, seeds {args.seeds}, --dp {args.dp}"
            f"{' --quick' if args.quick else ''}, out {out}")
        done = 0
        for sweep in sweeps:
            if sweep_done(out / sweep["name"], sweep["jobs"]):
                log(f"sweep {sweep['name']}: complete, skipped")
                done += sweep["jobs"]
                continue
            done += run_sweep(sweep, out, done, total, t0)
        wall_s = time.perf_counter() - t0
        manifest = {"seeds": args.seeds, "dp": args.dp, "quick": args.quick, "rhos": args.rhos,
                    "penalties": args.penalties, "extra": args.extra, "wall_s": wall_s,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "nproc": os.cpu_count(),
                    "sweeps": [{"name": s["name"], "overrides": s["overrides"]} for s in sweeps]}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"all sweeps done in {wall_s:.0f} s")
    elif manifest_path.exists():
        wall_s = json.loads(manifest_path.read_text()).get("wall_s")
    result = aggregate(out, args, wall_s)
    result.update({"out": str(out), "sweeps_wall_s": wall_s, "wall_s": time.perf_counter() - t0})
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
