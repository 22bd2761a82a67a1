"""Test-only, for a SuperNode started with this directory on PYTHONPATH: it reports heartbeats at
Flower's minimum interval (10 s) instead of the default 30 s, so that the SuperLink gives up on a
killed node after 2 × 10 s instead of 2 × 30 s. Flower 1.41 takes the interval from this constant
only (the SuperNode has no flag for it). Every other process is left as it is."""

import sys

if sys.argv and sys.argv[0].endswith("flower-supernode"):
    from flwr.common import constant

    constant.HEARTBEAT_DEFAULT_INTERVAL = constant.HEARTBEAT_MIN_INTERVAL
