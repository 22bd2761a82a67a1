"""fedfair.report: aggregation over seeds (and its single-seed convention), the markdown table with the
majority-class rate and † on constant models, readable figures, and the sweep summary callback."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from omegaconf import OmegaConf

from fakeruns import fake_results, write_run
from fedfair import report


def test_aggregate_gives_mean_sample_std_and_n_and_no_spread_for_one_seed():
    rows = [{"m": "a", "accuracy": 0.80, "eor": None, "constant_model": False},
            {"m": "a", "accuracy": 0.84, "eor": 0.5, "constant_model": True},
            {"m": "b", "accuracy": 0.70, "eor": 0.4, "constant_model": False}]
    a, b = report.aggregate(rows, ["m"], ["accuracy", "eor"])
    assert (a["m"], a["n"], a["constant_runs"]) == ("a", 2, 1)
    assert a["accuracy"] == pytest.approx(0.82) and a["accuracy_std"] == pytest.approx(0.0282843, rel=1e-5)
    assert a["eor"] == 0.5 and a["eor_std"] is None  # defined in one run only: no spread
    assert (b["n"], b["accuracy"], b["accuracy_std"], b["constant_runs"]) == (1, 0.70, None, 0)
    assert report.cell(a, "accuracy") == "0.8200 ± 0.0283" and report.cell(b, "accuracy") == "0.7000"
    assert report.fmt(None) == "n/a"


def test_markdown_marks_a_constant_model_and_puts_selection_beside_majority():
    rows = [{"rho": 0.0, "accuracy": 0.89, "abs_spd": 0.0, "abs_eod": 0.0, "selection_rate": 0.999,
             "majority_rate": 0.89, "constant_model": True},
            {"rho": 0.0, "accuracy": 0.88, "abs_spd": 0.05, "abs_eod": 0.03, "selection_rate": 0.95,
             "majority_rate": 0.89, "constant_model": False},
            {"rho": 1000.0, "accuracy": 0.86, "abs_spd": 0.02, "abs_eod": 0.01, "selection_rate": 0.9,
             "majority_rate": 0.89, "constant_model": False}]
    summary = report.aggregate(rows, ["rho"], ["accuracy", "abs_spd", "abs_eod", "selection_rate", "majority_rate"])
    md = report.markdown(summary, ["rho"])
    header, _, first, second = md.splitlines()[:4]
    assert header == "| rho | n | accuracy | majority | selection | abs SPD | abs EOD |"
    assert first == ("| 0 | 2 | 0.8850 ± 0.0071 | 0.8900 ± 0.0000 | 0.974 ± 0.035 | 0.0250 ± 0.0354 † 1/2 "
                     "| 0.0150 ± 0.0212 † 1/2 |")
    assert "†" not in second and second == "| 1000 | 1 | 0.8600 | 0.8900 | 0.900 | 0.0200 | 0.0100 |"
    assert report.CONSTANT_NOTE in md and report.STD_NOTE in md


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep every figure report.save writes, to read its axes afterwards."""
    figures: list[Any] = []
    save = report.save

    def keep(fig: Any, path: Path, title: str | None = None) -> Path:
        figures.append(fig)
        return save(fig, path, title)

    monkeypatch.setattr(report, "save", keep)
    return figures


def test_tradeoff_plot_starts_the_gap_axes_at_0_and_labels_do_not_overlap(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    rows = [{"method": "one-shot (rho)", "rho": rho, "accuracy": 0.85 + rho / 1e5, "accuracy_std": 0.01,
             "abs_spd": 0.02 + rho / 1e6, "abs_spd_std": 0.05, "abs_eod": 0.01, "abs_eod_std": 0.04, "n": 3,
             "constant_runs": int(rho == 0)} for rho in (0.0, 10.0, 100.0, 1000.0)]
    path = report.tradeoff_plot(rows, tmp_path / "pareto.png", "method", "rho", "a title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = figures[0]
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure is closed: a canvas to measure it on
    for ax in fig.axes:
        assert ax.get_xlim()[0] == 0.0  # error bars of 0.05 around 0.02 do not push |SPD| below 0
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert sorted(t.get_text() for t in ax.texts) == ["0", "10", "100", "1000"]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["one-shot (rho)", "constant model in some runs"]
    # the legend sits right of every panel, off the data
    assert legend.get_window_extent(renderer).x0 >= max(ax.get_window_extent(renderer).x1 for ax in fig.axes)


def test_sweep_callback_writes_csv_markdown_and_plot_of_two_runs(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    for job, (rho, acc) in enumerate(((0.0, 0.89), (1000.0, 0.85))):
        write_run(tmp_path / str(job), fake_results(0, acc, abs_spd=0.2 - rho / 1e4, selection=0.6,
                                                    overrides=[f"stage1.rho={rho:g}", "stage2=none"]))
    report.SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [(r["stage1.rho"], r["accuracy"], r["seed"]) for r in rows] == [("0", "0.89", "0"), ("1000", "0.85", "0")]
    assert rows[0]["overrides"] == "stage1.rho=0 stage2=none" and rows[0]["majority_rate"] == "0.75"
    md = (tmp_path / "summary.md").read_text()
    assert "| stage1.rho | n | accuracy | majority | selection |" in md and "| 1000 | 1 | 0.8500 | 0.7500 | 0.600 | 0.1000 |" in md
    assert (tmp_path / "summary.png").stat().st_size > 10_000
    acc, spd, eod = figures[0].axes
    assert [t.get_text() for t in spd.get_xticklabels()] == ["0", "1000"]
    assert spd.get_ylim()[0] == 0.0 and eod.get_ylim()[0] == 0.0
    assert acc.get_ylabel() == "accuracy" and spd.get_xlabel() == "stage1.rho"


def test_read_runs_and_flat_row_keep_the_checks(tmp_path):
    write_run(tmp_path / "a" / "0", fake_results(1, 0.9, selection=0.999))
    (run,) = report.read_runs(tmp_path)
    assert run["path"] == str((tmp_path / "a" / "0" / "results.json").resolve())
    row = report.flat_row(run, run["overrides"])
    assert row["constant_model"] is True and row["seed"] == 1 and row["results"] == run["path"]
    assert report.config_value(run, "stage1.rho") == 1000.0 and report.config_value(run, "stage1.gamma") is None
