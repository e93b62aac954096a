"""Filters over real HTTP: repeated ``filter`` query parameters, ``"filter"`` in POST bodies and
``/v1/search``, the plan in the answer and in /metrics, 422 naming the field on bad input.

The shared server's catalogue: titles "Movie {i}, The ({1950 + i % 70})" (a numeric ``year`` is
parsed from them) and one genre per item.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import import_extra

from .support import ITEM, USERS

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

USER = USERS[0]


def passing_ids(oracle, genre: str | None = None, min_year: int | None = None) -> set:
    """Item ids passing, computed with pandas from the catalogue, not through embrecall.filters."""
    frame = oracle.catalog.frame
    keep = np.ones(len(frame), dtype=bool)
    if genre is not None:
        keep &= frame["genres"].str.split("|").apply(lambda g: genre in g).to_numpy()
    if min_year is not None:
        years = frame["title"].str.extract(r"\((\d{4})\)$")[0].astype(int).to_numpy()
        keep &= years >= min_year
    return set(frame.index[keep].tolist())


def test_recommend_with_repeated_filter_parameters(client, oracle):
    genre = oracle.catalog.frame["genres"].iloc[0]
    r = client.get(
        f"/v1/users/{USER}/recommendations",
        params=[("k", 10), ("filter", f"genres={genre}"), ("filter", "year>=1990")],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    allowed = passing_ids(oracle, genre, 1990)
    assert body["returned"] == 10 and {x["id"] for x in body["results"]} <= allowed
    assert body["filter"]["expressions"] == [f"genres={genre}", "year>=1990"]
    assert body["filter"]["passing"] == len(allowed) and body["filter"]["plan"] == "scan"
    want = oracle.recommend(USER, k=10, filter=[f"genres={genre}", "year>=1990"])
    assert [x["id"] for x in body["results"]] == want.ids.tolist()
    seen = set(oracle.seen_items(USER).tolist())
    assert not seen & {x["id"] for x in body["results"]}


def test_similar_items_and_users_take_filters(client, oracle):
    r = client.get(f"/v1/items/{ITEM}/similar", params={"k": 5, "filter": "year<1960"})
    assert r.status_code == 200, r.text
    ids = [x["id"] for x in r.json()["results"]]
    assert len(ids) == 5 and set(ids) <= passing_ids(oracle) - passing_ids(oracle, min_year=1960)
    assert ITEM not in ids
    r = client.get(f"/v1/users/{USER}/similar", params={"k": 5, "filter": "gender=F"})
    assert r.status_code == 422  # this version has no user catalogue
    assert "no user catalog" in r.json()["error"]["message"]


def test_post_bodies_and_vector_search_take_filters(client, oracle):
    r = client.post(
        "/v1/users/recommendations",
        json={"ids": USERS[:3], "k": 4, "filter": ["year>=2000"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    allowed = passing_ids(oracle, min_year=2000)
    for entry in body["batch"]:
        assert entry["returned"] == 4 and {x["id"] for x in entry["results"]} <= allowed
    assert body["filter"]["passing"] == len(allowed)
    vector = oracle.users.vectors[0].tolist()
    r = client.post("/v1/search", json={"vector": vector, "k": 6, "filter": ["year>=2000"]})
    assert r.status_code == 200, r.text
    found = r.json()
    assert {x["id"] for x in found["results"]} <= allowed and found["filter"]["plan"] == "scan"
    want = oracle.recommend_by_vector(np.array(vector, np.float32), 6, filter=["year>=2000"])
    assert [x["id"] for x in found["results"]] == want.ids.tolist()


def test_a_filter_nothing_passes_answers_empty(client):
    r = client.get(f"/v1/users/{USER}/recommendations", params={"filter": "genres=Nothing"})
    assert r.status_code == 200
    assert r.json()["returned"] == 0 and r.json()["filter"]["passing"] == 0


@pytest.mark.parametrize(
    "expression, words",
    [
        ("genre=Comedy", "unknown field 'genre'"),
        ("year>=soon", "'year' is numeric"),
        ("genres>=3", "'genres' is"),
        ("year", "expected FIELD=VALUE"),
    ],
)
def test_bad_filters_are_422_naming_the_field(client, expression, words):
    for r in (
        client.get(f"/v1/users/{USER}/recommendations", params={"filter": expression}),
        client.post("/v1/users/recommendations", json={"ids": [USER], "filter": [expression]}),
        client.post("/v1/search", json={"vector": [0.1] * 16, "filter": [expression]}),
    ):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert words in r.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200  # and it keeps serving


def test_plans_are_counted_in_metrics(client):
    client.get(f"/v1/items/{ITEM}/similar", params={"filter": "year>=1950"})
    text = client.get("/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("embrecall_filtered_queries_total{")
        and 'query="similar_items"' in x
        and 'plan="scan"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    plans = client.get("/v1/info").json()["filter_plans"]
    assert plans["similar_items"]["scan"] == int(float(line.rsplit(" ", 1)[1]))


def test_info_lists_the_filter_fields(client):
    fields = client.get("/v1/info").json()["artifact"]["filters"]["items"]
    assert fields["year"]["type"] == "number" and fields["year"]["min"] == 1950
    assert fields["genres"]["type"] == "text" and fields["genres"]["distinct"] == 8
