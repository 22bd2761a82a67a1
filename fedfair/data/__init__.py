"""Datasets: loading, public-bounds encoding and the files behind them; one module per dataset in
:mod:`fedfair.data.sets`."""

from fedfair.data.datasets import Dataset, load_dataset
from fedfair.data.files import data_dir, fetch
from fedfair.data.schema import Schema
from fedfair.data.sets import DATASETS, DatasetSpec

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "Schema", "data_dir", "fetch", "load_dataset"]
