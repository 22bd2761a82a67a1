"""The client pipeline: stage 1 → stage 2 → upload, and its per-configuration cache."""

import numpy as np
import pytest

from fedfair import pipeline
from fedfair.config import compose_config

SMALL = ["dataset=synthetic", "dataset.rows=400", "stage1.k_max=10", "progress=false"]
# DP-CTGAN with a noise seed: a reproducible simulation
TINY = [*SMALL, "stage2=dpctgan", "stage2.epochs=1", "stage2.batch_size=100", "stage2.noise_seed=5"]


def test_cache_fits_stage2_once_and_nests_the_upload_sizes(tmp_path, monkeypatch):
    full = pipeline.Experiment(compose_config([*TINY, f"cache_dir={tmp_path}"]))
    tenth = pipeline.Experiment(compose_config([*TINY, f"cache_dir={tmp_path}", "stage2.ns2_frac=0.1"]))
    data = full.load()
    train, _ = full.client_tables(data, 0)
    first = pipeline.make_upload(full, data, train, 0)
    assert not first.cached and len(first.table) == len(train) == 160

    def no_refit(*args, **kwargs):
        raise AssertionError("stage 2 ran again")

    monkeypatch.setattr(pipeline, "privatize", no_refit)
    monkeypatch.setattr(pipeline.bilevel, "synthesize", no_refit)
    second = pipeline.make_upload(tenth, data, train, 0)
    assert second.cached and len(second.table) == 16
    assert all(type(c) is str for c in second.table.columns)  # Flower records take plain str only
    np.testing.assert_array_equal(second.table.to_array(), first.table.to_array()[:16])
    assert second.privacy == pytest.approx(first.privacy)


def test_upload_without_cache_is_deterministic_for_a_seed():
    exp = pipeline.Experiment(compose_config(TINY))
    data = exp.load()
    train, _ = exp.client_tables(data, 1)
    a = pipeline.make_upload(exp, data, train, 1)
    b = pipeline.make_upload(exp, data, train, 1)
    np.testing.assert_array_equal(a.table.to_array(), b.table.to_array())
    assert 0 < a.privacy["epsilon"] <= 3.0


def test_cache_key_does_not_depend_on_how_a_number_is_written(tmp_path, monkeypatch):
    as_int = pipeline.Experiment(compose_config([*TINY, f"cache_dir={tmp_path}", "stage1.rho=1000"]))
    as_float = pipeline.Experiment(compose_config([*TINY, f"cache_dir={tmp_path}", "stage1.rho=1000.0"]))
    assert as_int.cfg["stage1"]["rho"] == 1000 and isinstance(as_float.cfg["stage1"]["rho"], float)
    data = as_int.load()
    train, _ = as_int.client_tables(data, 0)
    first = pipeline.make_upload(as_int, data, train, 0)

    def no_refit(*args, **kwargs):
        raise AssertionError("a stage ran again")

    monkeypatch.setattr(pipeline.bilevel, "synthesize", no_refit)
    monkeypatch.setattr(pipeline, "privatize", no_refit)
    second = pipeline.make_upload(as_float, data, train, 0)
    assert second.cached and np.array_equal(second.table.to_array(), first.table.to_array())


def test_dp_first_releases_once_for_every_stage1_setting_and_states_its_guarantee(tmp_path, monkeypatch):
    """stage2.order=before: the mechanism reads the real rows once per configuration (a rerun would
    spend the budget again); stage 1 then runs on the DP rows for each ρ."""
    common = [*SMALL, "stage2=gaussian", "stage2.order=before", f"cache_dir={tmp_path}"]
    first = pipeline.Experiment(compose_config([*common, "stage1.rho=0"]))
    data = first.load()
    train, test = first.client_tables(data, 0)
    seen = []
    real_privatize = pipeline.privatize

    def counting(table, *args, **kwargs):
        seen.append(len(table))
        return real_privatize(table, *args, **kwargs)

    monkeypatch.setattr(pipeline, "privatize", counting)
    a = pipeline.make_upload(first, data, train, 0, holdout=test)
    b = pipeline.make_upload(pipeline.Experiment(compose_config([*common, "stage1.rho=100"])), data, train, 0)
    assert seen == [len(train)]  # one release, on the real rows
    assert len(a.table) == len(b.table)  # stage 1 keeps the DP row count
    assert abs(len(a.table) - len(train)) < 4 * 6 * a.privacy["sigmas"]["count"]
    assert a.privacy["guarantee"] == "the client's real training rows (add/remove one row)"
    assert a.audit is not None and 0 <= a.audit["mia_auc"] <= 1 and b.audit is None
    after = pipeline.Experiment(compose_config([*common[:-1], "stage2.order=after"]))
    assert pipeline.make_upload(after, data, train, 0).privacy["guarantee"].startswith("the stage-1 table only")


def test_cache_is_owner_only_and_keyed_by_the_code(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    exp = pipeline.Experiment(compose_config([*SMALL, "stage2=none", f"cache_dir={cache}"]))
    data = exp.load()
    train, _ = exp.client_tables(data, 0)
    pipeline.make_upload(exp, data, train, 0)
    assert cache.stat().st_mode & 0o777 == 0o700
    files = list(cache.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert pipeline.make_upload(exp, data, train, 0).cached
    monkeypatch.setattr(pipeline, "code_version", lambda: "another version of the code")
    assert not pipeline.make_upload(exp, data, train, 0).cached  # a code change never reuses old outputs
