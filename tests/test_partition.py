import numpy as np
import pytest

from fedfair.data import load_dataset
from fedfair.data.sets.synthetic import synthetic
from fedfair.errors import FedFairError
from fedfair.partition import client_data, partition, require_both_groups, train_test_split
from fedfair.table import Table


@pytest.fixture(scope="module")
def s():
    return synthetic(rows=2000, seed=0).table.s


def check_cover(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))
    assert all(np.array_equal(p, np.sort(p)) for p in parts)


def test_iid(s):
    parts = partition(s, "iid", 3, seed=0)
    check_cover(parts, len(s))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert np.array_equal(parts[0], partition(s, "iid", 3, seed=0)[0])
    assert not np.array_equal(parts[0], partition(s, "iid", 3, seed=1)[0])


def spread(s, alpha):
    """Mean over seeds of the across-client std of each client's s = 1 share."""
    return np.mean([np.std([s[p].mean() for p in partition(s, "dirichlet", 3, seed, alpha=alpha)])
                    for seed in range(10)])  # fmt: skip


def test_dirichlet_skew_and_determinism(s):
    parts = partition(s, "dirichlet", 3, seed=4, alpha=0.5)
    check_cover(parts, len(s))
    again = partition(s, "dirichlet", 3, seed=4, alpha=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], partition(s, "dirichlet", 3, seed=5, alpha=0.5)[0])
    skewed, even = spread(s, 0.5), spread(s, 100.0)
    assert even < 0.05 and skewed > 0.15 and skewed > 5 * even


def test_dirichlet_empty_client(s):
    with pytest.raises(FedFairError) as exc:
        partition(s, "dirichlet", 10, seed=5, alpha=0.01)
    assert str(exc.value) == (
        "client 2 of 10 is empty (dirichlet alpha=0.01); use a larger alpha, fewer clients or another seed"
    )
    with pytest.raises(FedFairError, match="alpha must be > 0"):
        partition(s, "dirichlet", 2, seed=0, alpha=0.0)


def test_by_column():
    groups = np.array(["b", "a", "c", "a", "b", "b"])
    parts = partition(np.zeros(6), "by_column", 3, seed=0, groups=groups)
    assert [p.tolist() for p in parts] == [[1, 3], [0, 4, 5], [2]]
    with pytest.raises(FedFairError, match="3 values .*num_clients is 2"):
        partition(np.zeros(6), "by_column", 2, seed=0, groups=groups)
    with pytest.raises(FedFairError, match="needs a column"):
        partition(np.zeros(6), "by_column", 3, seed=0)


def test_bad_arguments(s):
    for k in (0, len(s) + 1):
        with pytest.raises(FedFairError, match="num_clients must be between 1 and"):
            partition(s, "iid", k, seed=0)
    with pytest.raises(FedFairError) as exc:
        partition(s, "shards", 2, seed=0)
    assert str(exc.value) == "unknown partition method 'shards'; choose one of: by_column, dirichlet, iid"


def id_table(seed: int = 0) -> Table:
    """1000 rows in strata (s, y) of 200, 3, 300 and 497 rows; the single feature is the row number
    / 1000, to track rows through a split."""
    sizes = {(0, -1): 200, (0, 1): 3, (1, -1): 300, (1, 1): 497}
    order = np.random.default_rng(seed).permutation(1000)
    s = np.repeat([k[0] for k in sizes], list(sizes.values()))[order]
    y = np.repeat([k[1] for k in sizes], list(sizes.values()))[order]
    return Table(np.arange(1000)[:, None] / 1000, s, y, ("row",))


def test_train_test_split():
    table = id_table()
    train, test = train_test_split(table, seed=0)
    rows = np.concatenate([train.x[:, 0], test.x[:, 0]]) * len(table)
    assert np.array_equal(np.sort(np.rint(rows)), np.arange(len(table)))
    for sv in (0, 1):
        for yv in (-1, 1):
            m = np.sum((table.s == sv) & (table.y == yv))
            k = np.sum((test.s == sv) & (test.y == yv))
            assert abs(k - 0.2 * m) <= 1 and (m < 2 or 1 <= k <= m - 1)
    assert np.sum((test.s == 0) & (test.y == 1)) == 1  # the 3-row stratum still reaches the test set
    again = train_test_split(table, seed=0)[1]
    assert np.array_equal(again.x, test.x)
    assert not np.array_equal(train_test_split(table, seed=1)[1].x, test.x)


def test_client_data():
    ds = synthetic(rows=500)
    tables = [client_data(ds, "iid", 2, i, seed=3) for i in range(2)]
    assert sum(len(tr) + len(te) for tr, te in tables) == 500
    assert all(abs(len(te) - 0.2 * (len(tr) + len(te))) <= 4 for tr, te in tables)
    tr0, te0 = client_data(ds, "iid", 2, 0, seed=3)
    assert np.array_equal(tr0.x, tables[0][0].x) and np.array_equal(te0.x, tables[0][1].x)
    ids = [set(map(tuple, t.x)) for pair in tables for t in pair]
    assert sum(map(len, ids)) == len(set().union(*ids))  # no row in two places
    with pytest.raises(FedFairError, match="client id must be in 0..1"):
        client_data(ds, "iid", 2, 2, seed=3)


def test_client_data_by_adult_race():
    ds = load_dataset("adult")
    race = ds.column("race")
    sizes = []
    for i, value in enumerate(sorted(set(race))):
        train, test = client_data(ds, "by_column", 5, i, seed=0, column="race")
        onehot = train.x[:, train.feature_names.index(f"race={value}")]
        assert np.all(onehot == 1) and np.all(test.x[:, test.feature_names.index(f"race={value}")] == 1)
        sizes.append(len(train) + len(test))
    assert sizes == [int(np.sum(race == v)) for v in sorted(set(race))]


def test_require_both_groups():
    t = Table(np.zeros((3, 1)), np.array([1, 1, 1]), np.array([1, -1, 1]), ("f",))
    with pytest.raises(FedFairError) as exc:
        require_both_groups(t, "client 2")
    assert str(exc.value).startswith("client 2 needs both sensitive groups, but the data has only s=1 rows")
    require_both_groups(Table(np.zeros((2, 1)), np.array([0, 1]), np.array([1, -1]), ("f",)), "x")
