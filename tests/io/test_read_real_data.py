"""Optional: the real Spark ALS output in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embrecall.io import _fast_csv, read_embeddings

REPO_ROOT = Path(__file__).resolve().parents[2]
SPARK_ALS = REPO_ROOT / ".." / "shared" / "data" / "spark-als"


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("movielens_sparkals_user_embedding.csv", 610),
        ("movielens_sparkals_item_embedding.csv", 9724),
    ],
)
def test_spark_als_movielens(name, count):
    path = SPARK_ALS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real data is optional)")
    emb = read_embeddings(path)
    assert len(emb) == count and emb.dim == 10
    assert emb.id_kind == "int" and emb.ids[0] == 10
    assert emb.skipped == ()
    assert np.isfinite(emb.vectors).all()
    # the real Spark file is in the plain layout, so it takes the fast path
    assert _fast_csv.read_plain_layout(path, ["id", "features"], "id", "features") is not None
