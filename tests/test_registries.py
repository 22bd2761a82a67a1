"""The extension registries: unknown names, keys owned by one synthesizer, and adding a synthesizer or
a dataset as its module plus its YAML, found with no list edited (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import fedfair.config
import fedfair.data.sets
import fedfair.synth
import fedfair.synth.gaussian as gaussian
from fedfair import generators, pipeline, stage2
from fedfair.config import compose_config
from fedfair.data import DATASETS, load_dataset
from fedfair.env import conf_dir
from fedfair.errors import FedFairError
from fedfair.stage2 import Stage2Config

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
SMALL = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=10", "progress=false"]

# A dataset added as its module: two Gaussian blobs, generated in memory.
BLOBS = '''
from pathlib import Path

import numpy as np
import pandas as pd

from fedfair.data.datasets import Dataset, build
from fedfair.data.schema import Binary, Numeric, Schema
from fedfair.data.sets import DatasetSpec

SCHEMA = Schema("blobs", sensitive=Binary("g", one=(1,), zero=(0,), role="sensitive"),
                label=Binary("t", one=(1,), zero=(0,), role="label"), features=(Numeric("a", -6, 6),))


def load(root: Path | None, rows: int = 100) -> Dataset:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, rows)
    frame = pd.DataFrame({"a": rng.normal(2 * t - 1, 1.0), "g": rng.integers(0, 2, rows), "t": t})
    return build(SCHEMA, frame, rows)


DATASET = DatasetSpec("blobs", load, (), ("rows",))
'''


def _doc_file(path: str) -> str:
    """The fenced block that follows ``path`` in docs/ARCHITECTURE.md."""
    match = re.search(rf"`{re.escape(path)}`\*\*\n+```\w+\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/ARCHITECTURE.md has no block for {path}"
    return match.group(1)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path, Path]]:
    """(a directory on ``fedfair.synth``'s ``__path__``, one on ``fedfair.data.sets``', a copy of
    ``conf/`` that ``compose_config`` reads); the modules imported from them are forgotten afterwards."""
    synth, sets, conf = tmp_path / "synth", tmp_path / "sets", tmp_path / "conf"
    synth.mkdir()
    sets.mkdir()
    shutil.copytree(conf_dir(), conf)
    monkeypatch.setattr(fedfair.synth, "__path__", [*fedfair.synth.__path__, str(synth)])
    monkeypatch.setattr(fedfair.data.sets, "__path__", [*fedfair.data.sets.__path__, str(sets)])
    monkeypatch.setattr(fedfair.config, "conf_dir", lambda: conf)
    yield synth, sets, conf
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]


def test_unknown_names_are_one_line_errors_listing_the_known_ones() -> None:
    with pytest.raises(FedFairError) as err:
        Stage2Config("ctgan")
    assert str(err.value) == "unknown stage2 'ctgan'; choose one of: dpctgan, gaussian, mst, none"
    with pytest.raises(FedFairError) as err:
        load_dataset("foo")
    assert str(err.value) == "unknown dataset 'foo'; choose one of: adult, compas, law_school, synthetic"
    with pytest.raises(FedFairError) as err:
        generators.get("gan")
    assert str(err.value) == "unknown stage1 'gan'; choose one of: bilevel, fadm, fairdistill, none"


def test_a_key_belongs_to_its_synthesizer() -> None:
    with pytest.raises(FedFairError) as err:
        pipeline.Experiment(compose_config([*SMALL, "stage2=dpctgan", "+stage2.mst_bins=8"]))
    assert str(err.value).startswith("stage2.mst_bins is not a key of stage2=dpctgan; its keys: order, ")
    with pytest.raises(FedFairError, match="stage2.epochs is not a key of stage2=gaussian"):
        pipeline.Experiment(compose_config([*SMALL, "stage2=gaussian", "+stage2.epochs=3"]))
    with pytest.raises(FedFairError, match="stage2.mst_bins must be >= 2, got 1"):
        Stage2Config("mst", mst_bins=1)
    Stage2Config("gaussian", mst_bins=1)  # not gaussian's key: not its check either


def test_a_synthesizer_may_support_one_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gaussian, "SYNTHESIZER", dataclasses.replace(gaussian.SYNTHESIZER, orders=("after",)))
    Stage2Config("gaussian", order="after")
    with pytest.raises(FedFairError) as err:
        Stage2Config("gaussian", order="before")
    assert str(err.value) == "stage2=gaussian supports order after, got 'before'"


def test_a_module_whose_entry_has_another_name_is_refused(plugins: tuple[Path, Path, Path]) -> None:
    modules, _, _ = plugins
    (modules / "typo.py").write_text(
        "from fedfair.synth import Synthesizer\nSYNTHESIZER = Synthesizer('typ0', lambda *a: None)\n"
    )
    with pytest.raises(FedFairError, match="fedfair.synth.typo must define SYNTHESIZER with name 'typo'"):
        stage2.names()


def test_the_worked_example_runs_the_upload_step(plugins: tuple[Path, Path, Path]) -> None:
    """docs/ARCHITECTURE.md's synthesizer: its two files, dropped in, run by the client's upload step."""
    modules, _, conf = plugins
    (modules / "histogram.py").write_text(_doc_file("fedfair/synth/histogram.py"))
    (conf / "stage2" / "histogram.yaml").write_text(_doc_file("conf/stage2/histogram.yaml"))
    assert stage2.names() == ("dpctgan", "gaussian", "histogram", "mst", "none")

    exp = pipeline.Experiment(compose_config([*SMALL, "stage2=histogram", "stage2.epsilon=50"]))
    data = exp.load()
    train, test = exp.client_tables(data, 0)
    upload = pipeline.make_upload(exp, data, train, 0, holdout=test)
    privacy = upload.privacy
    assert privacy["mechanism"] == "histogram" and privacy["delta"] == 0.0
    assert privacy["epsilon"] == pytest.approx(50.0) and privacy["reproducible"] is False
    assert privacy["guarantee"] == "the client's real training rows (add/remove one row)"  # order: before
    assert upload.table.columns == train.columns
    assert abs(len(upload.table) - len(train)) < 20  # the DP row count: 4 cells, Laplace scale 5/50
    assert upload.audit is not None and upload.audit["n_upload"] == len(upload.table)

    # The mechanism alone, at a large ε: each column's distribution is kept, on the bins' midpoints.
    out, report = stage2.privatize(train, data.schema.bounds(), exp.stage2_config(0))
    lo, hi = np.array([data.schema.bounds()[f] for f in train.feature_names]).T
    width = (hi - lo) * 2 / 16  # [lo, hi] widened by 0.5 on each side, 16 bins
    offsets = (out.x - (lo - 0.5 * (hi - lo))) / width - 0.5
    assert np.allclose(offsets, np.round(offsets)) and np.all((offsets >= 0) & (offsets <= 15))
    assert abs(out.s.mean() - train.s.mean()) < 0.06 and abs((out.y == 1).mean() - (train.y == 1).mean()) < 0.06
    assert np.all(np.abs(out.x.mean(axis=0) - train.x.mean(axis=0)) < width)
    assert report.mechanism == "histogram" and report.epsilon == pytest.approx(50.0)


def test_a_dataset_is_its_module_and_its_yaml(plugins: tuple[Path, Path, Path]) -> None:
    _, modules, conf = plugins
    (modules / "blobs.py").write_text(BLOBS)
    (conf / "dataset" / "blobs.yaml").write_text("name: blobs\nrows: 400\n")
    assert list(DATASETS) == ["adult", "blobs", "compas", "law_school", "synthetic"]
    assert DATASETS["blobs"].files == ()
    exp = pipeline.Experiment(compose_config(["dataset=blobs", "stage2=none", "progress=false"]))
    data = exp.load()
    exp.check_dataset(data)
    train, test = exp.client_tables(data, 1)
    assert data.name == "blobs" and len(data.table) == 400 and len(train) + len(test) == 200
    with pytest.raises(FedFairError, match="dataset 'blobs' has no option seed; its options: rows"):
        load_dataset("blobs", seed=3)
