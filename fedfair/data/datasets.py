"""The datasets: one :class:`Schema` and one loader each, and the :data:`DATASETS` registry.

Every numeric bound below is public domain knowledge (a test's score range, a census field's coded
range), not a statistic of the data; values beyond a bound are clipped to it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from fedfair.data.files import SOURCES, Source, locate, unknown_dataset
from fedfair.data.schema import Binary, Categorical, Numeric, Schema
from fedfair.errors import FedFairError
from fedfair.table import Table


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: ``table`` encodes ``frame`` (the raw rows kept, in the same order);
    ``raw_rows`` counts the rows read before any were dropped or filtered out."""

    name: str
    schema: Schema
    table: Table
    raw_rows: int
    frame: pd.DataFrame = field(repr=False)

    def column(self, name: str) -> np.ndarray:
        """A raw column aligned to the rows of :attr:`table` (e.g. to partition by it)."""
        if name not in self.frame.columns:
            raise FedFairError(f"{self.name} has no column '{name}'; it has: {', '.join(self.frame.columns)}")
        return self.frame[name].to_numpy()


def _dataset(schema: Schema, frame: pd.DataFrame, raw_rows: int) -> Dataset:
    frame = frame.reset_index(drop=True)
    return Dataset(schema.name, schema, schema.encode(frame), raw_rows, frame)


# ---- law_school -------------------------------------------------------------------------------

LAW_SCHOOL = Schema(
    "law_school",
    sensitive=Binary("race", one=("White",), zero=("Non-White",), role="sensitive"),
    label=Binary("pass_bar", one=(1.0,), zero=(0.0,), role="label"),
    features=(
        Numeric("decile1b", 1, 10),  # class-rank deciles
        Numeric("decile3", 1, 10),
        Numeric("lsat", 10, 48),  # the LSAT's 10–48 scale of the study's years
        Numeric("ugpa", 1, 4),
        Numeric("zfygpa", -4, 4),  # z-scores within school: |z| > 4 (zfygpa), < −7 or > 5 (zgpa)
        Numeric("zgpa", -7, 5),  # are clipped; the long lower tail of zgpa reaches about −6.4
        Binary("fulltime", one=(2.0,), zero=(1.0,)),  # raw 1 = full-time → 0, 2 = part-time → 1
        Numeric("fam_inc", 1, 5),  # family-income quintile
        Binary("male", one=(1.0,), zero=(0.0,)),
        Numeric("tier", 1, 6),  # law-school tier
    ),
)


def _law_school(root: Path | None) -> Dataset:
    (path,) = locate("law_school", root)
    frame = pd.read_csv(path)
    return _dataset(LAW_SCHOOL, frame, len(frame))


# ---- adult ------------------------------------------------------------------------------------

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
    "income",
)  # fmt: skip

