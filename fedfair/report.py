"""Reporting for every script and sweep: runs' results.json → flat rows → mean ± std over seeds →
CSV, markdown tables and figures.

One convention for the spread: the sample standard deviation (ddof = 1) over the runs where a value
is defined, and ``None`` (an empty CSV cell, the mean alone in a table, no error bar) when fewer than
two runs define it: one seed has no measured spread, which is not a spread of 0. Every aggregated row
carries ``n``, its number of runs.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback

from fedfair.results import CONSTANT_RATE, SUMMARY_KEYS, write_atomic

# The metrics every table and figure shows: fairness gaps are marked † where the model was constant.
FAIRNESS = {"abs_spd": "|SPD|", "abs_eod": "|EOD|"}
CONSTANT_NOTE = (
    f"† k/n: in k of the n runs the server model (nearly) predicted one class (selection rate ≥ {CONSTANT_RATE} "
    f"or ≤ {1 - CONSTANT_RATE:.3f}), so its fairness numbers are meaningless."
)
CONSTANT, MAJORITY = "constant model in some runs", "majority class"  # legend entries of the figures
STD_NOTE = "mean ± sample std over the n runs (seeds); one run shows its value alone."


# --------------------------------------------------------------------------------------------------
# Rows


def read_runs(root: Path, pattern: str = "**/results.json") -> list[dict[str, Any]]:
    """Every run's results.json under ``root`` (sorted by path), each with its ``path``."""
    runs = []
    for path in sorted(Path(root).glob(pattern)):
        res = json.loads(path.read_text())
        res["path"] = str(path.resolve())
        runs.append(res)
    return runs


