"""Finding and stopping the processes a run mode left behind (for the run-mode tests).

``ps -ww``: without it, ps cuts lines at 80 columns under pytest and a path is never seen."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def leftovers(*markers: str) -> dict[int, str]:
    """Live processes (not zombies) whose command line contains any of ``markers``."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    found = {}
    for line in ps.splitlines():
        pid, stat, args = (line.split(None, 2) + [""])[:3]
        if not stat.startswith("Z") and int(pid) != os.getpid() and any(m in args for m in markers):
            found[int(pid)] = args
    return found


def settle(*markers: str, seconds: float = 10.0) -> dict[int, str]:
    """The leftovers once ``seconds`` have passed without them all going away (children of a
    stopped process may take a moment to notice)."""
    deadline = time.monotonic() + seconds
    while (found := leftovers(*markers)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return found


def stop(pids: dict[int, str]) -> None:
    """SIGTERM, then SIGKILL after 15 s: a safety net so that a failing test leaves nothing running."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 0.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.25)


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (listed before anything is signalled)."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in ps.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(children.get(out[-1], []))
    return out


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its descendants at once (a machine that dies); the pids killed."""
    pids = tree(pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _alive(pid: int) -> bool:
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    return bool(state.strip()) and not state.startswith("Z")
