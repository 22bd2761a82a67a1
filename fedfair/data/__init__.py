"""Datasets: loading, public-bounds encoding and the files behind them."""

from fedfair.data.datasets import DATASETS, Dataset, load_dataset
from fedfair.data.files import data_dir, fetch
from fedfair.data.schema import Schema

__all__ = ["DATASETS", "Dataset", "Schema", "data_dir", "fetch", "load_dataset"]
