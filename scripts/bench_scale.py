"""Benchmark the simulation's cost in the number of clients K, or a sweep's start-up tax.

Scale (default): one ``fedfair run num_clients=K`` per K (the real CLI path, a fresh process each),
printing wall time, CPU time of the whole process tree (the driver, Ray's daemons and its workers)
and peak memory (the summed RSS of that tree), both sampled every 0.2 s, then t(K_max)/t(K_mid).

    python scripts/bench_scale.py [--k 10 100 1000] [--dataset adult] [--partition iid] [-- overrides]

Sweep: one ``fedfair run -m OVERRIDES`` (a Hydra multirun in one process), printing its wall time
against the runs' own compute: the sum of every client's ``timings.stage1_s`` over the runs.

    python scripts/bench_scale.py --sweep "stage2=none stage1.rho=0,10 seed=0,1"

The last line of stdout is one JSON object. Run it alone on the machine (``nice -n 5``): it times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from fedfair import cli

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ROOT = Path(__file__).resolve().parents[1]


def _proc_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (ppid, own CPU seconds, RSS bytes) for every process readable in /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # after "(comm)": state ppid ... utime(12) stime(13) ... rss(22), 0-based from the state
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE)
    return table


class TreeSampler(threading.Thread):
    """Samples the process tree under ``root``: peak summed RSS, last-seen CPU seconds per process."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            tree, todo = [], [self.root]
            while todo:
                pid = todo.pop()
                if pid in table:
                    tree.append(pid)
                    todo.extend(children.get(pid, []))
            self.peak_rss = max(self.peak_rss, sum(table[p][2] for p in tree))
            for pid in tree:
                self.cpu[pid] = table[pid][1]
            self.stop.wait(self.interval)


def measure(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``cmd`` (output to ``log``); its wall seconds, CPU seconds and peak memory (GB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if code != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed ({code}); see {log}")
    return {"wall_s": wall, "cpu_s": max(reaped, sum(sampler.cpu.values())), "peak_gb": sampler.peak_rss / 1e9}


def scale(ks: list[int], dataset: str, partition: str, extra: list[str], work: Path) -> dict:
    rows = {}
    for k in ks:
        out = work / f"k{k}"
        cmd = cli.command("run", f"num_clients={k}", f"dataset={dataset}", f"partition={partition}", "stage2=none",
                          "progress=false", *extra, f"hydra.run.dir={out}")
        row = measure(cmd, work / f"k{k}.log")
        res = json.loads((out / "results.json").read_text())
        row["accuracy"] = res["metrics"]["accuracy"]
        rows[k] = row
        print(f"K={k:>5}  wall {row['wall_s']:7.1f} s  cpu {row['cpu_s']:7.1f} s  peak {row['peak_gb']:5.2f} GB"
              f"  accuracy {row['accuracy']:.4f}", flush=True)
    report: dict = {"dataset": dataset, "partition": partition, "runs": rows}
    if len(ks) >= 2:
        hi, mid = ks[-1], ks[-2]
        report["ratio"] = {f"t({hi})/t({mid})": rows[hi]["wall_s"] / rows[mid]["wall_s"]}
        print(f"t({hi})/t({mid}) = {rows[hi]['wall_s'] / rows[mid]['wall_s']:.2f}", flush=True)
    return report


def sweep(overrides: str, work: Path) -> dict:
    cmd = cli.command("run", "-m", *shlex.split(overrides), "progress=false", f"hydra.sweep.dir={work / 'sweep'}")
    row = measure(cmd, work / "sweep.log")
    stage1 = []
    for path in sorted((work / "sweep").glob("*/results.json")):
        stage1.append(sum(json.loads(path.read_text())["timings"]["stage1_s"]))
    row.update(runs=len(stage1), stage1_sum_s=sum(stage1), budget_s=2 * (sum(stage1) + 30))
    print(f"{len(stage1)} runs  wall {row['wall_s']:.1f} s  cpu {row['cpu_s']:.1f} s  peak {row['peak_gb']:.2f} GB"
          f"  stage-1 sum {row['stage1_sum_s']:.1f} s  budget 2*(sum+30) = {row['budget_s']:.1f} s", flush=True)
    return {"sweep": overrides, **row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100, 1000], help="client counts, ascending")
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--partition", default="iid", choices=["iid", "dirichlet"])
    parser.add_argument("--sweep", metavar="OVERRIDES", help="time one `fedfair run -m OVERRIDES` instead")
    parser.add_argument("--work", type=Path, help="directory for the runs' outputs and logs (default: a temp dir)")
    parser.add_argument("extra", nargs="*", help="more overrides for every run (after --)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"outputs and logs: {work}", flush=True)
    report = sweep(args.sweep, work) if args.sweep else scale(args.k, args.dataset, args.partition, args.extra, work)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
