"""The privacy audit of an upload (fedfair.audit) on hand-computed cases and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedfair.audit import audit, auc
from fedfair.errors import FedFairError
from fedfair.table import Table


def rows(xs: list[float]) -> Table:
    """One-feature rows, all s = 0 and y = +1, so distances are |x − x'|."""
    n = len(xs)
    return Table(np.array(xs, dtype=float)[:, None], np.zeros(n, int), np.ones(n, int), ("f",))


def test_audit_on_a_hand_made_case() -> None:
    train, holdout = rows([0.0, 1.0]), rows([0.5, 2.0])
    upload = rows([0.0, 3.0])  # one copy of a training row, one far away
    report = audit(upload, train, holdout)
    assert report["n_upload"] == 2 and report["exact_matches"] == 1
    assert report["dcr_upload_median"] == pytest.approx(1.0)  # distances 0 and 2
    assert report["dcr_upload_p5"] == pytest.approx(0.1)
    assert report["dcr_holdout_median"] == pytest.approx(0.75)  # distances 0.5 and 1
    assert report["dcr_holdout_p5"] == pytest.approx(0.525)
    # members score 0 and −1, non-members −0.5 and −1: (2 wins + ½ tie) / 4 pairs
    assert report["mia_auc"] == pytest.approx(0.625)


def test_auc_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    pos, neg = np.round(rng.normal(0.3, 1, 300), 1), np.round(rng.normal(0, 1, 200), 1)  # with ties
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg])
    assert auc(pos, neg) == pytest.approx(expected, abs=1e-12)


def test_a_copied_table_is_caught_and_a_fresh_sample_is_not() -> None:
    rng = np.random.default_rng(1)
    population = rng.normal(0.5, 0.2, (1200, 3))
    make = lambda x: Table(x, (x[:, 0] > 0.5).astype(int), np.where(x[:, 1] > 0.5, 1, -1), ("a", "b", "c"))
    train, holdout = make(population[:800]), make(population[800:1000])
    copied = audit(train, train, holdout)
    assert copied["exact_matches"] == 800 and copied["mia_auc"] > 0.95
    fresh = audit(make(population[1000:]), train, holdout)
    assert fresh["exact_matches"] == 0 and abs(fresh["mia_auc"] - 0.5) < 0.08


def test_empty_sets_are_one_line_errors() -> None:
    with pytest.raises(FedFairError, match="needs rows in the upload, training and held-out sets; got 0, 2, 1"):
        audit(rows([]), rows([0.0, 1.0]), rows([0.5]))
