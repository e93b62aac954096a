"""Optional checks on the real files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import embrecall
from embrecall.index import exact_search
from helpers import assert_same_list, shared_file


@pytest.fixture(scope="module")
def movielens_artifact(tmp_path_factory):
    items = shared_file("spark-als", "movielens_sparkals_item_embedding.csv")
    users = shared_file("spark-als", "movielens_sparkals_user_embedding.csv")
    movies = shared_file("movielens", "ml-latest-small", "movies.csv")
    ratings = shared_file("movielens", "ml-latest-small", "ratings.csv")
    out = tmp_path_factory.mktemp("ml") / "artifact"
    embrecall.build(items, users, catalog=movies, interactions=ratings, out=out)
    return embrecall.load(out), ratings


def test_user_1_gets_exactly_k_unseen_movies_matching_exact_ip(movielens_artifact):
    rec, ratings_path = movielens_artifact
    ratings = pd.read_csv(ratings_path)
    rated = set(ratings.loc[ratings.userId == 1, "movieId"])
    ids, scores = rec.recommend(1, k=30)
    assert len(ids) == 30 and not rated & set(ids.tolist())
    seen_rows = rec.items.lookup_rows(sorted(rated))
    row = rec.users.row_of(1)
    o_scores, o_rows = exact_search(
        rec.items.vectors, rec.users.vectors[row : row + 1], 30, "ip", [seen_rows[seen_rows >= 0]]
    )
    # Identical ALS vectors tie: any of a tied group at the 30th place is right.
    vector = rec.users.vectors[row].astype(np.float64)
    assert_same_list(
        (ids, scores),
        (rec.items.ids[o_rows[0]], o_scores[0]),
        score_of=lambda i: rec.items.vectors[rec.items.row_of(i)].astype(np.float64) @ vector,
    )
    titles = [r["title"] for r in rec.results(ids, scores)]
    assert all(t and "(" in t for t in titles)


def test_titles_with_commas_and_similar_movies(movielens_artifact):
    rec, _ = movielens_artifact
    results = rec.results(*rec.similar_items(1, k=10))  # 1 = Toy Story (1995)
    assert len(results) == 10 and 1 not in [r["id"] for r in results]
    assert rec.catalog.record(11)["title"] == "American President, The (1995)"


def test_ml_1m_movies_dat_accents_in_results(tmp_path):
    movies = shared_file("movielens", "ml-1m", "movies.dat")
    catalog = embrecall.read_catalog(movies)
    titles = [catalog.record(i).get("title", "") for i in range(1, 4000)]
    accented = [t for t in titles if any(c in t for c in "éèàçô")]
    assert accented and not any("Ã" in t for t in titles)
