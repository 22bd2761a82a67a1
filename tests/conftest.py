from __future__ import annotations

import pytest

from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError

# The datasets are found by the library's one rule (fedfair.data.data_dir): $FEDFAIR_DATA_DIR, else
# ~/.cache/fedfair/datasets. CI sets FEDFAIR_DATA_DIR to ../shared/datasets (.ci/run).
set_offline_defaults()


@pytest.fixture
def base_overrides() -> list[str]:
    """A tiny, fast experiment: synthetic data, few outer steps, no stage 2."""
    return ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (in file order), so that the parallel workers (pytest.ini: ``-n``) start the
    long simulations and deployments early and the short tests fill in around them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A test that needs a dataset file which is not there fails with one line naming the file and
    the directory (the library's message), not a traceback from deep inside the loader."""
    outcome = yield
    report = outcome.get_result()
    exc = call.excinfo
    if exc is not None and exc.errisinstance(FedFairError) and " is missing: put " in str(exc.value):
        report.longrepr = f"{item.nodeid}: needs a dataset: {exc.value}"
