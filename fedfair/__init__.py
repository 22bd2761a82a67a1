"""fedfair: fair and private collaborative learning on Flower.

The library (this package) holds data, partitions, metrics, the model and the generators; it never
imports Flower. The Flower adapters live in the top-level ``clients`` and ``strategies`` packages.
"""

from fedfair.errors import FedFairError
from fedfair.table import Table

__all__ = ["FedFairError", "Table"]
__version__ = "0.1.0"
