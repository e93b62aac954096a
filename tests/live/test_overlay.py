"""The overlay's answers equal an exact rebuild over the changed data, for every query kind."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.errors import DimensionMismatchError, InvalidVectorError, UnknownIdError
from embrecall.index.recall import recall_at_k
from embrecall.live import changes
from embrecall.live.fold import fold
from embrecall.live.overlay import LiveOverlay
from embrecall.recommender import Recommender
from helpers import build_small

ITEM_IDS = np.arange(500) * 7 + 3
USER_IDS = np.arange(1000, 1060)


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """A small exact recommender with a seeded mix of every kind of change, and its oracle."""
    rec = build_small(tmp_path_factory.mktemp("overlay"), index="Flat")
    live = rec.live = LiveOverlay(rec)
    rng = np.random.default_rng(7)
    records = []
    for i in range(25):  # new items, near existing ones so that they compete for the top
        near = rec.items.vectors[rng.integers(500)] + 0.05 * rng.standard_normal(16)
        records.append(changes.upsert(rec, "items", 90_000 + i, near, {"title": f"New {i}"}))
    for item in rng.choice(ITEM_IDS, 25, replace=False):  # replaced vectors
        records.append(changes.upsert(rec, "items", int(item), rng.standard_normal(16)))
    live.state.apply(records)
    deleted = [int(i) for i in rng.choice(ITEM_IDS, 40, replace=False)] + [90_003]
    for item in deleted:
        if live.holds(rec, "items", item):
            live.state.apply([changes.delete(rec, live, "items", item)])
    deleted = [i for i in deleted if not live.holds(rec, "items", i)]
    users = [changes.upsert(rec, "users", int(u), rng.standard_normal(16)) for u in USER_IDS[:5]]
    users.append(changes.upsert(rec, "users", 5000, rng.standard_normal(16)))
    live.state.apply(users)
    live.state.apply([changes.delete(rec, live, "users", int(USER_IDS[-1]))])
    held = [int(i) for i in ITEM_IDS if live.holds(rec, "items", int(i))] + [90_000, 90_001]
    for u in USER_IDS[:10]:
        seen = [int(i) for i in rng.choice(held, 5, replace=False)]
        live.state.apply([changes.seen(rec, live, int(u), seen)])
    folded = fold(rec, live.state.snapshot)
    oracle = Recommender.build(
        folded.items,
        folded.users,
        catalog=folded.catalog,
        interactions=folded.interactions,
        index="Flat",
        progress=False,
    )
    return rec, oracle, deleted


def _check_equal(got, want, space, metric) -> None:
    """Every query's answer is right up to ties at the k-th score."""
    rows_got = space.lookup_rows(np.asarray(got.ids).ravel()).reshape(got.ids.shape)
    rows_want = space.lookup_rows(np.asarray(want.ids).ravel()).reshape(want.ids.shape)
    assert (rows_got >= 0).all(), "an id the changed data does not hold was returned"
    assert rows_got.shape == rows_want.shape
    return rows_got, rows_want


@pytest.mark.parametrize("query", ["recommend", "similar_users", "similar_items"])
def test_by_id_equals_an_exact_rebuild(changed, query):
    rec, oracle, deleted = changed
    kind = oracle.query_kinds[query]
    queries = oracle.query_space(kind).ids
    if query == "similar_items":
        queries = queries[::5]
    got = getattr(rec, query)(list(queries), 10)
    want = getattr(oracle, query)(list(queries), 10)
    target = oracle.target_space(kind)
    rows_got, rows_want = _check_equal(got, want, target, kind.metric)
    qvec = oracle.query_space(kind).vectors[oracle.query_space(kind).lookup_rows(list(queries))]
    recall = recall_at_k(target.vectors, qvec, rows_got, rows_want, kind.metric)
    assert recall.min() == 1.0
    if target is oracle.items:
        assert not set(deleted) & set(np.asarray(got.ids).ravel().tolist())


