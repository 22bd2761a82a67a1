"""Reproduce the Adult protocol of Sikder et al. (§5, Table 1) for fair latent distillation: an 80/20
split per repeat; on the 80 %, train the FairDisCo teacher and a student per distillation loss (l1, mse,
huber, md, each with λ·KL), generate as many rows as the training split, fit the downstream classifiers
on the generated rows only and test them on the real 20 %. Sensitive attribute = sex and = race (Black
vs the rest, ``load_dataset("adult", sensitive=...)``).

Rows per (sensitive attribute, repeat):

* Original: the classifiers fitted on the real training rows;
* L1-KL, MSE-KL, Huber-KL, MD-KL: one shared teacher, one student per loss;
* ablations of L1-KL: β = 0 (a teacher without the dependence penalty), own s (decoding with each row's
  own s instead of a random one), no distillation (decoding the teacher's z).

Downstream classifiers: a random forest (the paper's; scikit-learn, 100 trees, one thread) and fedfair's
logistic model beside it. Metrics on the real test rows: accuracy beside the majority-class rate, the
selection rate, DPR and EOR (fairlearn's equalized-odds ratio), recall and F1 of the +1 class
(income > 50K); density and coverage (k = 5, at most 5,000 rows per side) of the generated rows
against the real training rows; seconds per fit (teacher + student + generation).

    python scripts/reproduce_fairdistill.py [--repeats 10] [--quick] [--sensitive sex race]
                                            [--set beta=1e6 ...] [--out results/fairdistill-adult]
                                            [--aggregate-only]

``--quick``: 2 repeats. Writes ``fairdistill_adult.json`` (every row), ``fairdistill_adult.md`` (ours
beside the paper's Table 1) and ``fairdistill_adult.png``; progress on stderr; the last stdout line is
JSON with the output paths and the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedfair import fairdistill as fd
from fedfair import metrics, model, report
from fedfair.config import compose_config
from fedfair.data import load_dataset
from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError
from fedfair.fidelity import density_coverage
from fedfair.results import write_json
from fedfair.table import Table

# The paper's Table 1 (Adult): (DPR, EOR, ACC, Recall, F1, Density, Coverage) for sex / race.
PAPER = {
    "Original": {"sex": (.32, .22, .88, .80, .72, None, None), "race": (.19, .00, .88, .80, .71, None, None)},
    "FairDisCo": {"sex": (.98, .85, .78, .92, .86, None, None), "race": (.95, .92, .812, .71, .88, None, None)},
    "L1-KL": {"sex": (.99, .99, .76, .99, .89, 1.06, .94), "race": (.99, .98, .76, .99, .87, 1.11, .97)},
    "Huber-KL": {"sex": (.91, .84, .82, .92, .87, 1.96, .328), "race": (.87, .84, .84, .92, .89, 1.65, .652)},
    "MSE-KL": {"sex": (.90, .87, .82, .92, .89, 1.86, .332), "race": (.87, .78, .84, .92, .90, 1.68, .67)},
    "MD-KL": {"sex": (.98, .90, .76, .93, .86, 1.54, .89), "race": (.94, .98, .78, .91, .86, 1.43, .90)},
}
LOSSES = {"L1-KL": "l1", "MSE-KL": "mse", "Huber-KL": "huber", "MD-KL": "md"}
ABLATIONS = ("L1-KL, beta=0", "L1-KL, own s", "L1-KL, no distillation")
KEYS = ("acc", "majority", "selection", "dpr", "eor", "recall", "f1", "density", "coverage", "seconds")


def log(msg: str) -> None:
    print(f"[fairdistill {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def scores(pred: np.ndarray, test: Table) -> dict[str, float | None]:
    m = metrics.evaluate(test.y, pred, test.s)
    majority = max(float((test.y == 1).mean()), float((test.y == -1).mean()))
    return {"acc": m["accuracy"], "majority": majority, "selection": m["selection_rate"], "dpr": m["dpr"],
            "eor": m["eqodds_ratio"], "recall": m["recall"], "f1": m["f1"]}


def downstream(train: Table, test: Table, seed: int) -> dict[str, dict[str, float | None]]:
    """Both classifiers fitted on ``train`` (features a = (x, s)), scored on ``test``."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed)
    rf.fit(train.a, train.y)
    return {"rf": scores(rf.predict(test.a), test), "logistic": scores(model.predict(model.fit(train), test), test)}


