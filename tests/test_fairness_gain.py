"""Stage 1 on real data: on a Law School client, the covariance penalty cuts |SPD| (SP penalty) and
|EOD| (EO penalty) of the model trained on the synthetic set, at a small accuracy cost."""

import pytest

from fedfair import bilevel, metrics, model
from fedfair.data import load_dataset
from fedfair.partition import client_data


@pytest.fixture(scope="module")
def client():
    return client_data(load_dataset("law_school"), "iid", 2, 0, seed=0)


def _score(train, test, penalty, rho):
    cfg = bilevel.Stage1Config(penalty=penalty, rho=rho, k_max=300, progress=False)
    theta = model.fit(bilevel.synthesize(train, cfg).table)
    return metrics.evaluate(test.y, model.predict(theta, test), test.s, model.decision(theta, test))


def test_penalties_cut_unfairness_at_small_accuracy_cost(client):
    train, test = client
    base = _score(train, test, "sp", 0.0)
    sp = _score(train, test, "sp", 1000.0)
    eo = _score(train, test, "eo", 1000.0)
    assert base["abs_spd"] > 0.1  # the data is biased: the plain model favours group 1
    assert sp["abs_spd"] < 0.3 * base["abs_spd"]
    assert abs(sp["cov_sp"]) < 0.3 * abs(base["cov_sp"])
    assert eo["abs_eod"] < 0.5 * base["abs_eod"]
    majority = max(float((test.y == 1).mean()), float((test.y == -1).mean()))
    assert base["accuracy"] > majority  # a model, not the majority class
    for fair in (sp, eo):  # and the fair models are not (nearly) constant either
        assert 0.015 < fair["selection_rate"] < 0.985
    assert sp["accuracy"] > base["accuracy"] - 0.02 and sp["accuracy"] >= majority
    assert eo["accuracy"] > base["accuracy"] - 0.02 and eo["accuracy"] >= majority
