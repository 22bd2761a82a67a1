"""``dataset=law_school``: the LSAC bar-passage study (FAIR-FATE's copy); s = race (White = 1),
y = passed the bar. Every numeric bound is public domain knowledge (the LSAT's scale, class-rank
deciles), not a statistic of the data; values beyond a bound are clipped to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedfair.data.datasets import Dataset, build
from fedfair.data.files import Source, locate
from fedfair.data.schema import Binary, Numeric, Schema
from fedfair.data.sets import DatasetSpec

SOURCES = (
    Source(
        "law_school.csv",
        "https://raw.githubusercontent.com/teresalazar13/FAIR-FATE/master/datasets/law/law.csv",
        "961234bea8efc6e5845dac8188ad71d5007d5984b8841804a2e1ded926d8ebff",
    ),
)

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


def load(root: Path | None) -> Dataset:
    (path,) = locate("law_school", root)
    frame = pd.read_csv(path)
    return build(LAW_SCHOOL, frame, len(frame))


DATASET = DatasetSpec("law_school", load, SOURCES)
