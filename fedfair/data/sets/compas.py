"""``dataset=compas``: ProPublica's COMPAS two-year file; s = race (African-American = 0) or sex,
y = no two-year recidivism. Every numeric bound is public domain knowledge, not a statistic of the
data; values beyond a bound are clipped to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedfair.data.datasets import Dataset, build, variant
from fedfair.data.files import Source, locate
from fedfair.data.schema import Binary, Categorical, Numeric, Schema
from fedfair.data.sets import DatasetSpec

SOURCES = (
    Source(
        "compas-scores-two-years.csv",
        "https://raw.githubusercontent.com/propublica/compas-analysis/master/compas-scores-two-years.csv",
        "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
    ),
)

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


def load(root: Path | None, sensitive: str = "race") -> Dataset:
    """ProPublica's two-year file with ProPublica's filter: screening within 30 days of the arrest,
    a known recidivism outcome (``is_recid != -1``), no ordinary-traffic charge
    (``c_charge_degree != 'O'``) and a COMPAS score (``score_text != 'N/A'``): 6,172 of 7,214 rows.
    s = 0 for African-American defendants and 1 for every other race; y = +1 for no recidivism
    within two years (the favourable outcome). COMPAS' own scores are not features.

    ``sensitive``: ``race`` (default, as above) or ``sex`` (Female = 1, Male = 0, with race a one-hot
    feature over its six values instead): the same rows."""
    schema = variant("compas", {"race": COMPAS, "sex": COMPAS_SEX}, sensitive)
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
    return build(schema, kept, len(frame))


DATASET = DatasetSpec("compas", load, SOURCES, ("sensitive",))
