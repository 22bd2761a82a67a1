"""Reproduce the paper's experiment (Wu, Curtis & Robinson §4): Tables 1–2 and Figures 2–3 on Law School.

Drives Hydra multiruns through the real CLI (``fedfair run -m ...``): 2 IID clients (80/20 each, the
config defaults), ρ ∈ {0, 10, 100, 1000, 10000}, penalties SP and EO, N_s1 = N, for every seed:

* syn_1(100%): ``stage2=none`` (the stage-1 fair set itself is uploaded);
* syn_2(100%) and syn_2(10%): ``stage2=dpctgan stage2.ns2_frac=1.0,0.1`` (ε = 3, δ = 1e-5).

All sweeps share one ``cache_dir``, so stage 1 runs once per (seed, penalty, ρ, client) and DP-CTGAN
once per (seed, penalty, ρ, client): syn_2(10%) is the first 10% of the same N-row DP-CTGAN sample
as syn_2(100%). Clients run in parallel (the simulation gives each client one CPU).

Then it aggregates every ``results.json`` into ``tables.md`` / ``tables.csv`` (mean ± sample std
over seeds), ``comparison.md`` (ours next to the paper's Tables 1–2) and ``fig2_sp.png`` /
``fig3_eo.png`` (accuracy, covariance estimate, |SPD| or |EOD| against ρ).

    python scripts/reproduce_paper.py [--seeds 0 1 2] [--out results/paper] [--dp fast|paper]
                                      [--quick] [--aggregate-only]

``--dp paper``: DP-CTGAN's defaults as the paper used them (σ = 5, training until ε = 3 is spent:
93 epochs, ≈210 s per client). ``--dp fast`` (default): 10 epochs at the smallest σ that spends at
most ε = 3 in them (≈30 s per client; equally poor quality at ε = 3, see the docs).
``--quick``: a smoke test (k_max 20, 1 DP-CTGAN epoch, 1 seed, ρ ∈ {0, 1000}).
``--aggregate-only``: re-make the tables and figures from the results already in ``--out`` (pass
the same ``--dp`` / ``--quick`` as the run). Progress goes to stderr; the last stdout line is JSON
with the output paths and the wall time. Finished sweeps (every job has its results.json) are
skipped on a re-run, so an interrupted reproduction can be resumed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RHOS = (0, 10, 100, 1000, 10000)
QUICK_RHOS = (0, 1000)
PENALTIES = ("sp", "eo")
COLUMNS = ("syn_1(100%)", "syn_2(100%)", "syn_2(10%)")
TITLES = {"sp": "Table 1: accuracy and |SPD| (SP penalty)", "eo": "Table 2: accuracy and |EOD| (EO penalty)"}
FAIRNESS = {"sp": ("abs_spd", "|SPD|", "cov_sp"), "eo": ("abs_eod", "|EOD|", "cov_eo")}
FIGURES = {"sp": "fig2_sp.png", "eo": "fig3_eo.png"}
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
    "paper": [],  # stage2/dpctgan.yaml: sigma 5, epochs cap 300 -> trains 93 epochs, ε = 3
    "fast": [f"stage2.epochs={FAST_EPOCHS}", f"stage2.sigma={FAST_SIGMA}"],
}
QUICK_OVERRIDES = ["stage1.k_max=20"]
QUICK_DP = ["stage2.epochs=1"]


def log(msg: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Running the sweeps


def fedfair_command() -> list[str]:
    """The ``fedfair`` console script of this interpreter's environment (else ``python -m``)."""
    script = Path(sys.executable).with_name("fedfair")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fedfair.cli"]


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The sweeps to run: per seed, syn_1 (stage2=none) then syn_2 (DP-CTGAN, both N_s2)."""
    rhos = ",".join(str(r) for r in (QUICK_RHOS if args.quick else RHOS))
    common = ["stage1.penalty=" + ",".join(PENALTIES), f"stage1.rho={rhos}"]
    common += QUICK_OVERRIDES if args.quick else []
    dp = DP_OVERRIDES[args.dp] + (QUICK_DP if args.quick else [])
    n_rho = len(QUICK_RHOS if args.quick else RHOS)
    sweeps = []
    for seed in args.seeds:
        sweeps.append({"name": f"seed{seed}-syn1", "jobs": len(PENALTIES) * n_rho,
                       "overrides": [f"seed={seed}", *common, "stage2=none"]})
        # ns2_frac last: Hydra's basic sweeper varies the last override fastest, so the 10% job
        # follows its 100% twin and reads the DP-CTGAN sample from the cache.
        sweeps.append({"name": f"seed{seed}-syn2-{args.dp}", "jobs": 2 * len(PENALTIES) * n_rho,
                       "overrides": [f"seed={seed}", *common, "stage2=dpctgan", *dp,
                                     "stage2.ns2_frac=1.0,0.1"]})
    return sweeps


def sweep_done(sweep_dir: Path, jobs: int) -> bool:
    return len(list(sweep_dir.glob("*/results.json"))) >= jobs and (sweep_dir / "summary.csv").exists()


def run_sweep(sweep: dict[str, Any], out: Path, done_before: int, total: int, t0: float) -> int:
    """Run one multirun through the CLI; the full log goes to ``<out>/logs/<name>.log``. Returns the
    number of jobs finished."""
    sweep_dir = out / sweep["name"]
    cmd = [*fedfair_command(), "run", "-m", *sweep["overrides"], f"hydra.sweep.dir={sweep_dir}",
           "progress=false", f"cache_dir={out / 'cache'}"]
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{sweep['name']}.log"
    log(f"sweep {sweep['name']}: {sweep['jobs']} jobs -> {sweep_dir} (log {log_path})")
    finished = 0
    current = ""
    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            launch = re.search(r"\[HYDRA\]\s+#(\d+) : (.*)", line)
            if launch:
                shown = ("seed=", "stage1.penalty=", "stage1.rho=", "stage2=", "stage2.ns2_frac=")
                current = " ".join(o for o in launch.group(2).split() if o.startswith(shown))
            if line.startswith("results: "):
                finished += 1
                summary = _one_result(Path(line.split(":", 1)[1].strip()))
                log(f"[{done_before + finished}/{total}] {sweep['name']} {current} {summary} "
                    f"({time.perf_counter() - t0:.0f} s)")
        rc = proc.wait()
    if rc != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"error: sweep {sweep['name']} failed (exit {rc}); see {log_path}:\n"
                         + "\n".join(tail))
    return finished


def _one_result(path: Path) -> str:
    try:
        m = json.loads(path.read_text())["metrics"]
        return f"acc={m['accuracy']:.4f} |SPD|={m['abs_spd']:.4f} |EOD|={m['abs_eod']:.4f}"
    except (OSError, KeyError, TypeError, ValueError):
        return "(metrics unreadable)"


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


def _expected(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """(k_max, DP-CTGAN settings) this run mode produces; other results in --out are ignored."""
    k_max = 20 if args.quick else 1000
    dp: dict[str, Any] = {"epochs": 300, "sigma": 5.0} if args.dp == "paper" else {
        "epochs": FAST_EPOCHS, "sigma": FAST_SIGMA}
    if args.quick:
        dp["epochs"] = 1
    return k_max, dp


def collect(out: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """One record per (penalty, ρ, column, seed) from every results.json under ``out`` that matches
    this run mode (the newest file wins a duplicate). Returns (records, number skipped)."""
    k_max, dp = _expected(args)
    chosen: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
    skipped = 0
    for path in sorted(out.glob("*/*/results.json")):
        r = json.loads(path.read_text())
        cfg = r["config"]
        column = _column(cfg)
        s1, s2 = cfg["stage1"], cfg["stage2"]
        ok = (
            r["dataset"] == "law_school" and r["strategy"] == "oneshot" and column is not None
            and s1.get("name") == "bilevel" and int(s1["k_max"]) == k_max
            and (s2["name"] == "none" or all(float(s2[k]) == float(v) for k, v in dp.items()))
        )
        if not ok:
            skipped += 1
            continue
        key = (s1["penalty"], float(s1["rho"]), column, int(r["seed"]))
        m = r["metrics"]
        rec = {
            "penalty": key[0], "rho": key[1], "column": column, "seed": key[3],
            "accuracy": m["accuracy"], "abs_spd": m["abs_spd"], "abs_eod": m["abs_eod"],
            "cov_sp": m["cov_sp"], "cov_eo": m["cov_eo"], "selection_rate": m.get("selection_rate"),
            "degenerate": bool(r.get("degenerate_upload", False)),
            # the server model (nearly) predicts one class (|SPD| and |EOD| ≈ 0 trivially):
            # results.json's own check (selection rate ≥ 0.985 or ≤ 0.015) where it has one
            "constant": r.get("sanity", {}).get("constant_model", m.get("selection_rate") in (0.0, 1.0)),
            "epsilon": r["privacy"]["epsilon"],
            "n_upload": [c.get("n_upload") for c in r["per_client"]],
            "total_s": r["timings"]["total_s"], "path": str(path),
        }
        mtime = path.stat().st_mtime
        if key not in chosen or chosen[key][0] < mtime:
            chosen[key] = (mtime, rec)
    return [rec for _, rec in chosen.values()], skipped


def _stats(values: list[float | None]) -> tuple[float, float, int]:
    """(mean, sample std, n) of the non-null values; std is nan for fewer than 2 values."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return math.nan, math.nan, 0
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else math.nan
    return mean, std, len(xs)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (penalty, ρ, column): mean ± std over seeds of accuracy (%), the penalty's
    fairness gap and its covariance estimate."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[(rec["penalty"], rec["rho"], rec["column"])].append(rec)
    rows = []
    for (penalty, rho, column), recs in sorted(
        groups.items(), key=lambda kv: (PENALTIES.index(kv[0][0]), kv[0][1], COLUMNS.index(kv[0][2]))
    ):
        metric, label, cov = FAIRNESS[penalty]
        acc = _stats([100 * r["accuracy"] for r in recs])
        fair = _stats([r[metric] for r in recs])
        cv = _stats([r[cov] for r in recs])
        sel = _stats([r["selection_rate"] for r in recs])
        eps = [r["epsilon"] for r in recs if r["epsilon"] is not None]
        rows.append({
            "table": 1 if penalty == "sp" else 2, "penalty": penalty, "rho": rho, "data": column,
            "n_seeds": len(recs), "seeds": " ".join(str(seed) for seed in sorted(r["seed"] for r in recs)),
            "accuracy_pct_mean": acc[0], "accuracy_pct_std": acc[1],
            "fairness_metric": label, "fairness_mean": fair[0], "fairness_std": fair[1],
            "cov_metric": cov, "cov_mean": cv[0], "cov_std": cv[1],
            "selection_rate_mean": sel[0], "selection_rate_std": sel[1],
            "n_degenerate": sum(r["degenerate"] for r in recs),
            "n_constant": sum(r["constant"] for r in recs),
            "epsilon_max": max(eps) if eps else None,
        })
    return rows


