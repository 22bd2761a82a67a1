"""Reproduce FADM's protocol (Lin, Li, Zhao & Shao, §5, Table 1) on Adult: sensitive attribute = sex,
label = income, domains = the 5 race values. For each domain: train FADM on the other four (meta-
learning over them, Algorithm 1), generate rows, fit the downstream classifier (fedfair's logistic
model) on the synthetic rows only, and test it on every row of the held-out domain: ACC, R_DP, R_EOp
(eq. 12–13) per domain and on average.

One trained generator per held-out domain gives four samplers (the ablations need no retraining):

* FADM: label and entropy guidance (λ_y, λ_z of ``conf/stage1/fadm.yaml`` unless overridden);
* FADM, λ_z = 0: label guidance only (no fairness control);
* DDPM (λ_y = λ_z = 0): unguided samples labelled by the label classifier (the paper's DDPM row);
* and, for reference, the classifier fitted on the real rows of the four training domains.

Each sampler's ``leak`` is the expected accuracy, mean max(p, 1 − p), of a fresh sex classifier
(logistic, fitted on the real training rows) on the synthetic rows: how much sex the samples give away.

    python scripts/reproduce_fadm.py [--seeds 0] [--samples 10000] [--jobs 2] [--out results/fadm-adult]
                                     [--set iterations=3000 ...] [--domains Black ...] [--quick]
                                     [--aggregate-only]

Writes ``fadm_adult.json`` (every fold), ``fadm_adult.csv`` (mean ± std over seeds and n per method
and domain, ``fedfair.report``), ``fadm_adult.md`` (ours next to the paper's Table 1) and
``fadm_adult.png``; progress on stderr; the last stdout line is JSON with the
output paths and the wall time. ``--quick``: a smoke test (few iterations, rows and steps).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from fedfair import fadm, metrics, model, report
from fedfair.config import compose_config
from fedfair.data import load_dataset
from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError
from fedfair.fadm.generator import requested_labels
from fedfair.results import write_json

DOMAIN_COLUMN = "race"
# Table 1's column order and the paper's abbreviations.
DOMAINS = {"Amer-Indian-Eskimo": "A-I-E", "Asian-Pac-Islander": "A-P-I", "Black": "Black", "Other": "Other",
           "White": "White"}
# The paper's Table 1 (ACC %, R_DP, R_EOp per domain, then the average).
PAPER = {
    "FADM": {"A-I-E": (88.05, 0.95, 0.80), "A-P-I": (79.04, 0.82, 0.66), "Black": (89.66, 0.92, 0.73),
             "Other": (86.73, 0.96, 0.81), "White": (81.37, 0.86, 0.76), "Avg": (84.97, 0.91, 0.75)},
    "DDPM": {"A-I-E": (87.01, 0.89, 0.79), "A-P-I": (79.75, 0.68, 0.42), "Black": (89.49, 0.91, 0.75),
             "Other": (85.16, 0.81, 0.48), "White": (79.11, 0.74, 0.60), "Avg": (84.10, 0.82, 0.61)},
}
QUICK = {"iterations": 30, "hidden": 32, "layers": 2, "steps": 20}


def log(msg: str) -> None:
    print(f"[fadm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def samplers(cfg: fadm.FADMConfig) -> dict[str, tuple[float, float]]:
    return {"FADM": (cfg.lambda_y, cfg.lambda_z), "FADM, lambda_z=0": (cfg.lambda_y, 0.0), "DDPM": (0.0, 0.0)}


def scores(theta: np.ndarray, test: Any) -> dict[str, float | None]:
    m = metrics.evaluate(test.y, model.predict(theta, test), test.s)
    return {"acc": m["accuracy"], "r_dp": m["dpr"], "r_eop": m["eor"], "abs_spd": m["abs_spd"],
            "abs_eod": m["abs_eod"]}


def fold(job: tuple[str, int, dict[str, Any], int, str | None]) -> list[dict[str, Any]]:
    """Train on every domain but ``held_out``, test each sampler's downstream model on it."""
    held_out, seed, section, samples, data_dir = job
    from sklearn.linear_model import LogisticRegression

    data = load_dataset("adult", data_dir=data_dir)
    layout = fadm.Layout.from_schema(data.schema)
    race = data.column(DOMAIN_COLUMN)
    train = data.table.subset(np.flatnonzero(race != held_out))
    test = data.table.subset(np.flatnonzero(race == held_out))
    cfg = fadm.FADMConfig(**section, seed=seed, progress=False)
    t0 = time.perf_counter()
    gen = fadm.fit(train, layout, cfg)
    train_s = time.perf_counter() - t0
    log(f"{held_out} seed {seed}: trained in {train_s:.0f} s")
    sex = LogisticRegression(max_iter=2000).fit(train.x, train.s)
    base = {"domain": DOMAINS[held_out], "seed": seed, "n_train": len(train), "n_test": len(test)}
    rows = [{**base, "method": "real rows", **scores(model.fit(train), test), "leak": None, "seconds": 0.0}]
    labels = requested_labels(train, samples, cfg.labels)
    for name, (lambda_y, lambda_z) in samplers(cfg).items():
        t0 = time.perf_counter()
        synthetic = gen.generate(labels, seed + 1, lambda_y, lambda_z, cfg.steps)
        p = sex.predict_proba(synthetic.x)[:, 1]
        rows.append({**base, "method": name, **scores(model.fit(synthetic), test),
                     "leak": float(np.maximum(p, 1 - p).mean()), "positive_share": float((synthetic.y == 1).mean()),
                     "seconds": train_s + time.perf_counter() - t0})
    return rows


