"""results.json: one file per run, written atomically; its sanity block and summary table (rows, CSV and
sweep summaries: ``fedfair.report``)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

SUMMARY_KEYS = ("accuracy", "abs_spd", "abs_eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1")
# A model whose pooled selection rate is at least this (or at most 1 − this) predicts (nearly) one
# class: its SPD and EOD are ~0 whatever the data, so they say nothing about fairness.
CONSTANT_RATE = 0.985


def sanity(
    metrics: dict[str, Any], majority_rate: float | None, single_label: list[int],
    copies: dict[int, int] | None = None,
) -> dict[str, Any]:
    """The checks to read before a fairness number: the server model's selection rate (overall and
    per group) beside the majority-class rate, whether the model is (nearly) constant, which clients
    uploaded a single-label table, which uploaded rows identical to their training rows (``copies``:
    partition → count, from the privacy audit), and one warning line for each problem."""
    sel = metrics.get("selection_rate")
    constant = sel is None or not (1 - CONSTANT_RATE) < sel < CONSTANT_RATE
    warnings = []
    if constant:
        shown = "undefined" if sel is None else f"{sel:.4f}"
        warnings.append(
            f"the model predicts (nearly) one class (selection rate {shown}): its fairness numbers are meaningless"
        )
    if single_label:
        warnings.append(
            f"client(s) {', '.join(map(str, single_label))} uploaded rows of a single label: "
            "their tables carry no decision boundary"
        )
    accuracy = metrics.get("accuracy")
    if not constant and accuracy is not None and majority_rate is not None and accuracy < majority_rate:
        warnings.append(
            f"the model is less accurate ({accuracy:.4f}) than always predicting the majority class "
            f"({majority_rate:.4f})"
        )
    raw = {pid: n for pid, n in sorted((copies or {}).items()) if n}
    if raw:
        listed = ", ".join(f"client {pid}: {n}" for pid, n in raw.items())
        warnings.append(f"uploads contain rows identical to training rows ({listed}): raw rows left the client")
    return {
        "selection_rate": sel,
        "sel_rate_s0": metrics.get("sel_rate_s0"),
        "sel_rate_s1": metrics.get("sel_rate_s1"),
        "majority_rate": majority_rate,
        "constant_model": constant,
        "single_label_uploads": single_label,
        "raw_row_uploads": raw,
        "warnings": warnings,
    }


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON atomically (temp file + rename): a crash never leaves a half-written file."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, allow_nan=False, default=_jsonable)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0 or abs(value) >= 1e-3:
            return f"{value:.4f}" if math.isfinite(value) else str(value)
        return f"{value:.1e}"
    return str(value)


def summary_table(results: dict[str, Any]) -> str:
    """A readable block: pooled metrics, per-client sizes and timings, communication, privacy."""
    m = results["metrics"]
    lines = [
        f"{results['strategy']} on {results['dataset']}, {results['num_clients']} clients, "
        f"seed {results['seed']}",
        "  pooled test metrics: " + "  ".join(f"{k}={_fmt(m.get(k))}" for k in SUMMARY_KEYS),
    ]
    check = results.get("sanity")
    if check:
        lines.append(
            f"  selection rate {_fmt(check['selection_rate'])} (s=0 {_fmt(check['sel_rate_s0'])}, "
            f"s=1 {_fmt(check['sel_rate_s1'])}); majority-class rate {_fmt(check['majority_rate'])}"
        )
        lines.extend(f"  WARNING: {w}" for w in check["warnings"])
    failed = [c for c in results.get("clients", []) if c["status"] != "ok"]
    lines.extend(f"  WARNING: client {c['partition_id']} {c['status']} (left out of the pooled metrics)"
                 for c in failed)
    for c in results["per_client"]:
        timing = "  ".join(f"{k}={c[k]:.1f}" for k in ("stage1_s", "stage2_s") if k in c)
        cm = c["metrics"]
        size = "  ".join(f"{k}={c[k]}" for k in ("n_train", "n_upload") if k in c)
        lines.append(
            f"  client {c['partition_id']}: {size} n_test={cm['n']} acc={_fmt(cm['accuracy'])} "
            f"abs_spd={_fmt(cm['abs_spd'])} {timing}".rstrip()
        )
        if c.get("audit"):
            a = c["audit"]
            lines.append(
                f"    audit: exact copies {a['exact_matches']}/{a['n_upload']}, distance to closest "
                f"training row median {a['dcr_upload_median']:.3f} (held-out rows {a['dcr_holdout_median']:.3f}), "
                f"5th pct {a['dcr_upload_p5']:.3f} ({a['dcr_holdout_p5']:.3f}), membership AUC {a['mia_auc']:.3f}"
            )
    comm = results["communication"]
    lines.append(
        f"  communication: rounds={comm['rounds']} messages={comm['messages']} "
        f"bytes_up={comm['bytes_up']:,} bytes_down={comm['bytes_down']:,}"
    )
    p = results["privacy"]
    lines.append(f"  privacy: {p['mechanism']} epsilon={_fmt(p['epsilon'])} delta={_fmt(p['delta'])}"
                 + (f", with respect to {p['guarantee']}" if p.get("guarantee") else ""))
    t = results["timings"]
    lines.append(f"  time: total {t['total_s']:.1f} s, server fit {t['server_fit_s']:.2f} s")
    return "\n".join(lines)
