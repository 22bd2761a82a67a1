import os
from pathlib import Path

import pytest

from fedfair.env import set_offline_defaults

# The datasets live outside the repository (never committed): ../shared/datasets by default.
os.environ.setdefault("FEDFAIR_DATA_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
set_offline_defaults()


@pytest.fixture
def base_overrides() -> list[str]:
    """A tiny, fast experiment: synthetic data, few outer steps, no stage 2."""
    return ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]
