"""What the run-mode tests compare: a run's metrics against the simulation's, and the private dir
scripts/deploy_local.sh announces."""

from __future__ import annotations

import re

import pytest

KEYS = ("accuracy", "spd", "eod", "cov_sp", "cov_eo", "dpr", "eor", "recall", "f1")


def same_metrics(res: dict, ref: dict) -> None:
    """``res`` has ``ref``'s pooled metrics (to 1e-9) from one round."""
    assert res["metrics"]["n"] == ref["metrics"]["n"]
    for key in KEYS:
        assert res["metrics"][key] == pytest.approx(ref["metrics"][key], rel=1e-9, abs=1e-12), key
    assert res["communication"]["rounds"] == 1


def private_dir(first_line: str) -> str:
    """The private dir deploy_local.sh announces on its first line."""
    match = re.search(r"private dir (\S+)$", first_line)
    assert match, first_line
    return match.group(1)
