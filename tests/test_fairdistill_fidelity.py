"""Density and coverage (Naeem et al. 2020, fedfair.fidelity) against the reference ``prdc`` package."""

import contextlib
import io

import numpy as np
import pytest

from fedfair.errors import FedFairError
from fedfair.fidelity import density_coverage

prdc = pytest.importorskip("prdc")


@pytest.mark.parametrize(("n_real", "n_fake", "shift", "k"), [(300, 200, 0.0, 5), (500, 400, 0.7, 5), (2500, 300, 0.3, 3)])
def test_matches_prdc(n_real, n_fake, shift, k):
    rng = np.random.default_rng(n_real)
    real = rng.normal(size=(n_real, 4))
    fake = rng.normal(shift, 1.3, size=(n_fake, 4))
    with contextlib.redirect_stdout(io.StringIO()):
        want = prdc.compute_prdc(real, fake, k)
    got = density_coverage(real, fake, k)  # 2,500 real rows: more than one chunk
    assert got["density"] == pytest.approx(want["density"], abs=1e-12)
    assert got["coverage"] == pytest.approx(want["coverage"], abs=1e-12)
    assert 0 < got["coverage"] < 1


def test_copies_cover_everything_and_far_rows_nothing():
    real = np.random.default_rng(0).random((200, 3))
    assert density_coverage(real, real + 1e-9)["coverage"] == 1.0
    far = density_coverage(real, real + 10.0)
    assert far == {"density": 0.0, "coverage": 0.0}


def test_subsampling_and_errors():
    rng = np.random.default_rng(1)
    real, fake = rng.random((400, 2)), rng.random((400, 2))
    small = density_coverage(real, fake, max_rows=100)
    assert 0.5 < small["density"] < 1.5 and small == density_coverage(real, fake, max_rows=100)
    with pytest.raises(FedFairError, match="equal width"):
        density_coverage(real, fake[:, :1])
    with pytest.raises(FedFairError, match="k in"):
        density_coverage(real[:3], fake, k=5)