def config_value(results: dict[str, Any], key: str) -> Any:
    """A run's resolved config value by dotted key (``stage1.rho``); None where the key is absent."""
    node: Any = results["config"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


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
    check = results.get("sanity", {})
    row.update({k: check.get(k) for k in ("selection_rate", "majority_rate", "constant_model")})
    aucs = [a["mia_auc"] for a in results["privacy"].get("audit", []) if a]
    row["mia_auc"] = max(aucs) if aucs else None
    row.update({k: results["communication"][k] for k in ("rounds", "messages", "bytes_up", "bytes_down")})
    row["config_bytes_down"] = results["communication"].get("config_bytes_down")  # schema_version ≥ 2
    row["epsilon"] = results["privacy"]["epsilon"]
    row["total_s"] = results["timings"]["total_s"]
    row["results"] = results.get("path", "")
    return row


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (union of keys, first-seen order; None as an empty cell) atomically."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)

    def dump(fh: TextIO) -> None:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return write_atomic(path, dump)


def aggregate(rows: Iterable[dict[str, Any]], by: Sequence[str], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct value of ``by`` (first-seen order): the ``by`` values, ``n`` (runs), for
    each key its mean and ``{key}_std`` over the runs where it is defined (the module's convention),
    and ``constant_runs``: the runs whose ``constant_model`` is true."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for values, rs in groups.items():
        agg: dict[str, Any] = dict(zip(by, values))
        agg["n"] = len(rs)
        for k in keys:
            vals = [float(r[k]) for r in rs if r.get(k) is not None and math.isfinite(float(r[k]))]
            agg[k] = statistics.fmean(vals) if vals else None
            agg[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        agg["constant_runs"] = sum(bool(r.get("constant_model")) for r in rs)
        out.append(agg)
    return out


# --------------------------------------------------------------------------------------------------
# Markdown


def fmt(mean: float | None, std: float | None = None, digits: int = 4, scale: float = 1.0) -> str:
    """``mean ± std``, the mean alone without a spread, ``n/a`` without a value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{scale * mean:.{digits}f}"
    return text if std is None else f"{text} ± {scale * std:.{digits}f}"


def cell(row: dict[str, Any], key: str, digits: int = 4, scale: float = 1.0) -> str:
    """An aggregated value as ``mean ± std``; a fairness gap gets ``† k/n`` where k of the n runs
    had a constant model."""
    text = fmt(row.get(key), row.get(f"{key}_std"), digits, scale)
    if key in FAIRNESS and row.get("constant_runs"):
        text += f" † {row['constant_runs']}/{row['n']}"
    return text


def table(header: Sequence[str], body: Iterable[Sequence[Any]], align: str = "") -> str:
    """A markdown grid; ``align`` gives one character per column (``l``/``r``, default left)."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


@dataclass(frozen=True)
class Column:
    """One aggregated column of a markdown table: header, row key, decimals, scale (100: %)."""

    header: str
    key: str
    digits: int = 4
    scale: float = 1.0


# accuracy, the majority-class rate and the selection rate side by side (a model near the majority
# rate that selects (nearly) everyone is constant), then the fairness gaps (†)
METRIC_COLUMNS = (
    Column("accuracy", "accuracy"), Column("majority", "majority_rate"), Column("selection", "selection_rate", 3),
    Column("abs SPD", "abs_spd"), Column("abs EOD", "abs_eod"),
)


def markdown(rows: list[dict[str, Any]], keys: Sequence[str], columns: Sequence[Column] = METRIC_COLUMNS,
             title: str | None = None) -> str:
    """A table of aggregated rows: the plain ``keys`` (e.g. the swept values), ``n``, then
    ``columns``; the notes on the spread and on †."""
    body = [[*(plain(r.get(k)) for k in keys), r["n"], *(cell(r, c.key, c.digits, c.scale) for c in columns)]
            for r in rows]
    text = table([*keys, "n", *(c.header for c in columns)], body, "l" * len(keys) + "r" * (len(columns) + 1))
    notes = [STD_NOTE] + ([CONSTANT_NOTE] if any(r.get("constant_runs") for r in rows) else [])
    return (f"## {title}\n\n" if title else "") + text + "\n\n" + " ".join(notes) + "\n"


def plain(value: Any) -> str:
    """A key's value as a table cell or point label: floats in ``g`` format, None empty."""
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------
# Figures: legends outside the axes, point labels that do not overlap, fairness axes from 0


def figure(panels: int, rows: int = 1, size: tuple[float, float] = (4.6, 3.8)) -> tuple[Any, list[Any]]:
    """A figure of ``panels`` axes on ``rows`` rows (headless backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = math.ceil(panels / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    return fig, list(axes.ravel()[:panels])


def _numbers(values: Iterable[Any]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _err(means: list[float], stds: list[float | None], from_zero: bool) -> list[list[float]]:
    """Asymmetric error bars; on a fairness axis the lower bar stops at 0 (a gap is never negative)."""
    upper = [0.0 if s is None else s for s in stds]
    lower = [min(u, m) if from_zero else u for u, m in zip(upper, means)]
    return [lower, upper]


def draw(ax: Any, rows: list[dict[str, Any]], x: str, y: str, *, label: str | None = None,
         point_labels: str | None = None, marker: str = "o", line: bool = True, **style: Any) -> None:
    """One series: mean ± std of ``y`` against ``x`` (an aggregated key or a plain value), rows in
    the given order; each point may carry its ``point_labels`` value (placed later, see :func:`save`).
    A point whose runs include a constant model is circled in black."""
    pts = [r for r in rows if r.get(y) is not None and r.get(x) is not None]
    if not pts:
        return
    xs, ys = [float(r[x]) for r in pts], [float(r[y]) for r in pts]
    ls = style.pop("ls", style.pop("linestyle", "-"))
    ax.errorbar(xs, ys, xerr=_err(xs, [r.get(f"{x}_std") for r in pts], x in FAIRNESS),
                yerr=_err(ys, [r.get(f"{y}_std") for r in pts], y in FAIRNESS), marker=marker,
                linestyle=ls if line and len(pts) > 1 else "none", capsize=2, elinewidth=0.8, label=label,
                **style)
    bad = [(a, b) for a, b, r in zip(xs, ys, pts) if r.get("constant_runs")]
    if bad:
        ax.scatter(*zip(*bad), s=110, facecolors="none", edgecolors="black", linewidths=1.2, zorder=5,
                   label=CONSTANT)
    if point_labels:
        labels = ax.__dict__.setdefault("_point_labels", [])
        labels += [(a, b, plain(r.get(point_labels))) for a, b, r in zip(xs, ys, pts)]
    ax.__dict__.setdefault("_from_zero", set()).update(a for k, a in ((x, "x"), (y, "y")) if k in FAIRNESS)


def categorical(ax: Any, values: list[Any], axis: str = "x") -> dict[Any, int]:
    """Positions 0..n-1 for non-numeric values, with their (rotated if long) tick labels."""
    names = [plain(v) for v in values]
    rotate = 30 if max(map(len, names), default=0) > 6 else 0
    if axis == "x":
        ax.set_xticks(range(len(names)), names, rotation=rotate, ha="right" if rotate else "center")
    else:
        ax.set_yticks(range(len(names)), names)
    return {v: i for i, v in enumerate(values)}


def value_axis(ax: Any, values: list[float]) -> None:
    """A numeric x axis for swept values: symlog when they span two or more decades (ρ ∈ {0, 10, …,
    10000}), linear otherwise; a tick at each value when there are at most 8."""
    positive = sorted(v for v in set(values) if v > 0)
    if len(positive) > 1 and positive[-1] / positive[0] >= 100:
        ax.set_xscale("symlog", linthresh=positive[0])
        ax.minorticks_off()
    ticks = sorted(set(values))
    if len(ticks) <= 8:
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])


def save(fig: Any, path: Path, title: str | None = None) -> Path:
    """Title, fairness axes from 0, one legend to the right of the panels (each label once), point labels
    placed where they overlap neither each other nor the axes' edges, then write the PNG."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    for lab in (MAJORITY, CONSTANT):  # the series first, these markers last
        if lab in handles:
            handles[lab] = handles.pop(lab)
    for ax in fig.axes:  # once every series is drawn: a fairness gap's axis starts at 0
        if "x" in ax.__dict__.get("_from_zero", ()):
            ax.set_xlim(left=0)
        if "y" in ax.__dict__.get("_from_zero", ()):
            ax.set_ylim(bottom=0)
    fig.tight_layout()
    for ax in fig.axes:
        _place_labels(fig, ax, ax.__dict__.get("_point_labels", []))
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


_RING = ((5, 4, "left", "bottom"), (5, -4, "left", "top"), (-5, 4, "right", "bottom"), (-5, -4, "right", "top"),
         (0, 8, "center", "bottom"), (0, -8, "center", "top"), (9, 0, "left", "center"), (-9, 0, "right", "center"))
# label positions (points from the marker, alignment), nearest first: a ring, then one twice as far
OFFSETS = _RING + tuple((2 * dx, 2 * dy, ha, va) for dx, dy, ha, va in _RING)


def _place_labels(fig: Any, ax: Any, labels: list[tuple[float, float, str]]) -> None:
    """Greedy placement: for each label the first of ``OFFSETS`` whose box (with a margin) stays
    inside the axes and clear of the labels already placed and of the labelled markers (else the one
    with the fewest clashes, another label weighing most)."""
    from matplotlib.transforms import Bbox

    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    points = ax.transData.transform([(x, y) for x, y, _ in labels])
    markers = [Bbox.from_extents(px - 4, py - 4, px + 4, py + 4) for px, py in points]
    taken: list[Any] = []
    for x, y, text in labels:
        if not text:
            continue
        best = None
        for dx, dy, ha, va in OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7)
            box = ann.get_window_extent(renderer)
            box = Bbox.from_extents(box.x0 - 2, box.y0 - 1, box.x1 + 2, box.y1 + 1)
            # another label is the worst clash, a marker or the axes' edge a lesser one
            clash = (10 * sum(box.overlaps(b) for b in taken) + sum(box.overlaps(b) for b in markers)
                     + (0 if _within(box, inside) else 1))
            if best is None or clash < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clash, ann, box)
            else:
                ann.remove()
            if clash == 0:
                break
        assert best is not None
        taken.append(best[2])


def _within(box: Any, outer: Any) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def sweep_plot(rows: list[dict[str, Any]], path: Path, x: str, series: Callable[[dict[str, Any]], str] | None = None,
               panels: Sequence[tuple[str, str]] = (("accuracy", "accuracy"), ("abs_spd", "|SPD|"),
                                                    ("abs_eod", "|EOD|")),
               title: str | None = None, xlabel: str | None = None) -> Path:
    """Each panel's metric (mean ± std over seeds) against the swept ``x``, one line per ``series``
    value; a numeric ``x`` on a value axis (symlog over decades), anything else categorical."""
    fig, axes = figure(len(panels))
    names = list(dict.fromkeys(series(r) if series else "" for r in rows))
    values = list(dict.fromkeys(r.get(x) for r in rows))
    numeric = _numbers(values)
    markers = "osD^vP*Xh<>"
    for ax, (key, label) in zip(axes, panels):
        pos = categorical(ax, values) if numeric is None else None
        for i, name in enumerate(names):
            pts = [r for r in rows if (series(r) if series else "") == name]
            pts = sorted(pts, key=lambda r: pos[r.get(x)] if pos else float(r[x]))
            shown = [{**r, "_x": pos[r.get(x)] if pos else r[x]} for r in pts]
            draw(ax, shown, "_x", key, label=name or None, marker=markers[i % len(markers)])
        if numeric is not None:
            value_axis(ax, numeric)
        if key == "accuracy" and any(r.get("majority_rate") is not None for r in rows):
            ax.axhline(max(r["majority_rate"] for r in rows if r.get("majority_rate") is not None), color="grey",
                       ls=":", lw=1, label=MAJORITY)
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    return save(fig, path, title)


def tradeoff_plot(rows: list[dict[str, Any]], path: Path, series: str, point_labels: str | None = None,
                  title: str | None = None, order: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """Accuracy against |SPD| and against |EOD| (mean ± std): one line per ``series`` value, each
    point labelled with its ``point_labels`` value; the gaps' axes start at 0."""
    fig, axes = figure(2, size=(5.2, 4.2))
    names = list(dict.fromkeys(r[series] for r in rows))
    markers = "osD^vP*Xh<>p8H"
    for ax, (key, label) in zip(axes, FAIRNESS.items()):
        for i, name in enumerate(names):
            pts = [r for r in rows if r[series] == name]
            draw(ax, sorted(pts, key=order) if order else pts, key, "accuracy", label=str(name),
                 point_labels=point_labels, marker=markers[i % len(markers)])
        ax.set_xlabel(f"{label} (pooled test)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    return save(fig, path, title)


def bar_plot(rows: list[dict[str, Any]], path: Path, x: str, series: str, panels: Sequence[tuple[str, str]],
             title: str | None = None) -> Path:
    """Grouped bars: per panel, one group per ``x`` value and one bar (mean ± std) per ``series``."""
    fig, axes = figure(len(panels), size=(4.8, 3.6))
    groups = list(dict.fromkeys(r[x] for r in rows))
    names = list(dict.fromkeys(r[series] for r in rows))
    width = 0.8 / max(len(names), 1)
    for ax, (key, label) in zip(axes, panels):
        for i, name in enumerate(names):
            by = {r[x]: r for r in rows if r[series] == name and r.get(key) is not None}
            at = [g for g in groups if g in by]
            means = [float(by[g][key]) for g in at]
            ax.bar([groups.index(g) + (i - (len(names) - 1) / 2) * width for g in at], means, width, label=name,
                   yerr=_err(means, [by[g].get(f"{key}_std") for g in at], True), capsize=2)
        categorical(ax, groups)
        ax.set_ylim(bottom=0)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    return save(fig, path, title)


# --------------------------------------------------------------------------------------------------
# Sweeps


def swept(runs: list[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between the runs of a sweep (``seed`` apart)."""
    values: dict[str, set[str]] = {}
    for res in runs:
        for o in res.get("overrides") or []:
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
    return [k for k, v in values.items() if len(v) > 1 and k != "seed"]


def summarize_sweep(sweep_dir: Path) -> list[Path]:
    """``summary.csv`` (one row per job), ``summary.md`` and ``summary.png`` (the swept keys against
    accuracy, |SPD| and |EOD|, mean ± std over seeds) of a multirun directory."""
    sweep_dir = Path(sweep_dir)
    runs = sorted(read_runs(sweep_dir, "*/results.json"), key=lambda r: int(Path(r["path"]).parent.name))
    if not runs:
        return []
    keys = swept(runs)
    rows = []
    for res in runs:
        row = flat_row(res, res.get("overrides"))
        given = dict(o.partition("=")[::2] for o in res.get("overrides") or [])
        rows.append({**{k: given.get(k) for k in keys}, **row})
    summary = aggregate(rows, keys, (*SUMMARY_KEYS, "selection_rate", "majority_rate"))
    csv_path = write_csv(sweep_dir / "summary.csv", rows)
    md = sweep_dir / "summary.md"
    md.write_text(markdown(summary, keys, title=f"sweep {sweep_dir}"))
    x = keys[0] if keys else None
    rest = keys[1:]
    if x is None:
        summary = [{**s, "all": "all runs"} for s in summary]
    png = sweep_plot(summary, sweep_dir / "summary.png", x or "all",
                     series=(lambda r: ", ".join(f"{k}={r[k]}" for k in rest)) if rest else None,
                     title=f"{runs[0]['strategy']} on {runs[0]['dataset']}: mean ± std over seeds")
    return [csv_path, md, png]


class SweepSummary(Callback):
    """Hydra callback: after a multirun, ``summary.csv``, ``summary.md`` and ``summary.png`` of every
    job's results.json."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        for path in summarize_sweep(Path(config.hydra.sweep.dir)):
            print(f"summary: {path}")
