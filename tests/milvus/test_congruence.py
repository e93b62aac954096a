"""The same queries through the faiss artifact and the Milvus target answer alike: identical
lists (ties allowed) on exact kinds, the tuned recall on HNSW, exclusions kept inside the
search with k kept, and the catalogue and seen items read back as written."""

from __future__ import annotations

import numpy as np
import pytest

import embrecall
from embrecall.embeddings import Embeddings
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_at_k
from embrecall.milvus.versions import MilvusVersions
from embrecall.recommender import Recommender
from helpers import assert_same_list, skewed_recsys

K = 10


def _score_of(space, metric):
    def score(vector):
        def of(i):
            v = space.vectors[space.lookup_rows([i])[0]]
            if metric == "cosine":
                return float(v @ vector / (np.linalg.norm(v) * np.linalg.norm(vector)))
            return float(v @ vector)

        return of

    return score


def test_every_query_answers_as_on_faiss(published, artifacts):
    milvus = embrecall.load(published.target.text)
    faiss_rec = embrecall.load(artifacts["v1"])
    items, users = faiss_rec.items, faiss_rec.users
    for u in users.ids:
        v = users.vectors[users.lookup_rows([u])[0]]
        assert_same_list(
            milvus.recommend(u, K), faiss_rec.recommend(u, K), score_of=_score_of(items, "ip")(v)
        )
        assert_same_list(milvus.similar_users(u, K), faiss_rec.similar_users(u, K))
    for i in items.ids[::5]:
        v = items.vectors[items.lookup_rows([i])[0]]
        assert_same_list(
            milvus.similar_items(i, K),
            faiss_rec.similar_items(i, K),
            score_of=_score_of(items, "cosine")(v),
        )
    # a batch answers row by row as single queries do
    batch_ids, batch_scores = milvus.recommend(users.ids[:8], K)
    for row, u in enumerate(users.ids[:8]):
        assert_same_list((batch_ids[row], batch_scores[row]), faiss_rec.recommend(u, K))
    # records are joined from the catalogue read back from Milvus
    served = milvus.recommend(users.ids[0], 3).to_dict()["results"]
    for got in served:
        assert {k: v for k, v in got.items() if k != "score"} == {
            "id": got["id"],
            **faiss_rec.catalog.record(got["id"]),
        }


def test_exclusions_stay_inside_the_search_and_k_is_kept(published, artifacts):
    milvus = embrecall.load(published.target.text)
    faiss_rec = embrecall.load(artifacts["v1"])
    user = int(faiss_rec.users.ids[3])
    top = faiss_rec.recommend(user, 5).ids.tolist()
    got = milvus.recommend(user, K, exclude=top)
    assert_same_list(got, faiss_rec.recommend(user, K, exclude=top))
    assert len(got.ids) == K and not set(got.ids.tolist()) & set(top)
    seen = set(faiss_rec.seen_items(user).tolist())
    assert seen and not seen & set(got.ids.tolist())
    # all but 19 of the other items excluded: exactly those 19 come back, for k = 30
    item = int(faiss_rec.items.ids[0])
    rest = [int(i) for i in faiss_rec.items.ids if i != item]
    excluded = rest[:-19]
    got = milvus.similar_items(item, 30, exclude=excluded)
    assert sorted(got.ids.tolist()) == sorted(rest[-19:])
    assert_same_list(got, faiss_rec.similar_items(item, 30, exclude=excluded))


def test_catalogue_and_seen_items_read_back_as_written(published, artifacts):
    milvus = embrecall.load(published.target.text)
    faiss_rec = embrecall.load(artifacts["v1"])
    ids = faiss_rec.items.ids[:50]
    assert milvus.catalog.records(ids) == faiss_rec.catalog.records(ids)
    assert milvus.find_items("Movie 45,", 5) == faiss_rec.find_items("Movie 45,", 5)
    np.testing.assert_array_equal(milvus.seen.indptr, faiss_rec.seen.indptr)
    np.testing.assert_array_equal(milvus.seen.item_rows, faiss_rec.seen.item_rows)
    described = milvus.describe()["queries"]["recommend"]
    assert described["engine"] == "milvus" and described["kind"] == "MilvusFLAT"


def test_string_ids(tmp_path, lite):
    from service.support import build_version

    path = tmp_path / "artifact"
    build_version(tmp_path / "data", 0, string_ids=True).save(str(path))
    MilvusVersions(lite).publish(str(path), "s1")
    milvus, faiss_rec = embrecall.load(lite), embrecall.load(path)
    for u in faiss_rec.users.ids[:10]:
        assert_same_list(milvus.recommend(u, K), faiss_rec.recommend(u, K))
    assert milvus.items.ids.tolist() == faiss_rec.items.ids.tolist()


@pytest.mark.parametrize("kind", ["HNSW", "IVF_FLAT"])
def test_an_approximate_kind_reaches_its_tuned_recall(tmp_path, lite, kind):
    items, users = skewed_recsys(n_items=3_000, n_users=300, dim=16, seed=3)
    rec = Recommender.build(
        Embeddings(np.arange(len(items)) * 2, items),
        Embeddings(np.arange(len(users)) + 10_000, users),
        index="Flat",
    )
    rec.save(str(tmp_path / "artifact"))
    MilvusVersions(lite).publish(str(tmp_path / "artifact"), "a1", index=kind, check=None)
    milvus = embrecall.load(lite)
    for name in ("recommend", "similar_items"):
        index = milvus.indexes[milvus.query_kinds[name].index_name]
        assert index.milvus_kind == kind and not index.is_exact
        tuning = index.notes["tuning"]
        assert tuning["recall"] >= tuning["target_recall"] == 0.95
    # measured here on every user, not only the tuning sample
    found, _ = milvus.recommend_by_vector(users, K)
    _, exact_rows = exact_topk(items, users, K, "ip")
    found_rows = np.asarray(found) // 2
    recall = recall_at_k(items, users, found_rows, exact_rows, "ip").mean()
    assert recall >= 0.95
    # and the index really is approximate (not a scan): its narrowest search loses recall
    index = milvus.indexes[milvus.query_kinds["recommend"].index_name]
    narrow = {"HNSW": {"efSearch": K}, "IVF_FLAT": {"nprobe": 1}}[kind]
    _, rows = index.search(users, K, params=narrow)
    assert recall_at_k(items, users, rows, exact_rows, "ip").mean() < 0.99


def test_filters_answer_as_on_faiss(published, artifacts):
    milvus = embrecall.load(published.target.text)
    faiss_rec = embrecall.load(artifacts["v1"])
    genre = faiss_rec.catalog.frame["genres"].iloc[0]
    expressions = [f"genres={genre}", "year>=1970"]
    items = faiss_rec.items
    for u in faiss_rec.users.ids[:20]:
        v = faiss_rec.users.vectors[faiss_rec.users.lookup_rows([u])[0]]
        got = milvus.recommend(u, K, filter=expressions)
        assert_same_list(
            got,
            faiss_rec.recommend(u, K, filter=expressions),
            score_of=_score_of(items, "ip")(v),
        )
        assert got.filter["passing"] == faiss_rec.compile_filter("items", expressions).count
