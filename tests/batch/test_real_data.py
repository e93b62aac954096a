"""Batch recall over the real MovieLens + Spark ALS files (skipped when ../shared is absent)."""

from __future__ import annotations

import numpy as np

import embrecall
from embrecall.batch import CachedRecall, plan_batch, run_batch
from helpers import assert_same_list, shared_file


def test_movielens_als_batch_equals_online_for_every_user(tmp_path):
    items = shared_file("spark-als", "movielens_sparkals_item_embedding.csv")
    users = shared_file("spark-als", "movielens_sparkals_user_embedding.csv")
    ratings = shared_file("movielens", "ml-latest-small", "ratings.csv")
    movies = shared_file("movielens", "ml-latest-small", "movies.csv")
    embrecall.build(
        items, users, out=tmp_path / "art", catalog=movies, interactions=ratings, progress=False
    )
    rec = embrecall.load(tmp_path / "art")
    out = str(tmp_path / "recs.sqlite")
    report = run_batch(plan_batch(rec, k=30, block_size=128), out, progress=False)
    assert report.queries == {"recommend": 610}
    recall = CachedRecall(out)
    items = dict(zip(rec.items.ids.tolist(), rec.items.vectors.astype(np.float64)))
    for user in rec.users.ids:
        vector = rec.users.vectors[rec.users.row_of(user)].astype(np.float64)
        ids, scores = recall.recommend(user)
        # Many ALS item vectors are identical: a tied group can straddle the 30th place.
        assert_same_list(
            (ids, scores), rec.recommend(user, 30), score_of=lambda i, v=vector: items[i] @ v
        )
        assert not np.isin(ids, rec.seen_items(user)).any()
    top = recall.results(*recall.recommend(1, k=3))
    assert all(r["title"] for r in top)  # titles from movies.csv, commas and all