KEYS = ("acc", "r_dp", "r_eop", "abs_spd", "leak")


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, domain): mean ± std over seeds (``fedfair.report``); then per method an
    "Avg" row, the mean over the domains of their means (Table 1's Avg; its std is the spread over
    the domains)."""
    per_domain = report.aggregate(rows, ("method", "domain"), KEYS)
    avg = report.aggregate(per_domain, ("method",), KEYS)
    out = []
    for a in avg:
        out += [r for r in per_domain if r["method"] == a["method"]]
        out.append({"method": a["method"], "domain": "Avg", **{k: v for k, v in a.items() if k != "method"}})
    return out


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "n/a"
    return " / ".join(report.fmt(row[k], digits=2, scale=s) for k, s in (("acc", 100), ("r_dp", 1), ("r_eop", 1)))


def markdown(summary: list[dict[str, Any]], settings: dict[str, Any], wall_s: float, seeds: list[int]) -> str:
    cols = [*DOMAINS.values(), "Avg"]
    by = {(r["method"], r["domain"]): r for r in summary}
    body = [[f"{method} (ours)", *(_cell(by.get((method, c))) for c in cols), report.fmt(by[(method, "Avg")]["leak"], digits=3)]
            for method in dict.fromkeys(r["method"] for r in summary)]
    body += [[f"{method} (paper)", *(f"{a:.2f} / {b:.2f} / {c:.2f}" for a, b, c in (per[c] for c in cols)), ""]
             for method, per in PAPER.items()]
    return "\n".join([
        "## FADM on Adult, leave one race domain out (ACC % / R_DP / R_EOp)", "",
        report.table(["method", *cols, "leak"], body), "",
        f"Seeds {' '.join(map(str, seeds))} (mean over seeds; fadm_adult.csv has the std and n); wall time "
        f"{wall_s:.0f} s on this machine.",
        "leak: a fresh sex classifier's expected accuracy on the synthetic rows (lower = less sex information).",
        f"Settings: {json.dumps(settings, sort_keys=True)}"]) + "\n"


def plot(summary: list[dict[str, Any]], path: Path) -> Path:
    return report.bar_plot(summary, path, "domain", "method", (("acc", "ACC"), ("r_dp", "R_DP"), ("r_eop", "R_EOp")),
                           "FADM on Adult, leave one race domain out (logistic downstream model)")


def main() -> int:
    try:
        return run()
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run() -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--samples", type=int, default=10000, help="synthetic rows per held-out domain")
    parser.add_argument("--jobs", type=int, default=2, help="folds trained in parallel (one torch thread each)")
    parser.add_argument("--out", type=Path, default=Path("results/fadm-adult"))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="stage1 (FADM) settings over conf/stage1/fadm.yaml, e.g. iterations=3000")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=list(DOMAINS),
                        help="the held-out domains (default: all five)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()

    section = compose_config(["stage1=fadm", *(f"stage1.{kv}" for kv in args.set)])["stage1"]
    known = {f.name for f in fields(fadm.FADMConfig)}
    section = {k: v for k, v in section.items() if k in known and k not in ("seed", "progress")}
    section["domain_column"] = DOMAIN_COLUMN  # the meta-learning domains: the four training races
    if args.quick:
        section.update(QUICK)
        args.samples = min(args.samples, 500)
    fadm.FADMConfig(**section)  # a bad setting fails here, before any work
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result_path = args.out / "fadm_adult.json"
    if args.aggregate_only:
        saved = json.loads(result_path.read_text())
        rows, settings, wall_s = saved["rows"], saved["settings"], saved["wall_s"]
        args.seeds = saved.get("seeds", args.seeds)
    else:
        jobs = [(d, seed, section, args.samples, args.data_dir) for seed in args.seeds for d in args.domains]
        log(f"{len(jobs)} folds on {args.jobs} processes")
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = [r for part in pool.map(fold, jobs) for r in part]
        wall_s = time.time() - t0
        settings = {**section, "samples": args.samples, "downstream": "fedfair logistic model (lam 1e-4)"}
        write_json(result_path, {"rows": rows, "settings": settings, "wall_s": wall_s, "seeds": args.seeds,
                                 "paper": PAPER, "config": asdict(fadm.FADMConfig(**section))})
    summary = summarize(rows)
    report.write_csv(args.out / "fadm_adult.csv", summary)
    (args.out / "fadm_adult.md").write_text(markdown(summary, settings, wall_s, args.seeds))
    plot(summary, args.out / "fadm_adult.png")
    print(json.dumps({"json": str(result_path), "md": str(args.out / "fadm_adult.md"),
                      "png": str(args.out / "fadm_adult.png"), "wall_s": round(wall_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
