from __future__ import annotations

import fcntl
import json
import os
import pickle
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

# The workers share 2 cores (pytest.ini) with the runs they start: one BLAS/OpenMP thread per process,
# else waiting threads spin on each other's cores (the full suite: 689 s of CPU against 755 s). Set before numpy
# and torch are imported; subprocesses (runs, deployments, Ray workers) inherit it; a value set by
# the user is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from fedfair.config import compose_config  # noqa: E402
from fedfair.env import set_offline_defaults  # noqa: E402
from fedfair.errors import FedFairError  # noqa: E402
from strategies.simulation import simulate  # noqa: E402

# The datasets are found by the library's one rule (fedfair.data.data_dir): $FEDFAIR_DATA_DIR, else
# ~/.cache/fedfair/datasets. CI sets FEDFAIR_DATA_DIR to ../shared/datasets (.ci/run).
set_offline_defaults()


TINY = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]


@pytest.fixture
def base_overrides() -> list[str]:
    """A tiny, fast experiment: synthetic data, few outer steps, no stage 2."""
    return list(TINY)


@pytest.fixture(scope="session")
def built_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Callable[[str, Callable[[], Any]], Any]:
    """``built_once(name, build)``: ``build()`` once per test session, also across the xdist workers
    (a module-scoped fixture is built again on every worker that runs one of its tests). The first
    worker to ask builds it under a file lock and pickles it; the others wait for it and load it."""
    def get(name: str, build: Callable[[], Any]) -> Any:
        if worker_id == "master":  # not under xdist: nothing to share
            return build()
        root = tmp_path_factory.getbasetemp().parent  # this session's, shared by its workers
        path = root / f"{name}.pickle"
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                path.write_bytes(pickle.dumps(build()))
            return pickle.loads(path.read_bytes())
    return get


@pytest.fixture(scope="session")
def reference(built_once: Callable[[str, Callable[[], Any]], Any], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """results.json of the simulation of ``base_overrides`` (built once): what the other run modes
    (``flwr run``, deploy_local.sh) must reproduce."""
    def run() -> dict:
        out = tmp_path_factory.mktemp("reference")
        return json.loads(simulate(compose_config(TINY), out, TINY).read_text())
    return built_once("reference-simulation", run)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, so that the parallel workers (pytest.ini: ``-n``) start the long simulations
    and deployments early and the short tests fill in around them. The slow tests take turns by file
    (the first of each file, then the second, ...), so that tests sharing a fixture (``built_once``)
    do not all start at once and wait for the same build."""
    turn, seen = {}, Counter()
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        turn[item.nodeid] = (not slow, seen[item.path, slow] if slow else 0)
        seen[item.path, slow] += 1
    items.sort(key=lambda item: turn[item.nodeid])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A test that needs a dataset file which is not there fails with one line naming the file and
    the directory (the library's message), not a traceback from deep inside the loader."""
    outcome = yield
    report = outcome.get_result()
    exc = call.excinfo
    if exc is not None and exc.errisinstance(FedFairError) and " is missing: put " in str(exc.value):
        report.longrepr = f"{item.nodeid}: needs a dataset: {exc.value}"
