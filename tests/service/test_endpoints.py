"""Every endpoint of a real server on loopback, checked against the library in-process."""

from __future__ import annotations

import re

import numpy as np
import pytest

from helpers import import_extra

from .support import ITEM, USERS, build_version

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

USER = USERS[0]


def _same_results(got: list[dict], want: list[dict]) -> None:
    assert [r["id"] for r in got] == [r["id"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], rtol=1e-5)
    for g, w in zip(got, want):
        assert {k: v for k, v in g.items() if k != "score"} == {
            k: v for k, v in w.items() if k != "score"
        }


def test_recommend_has_the_cli_json_shape_and_the_version(client, oracle):
    r = client.get(f"/v1/users/{USER}/recommendations", params={"k": 5})
    assert r.status_code == 200 and r.headers["x-embrecall-version"] == "v1"
    body = r.json()
    assert list(body) == ["version", "query", "id", "k", "metric", "score", "returned", "results"]
    assert body["version"] == "v1" and body["query"] == "recommend" and body["id"] == USER
    assert body["k"] == 5 and body["metric"] == "ip" and body["score"] == "higher is better"
    assert body["returned"] == len(body["results"]) == 5
    assert set(body["results"][0]) == {"id", "score", "title", "genres"}
    _same_results(body["results"], oracle.results(*oracle.recommend(USER, 5)))


def test_recommend_leaves_out_seen_and_excluded_items(client, oracle):
    seen = set(oracle.seen_items(USER).tolist())
    top = client.get(f"/v1/users/{USER}/recommendations", params={"k": 20}).json()["results"]
    assert not seen & {r["id"] for r in top}
    drop = [top[0]["id"], top[3]["id"]]
    r = client.get(f"/v1/users/{USER}/recommendations?k=20&exclude={drop[0]},{drop[1]}")
    got = r.json()["results"]
    assert len(got) == 20 and not set(drop) & {x["id"] for x in got}
    _same_results(got, oracle.results(*oracle.recommend(USER, 20, exclude=drop)))
    # repeated parameters work too
    again = client.get(f"/v1/users/{USER}/recommendations?k=20&exclude={drop[0]}&exclude={drop[1]}")
    assert again.json()["results"] == got
    with_seen = client.get(f"/v1/users/{USER}/recommendations?k=20&exclude_seen=false").json()
    _same_results(
        with_seen["results"], oracle.results(*oracle.recommend(USER, 20, exclude_seen=False))
    )
    assert seen & {x["id"] for x in with_seen["results"]}  # planted: users like what they saw


def test_similar_users_and_items(client, oracle):
    u = client.get(f"/v1/users/{USER}/similar", params={"k": 4}).json()
    assert u["query"] == "similar_users" and u["metric"] == "cosine"
    assert USER not in [x["id"] for x in u["results"]]
    assert set(u["results"][0]) == {"id", "score"}  # users have no catalog
    _same_results(u["results"], oracle.results(*oracle.similar_users(USER, 4), space="users"))
    i = client.get(f"/v1/items/{ITEM}/similar?k=6&exclude=10").json()
    assert i["query"] == "similar_items" and ITEM not in [x["id"] for x in i["results"]]
    _same_results(i["results"], oracle.results(*oracle.similar_items(ITEM, 6, exclude=[10])))


def test_default_k(client):
    assert len(client.get(f"/v1/users/{USER}/similar").json()["results"]) == 10


def test_seen(client, oracle):
    body = client.get(f"/v1/users/{USER}/seen").json()
    assert body == {"version": "v1", "id": USER, "items": oracle.seen_items(USER).tolist()}


def test_batches_answer_in_request_order(client, oracle):
    ids = [USERS[3], USERS[1], str(USERS[2])]  # integer text is an integer id
    r = client.post(
        "/v1/users/recommendations", json={"ids": ids, "k": 3, "exclude": [[], [ITEM], []]}
    )
    body = r.json()
    assert r.status_code == 200 and body["version"] == "v1" and body["query"] == "recommend"
    assert [e["id"] for e in body["batch"]] == [USERS[3], USERS[1], USERS[2]]
    for entry, uid, excl in zip(body["batch"], ids, [[], [ITEM], []]):
        _same_results(
            entry["results"], oracle.results(*oracle.recommend(int(uid), 3, exclude=excl))
        )
    users = client.post("/v1/users/similar", json={"ids": USERS[:2], "k": 2}).json()
    assert [len(e["results"]) for e in users["batch"]] == [2, 2]
    items = client.post(
        "/v1/items/similar", json={"ids": [ITEM, 10], "k": 2, "exclude": [17]}
    ).json()
    for entry, iid in zip(items["batch"], [ITEM, 10]):
        _same_results(entry["results"], oracle.results(*oracle.similar_items(iid, 2, exclude=[17])))