def _pm(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def tables_markdown(rows: list[dict[str, Any]], note: str) -> str:
    lines = [f"# Reproduction of Tables 1 and 2 (Law School)\n\n{note}\n"]
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        label = FAIRNESS[penalty][1].replace("|", "\\|")
        lines.append(f"## {TITLES[penalty]}\n")
        head = "| ρ |" + "".join(f" {c} acc. (%) | {c} {label} |" for c in COLUMNS)
        lines += [head, "|---:|" + "---:|" * (2 * len(COLUMNS))]
        for rho in sorted({r["rho"] for r in sub}):
            cells = []
            for column in COLUMNS:
                match = [r for r in sub if r["rho"] == rho and r["data"] == column]
                if not match:
                    cells += ["", ""]
                    continue
                r = match[0]
                star = "*" if rho == 0 and column == COLUMNS[0] else ""
                degen = f" ({r['n_constant']}/{r['n_seeds']} constant)" if r["n_constant"] else ""
                cells += [_pm(r["accuracy_pct_mean"], r["accuracy_pct_std"], 2) + star,
                          _pm(r["fairness_mean"], r["fairness_std"], 4) + star + degen]
            name = f"{rho:g} (baseline)" if rho == 0 else f"{rho:g}"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        n = sorted({r["n_seeds"] for r in sub})
        lines.append(f"\nmean ± sample std over {'/'.join(map(str, n))} seed(s); * = baseline "
                     "(ρ = 0: stage 1 without a fairness penalty, x̂ initialised at the real rows; no stage 2); "
                     "(k/n constant): in k of the n runs the server model (nearly) predicted one class "
                     "(selection rate ≥ 0.985 or ≤ 0.015), so its gap is ≈ 0 trivially.\n")
    return "\n".join(lines)


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    """Ours (mean ± std) next to the paper's number, one line per (ρ, column)."""
    lines = ["# Ours vs the paper (Law School)\n",
             "Ours: mean ± sample std over seeds; paper: Tables 1–2 (one run). Selection rate = share "
             "of test rows predicted to pass (ours).\n"]
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        label = FAIRNESS[penalty][1].replace("|", "\\|")
        lines += [f"## {TITLES[penalty]}\n",
                  f"| ρ | data | acc. (%) ours | acc. (%) paper | {label} ours | {label} paper "
                  "| selection rate ours |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        for r in sorted(sub, key=lambda r: (r["rho"], COLUMNS.index(r["data"]))):
            paper = PAPER[penalty].get(int(r["rho"]))
            p_acc, p_gap = paper[COLUMNS.index(r["data"])] if paper else (None, None)
            cells = [
                f"{r['rho']:g}", r["data"], _pm(r["accuracy_pct_mean"], r["accuracy_pct_std"], 2),
                "" if p_acc is None else f"{p_acc:.2f}", _pm(r["fairness_mean"], r["fairness_std"], 4),
                "" if p_gap is None else f"{p_gap:.4f}",
                _pm(r["selection_rate_mean"], r["selection_rate_std"], 3),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_tables(rows: list[dict[str, Any]], out: Path, note: str) -> tuple[Path, Path]:
    md, csv_path = out / "tables.md", out / "tables.csv"
    md.write_text(tables_markdown(rows, note))
    (out / "comparison.md").write_text(comparison_markdown(rows))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["table"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return md, csv_path


def write_figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Fig. 2 (SP) and Fig. 3 (EO): accuracy, covariance estimate and |SPD| / |EOD| against ρ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {COLUMNS[0]: ("tab:orange", "o"), COLUMNS[1]: ("tab:green", "s"), COLUMNS[2]: ("tab:blue", "^")}
    paths = []
    for penalty in PENALTIES:
        sub = [r for r in rows if r["penalty"] == penalty]
        if not sub:
            continue
        metric_label = FAIRNESS[penalty][1]
        panels = [("accuracy_pct", "accuracy (%)"), ("cov", f"covariance estimate ({FAIRNESS[penalty][2]})"),
                  ("fairness", metric_label)]
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        rhos = sorted({r["rho"] for r in sub})
        for ax, (key, ylabel) in zip(axes, panels):
            base = [r for r in sub if r["rho"] == 0 and r["data"] == COLUMNS[0]]
            if base:
                b = base[0]
                mean, std = b[f"{key}_mean"], b[f"{key}_std"]
                ax.axhline(mean, color="black", ls="--", lw=1.2, label="baseline (ρ = 0)")
                if not math.isnan(std):
                    ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, lw=0)
            for column in COLUMNS:
                pts = sorted((r for r in sub if r["data"] == column), key=lambda r: r["rho"])
                if not pts:
                    continue
                color, marker = styles[column]
                ax.errorbar(
                    [r["rho"] for r in pts], [r[f"{key}_mean"] for r in pts],
                    yerr=[0.0 if math.isnan(r[f"{key}_std"]) else r[f"{key}_std"] for r in pts],
                    color=color, marker=marker, capsize=3, lw=1.4, ms=5, label=column,
                )
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xticks(rhos)
            ax.set_xticklabels([f"{r:g}" for r in rhos])
            ax.set_xlabel("ρ (symlog)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        n = sorted({r["n_seeds"] for r in sub})
        seeds = "/".join(map(str, n))
        fig.suptitle(f"Law School, {penalty.upper()} penalty: mean ± std over {seeds} seed(s)")
        fig.tight_layout()
        path = out / FIGURES[penalty]
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def aggregate(out: Path, args: argparse.Namespace, wall_s: float | None) -> dict[str, Any]:
    records, skipped = collect(out, args)
    if skipped:
        log(f"ignored {skipped} results.json under {out} from another run mode")
    if not records:
        raise SystemExit(f"error: no matching results.json under {out}")
    rows = summarize(records)
    k_max, dp = _expected(args)
    seeds = sorted({r["seed"] for r in records})
    note = (f"Law School, 2 IID clients (80/20 each), N_s1 = N, k_max = {k_max}; DP-CTGAN ε = 3, "
            f"δ = 1e-5, `--dp {args.dp}` (stage2.epochs = {dp['epochs']}, stage2.sigma = {dp['sigma']}); "
            f"seeds {', '.join(map(str, seeds))}; {len(records)} runs; pooled test metrics of both "
            "clients.")
    if wall_s is not None:
        note += f" Wall time of the sweeps: {wall_s:.0f} s."
    md, csv_path = write_tables(rows, out, note)
    figs = write_figures(rows, out)
    log(f"aggregated {len(records)} runs into {md}, {csv_path}, {', '.join(map(str, figs))}")
    return {"tables_md": str(md), "tables_csv": str(csv_path), "comparison_md": str(out / "comparison.md"),
            "figures": [str(p) for p in figs],
            "runs": len(records), "seeds": seeds}


def parse_seeds(values: list[str]) -> list[int]:
    seeds = [int(v) for value in values for v in value.replace(",", " ").split()]
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return sorted(set(seeds), key=seeds.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--out", type=Path, default=Path("results/paper"))
    parser.add_argument("--dp", choices=sorted(DP_OVERRIDES), default="fast")
    parser.add_argument("--quick", action="store_true", help="smoke test: k_max 20, 1 DP epoch, 1 seed")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args(argv)
    args.seeds = parse_seeds(args.seeds) if args.seeds else ([0] if args.quick else [0, 1, 2])
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
        manifest = {"seeds": args.seeds, "dp": args.dp, "quick": args.quick, "wall_s": wall_s,
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