def repeat(sensitive: str, rep: int, cfg: fd.FairDistillConfig, data_dir: str | None) -> list[dict[str, Any]]:
    """One 80/20 split: every method of the module doc."""
    data = load_dataset("adult", data_dir=data_dir, sensitive=sensitive)
    layout = fd.Layout.from_schema(data.schema)
    order = np.random.default_rng(rep).permutation(len(data.table))
    cut = int(round(0.8 * len(order)))
    train, test = data.table.subset(order[:cut]), data.table.subset(order[cut:])
    cfg = replace(cfg, seed=rep)
    base = {"sensitive": sensitive, "repeat": rep, "n_train": len(train), "n_test": len(test)}
    rows = []

    def add(method: str, table: Table, seconds: float) -> None:
        fidelity = {"density": None, "coverage": None}
        if method != "Original":
            fidelity = density_coverage(train.to_array(), table.to_array(), k=5, max_rows=5000, seed=rep)
        for clf, sc in downstream(table, test, rep).items():
            rows.append({**base, "method": method, "classifier": clf, **sc, **fidelity, "seconds": seconds})
        r = rows[-2]
        log(f"{sensitive} #{rep} {method}: rf acc {r['acc']:.3f} (majority {r['majority']:.3f}) "
            f"dpr {r['dpr']:.2f} eor {r['eor']:.2f} cov {fidelity['coverage']} ({seconds:.0f} s)")

    add("Original", train, 0.0)
    teachers = {}
    for name, beta in (("main", cfg.beta), ("beta=0", 0.0)):
        t0 = time.perf_counter()
        teachers[name] = (fd.fit_teacher(train, layout, replace(cfg, beta=beta)), time.perf_counter() - t0)
    for method, loss in LOSSES.items():
        t0 = time.perf_counter()
        gen = fd.distil(teachers["main"][0], train, replace(cfg, loss=loss))
        out, _ = fd.sample(gen, train, replace(cfg, loss=loss))
        add(method, out, teachers["main"][1] + time.perf_counter() - t0)
        if loss == "l1":
            for ablation, change in (("L1-KL, own s", {"s_decode": "own"}), ("L1-KL, no distillation",
                                                                           {"distill": False})):
                t1 = time.perf_counter()
                out, _ = fd.sample(gen, train, replace(cfg, **change))
                add(ablation, out, teachers["main"][1] + time.perf_counter() - t1 + (t1 - t0))
    t0 = time.perf_counter()
    gen = fd.distil(teachers["beta=0"][0], train, replace(cfg, beta=0.0))
    out, _ = fd.sample(gen, train, replace(cfg, beta=0.0))
    add("L1-KL, beta=0", out, teachers["beta=0"][1] + time.perf_counter() - t0)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (sensitive, classifier, method): mean ± std over repeats (``fedfair.report``), and
    the accuracy gain over the majority-class rate (``gain``)."""
    rows = [{**r, "gain": r["acc"] - r["majority"]} for r in rows]
    return report.aggregate(rows, ("sensitive", "classifier", "method"), (*KEYS, "gain"))


def _f(row: dict[str, Any], key: str, digits: int = 2) -> str:
    return "–" if row.get(key) is None else report.fmt(row[key], row.get(f"{key}_std"), digits)


def _paper(method: str, sensitive: str) -> str:
    values = PAPER.get(method, {}).get(sensitive)
    return "" if values is None else " / ".join("–" if v is None else f"{v:g}" for v in values)


def markdown(summary: list[dict[str, Any]], settings: dict[str, Any], repeats: int, wall_s: float) -> str:
    lines = []
    header = ["method", "ACC (RF)", "majority", "sel. rate", "DPR", "EOR", "Recall", "F1", "ACC (logistic)", "DPR",
              "EOR", "Density", "Coverage", "s per fit", "paper DPR / EOR / ACC / Rec / F1 / Dens / Cov"]
    for sensitive in dict.fromkeys(r["sensitive"] for r in summary):
        rf = [r for r in summary if r["sensitive"] == sensitive and r["classifier"] == "rf"]
        lg = {r["method"]: r for r in summary if r["sensitive"] == sensitive and r["classifier"] == "logistic"}
        body = [[m["method"], *(_f(m, k) for k in ("acc", "majority", "selection", "dpr", "eor", "recall", "f1")),
                 *(_f(lg[m["method"]], k) for k in ("acc", "dpr", "eor")), _f(m, "density"), _f(m, "coverage"),
                 "–" if not m["seconds"] else f"{m['seconds']:.0f}", _paper(m["method"], sensitive)] for m in rf]
        body += [[f"{method} (paper only)", *[""] * 13, _paper(method, sensitive)]
                 for method in PAPER if method not in {m["method"] for m in rf}]
        lines += [f"### s = {sensitive}: ours (random forest | logistic) and the paper's Table 1", "",
                  report.table(header, body), ""]
    lines += [f"{repeats} repeats (mean ± std); wall time {wall_s:.0f} s. Positive class: income > 50K.",
              f"Settings: {json.dumps(settings, sort_keys=True)}"]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, Any]], path: Path) -> Path:
    """DPR against the accuracy gain over the majority rate: ours (random forest) and the paper's."""
    sens = list(dict.fromkeys(r["sensitive"] for r in summary))
    fig, axes = report.figure(len(sens), size=(6.0, 4.6))
    for ax, sensitive in zip(axes, sens):
        rf = [r for r in summary if r["sensitive"] == sensitive and r["classifier"] == "rf"]
        report.draw(ax, rf, "dpr", "gain", label="ours (random forest), mean ± std", point_labels="method",
                    line=False)
        paper = [{"dpr": PAPER[m][sensitive][0], "gain": PAPER[m][sensitive][2] - 0.76, "method": f"{m} (paper)"}
                 for m in ("L1-KL", "MSE-KL", "Huber-KL", "MD-KL", "Original")]
        report.draw(ax, paper, "dpr", "gain", label="paper's Table 1 (majority rate 0.76)", point_labels="method",
                    marker="x", line=False, color="grey")
        ax.axhline(0.0, color="k", lw=0.6, ls=":")
        ax.set_xlabel("DPR (random forest, real test rows)")
        ax.set_ylabel("accuracy − majority rate")
        ax.set_title(f"Adult, s = {sensitive}")
        ax.grid(alpha=0.3)
    return report.save(fig, path, "Fair latent distillation on Adult")


