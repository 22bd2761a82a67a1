"""The ``fedfair`` command.

    fedfair run [-m] [overrides...]   one experiment (or a Hydra sweep) in Flower's simulation engine
    fedfair data list                 where each dataset's files are expected, and whether they are there
    fedfair data fetch NAME           download a dataset into the data directory (needs a network)

``run`` is the one place this package reaches the Flower adapters (``strategies``), imported lazily;
every other module of ``fedfair`` is Flower-free.
"""

from __future__ import annotations

import argparse
import json
import sys

from fedfair.env import set_offline_defaults
from fedfair.errors import FedFairError


def _check_jobs(args: list[str]) -> None:
    """Compose and validate every job before anything runs: a bad value fails in one line, early."""
    from fedfair.config import compose_config, expand_sweep
    from fedfair.pipeline import Experiment

    overrides = [a for a in args if not a.startswith("-")]
    jobs = expand_sweep(overrides) if {"-m", "--multirun"} & set(args) else [overrides]
    experiments = [Experiment(compose_config(job)) for job in jobs]
    loaded = {}
    for exp in experiments:  # the data must be there, and fit the config, before any node starts
        key = json.dumps([exp.cfg["dataset"], exp.cfg.get("data_dir")], sort_keys=True)
        if key not in loaded:
            loaded[key] = exp.load()
        exp.check_dataset(loaded[key])


HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}


def _run(args: list[str]) -> int:
    if not HYDRA_INFO_FLAGS & set(args):  # Hydra's help and --cfg run no job
        _check_jobs(args)
    from strategies.simulation import hydra_main

    sys.argv = ["fedfair run", *args]
    hydra_main()
    return 0


def _data(args: argparse.Namespace) -> int:
    from fedfair.data import DATASETS, data_dir, fetch

    if args.action == "list":
        root = data_dir()
        print(f"data directory: {root}")
        for name, spec in DATASETS.items():
            files = getattr(spec, "files", ())
            state = "ok" if all((root / f).exists() for f in files) else "missing"
            print(f"  {name:<11} {state:<8} {' '.join(files) or '(generated, no files)'}")
        return 0
    for path in fetch(args.name):
        print(f"fetched {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="fedfair", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run an experiment (Hydra overrides follow; -m sweeps)", add_help=False)
    data = sub.add_parser("data", help="list or fetch datasets")
    data.add_argument("action", choices=["list", "fetch"])
    data.add_argument("name", nargs="?")
    if argv[:1] == ["run"]:
        runner = _run
        rest = argv[1:]
    else:
        ns = parser.parse_args(argv)
        if ns.action == "fetch" and not ns.name:
            parser.error("fedfair data fetch needs a dataset name")
        runner, rest = (lambda _: _data(ns)), []
    try:
        return runner(rest)
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
