"""The ``fedfair`` command: bad input is one line on stderr, exit code 2, nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest

from fedfair.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage2.epsilon=0"], "stage2.epsilon must be > 0, got 0.0"),
        (["stage2.epsilon=-1"], "stage2.epsilon must be > 0"),
        (["stage2.ns2_frac=1.5"], "stage2.ns2_frac=1.5 must be in (0, 1]"),
        (["stage2=foo"], "stage2"),
        (["dataset.name=mnist"], "unknown dataset 'mnist'"),
        (["stage1.penalty=xx"], "unknown stage-1 penalty 'xx'"),
        (["stage1.bogus=1"], "bogus"),
        (["stage2=dpctgan", "stage2.noise_seed=-3"], "stage2.noise_seed must be null or an integer in [0, 2**32), got -3"),
        (["num_clients=0"], "num_clients must be >= 1, got 0"),
        # every section and value type, before Ray starts (issue: tracebacks and accepted bad input)
        (["seed=abc"], "seed must be an integer, got 'abc'"),
        (["seed=-1"], "seed must be in 0..4294967295, got -1"),
        (["+stage2.seed=5"], "stage2.seed cannot be set: it is derived from the run seed"),
        (["stage1.rho=-5"], "stage1.rho must be in [0, inf), got -5"),
        (["partition.test_frac=1.5"], "partition.test_frac must be in (0, 1), got 1.5"),
        (["partition.method=shards"], "partition.method must be one of by_column, dirichlet, iid, got 'shards'"),
        (["strategy.lam_theta=-1"], "strategy.lam_theta must be in (0, inf), got -1"),
        (["simulation.timeout=-5"], "simulation.timeout must be in (0, inf), got -5"),
        (["num_clients=100000"], "num_clients=100000 is too many for law_school (20,798 rows)"),
        (["partition=dirichlet", "partition.alpha=0.001", "num_clients=50"], "is empty (dirichlet alpha=0.001)"),
        (["-m", "stage1.rho=0,10", "stage2.epsilon=0"], "stage2.epsilon must be > 0"),
        (["strategy=fedavg_fadm", "stage1=bilevel"], "strategy=fedavg_fadm needs stage1=fadm"),
        (["stage1=fadm", "stage1.domain_column=race"], "no feature column 'race'"),  # law_school's race is s
        (["stage1=fadm", "stage1.domain_column=lsat"], "stage1.domain_column 'lsat' is numeric"),
        (["stage1=fadm", "stage1.iterations=0"], "FADM iterations must be >= 1"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(overrides, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_data_names_the_file_and_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDFAIR_DATA_DIR", str(tmp_path))
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "law_school.csv" in err and str(tmp_path) in err and "fedfair data fetch law_school" in err


def test_data_list_shows_the_directory_and_each_dataset(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("law_school", "adult", "compas", "synthetic"):
        assert name in out


def test_the_library_never_imports_flower():
    """Every module of fedfair/ imports, and a FairFed experiment is composed and checked (strategy
    names included), without Flower or the adapters in strategies/."""
    code = (
        "import sys, pkgutil, importlib, fedfair; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(fedfair.__path__, 'fedfair.')]; "
        "from fedfair.config import compose_config; from fedfair.pipeline import Experiment; "
        "Experiment(compose_config(['strategy=fairfed'])); "
        "print(any(m.split('.')[0] in ('flwr', 'strategies', 'clients') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && python -m pytest"
    assert command in readme and command in ci


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_fedfair_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":mod:" not in out
    for command in ("fedfair run", "fedfair data list", "fedfair data fetch NAME", "fedfair run --help"):
        assert command in out


def test_run_help_shows_groups_keys_and_defaults_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "stage2=mst", "--help"]) == 0
    out = capsys.readouterr().out
    assert "stage2     dpctgan | gaussian | mst* | none" in out
    assert "stage2.mst_bins = 16" in out and "public equal-width bins per feature" in out
    assert "strategy.lam_theta = 0.0001" in out and "fedfair run -m" in out
    assert not any(tmp_path.iterdir())


def test_hydra_info_flags_still_work(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fedfair.cli", "run", "stage2=none", "--cfg", "job"],
                         capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert "stage2:\n  name: none\n" in out.stdout and "num_clients: 2" in out.stdout
    assert not any(tmp_path.iterdir())


def test_processes_start_light():
    """A ClientApp or ServerApp process (one per message in a deployment) imports no torch, scipy.stats
    or sklearn until a generator, synthesizer or audit needs them, and ``--cfg job`` composes the
    config without the simulation machinery."""
    code = (
        "import sys, clients.client_app, strategies.server_app; from fedfair.cli import main; "
        "main(['run', 'stage2=none', '--cfg', 'job']); "
        "print([m for m in ('torch', 'scipy.stats', 'sklearn', 'strategies.simulation', 'ray') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert "num_clients: 2" in out.stdout and out.stdout.splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_run_prints_the_results_path_and_logs_the_rest(tmp_path):
    """progress=false: the console holds the results line (and the summary, if marked for it) and
    no warning; Flower's round lines, the config it sends, Ray's warnings and the metrics are in
    <output_dir>/fedfair.log."""
    out = subprocess.run([sys.executable, "-m", "fedfair.cli", "run", "stage2=none", "dataset=synthetic",
                          "dataset.rows=600", "stage1.k_max=20", "progress=false"],
                         capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    results = [line for line in lines if line.startswith("results: ")]
    assert len(results) == 1 and out.stderr.strip() == ""
    path = Path(results[0].removeprefix("results: "))
    log = (path.parent / "fedfair.log").read_text()
    assert all(line in log for line in lines)  # anything else shown is a summary line, logged too
    assert len(lines) <= 12
    for logged in ("[ROUND 1/1]", "ConfigRecord (train)", "Aggregated MetricRecord",
                   "pooled test metrics", "results: "):
        assert logged in log
    assert len(log.splitlines()) >= 20
