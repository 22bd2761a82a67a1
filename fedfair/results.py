"""results.json: its schema (what every strategy reports, typed and versioned), one file per run
written atomically, its sanity block, the per-round history plot and the summary table (rows, CSV
and sweep summaries: ``fedfair.report``)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from fedfair.metrics import Counts, majority_rate

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


# results.json's schema version. 1: the files before this key (no history; the run config, sent in
# every message, counted in bytes_down). 2: schema_version, history, communication.config_bytes_down.
SCHEMA_VERSION = 2
# The pooled metrics kept for every round in ``history``.
HISTORY_KEYS = ("accuracy", "abs_spd", "abs_eod", "selection_rate")


@dataclass
class Communication:
    """Messages and bytes each way. ``bytes_down``/``bytes_up``: payload bytes (``count_bytes()`` of a
    message's records, the formula of Flower's ``message_size_mod``) without the run config;
    ``config_bytes_down``: the run config, sent once per node, and the digest naming it that every
    later message carries. ``secure_sums``, ``secure_seconds``: the SecAgg+ rounds (secure aggregation,
    their messages counted with the rest) and their wall time; reported only when there are any."""

    rounds: int = 0
    messages_down: int = 0
    messages_up: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    config_bytes_down: int = 0
    secure_sums: int = 0
    secure_seconds: float = 0.0

    def sent(self, payload: int, config: int) -> None:
        self.messages_down += 1
        self.bytes_down += payload
        self.config_bytes_down += config

    def received(self, payload: int) -> None:
        self.messages_up += 1
        self.bytes_up += payload

    def to_dict(self) -> dict[str, int | float]:
        secure = {"secure_sums": self.secure_sums, "secure_seconds": round(self.secure_seconds, 3)}
        return {
            "rounds": self.rounds,
            "messages": self.messages_down + self.messages_up,
            "messages_down": self.messages_down,
            "messages_up": self.messages_up,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "config_bytes_down": self.config_bytes_down,
            **(secure if self.secure_sums else {}),
        }


@dataclass
class Round:
    """One round: the pooled test metrics of the model it ends with (``HISTORY_KEYS``), its bytes
    each way, the pooled training loss and aggregation weights (partition id → share of θ, local
    training strategies) and FairFed's global fairness metric F_global (signed, of the model the round
    starts from, on the clients' training rows)."""

    round: int
    metrics: dict[str, float | None]
    bytes_down: int
    bytes_up: int
    config_bytes_down: int
    train_loss: float | None = None
    weights: dict[int, float] | None = None
    global_fairness: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"round": self.round, **{k: self.metrics.get(k) for k in HISTORY_KEYS}}
        out.update({k: getattr(self, k) for k in ("bytes_down", "bytes_up", "config_bytes_down")})
        out.update({k: getattr(self, k) for k in ("train_loss", "weights", "global_fairness")
                    if getattr(self, k) is not None})
        return out


@dataclass
class ClientEvaluation:
    """One client's confusion counts of the final model on its test rows, and their metrics."""

    counts: Counts
    metrics: dict[str, Any]


@dataclass
class UploadInfo:
    """What a one-shot client uploaded: timings, rows, the privacy accounted, its privacy audit."""

    stage1_s: float
    stage2_s: float
    n_upload: int
    privacy: dict[str, Any]
    audit: dict[str, Any] | None


@dataclass
class TrainingInfo:
    """A local-training client in the last round: its rows, loss and aggregation weight;
    ``fedavg_<kind>``: the generator's seconds and the generated rows among ``n_train``."""

    n_train: int
    train_loss: float
    weight: float
    stage1_s: float | None = None
    n_synthetic: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class Report:
    """What a strategy hands over at the end of a run (:func:`build` makes results.json of it)."""

    metrics: dict[str, Any]  # pooled test metrics of the final model
    evaluation: dict[int, ClientEvaluation]  # by partition id, the clients evaluated last
    clients: list[dict[str, Any]]  # each partition's status
    communication: Communication
    history: list[Round]
    uploads: dict[int, UploadInfo] = field(default_factory=dict)
    training: dict[int, TrainingInfo] = field(default_factory=dict)
    degenerate_upload: bool = False
    server_fit_s: float = 0.0


def _privacy(uploads: dict[int, UploadInfo]) -> dict[str, Any]:
    privacies = [u.privacy for _, u in sorted(uploads.items())]
    mechanism = privacies[0]["mechanism"] if privacies else "none"
    epsilons = [p["epsilon"] for p in privacies]
    return {
        "mechanism": mechanism,
        "epsilon": None if (not epsilons or None in epsilons) else max(epsilons),
        "delta": max(p["delta"] for p in privacies) if privacies and mechanism != "none" else None,
        "guarantee": privacies[0].get("guarantee") if privacies else None,
        "per_client": privacies,
        "audit": [u.audit for _, u in sorted(uploads.items())],
    }