def main() -> int:
    try:
        return run()
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run() -> int:
    set_offline_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sensitive", nargs="+", default=["sex", "race"])
    parser.add_argument("--out", type=Path, default=Path("results/fairdistill-adult"))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="stage1 settings over conf/stage1/fairdistill.yaml, e.g. beta=1e6")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()

    section = compose_config(["stage1=fairdistill", *(f"stage1.{kv}" for kv in args.set)])["stage1"]
    known = {f.name for f in fields(fd.FairDistillConfig)}
    section = {k: v for k, v in section.items() if k in known and k not in ("seed", "progress")}
    cfg = fd.FairDistillConfig(**section, progress=False)  # a bad setting fails here, before any work
    repeats = min(args.repeats, 2) if args.quick else args.repeats
    torch.set_num_threads(cfg.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    result_path = args.out / "fairdistill_adult.json"
    t0 = time.time()
    if args.aggregate_only:
        saved = json.loads(result_path.read_text())
        rows, settings, wall_s, repeats = saved["rows"], saved["settings"], saved["wall_s"], saved["repeats"]
    else:
        rows = []
        for sensitive in args.sensitive:
            for rep in range(repeats):
                rows += repeat(sensitive, rep, cfg, args.data_dir)
        wall_s = time.time() - t0
        settings = {**asdict(cfg), "downstream": "random forest (100 trees, min leaf 2) and fedfair logistic"}
        write_json(result_path, {"rows": rows, "settings": settings, "wall_s": wall_s, "repeats": repeats,
                                 "paper": PAPER})
    summary = summarize(rows)
    (args.out / "fairdistill_adult.md").write_text(markdown(summary, settings, repeats, wall_s))
    plot(summary, args.out / "fairdistill_adult.png")
    print(json.dumps({"json": str(result_path), "md": str(args.out / "fairdistill_adult.md"),
                      "png": str(args.out / "fairdistill_adult.png"), "wall_s": round(wall_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
