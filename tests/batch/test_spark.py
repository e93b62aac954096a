"""Batch recall on a real local Spark (local[2]): the same lists as the local path and as ALS."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

import embrecall
from embrecall.batch import CachedRecall, plan_batch, run_batch
from embrecall.batch.spark import load_als, read_factors, recall_dataframe, run_spark_batch
from embrecall.embeddings import Embeddings
from embrecall.interactions import Interactions
from embrecall.recommender import Recommender
from helpers import assert_same_list, import_extra

pyspark = import_extra("pyspark", reason="pyspark is not installed (embrecall[spark])")
# pyspark 4.3 warns about pandas 3 on every conversion; its warnings are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
N_USERS, N_ITEMS, RANK = 40, 90, 6


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    if not (
        os.environ.get("JAVA_HOME")
        or any(
            os.access(os.path.join(p, "java"), os.X_OK)
            for p in os.environ["PATH"].split(os.pathsep)
        )
    ):
        pytest.skip("Spark needs Java (a JRE on PATH or JAVA_HOME)")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("embrecall-batch-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")  # several batches a task
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    users = np.repeat(np.arange(1, N_USERS + 1), 12)
    items = np.concatenate([rng.choice(N_ITEMS, 12, replace=False) + 1 for _ in range(N_USERS)])
    return pd.DataFrame(
        {"userId": users, "movieId": items, "rating": rng.integers(1, 6, len(users)).astype(float)}
    )


@pytest.fixture(scope="module")
def als(spark, ratings):
    """A real Spark ALS model, trained on small seeded ratings."""
    from pyspark.ml.recommendation import ALS

    frame = spark.createDataFrame(ratings)
    model = ALS(
        rank=RANK,
        maxIter=4,
        regParam=0.1,
        seed=1,
        userCol="userId",
        itemCol="movieId",
        ratingCol="rating",
    ).fit(frame)
    return model, frame


def local_recommender(users: pd.DataFrame, items: pd.DataFrame, ratings=None) -> Recommender:
    as_emb = lambda f: Embeddings(f["id"].to_numpy(), np.stack(f["features"].to_numpy()))  # noqa: E731
    seen = None
    if ratings is not None:
        seen = Interactions(ratings["userId"].to_numpy(), ratings["movieId"].to_numpy())
    return Recommender.build(as_emb(items), as_emb(users), interactions=seen)


def test_spark_equals_als_recommend_for_all_users(als):
    model, _ = als
    ours = recall_dataframe(model.userFactors, model.itemFactors, k=10).toPandas()
    theirs = model.recommendForAllUsers(10).toPandas()
    theirs = {
        row.userId: (
            np.array([r["movieId"] for r in row.recommendations]),
            np.array([r["rating"] for r in row.recommendations], dtype=np.float32),
        )
        for row in theirs.itertuples()
    }
    assert len(ours) == len(theirs) == N_USERS
    for row in ours.itertuples():
        assert_same_list((np.asarray(row.ids), np.asarray(row.scores)), theirs[row.id], rtol=1e-4)


def test_spark_path_equals_the_local_path_with_seen_items(spark, als, ratings, tmp_path):
    model, frame = als
    users_pd, items_pd = model.userFactors.toPandas(), model.itemFactors.toPandas()
    rec = local_recommender(users_pd, items_pd, ratings)
    local_out, spark_out = str(tmp_path / "local.sqlite"), str(tmp_path / "spark.sqlite")
    run_batch(plan_batch(rec, k=15), local_out, progress=False)
    report = run_spark_batch(model.userFactors, model.itemFactors, spark_out, k=15, seen=frame)
    assert report.queries == {"recommend": N_USERS} and report.blocks_computed > 2
    local, distributed = CachedRecall(local_out), CachedRecall(spark_out)
    for user in rec.users.ids:
        got = distributed.recommend(user)
        assert_same_list(got, local.recommend(user), rtol=1e-5)
        assert not np.isin(got[0], rec.seen_items(user)).any()


def test_spark_reads_als_parquet_output_and_writes_parquet(spark, als, ratings, tmp_path):
    model, frame = als
    model.userFactors.write.parquet(str(tmp_path / "userFactors"))
    model.itemFactors.write.parquet(str(tmp_path / "itemFactors"))
    users, items = (
        read_factors(spark, tmp_path / "userFactors"),
        read_factors(spark, tmp_path / "itemFactors"),
    )
    out = tmp_path / "recs"
    report = run_spark_batch(users, items, str(out), k=7, seen=frame)
    assert (out / "CURRENT").read_text().strip() == report.version
    # The same files read by the local path (its parquet reader takes Spark output folders).
    rec = Recommender.build(
        embrecall.read_embeddings(tmp_path / "itemFactors"),
        embrecall.read_embeddings(tmp_path / "userFactors"),
        interactions=Interactions(ratings["userId"].to_numpy(), ratings["movieId"].to_numpy()),
    )
    recall = CachedRecall(str(out))
    for user in rec.users.ids:
        assert_same_list(recall.recommend(user), rec.recommend(user, 7))


def test_spark_writes_to_redis_from_the_executors(spark, als, redis_url):
    model, frame = als
    saved = load_als(spark, model)
    report = run_spark_batch(*saved, redis_url, k=5, seen=frame)
    rec = local_recommender(
        model.userFactors.toPandas(), model.itemFactors.toPandas(), frame.toPandas()
    )
    recall = CachedRecall(redis_url)
    for user in rec.users.ids:
        assert_same_list(recall.recommend(user), rec.recommend(user, 5))
    assert recall.version == report.version


def test_spark_refuses_bad_k_and_bad_factors(spark, als):
    model, _ = als
    with pytest.raises(embrecall.InvalidArgumentError, match="k must be a positive integer"):
        recall_dataframe(model.userFactors, model.itemFactors, k=0)
    with pytest.raises(embrecall.InputFormatError, match="no column 'vector'"):
        recall_dataframe(model.userFactors, model.itemFactors, features_column="vector")
