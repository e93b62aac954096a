"""Shared, seeded, synthetic test data with known answers. Nothing here reads files from outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def planted_clusters(
    n: int = 2000, dim: int = 16, clusters: int = 8, seed: int = 0, spread: float = 0.15
):
    """Vectors in tight clusters around orthonormal centres; returns (vectors, labels, centres).

    The right neighbours of a vector are the members of its own cluster, whatever the index.
    """
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:clusters].astype(np.float32)
    labels = rng.integers(0, clusters, n)
    vectors = centres[labels] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    norms = rng.lognormal(0, 0.3, (n, 1)).astype(
        np.float32
    )  # skewed norms, as trained MF vectors have
    return (vectors * norms).astype(np.float32), labels, centres


@pytest.fixture(scope="session")
def clusters():
    return planted_clusters()


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
