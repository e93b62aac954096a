"""`embrecall serve` from a Milvus target: the HTTP API, /metrics and the page from Milvus alone,
a swap under load with no failed request, rollback followed, and 503 for a bad target."""

from __future__ import annotations

import numpy as np

import embrecall
from embrecall.milvus.versions import MilvusVersions
from helpers import import_extra
from service.support import ITEM, USERS, Hammer, LiveServer, wait_for

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

K = 5
PATHS = [f"/v1/users/{u}/recommendations?k={K}" for u in USERS[:8]] + [
    f"/v1/items/{ITEM}/similar?k={K}"
]


def start(target: str, **settings) -> LiveServer:
    from embrecall.service import create_app

    settings.setdefault("watch_interval_s", 0.05)
    return LiveServer(create_app(target=target, **settings)).start()


def serving(server) -> str | None:
    with server.client() as c:
        r = c.get("/readyz")
        return r.json().get("version") if r.status_code == 200 else None


def expected(artifacts, versions) -> dict:
    out = {}
    for v in versions:
        rec = embrecall.load(artifacts[v])
        out[v] = {}
        for path in PATHS:
            kind, qid = path.split("/")[2], int(path.split("/")[3])
            ids, scores = rec.recommend(qid, K) if kind == "users" else rec.similar_items(qid, K)
            out[v][path] = (ids.tolist(), scores)
    return out


def test_serves_the_whole_api_from_milvus(published, artifacts):
    server = start(published.target.text, recall_sample_rate=1.0, recall_k=5)
    try:
        faiss_v1 = embrecall.load(artifacts["v1"])
        with server.client() as c:
            assert c.get("/readyz").json() == {"status": "ready", "version": "v1"}
            body = c.get(f"/v1/users/{USERS[0]}/recommendations?k=10").json()
            want_ids, want_scores = faiss_v1.recommend(USERS[0], 10)
            assert [r["id"] for r in body["results"]] == want_ids.tolist()
            np.testing.assert_allclose([r["score"] for r in body["results"]], want_scores, 1e-5)
            assert body["results"][0]["title"] == faiss_v1.catalog.record(want_ids[0])["title"]
            top = want_ids[:3].tolist()
            query = "&".join(f"exclude={i}" for i in top)
            body = c.get(f"/v1/users/{USERS[0]}/recommendations?k=10&{query}").json()
            assert len(body["results"]) == 10 and not {r["id"] for r in body["results"]} & set(top)
            info = c.get("/v1/info").json()
            assert info["versions"]["mode"] == "milvus" and info["versions"]["current"] == "v1"
            assert c.get("/").status_code == 200
            # live recall: sampled answers re-checked exactly, off the request path
            for user in USERS[:6]:
                assert c.get(f"/v1/users/{user}/recommendations?k=5").status_code == 200

            def checked():
                live = c.get("/v1/info").json()["live_recall"]
                return live["query_kinds"].get("recommend", {}).get("checked", 0) >= 6 and live

            live = wait_for(checked)
            assert live["query_kinds"]["recommend"]["recall"] == 1.0 and live["errors"] == 0
            assert 'embrecall_live_recall{query_kind="recommend"} 1.0' in c.get("/metrics").text
    finally:
        server.stop()


def test_swaps_under_load_without_a_failed_request_and_follows_rollback(published, artifacts):
    want = expected(artifacts, ["v1", "v2"])
    server = start(published.target.text)
    try:
        with Hammer(server.url, PATHS) as hammer:
            published.publish(str(artifacts["v2"]), "v2")
            wait_for(lambda: serving(server) == "v2", timeout=60)
            n = hammer.count()
            wait_for(lambda: hammer.count() > n + 20)
            published.rollback()
            wait_for(lambda: serving(server) == "v1", timeout=60)
            n = hammer.count()
            wait_for(lambda: hammer.count() > n + 20)
        assert not hammer.failures
        per_version: dict[str, int] = {}
        for path, status, header, body in hammer.responses:
            assert status == 200, (path, status, body)
            ids, scores = want[header][path]
            assert [r["id"] for r in body["results"]] == ids, (path, header)
            per_version[header] = per_version.get(header, 0) + 1
        assert set(per_version) == {"v1", "v2"}
    finally:
        server.stop()


def test_an_unreachable_cluster_answers_503(tmp_path):
    server = start("milvus://127.0.0.1:1")
    try:
        with server.client() as c:
            r = c.get(f"/v1/users/{USERS[0]}/recommendations")
            assert r.status_code == 503 and "error" in r.json()
            assert c.get("/readyz").status_code == 503
    finally:
        server.stop()


def test_a_target_without_a_version_answers_503_until_a_publish(lite, artifacts):
    server = start(lite)
    try:
        with server.client() as c:
            assert c.get(f"/v1/users/{USERS[0]}/recommendations").status_code == 503
            MilvusVersions(lite).publish(str(artifacts["v1"]), "v1")
            wait_for(lambda: serving(server) == "v1", timeout=60)
            assert c.get(f"/v1/users/{USERS[0]}/recommendations").status_code == 200
    finally:
        server.stop()
