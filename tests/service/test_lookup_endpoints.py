"""Lookups the web page needs, over a real server: title search, an item's own metadata, a
user's history with titles, and the Server-Timing header.

The shared server has max_k=100 and no read key; its catalog titles are "Movie {i}, The (year)".
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from embrecall.catalog import Catalog
from embrecall.recommender import Recommender
from helpers import import_extra, small_world

from .support import ITEM, READ_KEY, USERS

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

USER = USERS[0]
GHOST = 999_999  # in the catalog of the bare version below, but not in its embeddings


def expect_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def titles_containing(oracle, text: str) -> list:
    """The expected answer, computed independently: pandas over the catalog, in its order."""
    frame = oracle.catalog.frame
    hit = frame["title"].str.contains(text, case=False, regex=False)
    return frame.index[hit].tolist()


# -- title search ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "q, limit",
    [
        ("MOVIE 12", 5),  # case ignored; Movie 12, 120-129: more than the limit
        ("movie 7, the", 5),  # exactly one
        ("(1955)", 20),  # parentheses are text, not a regex group
        (".", 20),  # a dot is a dot: no title has one
    ],
)
def test_title_search_is_a_case_insensitive_substring_match(client, oracle, q, limit):
    expected = titles_containing(oracle, q)
    r = client.get("/v1/items/search", params={"q": q, "limit": limit})
    assert r.status_code == 200 and r.headers["x-embrecall-version"] == "v1"
    body = r.json()
    assert list(body) == ["version", "q", "limit", "results", "has_more"]
    assert body["version"] == "v1" and body["q"] == q and body["limit"] == limit
    assert [x["id"] for x in body["results"]] == expected[:limit]
    assert body["has_more"] is (len(expected) > limit)
    for x in body["results"]:
        assert x == {"id": x["id"], **oracle.catalog.record(x["id"])}
        assert q.lower() in x["title"].lower()


def test_title_search_defaults_and_trims(client, oracle):
    body = client.get("/v1/items/search", params={"q": "  Movie 1  "}).json()
    assert body["q"] == "Movie 1" and body["limit"] == 20
    assert [x["id"] for x in body["results"]] == titles_containing(oracle, "Movie 1")[:20]
    assert body["has_more"] is True


@pytest.mark.parametrize(
    "params, code",
    [
        ({"q": ""}, "invalid_argument"),
        ({"q": "   "}, "invalid_argument"),
        ({}, "invalid_request"),
        ({"q": "x" * 201}, "invalid_argument"),
        ({"q": "movie", "limit": 0}, "invalid_argument"),
        ({"q": "movie", "limit": 101}, "invalid_argument"),  # over max_k
        ({"q": "movie", "limit": "ten"}, "invalid_request"),
    ],
)
def test_title_search_refuses_bad_input_with_json(client, params, code):
    error = expect_error(client.get("/v1/items/search", params=params), 422, code)
    assert "Traceback" not in error["message"]


# -- one item ----------------------------------------------------------------------------------
def test_item_metadata(client, oracle):
    r = client.get(f"/v1/items/{ITEM}")
    assert r.status_code == 200 and r.headers["x-embrecall-version"] == "v1"
    assert r.json() == {"version": "v1", "id": ITEM, "metadata": oracle.catalog.record(ITEM)}
    assert r.json()["metadata"]["title"] == "Movie 0, The (1950)"


def test_item_unknown_or_malformed(client):
    error = expect_error(client.get("/v1/items/999999"), 404, "unknown_id")
    assert error["ids"] == [999999] and "999999" in error["message"]
    expect_error(client.get("/v1/items/abc"), 422, "invalid_id")


# -- history with titles -----------------------------------------------------------------------
def test_seen_keeps_its_shape_and_adds_details_on_request(client, oracle):
    plain = client.get(f"/v1/users/{USER}/seen").json()
    assert list(plain) == ["version", "id", "items"]  # unchanged for existing clients
    detailed = client.get(f"/v1/users/{USER}/seen", params={"details": "true"}).json()
    items = oracle.seen_items(USER).tolist()
    assert len(items) == 20 and detailed["items"] == plain["items"] == items
    assert detailed["interactions_loaded"] is True
    assert detailed["records"] == [{"id": i, **oracle.catalog.record(i)} for i in items]
    assert all(r["title"].startswith("Movie ") for r in detailed["records"])


# -- Server-Timing -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, status",
    [(f"/v1/users/{USER}/recommendations?k=3", 200), ("/v1/items/999999", 404), ("/healthz", 200)],
)
def test_responses_carry_the_server_time(client, path, status):
    r = client.get(path)
    assert r.status_code == status
    match = re.fullmatch(r"app;dur=(\d+\.\d{3})", r.headers["server-timing"])
    assert match, r.headers["server-timing"]
    assert 0 < float(match.group(1)) < 60_000


# -- versions without interactions or catalog ----------------------------------------------------
def _bare_version(tmp: Path, *, catalog: bool) -> Path:
    """No interactions; with ``catalog``, one that also holds an item without embeddings."""
    items, users, catalog_path, _, _, _ = small_world(tmp, seed=0)
    meta = None
    if catalog:
        frame = pd.read_csv(catalog_path)
        ghost = pd.DataFrame({"id": [GHOST], "title": ["Ghost Movie (2000)"], "genres": ["Horror"]})
        meta = Catalog(pd.concat([frame, ghost]).set_index("id"))
    path = tmp / "artifact"
    Recommender.build(items, users, catalog=meta).save(str(path))
    return path


def test_version_without_interactions(serve, tmp_path):
    server = serve(_bare_version(tmp_path, catalog=True))
    with server.client() as c:
        body = c.get(f"/v1/users/{USER}/seen", params={"details": "true"}).json()
        assert body["items"] == [] and body["records"] == []
        assert body["interactions_loaded"] is False  # an empty history that means "unknown"
        # an unknown user is a 404 even when no one has a history
        expect_error(c.get("/v1/users/999999/seen"), 404, "unknown_id")
        # the catalog lists an item the version cannot query: search leaves it out
        assert c.get("/v1/items/search", params={"q": "ghost"}).json()["results"] == []
        expect_error(c.get(f"/v1/items/{GHOST}"), 404, "unknown_id")
        found = c.get("/v1/items/search", params={"q": "movie 7, the"}).json()["results"]
        assert [x["title"] for x in found] == ["Movie 7, The (1957)"]


def test_version_without_catalog(serve, tmp_path):
    server = serve(_bare_version(tmp_path, catalog=False))
    with server.client() as c:
        error = expect_error(
            c.get("/v1/items/search", params={"q": "movie"}), 422, "invalid_argument"
        )
        assert "no catalog" in error["message"]
        assert c.get(f"/v1/items/{ITEM}").json()["metadata"] == {}
        records = c.get(f"/v1/users/{USER}/seen", params={"details": "true"}).json()["records"]
        assert records == []


def test_new_reads_need_the_read_key(root, serve):
    server = serve(root.path, api_key=READ_KEY)
    paths = ["/v1/items/search?q=movie", f"/v1/items/{ITEM}", f"/v1/users/{USER}/seen?details=true"]
    with server.client() as c:
        for path in paths:
            expect_error(c.get(path), 401, "unauthorized")
            assert c.get(path, headers={"X-API-Key": READ_KEY}).status_code == 200


def test_new_routes_are_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/items/search", "/v1/items/{item_id}"} <= set(paths)
    params = {p["name"] for p in paths["/v1/users/{user_id}/seen"]["get"]["parameters"]}
    assert "details" in params
