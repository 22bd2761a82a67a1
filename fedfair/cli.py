"""The ``fedfair`` command (``fedfair --help``, ``fedfair run --help``).

``run`` is the one place this package reaches the Flower adapters (``strategies``), imported lazily:
only when a job runs, so ``--help``, ``--cfg job`` and a config error start fast; every other module of
``fedfair`` is Flower-free.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedfair.console import quiet
from fedfair.env import conf_dir, set_offline_defaults
from fedfair.errors import FedFairError

if TYPE_CHECKING:
    from omegaconf import DictConfig

DESCRIPTION = """\
Federated fair learning with synthetic data, in Flower's simulation engine.

commands:
  fedfair run [-m] [GROUP=OPTION ...] [KEY=VALUE ...]
                      one experiment (or, with -m, a sweep); `fedfair run --help` lists every
                      config group, key, default and meaning
  fedfair data list   where each dataset's files are expected, and whether they are there
  fedfair data fetch NAME
                      download a dataset into the data directory (needs a network)

Bad input is one line on stderr (`error: ...`) and exit code 2."""
GROUPS = ("dataset", "partition", "stage1", "stage2", "strategy")


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


HYDRA_INFO_FLAGS = {"--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}
HELP_FLAGS = {"--help", "-h"}


def _lines(label: str, text: str, width: int, column: int = 36) -> list[str]:
    """``label`` in a column of its own, ``text`` wrapped beside it (below it if the label is longer)."""
    pad = " " * column
    wrapped = textwrap.wrap(text, max(width - column, 30), break_on_hyphens=False) or [""]
    head = f"  {label}"
    if len(head) < column - 1:
        return [f"{head:<{column}}{wrapped[0]}".rstrip(), *(pad + w for w in wrapped[1:])]
    return [head, *(pad + w for w in wrapped)]


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def run_help(overrides: list[str], width: int | None = None) -> str:
    """``fedfair run --help``: usage, every config group and option, then every key of the
    options selected by ``overrides`` with its value and description (all read from conf/)."""
    from fedfair import schema, sections
    from fedfair.config import compose_config

    width = width or min(shutil.get_terminal_size().columns, 100)
    cfg = compose_config(overrides)
    selected = {"partition": cfg["partition"]["method"]} | {g: cfg[g]["name"] for g in GROUPS if g != "partition"}
    out = [
        "usage: fedfair run [-m] [GROUP=OPTION ...] [KEY=VALUE ...]",
        "",
        "Runs one experiment in Flower's simulation engine and writes outputs/<date>/<time>/results.json",
        "(the log of everything: fedfair.log beside it). Every default lives in conf/.",
        "",
        "config groups (GROUP=OPTION; * = selected):",
    ]
    for group in GROUPS:
        choices = " | ".join(o + ("*" if o == selected[group] else "") for o in schema.options(group))
        out += _lines(group, choices, width, column=13)
    out += ["", "keys (KEY=VALUE) of the options selected, their values and meaning "
                "(`fedfair run GROUP=OPTION --help` shows another option's keys):"]
    top = schema.descriptions(None, schema.ROOT)
    out.append("top level")
    for key in schema.keys(sections.Run):
        out += _lines(f"{key} = {_show(cfg[key])}", top.get(key, ""), width)
    out.append("simulation")
    for key, value in cfg["simulation"].items():
        out += _lines(f"simulation.{key} = {_show(value)}", top.get(f"simulation.{key}", ""), width)
    for group in GROUPS:
        described = schema.descriptions(group, selected[group]) if selected[group] in schema.options(group) else {}
        out.append(f"{group}={selected[group]}")
        for key, value in cfg[group].items():
            out += _lines(f"{group}.{key} = {_show(value)}", described.get(key, ""), width)
    out += [
        "",
        "overrides and sweeps:",
        "  fedfair run dataset=adult stage2=mst stage1.rho=100    one run: pick options, set keys",
        "  fedfair run -m seed=0,1,2 stage1.rho=0,1000            a sweep: one job per combination, and",
        "                                                         multirun/<date>/<time>/summary.csv",
        "  An unknown key or a value of the wrong type is refused before anything starts.",
        "",
        "Hydra: --cfg job (print the composed config), --info, --hydra-help, --resolve.",
    ]
    return "\n".join(out) + "\n"


def _task(cfg: DictConfig) -> None:
    """The Hydra task: compose → simulate (the ServerApp logs the summary) → ``results: <path>``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from strategies.simulation import simulate  # Flower, Ray and the apps: imported only when a job runs

    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    hc = HydraConfig.get()
    try:
        path = simulate(resolved, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except FedFairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"results: {path}", flush=True)


def _run(args: list[str]) -> int:
    if HELP_FLAGS & set(args):
        print(run_help([a for a in args if not a.startswith("-")]), end="")
        return 0
    if not HYDRA_INFO_FLAGS & set(args):  # Hydra's help and --cfg run no job
        _check_jobs(args)
    import hydra

    sys.argv = ["fedfair run", *args]
    with quiet():
        hydra.main(config_path=str(conf_dir()), config_name="config", version_base=None)(_task)()
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


def command(*args: str) -> list[str]:
    """``fedfair args...`` as a subprocess command, run by this interpreter (for the scripts)."""
    return [sys.executable, "-m", "fedfair.cli", *args]


def main(argv: list[str] | None = None) -> int:
    set_offline_defaults()
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="fedfair", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