def build(report: Report, cfg: dict[str, Any], overrides: list[str], total_s: float) -> dict[str, Any]:
    """results.json (schema ``SCHEMA_VERSION``) of a run of ``cfg``."""
    per_client = []
    for pid in sorted(report.evaluation):
        entry: dict[str, Any] = {"partition_id": pid}
        if pid in report.uploads:
            entry.update(asdict(report.uploads[pid]))
        if pid in report.training:
            entry.update(report.training[pid].to_dict())
        entry["metrics"] = report.evaluation[pid].metrics
        per_client.append(entry)
    pooled = sum((c.counts for c in report.evaluation.values()), Counts.zero())
    uploads = sorted(report.uploads.items())
    single = [pid for pid, u in uploads if u.privacy.get("single_label")]
    copies = {pid: u.audit["exact_matches"] for pid, u in uploads if u.audit}
    return {
        "schema_version": SCHEMA_VERSION,
        "strategy": cfg["strategy"]["name"],
        "dataset": cfg["dataset"]["name"],
        "num_clients": int(cfg["num_clients"]),
        "seed": cfg["seed"],
        "overrides": overrides,
        "config": cfg,
        "metrics": report.metrics,
        "per_client": per_client,
        "clients": report.clients,
        "communication": report.communication.to_dict(),
        "privacy": _privacy(report.uploads),
        "degenerate_upload": report.degenerate_upload,
        "sanity": sanity(report.metrics, majority_rate(pooled), single, copies),
        "timings": {
            "total_s": total_s,
            "stage1_s": [c.get("stage1_s") for c in per_client],
            "stage2_s": [c.get("stage2_s") for c in per_client],
            "server_fit_s": report.server_fit_s,
        },
        "history": [r.to_dict() for r in report.history],
    }


def plot_history(results: dict[str, Any], path: Path) -> Path:
    """``history.png``: test accuracy and |SPD|, |EOD| of the pooled model against the round and, for
    FairFed (whose history has F_global), its aggregation weight per client (FedAvg's stay n_k/n).
    Legends sit outside the axes, the fairness and weight axes start at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = results["history"]
    rounds = [r["round"] for r in history]
    # FairFed's weights per client (secure aggregation keeps them on the clients: no panel then)
    with_weights = any(r.get("weights") for r in history) and any(r.get("global_fairness") is not None for r in history)
    fig, axes = plt.subplots(2 + with_weights, 1, figsize=(7.5, 2.4 * (2 + with_weights)), sharex=True,
                             constrained_layout=True)

    def series(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else r[key] for r in history]

    axes[0].plot(rounds, series("accuracy"), marker="o", ms=3, label="accuracy")
    majority = results.get("sanity", {}).get("majority_rate")
    if majority is not None:
        axes[0].axhline(majority, color="grey", ls="--", lw=1, label="majority class")
    axes[0].set_ylabel("test accuracy")
    for key, label in (("abs_spd", "|SPD|"), ("abs_eod", "|EOD|")):
        axes[1].plot(rounds, series(key), marker="o", ms=3, label=label)
    axes[1].set_ylim(bottom=0)
    axes[1].set_ylabel("fairness gap")
    if with_weights:
        pids = sorted({pid for r in history for pid in (r.get("weights") or {})}, key=int)
        for pid in pids:
            axes[2].plot(rounds, [(r.get("weights") or {}).get(pid, math.nan) for r in history],
                         marker="o", ms=3, label=f"client {pid}")
        axes[2].set_ylim(bottom=0)
        axes[2].set_ylabel("aggregation weight")
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("round")
    axes[-1].xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title(f"{results['strategy']} on {results['dataset']}, {results['num_clients']} clients, "
                      f"seed {results['seed']}", fontsize="medium")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_atomic(path: Path, write: Callable[[TextIO], None]) -> Path:
    """Write a text file atomically (``write`` fills a temp file, then a rename): a crash never leaves
    a half-written file, and a good file is replaced only by a complete one."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON atomically (:func:`write_atomic`)."""
    def dump(fh: TextIO) -> None:
        json.dump(payload, fh, indent=2, allow_nan=False, default=_jsonable)
        fh.write("\n")
    return write_atomic(path, dump)


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
        + (f" (+ run config {comm['config_bytes_down']:,})" if comm.get("config_bytes_down") else "")
    )
    p = results["privacy"]
    lines.append(f"  privacy: {p['mechanism']} epsilon={_fmt(p['epsilon'])} delta={_fmt(p['delta'])}"
                 + (f", with respect to {p['guarantee']}" if p.get("guarantee") else ""))
    t = results["timings"]
    lines.append(f"  time: total {t['total_s']:.1f} s, server fit {t['server_fit_s']:.2f} s")
    return "\n".join(lines)
