"""Filtered batch exports (carousels): every list equals the online filtered answer, and each
filter lives in its own namespace of the sink, beside the unfiltered results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embrecall.batch import CachedRecall, plan_batch, run_batch
from embrecall.batch.commands import filtered_sink
from embrecall.batch.plan import filter_namespace
from embrecall.batch.sinks import open_sink
from embrecall.errors import InvalidArgumentError
from helpers import assert_same_list


def _genre(rec) -> str:
    return rec.catalog.frame["genres"].iloc[0]


@pytest.mark.parametrize("search", ["exact", "index"])
def test_filtered_lists_equal_online_and_pass_the_filter(rec, tmp_path, search):
    expressions = [f"genres={_genre(rec)}", "year>=1970"]
    plan = plan_batch(
        rec, k=8, queries=["recommend", "similar_items"], search=search, filter=expressions
    )
    run_batch(plan, str(tmp_path / "out"), progress=False)
    recall = CachedRecall(str(tmp_path / "out"))
    allowed = set(rec.items.ids[rec.compile_filter("items", expressions).rows].tolist())
    for user in rec.users.ids:
        got = recall.recommend(user)
        assert set(got[0].tolist()) <= allowed
        assert_same_list(got, rec.recommend(user, 8, filter=expressions))
        assert not np.isin(got[0], rec.seen_items(user)).any()
    for item in rec.items.ids[:50]:
        got = recall.similar_items(item)
        assert item not in got[0] and set(got[0].tolist()) <= allowed
        assert_same_list(got, rec.similar_items(item, 8, filter=expressions))


def test_a_bad_filter_is_refused_before_any_work(rec):
    with pytest.raises(InvalidArgumentError, match="unknown field 'genre'"):
        plan_batch(rec, k=5, filter=["genre=Drama"])


def test_each_filter_has_its_own_namespace():
    a = filter_namespace(["genres=Comedy", "year>=2000"])
    assert a == filter_namespace(["year>=2000", "genres=Comedy"])  # order does not matter
    assert a.startswith("genres-Comedy-year-2000-") and a != filter_namespace(["genres=Comedy"])
    name = filter_namespace(["genres=Comedy"])
    assert filtered_sink("/d/recs.db", {}, ["genres=Comedy"])[0] == f"/d/recs.filter-{name}.db"
    assert filtered_sink("/d/out", {}, ["genres=Comedy"])[0] == f"/d/out.filter-{name}"
    url, options = filtered_sink("redis://h:1/0?prefix=p", {"prefix": None}, ["genres=Comedy"])
    assert url == "redis://h:1/0?prefix=p" and options["prefix"] == f"p:filter:{name}"


def test_cli_filtered_and_unfiltered_exports_live_side_by_side(artifact, rec, tmp_path, batch_cli):
    run = batch_cli
    out = str(tmp_path / "recs.sqlite")
    genre = _genre(rec)
    run("batch", str(artifact), "--out", out, "-k", "6", "-q")
    run("batch", str(artifact), "--out", out, "-k", "6", "-q", "--filter", f"genres={genre}")
    user = str(rec.users.ids[0])
    plain = json.loads(run("cached", user, "--from", out, "--json"))
    filtered = json.loads(
        run("cached", user, "--from", out, "--json", "--filter", f"genres={genre}")
    )
    assert [r["id"] for r in plain["results"]] == rec.recommend(rec.users.ids[0], 6).ids.tolist()
    assert [r["id"] for r in filtered["results"]] == (
        rec.recommend(rec.users.ids[0], 6, filter=[f"genres={genre}"]).ids.tolist()
    )
    assert {r["genres"] for r in filtered["results"]} == {genre}


def test_redis_namespace_per_filter(rec, redis_url):
    genre = _genre(rec)
    address, options = filtered_sink(redis_url, {}, [f"genres={genre}"])
    run_batch(plan_batch(rec, k=5), redis_url, progress=False)
    sink = open_sink(address, **options)
    run_batch(plan_batch(rec, k=5, filter=[f"genres={genre}"]), sink, progress=False)
    user = rec.users.ids[1]
    assert_same_list(CachedRecall(redis_url).recommend(user), rec.recommend(user, 5))
    got = CachedRecall(open_sink(address, **options)).recommend(user)
    assert_same_list(got, rec.recommend(user, 5, filter=[f"genres={genre}"]))
