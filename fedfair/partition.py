"""Split a dataset among clients, and each client's rows into train and test.

Every split is a pure function of its arguments (seeded), so each client recomputes the same
partition on its own and no index lists travel. A client holding only one sensitive group is NOT an
error here; consumers that need both groups call :func:`require_both_groups`.
"""

from __future__ import annotations

import numpy as np

from fedfair.data import Dataset
from fedfair.errors import FedFairError
from fedfair.table import Table

METHODS = ("by_column", "dirichlet", "iid")


def partition(
    s: np.ndarray,
    method: str,
    num_clients: int,
    seed: int,
    *,
    alpha: float = 0.5,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Row indices of each client: sorted, disjoint, covering all rows.

    * ``iid``: a seeded shuffle cut into ``num_clients`` parts whose sizes differ by at most 1.
    * ``dirichlet``: FairFed's protocol over the sensitive attribute: for each value of ``s``,
      proportions p ~ Dir(alpha·1_K) split that group's shuffled rows among the K clients.
    * ``by_column``: one client per distinct value of ``groups`` (sorted); ``seed`` is unused.
    """
    s = np.asarray(s)
    n = len(s)
    if not isinstance(num_clients, (int, np.integer)) or not 1 <= num_clients <= n:
        raise FedFairError(f"num_clients must be between 1 and the number of rows ({n}), got {num_clients!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FedFairError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    if method == "iid":
        parts = np.array_split(rng.permutation(n), num_clients)
    elif method == "dirichlet":
        parts = _dirichlet(s, num_clients, alpha, rng)
    elif method == "by_column":
        parts = _by_column(groups, n, num_clients)
    else:
        raise FedFairError(f"unknown partition method '{method}'; choose one of: {', '.join(METHODS)}")
    return [np.sort(p) for p in parts]


def _dirichlet(s: np.ndarray, k: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    if not alpha > 0:
        raise FedFairError(f"dirichlet alpha must be > 0, got {alpha!r}")
    shares: list[list[np.ndarray]] = [[] for _ in range(k)]
    for value in np.unique(s):
        rows = rng.permutation(np.flatnonzero(s == value))
        cuts = (np.cumsum(rng.dirichlet(np.full(k, alpha)))[:-1] * len(rows)).astype(np.int64)
        for client, part in enumerate(np.split(rows, cuts)):
            shares[client].append(part)
    parts = [np.concatenate(p) for p in shares]
    for client, part in enumerate(parts):
        if len(part) == 0:
            raise FedFairError(
                f"client {client} of {k} is empty (dirichlet alpha={alpha}); "
                "use a larger alpha, fewer clients or another seed"
            )
    return parts


def _by_column(groups: np.ndarray | None, n: int, k: int) -> list[np.ndarray]:
    if groups is None:
        raise FedFairError("partition by_column needs a column (e.g. partition.column=race)")
    groups = np.asarray(groups)
    if len(groups) != n:
        raise FedFairError(f"the partition column has {len(groups)} rows but the data has {n}")
    values, codes = np.unique(groups, return_inverse=True)
    if len(values) != k:
        raise FedFairError(
            f"by_column makes one client per value: the column has {len(values)} values "
            f"({', '.join(map(str, values))}) but num_clients is {k}"
        )
    return [np.flatnonzero(codes == i) for i in range(k)]


def train_test_split(table: Table, seed: int, test_frac: float = 0.2) -> tuple[Table, Table]:
    """A seeded (train, test) split, stratified by the (s, y) pair: each stratum of m rows gives
    round(test_frac·m) test rows, but at least 1 and at most m − 1 when m ≥ 2, so a small group
    appears in both parts whenever it can."""
    if not 0 < test_frac < 1:
        raise FedFairError(f"test_frac must be in (0, 1), got {test_frac!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for s in (0, 1):
        for y in (-1, 1):
            rows = rng.permutation(np.flatnonzero((table.s == s) & (table.y == y)))
            m = len(rows)
            k = min(max(int(np.floor(test_frac * m + 0.5)), 1), m - 1) if m >= 2 else 0
            test.append(rows[:k])
            train.append(rows[k:])
    return table.subset(np.sort(np.concatenate(train))), table.subset(np.sort(np.concatenate(test)))


def client_data(
    dataset: Dataset,
    method: str,
    num_clients: int,
    client_id: int,
    seed: int,
    alpha: float = 0.5,
    column: str | None = None,
    test_frac: float = 0.2,
) -> tuple[Table, Table]:
    """(train, test) of one client, a pure function of the arguments. ``column`` names the raw
    column of ``by_column``; the train/test split of client i is seeded by (seed, i)."""
    groups = dataset.column(column) if method == "by_column" and column is not None else None
    parts = partition(dataset.table.s, method, num_clients, seed, alpha=alpha, groups=groups)
    if not isinstance(client_id, (int, np.integer)) or not 0 <= client_id < num_clients:
        raise FedFairError(f"client id must be in 0..{num_clients - 1}, got {client_id!r}")
    split_seed = int(np.random.SeedSequence([seed, client_id]).generate_state(1)[0])
    return train_test_split(dataset.table.subset(parts[client_id]), split_seed, test_frac)


def require_both_groups(table: Table, who: str) -> None:
    """Raise unless ``table`` has rows of both sensitive groups (``who`` names the consumer)."""
    present = np.unique(table.s)
    if len(present) < 2:
        has = f"only s={present[0]} rows" if len(present) else "no rows"
        raise FedFairError(
            f"{who} needs both sensitive groups, but the data has {has}; "
            "use another partition (a larger alpha, fewer clients or another seed)"
        )