@pytest.mark.parametrize("query", ["recommend", "similar_users", "similar_items"])
@pytest.mark.parametrize("k", [10, 700])
def test_single_queries_equal_an_exact_rebuild(changed, query, k):
    """One query at a time scores the delta by its own product, cut at the main answer's k-th
    score; k beyond the catalogue leaves the main answer short, with no such floor."""
    rec, oracle, deleted = changed
    kind = oracle.query_kinds[query]
    target = oracle.target_space(kind)
    space = oracle.query_space(kind)
    for query_id in space.ids[::3].tolist():
        got = getattr(rec, query)(query_id, k)
        want = getattr(oracle, query)(query_id, k)
        assert got.ids.ndim == 1 and len(got.ids) == len(want.ids)
        rows_got, rows_want = _check_equal(got, want, target, kind.metric)
        qvec = space.vectors[space.row_of(query_id)][None]
        recall = recall_at_k(target.vectors, qvec, rows_got[None], rows_want[None], kind.metric)
        assert recall.min() == 1.0, query_id
        assert not set(deleted) & set(got.ids.tolist())
    q = np.random.default_rng(5).standard_normal(16).astype(np.float32)
    got, want = rec.search(query, q, k), oracle.search(query, q, k)
    rows_got, rows_want = _check_equal(got, want, target, kind.metric)
    assert recall_at_k(target.vectors, q[None], rows_got[None], rows_want[None], kind.metric) == 1


def test_by_vector_equals_an_exact_rebuild(changed):
    rec, oracle, _ = changed
    q = np.random.default_rng(3).standard_normal((20, 16)).astype(np.float32)
    for query in ("recommend", "similar_items", "similar_users"):
        got = rec.search(query, q, 10)
        want = oracle.search(query, q, 10)
        kind = oracle.query_kinds[query]
        target = oracle.target_space(kind)
        rows_got, rows_want = _check_equal(got, want, target, kind.metric)
        assert recall_at_k(target.vectors, q, rows_got, rows_want, kind.metric).min() == 1.0


def test_an_upserted_item_is_found_by_its_own_vector_at_rank_1(changed):
    rec, _, _ = changed
    vector = np.random.default_rng(11).standard_normal(16)
    rec.live.state.apply([changes.upsert(rec, "items", 123_456, vector, {"title": "Fresh"})])
    ids, _ = rec.similar_items_by_vector(vector, 5)
    assert ids[0] == 123_456
    assert rec.similar_items_by_vector(vector, 5).records[0]["title"] == "Fresh"
    rec.live.state.apply([changes.delete(rec, rec.live, "items", 123_456)])
    assert 123_456 not in rec.similar_items_by_vector(vector, 50).ids


def test_k_is_kept_and_deleted_query_ids_are_unknown(changed):
    rec, oracle, deleted = changed
    assert len(rec.similar_items(90_000, 50).ids) == 50
    with pytest.raises(UnknownIdError):
        rec.similar_items(deleted[0], 5)
    with pytest.raises(UnknownIdError):
        rec.recommend(int(USER_IDS[-1]), 5)
    assert set(rec.seen_items(1000).tolist()) == set(oracle.seen_items(1000).tolist())


def test_bad_changes_are_refused_before_the_log(changed):
    rec, _, deleted = changed
    with pytest.raises(DimensionMismatchError):
        changes.upsert(rec, "items", 1, np.ones(3))
    with pytest.raises(InvalidVectorError):
        changes.upsert(rec, "items", 1, [float("nan")] * 16)
    with pytest.raises(InvalidVectorError):  # similar_items is cosine: no direction
        changes.upsert(rec, "items", 1, np.zeros(16))
    with pytest.raises(UnknownIdError):
        changes.delete(rec, rec.live, "items", deleted[0])
    with pytest.raises(UnknownIdError):
        changes.seen(rec, rec.live, 1000, [deleted[0]])


