import io
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedfair.data import DATASETS, Schema, data_dir, fetch, load_dataset
from fedfair.data import files
from fedfair.data.sets.law_school import LAW_SCHOOL
from fedfair.data.sets.synthetic import synthetic
from fedfair.errors import FedFairError


@pytest.fixture(scope="module")
def law():
    return load_dataset("law_school")


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult")


@pytest.fixture(scope="module")
def compas():
    return load_dataset("compas")


def check_encoded(ds) -> None:
    t = ds.table
    assert t.feature_names == ds.schema.feature_names
    assert t.x.min() >= 0.0 and t.x.max() <= 1.0
    bounds = ds.schema.bounds()
    assert tuple(bounds) == t.columns
    assert all(b == (0.0, 1.0) for b in bounds.values())


def test_law_school(law):
    t = law.table
    assert len(t) == law.raw_rows == 20_798
    assert t.s.sum() == 17_491  # White = 1
    assert (t.y == 1).mean() == pytest.approx(0.8897, abs=1e-4)
    assert (t.y[t.s == 1] == 1).mean() == pytest.approx(0.921, abs=1e-3)
    assert (t.y[t.s == 0] == 1).mean() == pytest.approx(0.723, abs=1e-3)
    assert t.x.shape == (20_798, 10)
    check_encoded(law)
    # fulltime: raw 1 → 0, 2 → 1; lsat scaled by the public (10, 48)
    raw = law.frame
    assert np.array_equal(t.x[:, t.feature_names.index("fulltime")], (raw["fulltime"] == 2).to_numpy())
    assert np.allclose(t.x[:, t.feature_names.index("lsat")], (raw["lsat"] - 10) / 38)


def test_adult(adult):
    t = adult.table
    assert adult.raw_rows == 48_842
    assert len(t) == 45_222  # rows with "?" in a used column dropped
    assert t.s.sum() == 30_527  # Male = 1
    assert (t.y == 1).sum() == 11_208  # ">50K" and ">50K." (adult.test) both count
    assert "fnlwgt" not in t.feature_names and "education" not in t.feature_names
    check_encoded(adult)
    race = [i for i, n in enumerate(t.feature_names) if n.startswith("race=")]
    assert len(race) == 5 and np.all(t.x[:, race].sum(axis=1) == 1)
    assert np.array_equal(adult.column("sex") == "Male", t.s == 1)  # raw columns align to rows


def test_compas(compas):
    t = compas.table
    assert compas.raw_rows == 7_214
    assert len(t) == 6_172  # ProPublica's filter
    assert (t.s == 0).sum() == 3_175  # African-American = 0
    assert np.array_equal(compas.column("race") == "African-American", t.s == 0)
    assert (t.y == 1).sum() == 6_172 - 2_809  # y = +1: no recidivism in two years
    assert not any(n.startswith(("decile", "score")) for n in t.feature_names)
    check_encoded(compas)


def test_adult_with_race_as_the_sensitive_attribute(adult):
    ds = load_dataset("adult", sensitive="race")
    t = ds.table
    assert len(t) == len(adult.table) == 45_222  # the same rows
    assert np.array_equal(ds.column("race") == "Black", t.s == 0)  # FairDisCo's coding: Black vs the rest
    assert (t.s == 0).sum() == 4_228 and (t.s == 0).mean() == pytest.approx(0.0935, abs=1e-4)
    assert (t.y[t.s == 1] == 1).mean() == pytest.approx(0.260, abs=1e-3)
    assert (t.y[t.s == 0] == 1).mean() == pytest.approx(0.126, abs=1e-3)
    assert not any(n.startswith("race=") for n in t.feature_names)
    assert np.array_equal(t.x[:, t.feature_names.index("sex")], adult.table.s)  # sex is now a feature
    assert np.array_equal(t.y, adult.table.y)
    check_encoded(ds)
    assert load_dataset("adult", sensitive="sex").table.s.sum() == 30_527  # the default, unchanged


