"""Training: embeddings over the training users and items, deterministic, written as Spark CSV."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from eval_data import planted_interactions

from embrecall.errors import InputFormatError, InvalidArgumentError, MissingExtraError
from embrecall.evaluate.train import train_als, write_spark_csv
from embrecall.interactions import Interactions
from helpers import import_extra


@pytest.fixture(scope="module")
def interactions():
    return planted_interactions(n_users=60, n_items=90, seed=8)[0]


@pytest.fixture(scope="module")
def trained(interactions):
    import_extra("implicit")
    return train_als(interactions, factors=8, iterations=4, seed=1, progress=False)


def test_embeddings_cover_the_training_users_and_items(interactions, trained):
    users, items = trained
    assert users.dim == items.dim == 8
    assert set(users.ids.tolist()) == set(interactions.users.tolist())
    assert set(items.ids.tolist()) == set(interactions.items.tolist())
    assert users.vectors.dtype == np.float32 and np.isfinite(items.vectors).all()


def test_same_seed_same_embeddings(interactions, trained):
    users, items = train_als(interactions, factors=8, iterations=4, seed=1, progress=False)
    np.testing.assert_array_equal(users.vectors, trained[0].vectors)
    np.testing.assert_array_equal(items.vectors, trained[1].vectors)


def test_repeated_pairs_count_once_when_binary():
    import_extra("implicit")
    once = Interactions([1, 1, 2, 2, 3], [7, 8, 7, 9, 8])
    twice = Interactions([1, 1, 1, 2, 2, 3], [7, 8, 7, 7, 9, 8])
    a = train_als(once, factors=2, iterations=3, seed=0, progress=False)
    b = train_als(twice, factors=2, iterations=3, seed=0, progress=False)
    np.testing.assert_allclose(a[1].vectors, b[1].vectors, rtol=1e-5)


def test_string_ids_and_rating_weighting():
    import_extra("implicit")
    inter = Interactions(["u1", "u1", "u2"], ["a", "b", "a"], ratings=[5.0, 1.0, 3.0])
    users, items = train_als(inter, factors=2, iterations=2, weighting="rating", progress=False)
    assert users.id_kind == items.id_kind == "str"
    with pytest.raises(InputFormatError, match="needs ratings"):
        train_als(Interactions(["u"], ["a"]), weighting="rating")
    with pytest.raises(InputFormatError, match="positive ratings"):
        train_als(Interactions(["u"], ["a"], ratings=[0.0]), weighting="rating")


def test_refusals():
    inter = Interactions([1], [2])
    for kwargs, message in (
        ({"factors": 0}, "factors"),
        ({"iterations": 1.5}, "iterations"),
        ({"alpha": 0}, "alpha"),
        ({"backend": "torch"}, "backend"),
        ({"weighting": "tf"}, "weighting"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            train_als(inter, **kwargs)


def test_spark_backend_names_the_extra_when_pyspark_is_missing():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyspark is installed")
    with pytest.raises(MissingExtraError, match=r"embrecall\[spark\]"):
        train_als(Interactions([1], [2]), backend="spark")


def test_spark_csv_has_the_layout_spark_writes(tmp_path, trained):
    _, items = trained
    path = tmp_path / "items.csv"
    write_spark_csv(items, path)
    assert path.read_text().splitlines()[0] == "id,features"
    frame = pd.read_csv(path)
    vectors = np.array([json.loads(f) for f in frame["features"]], dtype=np.float32)
    np.testing.assert_array_equal(frame["id"].to_numpy(), items.ids)
    np.testing.assert_array_equal(vectors, items.vectors)  # float32 values survive the text


def test_spark_csv_reads_back_with_read_embeddings(tmp_path, trained):
    try:
        from embrecall.io import read_embeddings
    except ImportError:
        pytest.skip("embrecall.io.read_embeddings is not available yet")
    users, _ = trained
    write_spark_csv(users, tmp_path / "users.csv")
    back = read_embeddings(tmp_path / "users.csv")
    np.testing.assert_array_equal(back.ids, users.ids)
    np.testing.assert_array_equal(back.vectors, users.vectors)


@pytest.mark.skipif(
    not os.environ.get("EMBRECALL_TEST_SPARK"),
    reason="starts a JVM (~40 s); set EMBRECALL_TEST_SPARK=1 to run",
)
def test_spark_backend_learns_the_planted_tastes_too():
    import_extra("pyspark")
    from embrecall.evaluate.quality import evaluate_quality
    from embrecall.evaluate.split import time_split
    from embrecall.recommender import Recommender

    inter, _, _ = planted_interactions(n_users=300, n_items=400, seed=11)
    split = time_split(inter, holdout=0.2)
    users, items = train_als(
        split.train,
        factors=16,
        iterations=10,
        regularization=0.05,
        alpha=10.0,
        backend="spark",
        threads=2,
        progress=False,
    )
    assert set(users.ids.tolist()) == set(split.train.users.tolist())
    report = evaluate_quality(
        Recommender.build(items, users, interactions=split.train), split.test, ks=(10,)
    )
    assert report.value("model", 10, "hit_rate") >= report.value("popularity", 10, "hit_rate") + 0.4
