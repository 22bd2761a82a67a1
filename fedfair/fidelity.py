"""Fidelity of generated rows against real rows: density and coverage (Naeem, Oh, Uh, Choi & Yoo 2020,
"Reliable Fidelity and Diversity Metrics for Generative Models", eq. 3–4), with k nearest neighbours in
the encoded feature space (every column in [0, 1]).

With r_i the distance from real row X_i to its k-th nearest other real row and B(X_i, r_i) the open ball:

    density  = 1/(kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, r_i)]   (can exceed 1: generated rows crowd dense regions)
    coverage = 1/N Σ_i 1[∃ j: Y_j ∈ B(X_i, r_i)]     (the share of real rows with a generated row nearby)

for N real rows X and M generated rows Y. Strict inequalities, as the reference ``prdc`` package; a real
row with k duplicates has r_i = 0 and an empty ball. Distances are computed in chunks, so memory stays
O(chunk · N); ``max_rows`` subsamples each side (seeded) to bound the O(N M) time.
"""

from __future__ import annotations

import numpy as np

from fedfair.errors import FedFairError

CHUNK = 2048


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b``, shape (len(a), len(b))."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _radii(real: np.ndarray, k: int) -> np.ndarray:
    """Distance from each real row to its k-th nearest other real row (itself is the 0-th)."""
    out = np.empty(len(real))
    for lo in range(0, len(real), CHUNK):
        d = _distances(real[lo:lo + CHUNK], real)
        out[lo:lo + CHUNK] = np.partition(d, k, axis=1)[:, k]
    return out


def density_coverage(
    real: np.ndarray, fake: np.ndarray, k: int = 5, max_rows: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Density and coverage of ``fake`` rows against ``real`` rows (module doc)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise FedFairError(f"density/coverage needs two row matrices of equal width, got {real.shape} and {fake.shape}")
    if not 1 <= k < len(real) or not len(fake):
        raise FedFairError(f"density/coverage needs k in [1, {len(real) - 1}] and generated rows, got k={k}, "
                           f"{len(real)} real and {len(fake)} generated rows")
    if max_rows is not None:
        rng = np.random.default_rng(seed)
        real = real[rng.permutation(len(real))[:max_rows]] if len(real) > max_rows else real
        fake = fake[rng.permutation(len(fake))[:max_rows]] if len(fake) > max_rows else fake
    radii = _radii(real, k)
    inside = 0
    covered = np.zeros(len(real), dtype=bool)
    for lo in range(0, len(fake), CHUNK):
        hit = _distances(real, fake[lo:lo + CHUNK]) < radii[:, None]
        inside += int(hit.sum())
        covered |= hit.any(axis=1)
    return {"density": inside / (k * len(fake)), "coverage": float(covered.mean())}
