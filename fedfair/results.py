"""results.json: one file per run, written atomically; a summary table; the sweep CSV."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

SUMMARY_KEYS = ("accuracy", "abs_spd", "abs_eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1")


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
    for c in results["per_client"]:
        timing = "  ".join(f"{k}={c[k]:.1f}" for k in ("stage1_s", "stage2_s") if k in c)
        cm = c["metrics"]
        lines.append(
            f"  client {c['partition_id']}: n_train={c.get('n_train', 'n/a')} "
            f"n_upload={c.get('n_upload', 'n/a')} n_test={cm['n']} acc={_fmt(cm['accuracy'])} "
            f"abs_spd={_fmt(cm['abs_spd'])} {timing}".rstrip()
        )
    comm = results["communication"]
    lines.append(
        f"  communication: rounds={comm['rounds']} messages={comm['messages']} "
        f"bytes_up={comm['bytes_up']:,} bytes_down={comm['bytes_down']:,}"
    )
    p = results["privacy"]
    lines.append(f"  privacy: {p['mechanism']} epsilon={_fmt(p['epsilon'])} delta={_fmt(p['delta'])}")
    t = results["timings"]
    lines.append(f"  time: total {t['total_s']:.1f} s, server fit {t['server_fit_s']:.2f} s")
    return "\n".join(lines)


def flat_row(results: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """One CSV row: the run's identity, its overrides, pooled metrics, communication, time."""
    row: dict[str, Any] = {
        "strategy": results["strategy"],
        "dataset": results["dataset"],
        "num_clients": results["num_clients"],
        "seed": results["seed"],
        "overrides": " ".join(overrides or []),
    }
    row.update({k: results["metrics"].get(k) for k in SUMMARY_KEYS})
    row.update({k: results["communication"][k] for k in ("rounds", "messages", "bytes_up", "bytes_down")})
    row["epsilon"] = results["privacy"]["epsilon"]
    row["total_s"] = results["timings"]["total_s"]
    row["results"] = results.get("path", "")
    return row


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (union of keys, first-seen order) atomically."""
    path = Path(path).resolve()
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


class SweepSummary(Callback):
    """Hydra callback: after a multirun, collect every job's results.json into ``summary.csv``."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for path in sorted(sweep_dir.glob("*/results.json"), key=lambda p: int(p.parent.name)):
            results = json.loads(path.read_text())
            results["path"] = str(path.resolve())
            rows.append(flat_row(results, results.get("overrides")))
        if rows:
            out = write_csv(sweep_dir / "summary.csv", rows)
            print(f"summary: {out}")
