"""fedfair.table.Table: its checks (one-line errors), the upload form and its inverse, subsets and
the union of clients' tables."""

import numpy as np
import pytest

from fedfair.errors import FedFairError
from fedfair.table import Table


def _table(n: int = 4, names: tuple[str, ...] = ("a", "b")) -> Table:
    x = np.arange(n * len(names), dtype=float).reshape(n, len(names)) / 10
    return Table(x, np.array([0, 1] * (n // 2)), np.array([1, -1] * (n // 2)), names)


@pytest.mark.parametrize(
    "x, s, y, message",
    [
        (np.zeros((2, 3)), [0, 1], [1, -1], "x has shape (2, 3) but 2 feature names were given"),
        (np.zeros((2, 2)), [0, 1, 1], [1, -1], "x, s, y disagree in length"),
        (np.array([[0.0, np.nan], [0, 0]]), [0, 1], [1, -1], "features contain NaN or infinite values"),
        (np.zeros((2, 2)), [0, 2], [1, -1], "sensitive attribute must be 0/1, got values [0, 2]"),
        (np.zeros((2, 2)), [0, 1], [0, 1], "label must be -1/+1, got values [0, 1]"),
    ],
)
def test_a_bad_table_is_one_line(x, s, y, message):
    with pytest.raises(FedFairError) as err:
        Table(x, np.array(s), np.array(y), ("a", "b"))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_upload_form_round_trips_and_a_is_x_then_s():
    t = _table()
    arr = t.to_array()
    assert arr.dtype == np.float32 and arr.shape == (4, 4)
    assert arr[:, -1].tolist() == [1, 0, 1, 0]  # y as 0/1
    back = Table.from_array(arr, t.columns)
    np.testing.assert_allclose(back.x, t.x, rtol=1e-6)
    assert back.s.tolist() == t.s.tolist() and back.y.tolist() == t.y.tolist()
    np.testing.assert_array_equal(t.a[:, -1], t.s)
    np.testing.assert_array_equal(t.a[:, :-1], t.x)
    with pytest.raises(FedFairError, match="does not match columns"):
        Table.from_array(arr, ("a", "b", "y", "s"))


def test_subset_and_concat_keep_rows_in_order():
    t = _table(6)
    sub = t.subset(np.array([4, 0]))
    assert sub.x.tolist() == [t.x[4].tolist(), t.x[0].tolist()] and len(sub) == 2
    both = Table.concat([t, sub])
    assert len(both) == 8 and both.y[-2:].tolist() == [t.y[4], t.y[0]]
    with pytest.raises(FedFairError, match="different feature columns"):
        Table.concat([t, _table(names=("a", "c"))])
    with pytest.raises(FedFairError, match="no tables"):
        Table.concat([])
