"""``dataset=adult``: UCI Adult (census income); s = sex (Male = 1) or race, y = income > 50K. Every
numeric bound is public domain knowledge (a census field's coded range), not a statistic of the
data; values beyond a bound are clipped to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedfair.data.datasets import Dataset, build, variant
from fedfair.data.files import Source, locate
from fedfair.data.schema import Binary, Categorical, Numeric, Schema
from fedfair.data.sets import DatasetSpec

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
SOURCES = (
    Source(
        "adult.data",
        _UCI + "adult.data",
        "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    ),
    Source(
        "adult.test",
        _UCI + "adult.test",
        "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    ),
)

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


def load(root: Path | None, sensitive: str = "sex") -> Dataset:
    """adult.data and adult.test concatenated (48,842 rows). Rows with a missing value (``?``) in a
    used column are DROPPED (45,222 rows remain). ``fnlwgt`` (a sampling weight, not a trait of the
    person) and ``education`` (the same information as ``education-num``) are not used.

    ``sensitive``: ``sex`` (default; Male = 1, race is a one-hot feature) or ``race`` (FairDisCo's
    coding, Black = 0 and every other race = 1, with sex a binary feature instead): the same rows."""
    schema = variant("adult", {"sex": ADULT, "race": ADULT_RACE}, sensitive)
    train, test = locate("adult", root)
    read = dict(header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?")
    frame = pd.concat(
        [pd.read_csv(train, **read), pd.read_csv(test, skiprows=1, **read)], ignore_index=True
    )
    frame["income"] = frame["income"].str.rstrip(".")  # adult.test writes labels as ">50K."
    kept = frame.dropna(subset=list(schema.raw_columns))
    return build(schema, kept, len(frame))


DATASET = DatasetSpec("adult", load, SOURCES, ("sensitive",))