def test_compas_with_sex_as_the_sensitive_attribute(compas):
    ds = load_dataset("compas", sensitive="sex")
    t = ds.table
    assert len(t) == len(compas.table) == 6_172
    assert np.array_equal(ds.column("sex") == "Female", t.s == 1)  # Female = 1
    assert (t.s == 1).sum() == 1_175 and (t.s == 1).mean() == pytest.approx(0.190, abs=1e-3)
    assert (t.y[t.s == 1] == 1).mean() == pytest.approx(0.649, abs=1e-3)  # women reoffend less often
    assert (t.y[t.s == 0] == 1).mean() == pytest.approx(0.521, abs=1e-3)
    race = [n for n in t.feature_names if n.startswith("race=")]
    assert len(race) == 6 and np.all(t.x[:, [t.feature_names.index(n) for n in race]].sum(axis=1) == 1)
    assert "sex" not in t.feature_names
    check_encoded(ds)


def test_unknown_sensitive_variant_is_a_one_line_error():
    with pytest.raises(FedFairError) as exc:
        load_dataset("adult", sensitive="age")
    assert str(exc.value) == "dataset 'adult' has no sensitive attribute 'age'; choose one of: sex, race"
    with pytest.raises(FedFairError, match="dataset 'compas' has no sensitive attribute 'income'; choose one of: race, sex"):
        load_dataset("compas", sensitive="income")
    with pytest.raises(FedFairError, match="has no option sensitive"):
        load_dataset("law_school", sensitive="race")


def test_synthetic_is_biased_and_deterministic():
    a, b, c = synthetic(seed=0), load_dataset("synthetic", seed=0), synthetic(seed=1)
    t = a.table
    assert len(t) == 2000 and a.raw_rows == 2000
    assert 0.25 < 1 - t.s.mean() < 0.35
    gap = (t.y[t.s == 1] == 1).mean() - (t.y[t.s == 0] == 1).mean()
    assert gap > 0.1
    assert np.array_equal(t.x, b.table.x) and np.array_equal(t.y, b.table.y)
    assert not np.array_equal(t.x, c.table.x)
    assert len(load_dataset("synthetic", rows=50).table) == 50
    unbiased = synthetic(rows=20_000, shift=0.0).table
    assert abs((unbiased.y[unbiased.s == 1] == 1).mean() - (unbiased.y[unbiased.s == 0] == 1).mean()) < 0.03
    check_encoded(a)


def test_encoding_does_not_depend_on_rows_present(law):
    part = law.frame.iloc[[5, 7000, 20_000]]
    assert np.array_equal(LAW_SCHOOL.encode(part).x, law.table.x[[5, 7000, 20_000]])


def test_unknown_dataset_and_option():
    with pytest.raises(FedFairError) as exc:
        load_dataset("foo")
    assert str(exc.value) == "unknown dataset 'foo'; choose one of: adult, compas, law_school, synthetic"
    with pytest.raises(FedFairError, match="has no option rows"):
        load_dataset("law_school", rows=10)
    with pytest.raises(FedFairError, match="positive integer"):
        load_dataset("synthetic", rows=0)