def test_a_user_deleted_and_added_again_starts_with_no_history(changed):
    rec, _, _ = changed
    user = int(USER_IDS[20])
    assert len(rec.seen_items(user)) > 0
    vector = rec.users.vectors[20]
    rec.live.state.apply([changes.delete(rec, rec.live, "users", user)])
    rec.live.state.apply([changes.upsert(rec, "users", user, vector)])
    assert len(rec.seen_items(user)) == 0
    # nothing left out: every item held comes back, as for the raw vector
    assert set(rec.recommend(user, 600).ids) == set(rec.recommend_by_vector(vector, 600).ids)
    folded = fold(rec, rec.live.state.snapshot)
    assert user not in set(folded.interactions.users.tolist())


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """The same changes as ``changed``, in a copy no other test changes further."""
    return changed.__wrapped__(tmp_path_factory)


@pytest.mark.parametrize("query", ["recommend", "similar_items"])
@pytest.mark.parametrize("negate", [False, True])
def test_filters_apply_to_pending_changes_as_to_a_rebuild(untouched, query, negate):
    rec, oracle, deleted = untouched
    genre = rec.catalog.frame["genres"].iloc[0]
    # new items have a title and no genres: "!=" keeps them, "=" leaves them out
    expressions = [f"genres{'!=' if negate else '='}{genre}"]
    kind = oracle.query_kinds[query]
    queries = list(oracle.query_space(kind).ids[:: 5 if query == "similar_items" else 1])
    got = getattr(rec, query)(queries, 10, filter=expressions)
    want = getattr(oracle, query)(queries, 10, filter=expressions)
    target = oracle.target_space(kind)
    rows_got, rows_want = _check_equal(got, want, target, kind.metric)
    qvec = oracle.query_space(kind).vectors[oracle.query_space(kind).lookup_rows(queries)]
    assert recall_at_k(target.vectors, qvec, rows_got, rows_want, kind.metric).min() == 1.0
    allowed = oracle.compile_filter("items", expressions).mask
    assert allowed[rows_got[rows_got >= 0]].all()
    assert not set(got.ids.ravel().tolist()) & set(deleted)
    assert got.filter["expressions"] == expressions
    new = set(range(90_000, 90_025)) & set(got.ids.ravel().tolist())
    assert bool(new) == negate  # the new items compete only when the filter lets them


def test_an_upserted_item_passes_a_filter_by_its_own_fields(untouched):
    rec, _, _ = untouched
    genre = rec.catalog.frame["genres"].iloc[0]
    vector = np.random.default_rng(3).standard_normal(16).astype(np.float32) * 10
    fields = {"title": "Fresh, The (2031)", "genres": genre}
    rec.live.state.apply([changes.upsert(rec, "items", 91_000, vector, fields)])
    try:
        top = rec.similar_items_by_vector(vector, 3, filter=[f"genres={genre}", "year>=2030"])
        assert top.ids[0] == 91_000 and len(top.ids) == 1
        assert 91_000 not in rec.similar_items_by_vector(vector, 3, filter=["year<2030"]).ids
    finally:
        rec.live.state.apply([changes.delete(rec, rec.live, "items", 91_000)])


def test_similar_users_with_pending_changes_keep_the_user_catalogue(tmp_path):
    import pandas as pd

    from embrecall.catalog import Catalog

    rec = build_small(tmp_path, index="Flat")
    frame = pd.DataFrame({"gender": ["F", "M"] * 30}, index=pd.Index(USER_IDS, name="userId"))
    rec.user_catalog = Catalog(frame, source="users")
    rec.live = LiveOverlay(rec)
    vector = np.random.default_rng(2).standard_normal(16)
    rec.live.state.apply([changes.upsert(rec, "users", int(USER_IDS[0]), vector)])
    answer = rec.similar_users(int(USER_IDS[1]), 5, filter=["gender=F"])
    assert answer.records and {r["gender"] for r in answer.records} == {"F"}