ADULT = Schema(
    "adult",
    sensitive=Binary("sex", one=("Male",), zero=("Female",), role="sensitive"),
    label=Binary("income", one=(">50K",), zero=("<=50K",), role="label"),
    features=(
        Numeric("age", 17, 90),  # the census extract's age range (90 = top-coded)
        Categorical("workclass", (
            "Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
            "Without-pay", "Never-worked",
        )),
        Numeric("education-num", 1, 16),  # 1 = Preschool … 16 = Doctorate
        Categorical("marital-status", (
            "Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
            "Married-spouse-absent", "Married-AF-spouse",
        )),
        Categorical("occupation", (
            "Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
            "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
            "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv", "Armed-Forces",
        )),
        Categorical("relationship", (
            "Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried",
        )),
        Categorical("race", ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black")),
        Numeric("capital-gain", 0, 99999),  # 99999 = the census top code
        Numeric("capital-loss", 0, 4356),
        Numeric("hours-per-week", 1, 99),
        Binary("native-country", one=("United-States",)),  # 1 = United-States, 0 = any other country
    ),
)  # fmt: skip


ADULT_RACE = Schema(
    "adult",
    sensitive=Binary("race", one=None, zero=("Black",), role="sensitive"),
    label=ADULT.label,
    features=tuple(
        Binary("sex", one=("Male",), zero=("Female",)) if f.column == "race" else f for f in ADULT.features
    ),
)  # race as FairDisCo codes it: Black = 0, every other race = 1; sex becomes a feature in race's place


def _variant(name: str, variants: dict[str, Schema], sensitive: str) -> Schema:
    if sensitive not in variants:
        raise FedFairError(
            f"dataset '{name}' has no sensitive attribute '{sensitive}'; choose one of: {', '.join(variants)}"
        )
    return variants[sensitive]


def _adult(root: Path | None, sensitive: str = "sex") -> Dataset:
    """adult.data and adult.test concatenated (48,842 rows). Rows with a missing value (``?``) in a
    used column are DROPPED (45,222 rows remain). ``fnlwgt`` (a sampling weight, not a trait of the
    person) and ``education`` (the same information as ``education-num``) are not used.

    ``sensitive``: ``sex`` (default; Male = 1, race is a one-hot feature) or ``race`` (FairDisCo's
    coding, Black = 0 and every other race = 1, with sex a binary feature instead): the same rows."""
    schema = _variant("adult", {"sex": ADULT, "race": ADULT_RACE}, sensitive)
    train, test = locate("adult", root)
    read = dict(header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?")
    frame = pd.concat(
        [pd.read_csv(train, **read), pd.read_csv(test, skiprows=1, **read)], ignore_index=True
    )
    frame["income"] = frame["income"].str.rstrip(".")  # adult.test writes labels as ">50K."
    kept = frame.dropna(subset=list(schema.raw_columns))
    return _dataset(schema, kept, len(frame))


# ---- compas -----------------------------------------------------------------------------------

COMPAS = Schema(
    "compas",
    sensitive=Binary("race", one=None, zero=("African-American",), role="sensitive"),
    label=Binary("two_year_recid", one=(0,), zero=(1,), role="label"),
    features=(
        Numeric("age", 18, 96),
        Binary("sex", one=("Male",), zero=("Female",)),
        Numeric("priors_count", 0, 38),
        Numeric("juv_fel_count", 0, 20),
        Numeric("juv_misd_count", 0, 20),
        Numeric("juv_other_count", 0, 20),
        Binary("c_charge_degree", one=("F",), zero=("M",)),  # felony = 1, misdemeanour = 0
    ),
)


COMPAS_SEX = Schema(
    "compas",
    sensitive=Binary("sex", one=("Female",), zero=("Male",), role="sensitive"),
    label=COMPAS.label,
    features=tuple(
        Categorical("race", ("African-American", "Caucasian", "Hispanic", "Other", "Asian", "Native American"))
        if f.column == "sex" else f for f in COMPAS.features
    ),
)  # Female = 1: the group with the higher rate of the favourable label (as in AIF360); race a feature


def _compas(root: Path | None, sensitive: str = "race") -> Dataset:
    """ProPublica's two-year file with ProPublica's filter: screening within 30 days of the arrest,
    a known recidivism outcome (``is_recid != -1``), no ordinary-traffic charge
    (``c_charge_degree != 'O'``) and a COMPAS score (``score_text != 'N/A'``): 6,172 of 7,214 rows.
    s = 0 for African-American defendants and 1 for every other race; y = +1 for no recidivism
    within two years (the favourable outcome). COMPAS' own scores are not features.

    ``sensitive``: ``race`` (default, as above) or ``sex`` (Female = 1, Male = 0, with race a one-hot
    feature over its six values instead): the same rows."""
    schema = _variant("compas", {"race": COMPAS, "sex": COMPAS_SEX}, sensitive)
    (path,) = locate("compas", root)
    filters = ["days_b_screening_arrest", "is_recid", "score_text"]
    frame = pd.read_csv(
        path, usecols=[*dict.fromkeys(schema.raw_columns), *filters], keep_default_na=False, na_values=[""]
    )
    kept = frame[
        frame["days_b_screening_arrest"].between(-30, 30)
        & (frame["is_recid"] != -1)
        & (frame["c_charge_degree"] != "O")
        & (frame["score_text"] != "N/A")
    ]
    return _dataset(schema, kept, len(frame))


# ---- synthetic --------------------------------------------------------------------------------

SYNTHETIC = Schema(
    "synthetic",
    sensitive=Binary("group", one=(1,), zero=(0,), role="sensitive"),
    label=Binary("label", one=(1,), zero=(0,), role="label"),
    # Each feature is N(mean, 1) with |mean| ≤ 1, so (−5, 5) clips at most ~3e-5 of the values.
    features=tuple(Numeric(f"x{i}", -5, 5) for i in range(1, 5)),
)


def synthetic(rows: int = 2000, seed: int = 0, minority: float = 0.3, shift: float = 1.0) -> Dataset:
    """A seeded biased dataset, generated in memory. A fraction ``minority`` of the rows has s = 0.
    x1 ~ N(shift·s, 1) and x2 ~ N(shift·s/2, 1) depend on the group, x3, x4 ~ N(0, 1) do not, and
    y = +1 with probability σ(1.5·x1 + x2 − 0.8·x3 + 0.5·x4 − 0.5): the label depends on s only
    through the features, and group 1 has a clearly higher positive rate (for ``shift`` = 1)."""
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise FedFairError(f"synthetic rows must be a positive integer, got {rows!r}")
    if not 0 < minority < 1:
        raise FedFairError(f"synthetic minority must be in (0, 1), got {minority!r}")
    rng = np.random.default_rng(seed)
    s = (rng.random(rows) >= minority).astype(np.int64)
    x = rng.normal(size=(rows, 4)) + np.outer(s, [shift, shift / 2, 0.0, 0.0])
    logit = x @ np.array([1.5, 1.0, -0.8, 0.5]) - 0.5
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 5)]).assign(group=s, label=label)
    return _dataset(SYNTHETIC, frame, rows)


def _synthetic(root: Path | None, **options: object) -> Dataset:
    return synthetic(**options)


# ---- registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: the loader ``load(root, **options)``, its source files and its options."""

    load: Callable[..., Dataset]
    sources: tuple[Source, ...]
    options: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(src.file for src in self.sources)


DATASETS: dict[str, DatasetSpec] = {
    "adult": DatasetSpec(_adult, SOURCES["adult"], ("sensitive",)),
    "compas": DatasetSpec(_compas, SOURCES["compas"], ("sensitive",)),
    "law_school": DatasetSpec(_law_school, SOURCES["law_school"]),
    "synthetic": DatasetSpec(
        _synthetic, SOURCES["synthetic"], tuple(inspect.signature(synthetic).parameters)
    ),
}


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> Dataset:
    """Load and encode a dataset by name; files come from ``data_dir`` (default
    :func:`~fedfair.data.files.data_dir`) and are checked by SHA-256 first."""
    if name not in DATASETS:
        raise unknown_dataset(name)
    spec = DATASETS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = ", ".join(spec.options) or "none"
        raise FedFairError(f"dataset '{name}' has no option {', '.join(unknown)}; its options: {takes}")
    return spec.load(None if data_dir is None else Path(data_dir), **options)