def test_search_by_vector(client, oracle):
    vector = oracle.users.vectors[5].tolist()
    body = client.post("/v1/search", json={"vector": vector, "k": 4, "space": "items"}).json()
    assert body["query"] == "recommend" and body["space"] == "items" and body["metric"] == "ip"
    _same_results(body["results"], oracle.results(*oracle.search("recommend", vector, 4)))
    cos = client.post(
        "/v1/search", json={"vector": vector, "k": 4, "query": "similar_items"}
    ).json()
    _same_results(cos["results"], oracle.results(*oracle.search("similar_items", vector, 4)))
    users = client.post(
        "/v1/search", json={"vectors": [vector, vector], "k": 3, "space": "users"}
    ).json()
    assert users["query"] == "similar_users" and len(users["batch"]) == 2
    _same_results(
        users["batch"][1]["results"],
        oracle.results(*oracle.search("similar_users", vector, 3), space="users"),
    )


def test_info(client):
    info = client.get("/v1/info").json()
    assert info["version"] == "v1" and info["versions"] == {
        "mode": "root",
        "current": "v1",
        "available": ["v1"],
    }
    art = info["artifact"]
    assert art["spaces"]["items"] == {"count": 500, "dim": 16, "id_kind": "int"}
    assert art["spaces"]["users"]["count"] == 60
    assert {q: v["metric"] for q, v in art["queries"].items()} == {
        "recommend": "ip",
        "similar_items": "cosine",
        "similar_users": "cosine",
    }
    assert art["queries"]["recommend"]["kind"] == "IndexFlatIP"
    assert "artifact" not in art  # no server paths
    assert info["canary"]["ok"] and info["limits"]["max_k"] == 100
    assert info["last_load"]["ok"] and not info["loading"]


def test_health_readiness_metrics_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "version": "v1"}
    client.get("/v1/users/999999/recommendations")  # one 404 to count
    text = client.get("/metrics").text
    assert 'embrecall_version_info{version="v1"} 1.0' in text
    assert "embrecall_ready 1.0" in text and "embrecall_swaps_total 0.0" in text
    assert re.search(
        r'embrecall_http_requests_total\{method="GET",route="/v1/users/\{user_id\}/'
        r'recommendations",status="404"\} [1-9]',
        text,
    )
    assert 'embrecall_http_request_duration_seconds_bucket{le="0.005",route="/healthz"}' in text
    assert 'embrecall_version_load_failures_total{reason="canary"} 0.0' in text
    assert "process_resident_memory_bytes" in text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/users/{user_id}/recommendations",
        "/v1/users/{user_id}/similar",
        "/v1/items/{item_id}/similar",
        "/v1/search",
        "/v1/users/recommendations",
        "/v1/info",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/admin/versions/{version}/load",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_string_ids_single_artifact(tmp_path, serve):
    path = tmp_path / "strings"
    build_version(tmp_path / "data", seed=0, string_ids=True).save(str(path))
    server = serve(path)
    with server.client() as c:
        body = c.get("/v1/users/user-3/recommendations?k=2").json()
        assert body["id"] == "user-3" and body["version"] == "strings"
        assert all(r["id"].startswith("item-") for r in body["results"])
        assert (
            c.get("/v1/items/item-0007/similar?k=1").json()["results"][0]["id"].startswith("item-")
        )
        assert c.get("/v1/users/user-999/similar").status_code == 404
        info = c.get("/v1/info").json()
        assert info["versions"] == {
            "mode": "artifact",
            "current": "strings",
            "available": ["strings"],
        }


@pytest.mark.parametrize("search_threads", [0, 1, 3])
def test_search_modes(root, serve, search_threads):
    server = serve(root.path, search_threads=search_threads)
    with server.client() as c:
        r = c.get(f"/v1/users/{USER}/recommendations?k=3")
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert c.post("/v1/users/similar", json={"ids": USERS[:3], "k": 2}).status_code == 200
