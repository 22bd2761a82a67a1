"""A privacy audit of what a client uploads, computed on the client: the only place that holds the
real training rows, the held-out rows and the upload together. It reports numbers only.

Rows are compared as the vectors a client uploads, ``Table.to_array()`` = (x, s, y as 0/1), by
Euclidean distance.

* ``exact_matches``: uploaded rows equal (in float32) to some training row.
* ``dcr_upload_median`` / ``dcr_upload_p5``: the distance from each uploaded row to its closest
  training record (DCR), median and 5th percentile; ``dcr_holdout_*``: the same for the client's
  held-out rows, i.e. what "a new row from the same population" looks like. Uploads much closer to
  the training rows than held-out rows are copies, not samples.
* ``mia_auc``: a nearest-neighbour membership-inference attack. Each candidate row (training rows =
  members, held-out rows = non-members) is scored by minus its distance to the closest uploaded row;
  the AUC of members against non-members (0.5: the upload tells members and non-members apart no
  better than chance).
"""

from __future__ import annotations

import numpy as np

from fedfair.errors import FedFairError
from fedfair.table import Table


def closest(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row."""
    from sklearn.neighbors import NearestNeighbors  # only when an audit runs: keeps process start-up light

    index = NearestNeighbors(n_neighbors=1).fit(reference)
    return index.kneighbors(queries, return_distance=True)[0][:, 0]


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie): the Mann–Whitney form of the ROC AUC."""
    from scipy.stats import rankdata  # only when an audit runs: keeps process start-up light

    ranks = rankdata(np.concatenate([positives, negatives]))
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def exact_matches(upload: np.ndarray, train: np.ndarray) -> int:
    """How many uploaded rows equal some training row, in float32."""
    seen = {row.tobytes() for row in train.astype(np.float32)}
    return int(sum(row.tobytes() in seen for row in upload.astype(np.float32)))


def audit(upload: Table, train: Table, holdout: Table) -> dict[str, float | int]:
    """The numbers of the module docstring for one client's upload."""
    if len(upload) == 0 or len(train) == 0 or len(holdout) == 0:
        raise FedFairError(
            f"the privacy audit needs rows in the upload, training and held-out sets; "
            f"got {len(upload)}, {len(train)}, {len(holdout)}"
        )
    up, tr, ho = (t.to_array().astype(np.float64) for t in (upload, train, holdout))
    dcr_upload = closest(tr, up)
    dcr_holdout = closest(tr, ho)
    to_upload = closest(up, np.vstack([tr, ho]))
    return {
        "n_upload": len(up),
        "exact_matches": exact_matches(up, tr),
        "dcr_upload_median": float(np.median(dcr_upload)),
        "dcr_upload_p5": float(np.percentile(dcr_upload, 5)),
        "dcr_holdout_median": float(np.median(dcr_holdout)),
        "dcr_holdout_p5": float(np.percentile(dcr_holdout, 5)),
        "mia_auc": auc(-to_upload[: len(tr)], -to_upload[len(tr) :]),
    }