def test_registry_lists_files_with_hashes():
    assert set(DATASETS) == {"adult", "compas", "law_school", "synthetic"}
    assert DATASETS["adult"].files == ("adult.data", "adult.test")
    assert DATASETS["synthetic"].files == ()
    for spec in DATASETS.values():
        for src in spec.sources:
            assert len(src.sha256) == 64 and src.url.startswith("https://")


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDFAIR_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    monkeypatch.delenv("FEDFAIR_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "fedfair" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_dir() == Path.home() / ".cache" / "fedfair" / "datasets"


def test_corrupt_file(monkeypatch, tmp_path):
    shutil.copyfile(data_dir() / "law_school.csv", tmp_path / "law_school.csv")
    with open(tmp_path / "law_school.csv", "a") as fh:
        fh.write("1.0\n")
    monkeypatch.setenv("FEDFAIR_DATA_DIR", str(tmp_path))
    with pytest.raises(FedFairError) as exc:
        load_dataset("law_school")
    msg = str(exc.value)
    assert "law_school.csv" in msg and "corrupt" in msg and "\n" not in msg


def test_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDFAIR_DATA_DIR", str(tmp_path))
    with pytest.raises(FedFairError) as exc:
        load_dataset("adult")
    assert str(exc.value) == (
        f"adult.data is missing: put adult.data in {tmp_path} or run `fedfair data fetch adult`"
    )
    with pytest.raises(FedFairError, match="compas-scores-two-years.csv is missing"):
        load_dataset("compas", data_dir=tmp_path / "elsewhere")


def test_verified_hash_is_cached(monkeypatch):
    files.locate("law_school")
    monkeypatch.setattr(files.hashlib, "sha256", lambda: pytest.fail("re-hashed a verified file"))
    assert files.locate("law_school")[0].name == "law_school.csv"


def test_fetch_offline(monkeypatch, tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    with pytest.raises(FedFairError) as exc:
        fetch("law_school", tmp_path / "d")
    msg = str(exc.value)
    assert DATASETS["law_school"].sources[0].url in msg and str(tmp_path / "d") in msg and "\n" not in msg
    assert list((tmp_path / "d").iterdir()) == []  # no temporary file left behind
    with pytest.raises(FedFairError, match="nothing to fetch"):
        fetch("synthetic")


def test_fetch_verifies_and_writes(monkeypatch, tmp_path):
    real = (data_dir() / "law_school.csv").read_bytes()
    served = {"body": real[:-1]}
    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served["body"]))
    with pytest.raises(FedFairError, match="sha256"):
        fetch("law_school", tmp_path)
    assert list(tmp_path.iterdir()) == []
    served["body"] = real
    assert fetch("law_school", tmp_path) == [tmp_path / "law_school.csv"]
    assert (tmp_path / "law_school.csv").read_bytes() == real
    assert len(load_dataset("law_school", data_dir=tmp_path).table) == 20_798


def frame(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {"age": np.linspace(20, 70, n), "job": ["a", "b", "c"] * (n // 3), "g": [1, 0] * (n // 2),
         "out": ["yes", "no", "no"] * (n // 3)}
    )  # fmt: skip


def tiny_schema() -> Schema:
    from fedfair.data.schema import Binary, Categorical, Numeric

    return Schema(
        "tiny",
        sensitive=Binary("g", one=(1,), zero=(0,), role="sensitive"),
        label=Binary("out", one=("yes",), zero=("no",), role="label"),
        features=(Numeric("age", 0, 100), Categorical("job", ("a", "b"))),
    )


def test_schema_encode():
    t = tiny_schema().encode(frame())
    assert t.feature_names == ("age", "job=a", "job=b")
    assert np.allclose(t.x[:, 0], np.linspace(0.2, 0.7, 6))
    assert t.x[2, 1:].tolist() == [0.0, 0.0]  # a category outside the list → all-zero row
    assert t.s.tolist() == [1, 0, 1, 0, 1, 0] and t.y.tolist() == [1, -1, -1, 1, -1, -1]


@pytest.mark.parametrize(
    "edit, column, words",
    [
        (lambda f: f.drop(columns="g"), "'g'", "missing column"),
        (lambda f: f.assign(age=[np.nan, 1, np.nan, 2, 3, 4]), "'age'", "2 rows"),
        (lambda f: f.assign(g=[1, 0, 2, 0, 1, 3]), "'g'", "[2, 3]"),
        (lambda f: f.assign(out=["yes", "no", "maybe", "no", "no", "no"]), "'out'", "'maybe'"),
        (lambda f: f.assign(age=["x"] * 6), "'age'", "not numeric"),
        (lambda f: f.assign(age=[np.inf, 1, 2, 3, 4, -np.inf]), "'age'", "infinite values (2 rows)"),
    ],
)
def test_schema_encode_errors(edit, column, words):
    with pytest.raises(FedFairError) as exc:
        tiny_schema().encode(edit(frame()))
    msg = str(exc.value)
    assert msg.startswith("tiny: ") and column in msg and words in msg and "\n" not in msg
