"""Offline defaults: Flower and Ray phone home unless told not to (see docs/PRIVACY.md)."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}


def set_offline_defaults() -> None:
    """Set the variables above (and FLWR_HOME) unless the user already set them."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("FLWR_HOME", str(Path.home() / ".cache" / "fedfair" / "flwr"))


def conf_dir() -> Path:
    """The Hydra configuration directory ``conf/`` beside the package (the one home of defaults)."""
    return Path(__file__).resolve().parents[1] / "conf"
