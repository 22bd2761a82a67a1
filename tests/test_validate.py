"""Every bad value of a config is refused in one line naming the key and the value, before anything
starts; what depends on the dataset (rows per client) answers at once even for absurd client counts."""

from __future__ import annotations

import time

import pytest

from fedfair.config import compose_config
from fedfair.data import load_dataset
from fedfair.errors import FedFairError
from fedfair.validate import check_clients, check_config


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=abc", "seed must be an integer, got 'abc'"),
        ("seed=-1", "seed must be in 0..4294967295, got -1"),
        ("+stage2.seed=5", "stage2.seed cannot be set: it is derived from the run seed (set seed=...)"),
        ("stage1.rho=-5", "stage1.rho must be in [0, inf), got -5"),
        ("num_clients=0", "num_clients must be >= 1, got 0"),
        ("partition.test_frac=1.5", "partition.test_frac must be in (0, 1), got 1.5"),
        ("partition.method=shards", "partition.method must be one of by_column, dirichlet, iid, got 'shards'"),
        ("strategy.lam_theta=-1", "strategy.lam_theta must be in (0, inf), got -1"),
        ("simulation.timeout=-5", "simulation.timeout must be in (0, inf), got -5"),
        ("simulation.client_cpus=3", "simulation.client_cpus must be in 1..2, got 3"),
        ("progress=maybe", "progress must be true or false, got 'maybe'"),
        ("strategy.min_clients=3", "strategy.min_clients must be in 1..2, got 3"),
    ],
)
def test_bad_values_are_one_line(override: str, message: str) -> None:
    with pytest.raises(FedFairError) as err:
        check_config(compose_config([override]))
    assert str(err.value) == message


def test_the_defaults_pass() -> None:
    check_config(compose_config([]))
    check_config(compose_config(["strategy=fairfed", "partition=dirichlet"]))


def test_too_many_clients_answers_at_once() -> None:
    cfg = compose_config(["num_clients=100000"])
    data = load_dataset("law_school")
    t0 = time.perf_counter()
    with pytest.raises(FedFairError, match=r"num_clients=100000 is too many for law_school \(20,798 rows\): "
                                           r"each client needs at least 4 rows, so at most 5,199 clients"):
        check_clients(data, cfg)
    assert time.perf_counter() - t0 < 1.0


def test_an_empty_dirichlet_client_is_found_before_the_run() -> None:
    cfg = compose_config(["dataset=synthetic", "dataset.rows=300", "partition=dirichlet", "partition.alpha=0.01",
                          "num_clients=20"])
    data = load_dataset("synthetic", rows=300)
    with pytest.raises(FedFairError, match=r"client 0 of 20 is empty \(dirichlet alpha=0.01\)"):
        check_clients(data, cfg)
    parts = check_clients(data, compose_config(["dataset=synthetic", "dataset.rows=300", "num_clients=20"]))
    assert sorted(len(p) for p in parts) == [15] * 20
