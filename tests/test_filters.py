"""Filters: expressions, typed catalogue fields, and the exact filtered top-k on every plan.

The oracle is numpy: a row passes when a pandas evaluation of the expressions says so, and the
right answer is the top-k of exact float64 scores among passing, non-excluded rows, ties at the
k-th score tolerated.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embrecall
from embrecall.catalog import Catalog, read_catalog
from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError
from embrecall.filters import FieldTable, parse_filter, parse_filters
from embrecall.index import VectorIndex
from embrecall.index.filtered import filtered_search, plan_for
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender
from helpers import shared_file

GENRE_NAMES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Romance"]
COLOURS = ["red", "green", "blue"]
N, DIM = 3000, 8


# -- a world with fields of every type ---------------------------------------------------------
def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors *= rng.lognormal(0, 0.3, (N, 1)).astype(np.float32)  # skewed norms: ip != cosine
    ids = np.arange(N, dtype=np.int64) * 3 + 1
    genres = [
        "|".join(sorted(rng.choice(GENRE_NAMES, rng.integers(1, 4), replace=False)))
        for _ in range(N)
    ]
    year = rng.integers(1950, 2021, N).astype(float)
    year[rng.random(N) < 0.03] = np.nan  # some have no year
    frame = pd.DataFrame(
        {
            "title": [f"Film {i}" for i in range(N)],
            "genres": genres,
            "year": year,
            "colour": rng.choice(COLOURS, N),
        },
        index=pd.Index(ids, name="id"),
    )
    return Embeddings(ids, vectors, source="items"), Catalog(frame, source="test"), frame


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def table(world):
    items, catalog, _ = world
    return FieldTable.from_catalog(catalog, items.ids)


@pytest.fixture(scope="module")
def indexes(world):
    items, _, _ = world
    return {
        "Flat": VectorIndex.build(items.vectors, "ip", "Flat", progress=False),
        "IVF32,Flat": VectorIndex.build(
            items.vectors, "ip", "IVF32,Flat", search_params={"nprobe": 12}, progress=False
        ),
        "HNSW16": VectorIndex.build(
            items.vectors, "cosine", "HNSW16", search_params={"efSearch": 32}, progress=False
        ),
    }


def oracle_mask(frame: pd.DataFrame, expressions: list[str]) -> np.ndarray:
    """Which rows pass, evaluated with pandas, independently of embrecall.filters."""
    mask = np.ones(len(frame), dtype=bool)
    for expr in expressions:
        for op in (">=", "<=", "!=", "=", ">", "<"):
            if op in expr:
                name, value = expr.split(op, 1)
                break
        col = frame[name]
        if name == "genres":
            held = np.zeros(len(frame), dtype=bool)
            for v in value.split("|"):
                held |= col.str.split("|").apply(lambda g, v=v: v in g).to_numpy()
            mask &= held if op == "=" else ~held
        elif name == "colour":
            held = col.isin(value.split("|")).to_numpy()
            mask &= held if op == "=" else ~held
        else:
            numbers = [float(v) for v in value.split("|")]
            x = col.to_numpy()
            with np.errstate(invalid="ignore"):
                mask &= {
                    "=": np.isin(x, numbers),
                    "!=": ~np.isin(x, numbers),
                    ">=": x >= numbers[0],
                    "<=": x <= numbers[0],
                    ">": x > numbers[0],
                    "<": x < numbers[0],
                }[op]
    return mask


def true_scores(vectors, q, metric):
    base = vectors.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        q = q / np.linalg.norm(q)
    if metric == "l2":
        return -((base - q) ** 2).sum(axis=1)  # negated: higher is better here
    return base @ q


def check_answer(vectors, metric, q, k, mask, excluded, rows, *, exact: bool):
    """Every result passes and is not excluded; k kept; exact (ties allowed) or a recall."""
    allowed = mask.copy()
    allowed[excluded] = False
    got = rows[rows >= 0]
    assert allowed[got].all(), "a result fails the filter or is excluded"
    assert len(set(got.tolist())) == got.size
    assert got.size == min(k, int(allowed.sum())), (got.size, k, int(allowed.sum()))
    if got.size == 0:
        return 1.0
    scores = true_scores(vectors, q, metric)
    best = np.sort(scores[allowed])[::-1]
    kth = best[got.size - 1]
    hits = float((scores[got] >= kth - 1e-4 * max(1.0, abs(kth))).mean())
    if exact:
        assert hits == 1.0, "the exact plan missed a row of the filtered top-k"
    return hits


# -- expressions --------------------------------------------------------------------------------
def test_expressions_parse_into_conditions():
    assert str(parse_filter("genres=Comedy|Drama")) == "genres=Comedy|Drama"
    assert parse_filter(" year >= 2000 ").op == ">="
    assert parse_filter("gender!=F").values == ("F",)
    assert parse_filters(["b=1", "a=2", "b=1"]) == (parse_filter("a=2"), parse_filter("b=1"))
    assert parse_filters(None) == ()


@pytest.mark.parametrize(
    "bad, words",
    [
        ("genres", "expected FIELD=VALUE"),
        ("year>=", "value after"),
        ("=Comedy", "expected FIELD=VALUE"),
        ("genres=Comedy|", "value after"),
        ("year=>2000", "value after"),
        ("year~2000", "expected FIELD=VALUE"),
    ],
)
def test_bad_expressions_are_refused_with_the_expression(bad, words):
    with pytest.raises(InvalidArgumentError, match=words):
        parse_filter(bad)


@pytest.mark.parametrize(
    "bad, words",
    [
        ("genre=Comedy", "unknown field 'genre'"),
        ("genres>=2", "'genres' is list; >= needs a numeric field"),
        ("colour<red", "'colour' is text"),
        ("year>=recent", "'year' is numeric and 'recent' is not a number"),
        ("year=nan", "not a finite number"),
    ],
)
def test_unknown_fields_and_type_mismatches_name_the_field(table, bad, words):
    with pytest.raises(InvalidArgumentError, match=words):
        table.compile([bad])


# -- typed fields ---------------------------------------------------------------------------
def test_fields_are_typed_from_the_catalogue(table):
    kinds = {name: f.kind for name, f in table.fields.items()}
    # titles are one per row: no filter field; genres hold "|": a list field
    assert kinds == {"genres": "list", "year": "number", "colour": "text"}
    assert set(table.describe()["genres"]["values"]) == set(GENRE_NAMES)


def test_rows_without_a_catalogue_entry_pass_no_equality(world):
    items, catalog, frame = world
    partial = Catalog(frame.iloc[: N // 2], source="half")
    fields = FieldTable.from_catalog(partial, items.ids)
    assert not fields.compile(["colour=red|green|blue"]).mask[N // 2 :].any()
    assert fields.compile(["colour!=red"]).mask[N // 2 :].all()  # "not red": no colour at all
    assert not fields.compile(["year>=0"]).mask[N // 2 :].any()


def test_movielens_titles_give_a_numeric_year():
    path = shared_file("movielens", "ml-latest-small", "movies.csv")
    catalog = read_catalog(path)
    fields = FieldTable.from_catalog(catalog, catalog.ids)
    assert set(fields.fields) == {"genres", "year"}
    frame = catalog.frame
    years = frame["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float).to_numpy()
    np.testing.assert_array_equal(fields.fields["year"].column, years)
    comedies_since_2000 = fields.compile(["genres=Comedy", "year>=2000"])
    expected = frame["genres"].str.split("|").apply(lambda g: "Comedy" in g) & (years >= 2000)
    np.testing.assert_array_equal(comedies_since_2000.mask, expected.to_numpy())


def test_ml1m_users_dat_is_a_user_catalogue():
    catalog = read_catalog(shared_file("movielens", "ml-1m", "users.dat"))
    assert catalog.columns == ["gender", "age", "occupation", "zip"] and len(catalog) == 6040
    fields = FieldTable.from_catalog(catalog, catalog.ids)
    assert {n: f.kind for n, f in fields.fields.items()} == {
        "gender": "text",
        "age": "number",
        "occupation": "number",
        "zip": "text",
    }
    frame = catalog.frame
    women_25_34 = fields.compile(["gender=F", "age=25"])
    assert women_25_34.count == int(((frame.gender == "F") & (frame.age == 25)).sum()) > 0


def test_a_compiled_filter_is_cached_and_order_does_not_matter(table):
    a = table.compile(["genres=Comedy", "year>=2000"])
    assert table.compile(["year>=2000", "genres=Comedy"]) is a


def test_the_packed_bitmap_clears_excluded_rows_sharing_a_byte(table):
    allowed = table.compile(["colour!=purple"])  # every row passes
    cleared = np.unpackbits(allowed.packed_without(np.array([8, 9, 15, 2999])), bitorder="little")
    assert not cleared[[8, 9, 15, 2999]].any() and cleared[:8].all() and cleared[10:15].all()


# -- the exact filtered top-k, by property ---------------------------------------------------
field_exprs = st.one_of(
    st.builds(
        lambda vs, neg: ("genres!=" if neg else "genres=") + "|".join(vs),
        st.lists(st.sampled_from(GENRE_NAMES + ["Western"]), min_size=1, max_size=3, unique=True),
        st.booleans(),
    ),
    st.builds(
        lambda vs, neg: ("colour!=" if neg else "colour=") + "|".join(vs),
        st.lists(st.sampled_from(COLOURS), min_size=1, max_size=2, unique=True),
        st.booleans(),
    ),
    st.builds(
        lambda op, y: f"year{op}{y}",
        st.sampled_from([">=", "<=", ">", "<", "=", "!="]),
        st.integers(1940, 2030),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    expressions=st.lists(field_exprs, min_size=1, max_size=3),
    index_name=st.sampled_from(["Flat", "IVF32,Flat", "HNSW16"]),
    plan=st.sampled_from(["scan", "index"]),
    k=st.integers(1, 25),
    n_excluded=st.sampled_from([0, 5, 400, 2900]),
    seed=st.integers(0, 10_000),
)
def test_filtered_search_matches_a_numpy_oracle(
    world, table, indexes, expressions, index_name, plan, k, n_excluded, seed
):
    items, _, frame = world
    index = indexes[index_name]
    rng = np.random.default_rng(seed)
    mask = oracle_mask(frame, expressions)
    allowed = table.compile(expressions)
    np.testing.assert_array_equal(allowed.mask, mask)
    assert allowed.count == int(mask.sum())
    queries = rng.standard_normal((3, DIM)).astype(np.float32)
    excluded = [np.sort(rng.choice(N, n_excluded, replace=False)) for _ in range(3)]
    scores, rows, used = filtered_search(
        index, items.vectors, queries, k, allowed, exclude=excluded, plan=plan
    )
    assert used == plan and rows.shape == (3, k)
    exact = plan == "scan" or index_name == "Flat"
    for i in range(3):
        # every result passes and is not excluded, k is kept, and the exact plans are exact;
        # an approximate index's recall over many queries is the next test's
        check_answer(
            items.vectors, index.metric, queries[i], k, mask, excluded[i], rows[i], exact=exact
        )


def test_the_widened_index_plan_keeps_recall_at_every_selectivity(world, table, indexes):
    items, _, frame = world
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((100, DIM)).astype(np.float32)
    # nprobe 12 / efSearch 32 reach 0.95 unfiltered (the first filter passes every row); the
    # widened search keeps that at every selectivity
    for expressions in (
        ["colour!=purple"],
        ["year>=1960"],
        ["colour=red"],
        ["genres=Horror", "colour=blue"],
    ):
        allowed = table.compile(expressions)
        for name in ("IVF32,Flat", "HNSW16"):
            index = indexes[name]
            _, rows, _ = filtered_search(index, items.vectors, queries, 10, allowed, plan="index")
            recall = np.mean(
                [
                    check_answer(
                        items.vectors, index.metric, q, 10, allowed.mask, [], r, exact=False
                    )
                    for q, r in zip(queries, rows)
                ]
            )
            assert recall >= 0.95, (name, expressions, recall)


def test_empty_and_all_pass_filters(world, table, indexes):
    items, _, _ = world
    q = items.vectors[:2]
    nothing = table.compile(["genres=Western"])
    assert nothing.count == 0
    for index in indexes.values():
        scores, rows, _ = filtered_search(index, items.vectors, q, 10, nothing)
        assert (rows == -1).all() and np.isnan(scores).all()
    everything = table.compile(["colour!=purple"])
    assert everything.count == N
    flat = indexes["Flat"]
    _, plain = flat.search(q, 10)
    for plan in ("scan", "index"):
        _, rows, _ = filtered_search(flat, items.vectors, q, 10, everything, plan=plan)
        np.testing.assert_array_equal(rows, plain)


def test_the_plan_follows_the_count(world, table, indexes):
    selective = table.compile(["colour=red", "genres=Horror", "year<1960"])
    broad = table.compile(["year>=1950"])
    assert selective.count < 200 and broad.count > 2500
    for name in ("IVF32,Flat", "HNSW16"):
        assert plan_for(indexes[name], selective) == "scan"
    assert plan_for(indexes["IVF32,Flat"], broad) == "index"
    # a graph's widened beam costs more than scanning 3,000 rows, unless the beam is tiny
    assert plan_for(indexes["HNSW16"], broad) == "scan"
    assert plan_for(indexes["HNSW16"], broad, {"efSearch": 1}) == "index"
    # below 30% passing a graph always scans: its deeper ranks are not accurate enough
    assert plan_for(indexes["HNSW16"], table.compile(["year<1960"]), {"efSearch": 1}) == "scan"
    # an exact index scans the passing rows up to half of them, then searches with a selector
    assert plan_for(indexes["Flat"], table.compile(["year<1985"])) == "scan"
    assert plan_for(indexes["Flat"], broad) == "index"


# -- through the recommender ----------------------------------------------------------------
@pytest.fixture(scope="module")
def recommender(world, tmp_path_factory):
    items, catalog, _ = world
    rng = np.random.default_rng(9)
    users = Embeddings(
        np.arange(50, dtype=np.int64), rng.standard_normal((50, DIM)).astype(np.float32)
    )
    user_frame = pd.DataFrame(
        {"gender": rng.choice(["F", "M"], 50), "age": rng.choice([18, 25, 35, 45], 50)},
        index=pd.Index(np.arange(50), name="userId"),
    )
    ratings = pd.DataFrame(
        {
            "userId": np.repeat(np.arange(50), 300),
            "movieId": np.concatenate(
                [rng.choice(items.ids, 300, replace=False) for _ in range(50)]
            ),
            "rating": 4.0,
        }
    )
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    ratings.to_csv(path, index=False)
    return Recommender.build(
        items,
        users,
        catalog=catalog,
        user_catalog=Catalog(user_frame, source="users"),
        interactions=read_interactions(path),
        index="Flat",
        progress=False,
    )


def test_recommend_with_a_filter_keeps_k_and_leaves_out_seen_items(recommender, world):
    items, _, frame = world
    expressions = ["genres=Comedy|Drama", "year>=1990"]
    mask = oracle_mask(frame, expressions)
    for user in range(10):
        answer = recommender.recommend(user, k=30, filter=expressions)
        rows = items.rows_of(answer.ids)
        seen = items.rows_of(recommender.seen_items(user))
        check_answer(
            items.vectors, "ip", recommender.users.vectors[user], 30, mask, seen, rows, exact=True
        )
        assert answer.filter == {
            "expressions": expressions,
            "passing": int(mask.sum()),
            "plan": "scan",
        }
        for record in answer.records:
            assert record["year"] >= 1990 and {"Comedy", "Drama"} & set(record["genres"].split("|"))


def test_batch_by_vector_and_similar_queries_take_filters(recommender, world):
    items, _, frame = world
    mask = oracle_mask(frame, ["colour=green"])
    batch = recommender.recommend([1, 2, 3], k=5, filter="colour=green")
    assert batch.ids.shape == (3, 5) and batch.filter["passing"] == int(mask.sum())
    assert mask[items.rows_of(batch.ids.ravel())].all()
    by_vector = recommender.recommend_by_vector(items.vectors[7], k=5, filter=["colour=green"])
    assert mask[items.rows_of(by_vector.ids)].all()
    similar = recommender.similar_items(items.ids[7], k=5, filter=["colour=green"])
    assert items.ids[7] not in similar.ids and mask[items.rows_of(similar.ids)].all()
    women = recommender.similar_users(0, k=5, filter=["gender=F"])
    assert {r["gender"] for r in women.records} == {"F"} and 0 not in women.ids


def test_unfiltered_answers_carry_no_filter(recommender):
    answer = recommender.recommend(1, k=3)
    assert answer.filter is None and "filter" not in answer.to_dict()


def test_a_space_without_a_catalogue_cannot_be_filtered(world):
    items, _, _ = world
    bare = Recommender.build(items, index="Flat", progress=False)
    with pytest.raises(InvalidArgumentError, match="has no catalog for items"):
        bare.similar_items(items.ids[0], filter="genres=Comedy")


def test_the_artifact_stores_the_fields(recommender, tmp_path):
    recommender.save(str(tmp_path / "a"))
    assert (tmp_path / "a" / "filters" / "items").is_dir()
    loaded = embrecall.load(str(tmp_path / "a"))
    assert loaded._fields.keys() == {"items", "users"}  # read from files, not typed again
    for user in range(5):
        want = recommender.recommend(user, k=10, filter=["genres=Horror"])
        got = loaded.recommend(user, k=10, filter=["genres=Horror"])
        np.testing.assert_array_equal(got.ids, want.ids)
    assert loaded.describe()["filters"]["users"]["gender"]["type"] == "text"


def test_an_artifact_written_before_filters_types_its_catalogue_on_first_use():
    from pathlib import Path

    old = embrecall.load(str(Path(__file__).parent / "fixtures" / "artifact-v1"))
    assert not old._fields
    fields = old.field_table("items")
    assert fields is not None and old._fields
    name = next(iter(fields.fields))
    if fields.fields[name].kind == "number":
        expression = f"{name}>=0"
    else:
        expression = f"{name}={fields.fields[name].values[0]}"
    answer = old.similar_items(old.items.ids[0], k=3, filter=[expression])
    assert answer.filter["passing"] >= len(answer.ids)


# -- real data: Spark ALS factors with ties, MovieLens fields --------------------------------
def test_real_als_recommendations_filtered_by_genre_and_year(tmp_path):
    from embrecall.io import read_embeddings

    items = read_embeddings(shared_file("spark-als", "movielens_sparkals_item_embedding.csv"))
    users = read_embeddings(shared_file("spark-als", "movielens_sparkals_user_embedding.csv"))
    catalog = read_catalog(shared_file("movielens", "ml-latest-small", "movies.csv"))
    ratings = read_interactions(shared_file("movielens", "ml-latest-small", "ratings.csv"))
    rec = Recommender.build(
        items, users, catalog=catalog, interactions=ratings, index="Flat", progress=False
    )
    frame = catalog.frame.reindex(items.ids)
    years = frame["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float).to_numpy()
    mask = frame["genres"].fillna("").str.split("|").apply(lambda g: "Comedy" in g).to_numpy()
    mask = mask & (years >= 2000)
    for user in users.ids[:50]:
        answer = rec.recommend(user, k=20, filter=["genres=Comedy", "year>=2000"])
        seen = items.rows_of(rec.seen_items(user))
        check_answer(
            items.vectors,
            "ip",
            users.vectors[users.row_of(user)],
            20,
            mask,
            seen,
            items.rows_of(answer.ids),
            exact=True,
        )


def test_ml1m_movies_dat_gives_genres_and_year():
    catalog = read_catalog(shared_file("movielens", "ml-1m", "movies.dat"))
    fields = FieldTable.from_catalog(catalog, catalog.ids)
    assert {n: f.kind for n, f in fields.fields.items()} == {"genres": "list", "year": "number"}
    frame = catalog.frame
    nineties_dramas = fields.compile(["genres=Drama", "year>=1990", "year<=1999"])
    years = frame["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(int)
    drama = frame["genres"].str.split("|").apply(lambda g: "Drama" in g)
    assert nineties_dramas.count == int((drama & years.between(1990, 1999)).sum()) > 100


# -- the command line -----------------------------------------------------------------------
def test_cli_filter_flags_json_and_one_line_errors(recommender, world, tmp_path):
    from helpers import run_embrecall

    _, _, frame = world
    path = str(tmp_path / "art")
    recommender.save(path)
    done = run_embrecall(
        "recommend",
        path,
        "3",
        "-k",
        "5",
        "--json",
        "--filter",
        "colour=red",
        "--filter",
        "year>=2000",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    mask = oracle_mask(frame, ["colour=red", "year>=2000"])
    assert body["filter"] == {
        "expressions": ["colour=red", "year>=2000"],
        "passing": int(mask.sum()),
        "plan": "scan",
    }
    assert [r["id"] for r in body["results"]] == (
        recommender.recommend(3, k=5, filter=["colour=red", "year>=2000"]).ids.tolist()
    )
    for expression, words in (
        ("colour>red", "'colour' is text"),
        ("genre=Drama", "unknown field 'genre'"),
    ):
        done = run_embrecall("recommend", path, "3", "--filter", expression)
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    done = run_embrecall("similar-users", path, "3", "-k", "3", "--filter", "gender=F", "--json")
    assert {r["gender"] for r in json.loads(done.stdout)["results"]} == {"F"}


def test_gathered_rows_are_kept_within_the_cache_budget(world, indexes, monkeypatch):
    import embrecall.filters as filters_module

    items, catalog, _ = world
    fields = FieldTable.from_catalog(catalog, items.ids)
    monkeypatch.setattr(filters_module, "_CACHE_BYTES", 60_000)
    flat = indexes["Flat"]
    q = items.vectors[:1]
    for year in range(1950, 2020, 5):
        allowed = fields.compile([f"year<{year}"])
        first = filtered_search(flat, items.vectors, q, 5, allowed, plan="scan")
        again = filtered_search(flat, items.vectors, q, 5, allowed, plan="scan")  # kept rows
        np.testing.assert_array_equal(first[1], again[1])
        _, want = flat.search(q, 5, exclude=[np.flatnonzero(~allowed.mask)])
        np.testing.assert_array_equal(first[1], want)
        assert (
            fields._cached_bytes == sum(fields._sizes.values()) <= 60_000 or len(fields._cache) == 1
        )
