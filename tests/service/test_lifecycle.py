"""Index lifecycle on a real server: publish, watch, swap under load, refusals, rollback."""

from __future__ import annotations

import re

import numpy as np
import pytest

import embrecall
from helpers import import_extra

from .support import (
    ADMIN_KEY,
    ITEM,
    USERS,
    Hammer,
    corrupt,
    save_broken_index_version,
    wait_for,
)

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

ADMIN = {"X-API-Key": ADMIN_KEY}
K = 5
PATHS = [f"/v1/users/{u}/recommendations?k={K}" for u in USERS[:12]] + [
    f"/v1/items/{ITEM}/similar?k={K}"
]


def serving(server) -> str | None:
    with server.client() as c:
        r = c.get("/readyz")
        return r.json().get("version") if r.status_code == 200 else None


def metric(server, name: str) -> float:
    with server.client() as c:
        text = c.get("/metrics").text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not in metrics"
    return float(m.group(1))


def expected_answers(root, versions) -> dict:
    """The answer of every hammered path, per version, from the library in this process."""
    out = {}
    for v in versions:
        rec = embrecall.load(root.path_of(v))
        answers = {}
        for path in PATHS:
            kind, qid = path.split("/")[2], int(path.split("/")[3])
            ids, scores = rec.recommend(qid, K) if kind == "users" else rec.similar_items(qid, K)
            answers[path] = (ids.tolist(), scores)
        out[v] = answers
    return out


def check_consistent(responses, expected) -> dict:
    """Every response answered by exactly one version, with that version's exact results."""
    per_version: dict[str, int] = {}
    for path, status, header, body in responses:
        assert status == 200, (path, status, body)
        assert body["version"] == header, "header and body name different versions"
        ids, scores = expected[header][path]
        assert [r["id"] for r in body["results"]] == ids, (path, header)
        np.testing.assert_allclose([r["score"] for r in body["results"]], scores, rtol=1e-5)
        per_version[header] = per_version.get(header, 0) + 1
    return per_version


def test_watcher_swaps_to_a_published_version_and_rollback_follows(root, artifacts, serve):
    server = serve(root.path, admin_api_key=ADMIN_KEY)
    assert serving(server) == "v1"
    root.publish(artifacts["v2"], "v2")
    wait_for(lambda: serving(server) == "v2")
    with server.client() as c:
        assert c.get(PATHS[0]).json()["version"] == "v2"
        info = c.get("/v1/info").json()
        assert info["versions"] == {"mode": "root", "current": "v2", "available": ["v1", "v2"]}
        history = c.get("/v1/admin/versions", headers=ADMIN).json()
        assert history["served"] == "v2" and history["history"]["previous"] == ["v1"]
    assert metric(server, "embrecall_swaps_total") == 1
    assert metric(server, 'embrecall_version_info{version="v2"}') == 1
    root.rollback()
    wait_for(lambda: serving(server) == "v1")
    assert metric(server, "embrecall_swaps_total") == 2


@pytest.mark.parametrize("search_threads", [2, 0], ids=["worker-threads", "event-loop"])
def test_swaps_while_a_client_hammers(root, artifacts, serve, search_threads):
    """0 failed requests; every response from exactly one version, with its exact answer."""
    root.publish(artifacts["v2"], "v2", activate=False)
    expected = expected_answers(root, ["v1", "v2"])
    server = serve(root.path, admin_api_key=ADMIN_KEY, search_threads=search_threads)
    with Hammer(server.url, PATHS) as hammer, server.client() as admin:
        for i in range(6):
            target = "v2" if i % 2 == 0 else "v1"
            seen_before = hammer.count()
            if i % 3 == 2:  # an admin call (then the pointer follows, which changes nothing)...
                r = admin.post(f"/v1/admin/versions/{target}/load", headers=ADMIN)
                assert r.status_code == 200 and r.json()["status"] == "swapped"
                root.activate(target)
            else:  # ...or the pointer, picked up by the watcher
                root.activate(target)
            wait_for(lambda t=target: serving(server) == t)
            wait_for(lambda n=seen_before: hammer.count() > n + 20)  # load on the new version
    assert not hammer.failures
    per_version = check_consistent(hammer.responses, expected)
    assert set(per_version) == {"v1", "v2"} and sum(per_version.values()) > 100
    assert metric(server, "embrecall_swaps_total") == 6
    assert metric(server, 'embrecall_version_loads_total{result="failed"}') == 0
    # once no request holds a replaced version, only one version stays in memory
    wait_for(lambda: server.registry.release_retired() == 0)
    assert metric(server, "embrecall_versions_in_memory") == 1


def test_corrupted_version_is_refused_while_the_old_one_serves(root, artifacts, serve):
    root.publish(artifacts["v2"], "v2", activate=False)
    corrupt(root.path / "versions" / "v2" / "indexes" / "items-ip-Flat.faiss")
    expected = expected_answers(root, ["v1"])
    server = serve(root.path, admin_api_key=ADMIN_KEY)
    with Hammer(server.url, PATHS) as hammer, server.client() as c:
        r = c.post("/v1/admin/versions/v2/load", headers=ADMIN)
        assert r.status_code == 409
        error = r.json()["error"]
        assert error["code"] == "version_refused" and error["reason"] == "artifact"
        assert "SHA-256" in error["message"]
        # the pointer moves to the bad version (by hand: activate itself now refuses it), and
        # the watcher tries, refuses, keeps v1
        (root.path / "CURRENT").write_text("v2\n")
        wait_for(
            lambda: metric(server, 'embrecall_version_load_failures_total{reason="artifact"}') == 2
        )
        n = hammer.count()
        wait_for(lambda: hammer.count() > n + 20)
        assert c.get("/readyz").json() == {"status": "ready", "version": "v1"}
        info = c.get("/v1/info").json()
        assert info["version"] == "v1" and info["last_load"]["ok"] is False
        assert info["last_load"]["version"] == "v2" and "SHA-256" in info["last_load"]["error"]
    assert not hammer.failures
    assert check_consistent(hammer.responses, expected) == {"v1": len(hammer.responses)}
    assert metric(server, "embrecall_swaps_total") == 0
    assert metric(server, "embrecall_ready") == 1


def test_canary_failure_is_refused(tmp_path, root, serve):
    root.publish(save_broken_index_version(tmp_path, "broken", seed=0), "bad", activate=False)
    server = serve(root.path, admin_api_key=ADMIN_KEY)
    with server.client() as c:
        r = c.post("/v1/admin/versions/bad/load", headers=ADMIN)
        error = r.json()["error"]
        assert r.status_code == 409 and error["reason"] == "canary"
        assert (
            error["canary"]["failed"] == ["recommend"]
            and error["canary"]["recall"]["recommend"] < 0.9
        )
        assert c.get(PATHS[0]).json()["version"] == "v1"
    assert metric(server, 'embrecall_version_load_failures_total{reason="canary"}') == 1


def test_missing_file_and_unknown_version(root, artifacts, serve):
    root.publish(artifacts["v2"], "v2", activate=False)
    (root.path / "versions" / "v2" / "catalog.parquet").unlink()
    server = serve(root.path, admin_api_key=ADMIN_KEY)
    with server.client() as c:
        r = c.post("/v1/admin/versions/v2/load", headers=ADMIN)
        assert r.status_code == 409 and "catalog.parquet is missing" in r.json()["error"]["message"]
        r = c.post("/v1/admin/versions/v9/load", headers=ADMIN)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_version"
        r = c.post("/v1/admin/versions/.hidden/load", headers=ADMIN)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_version_id"
        # a path is never a version id
        r = c.post("/v1/admin/versions/..%2F..%2Fetc/load", headers=ADMIN)
        assert r.status_code in (404, 422) and "error" in r.json()
        assert serving(server) == "v1"


def test_force_reload_and_unchanged(root, serve):
    server = serve(root.path, admin_api_key=ADMIN_KEY)
    with server.client() as c:
        assert c.post("/v1/admin/versions/v1/load", headers=ADMIN).json()["status"] == "unchanged"
        r = c.post("/v1/admin/versions/v1/load?force=true", headers=ADMIN).json()
        assert r["status"] == "swapped" and r["previous"] == "v1" and r["canary"]["ok"]


def test_empty_root_becomes_ready_after_the_first_publish(tmp_path, artifacts, serve):
    from embrecall.versions import VersionRoot

    (tmp_path / "root" / "versions").mkdir(parents=True)
    root = VersionRoot(tmp_path / "root")
    server = serve(root.path)
    with server.client() as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert c.get("/healthz").status_code == 200
        r = c.get(PATHS[0])
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        root.publish(artifacts["v1"], "v1")
        wait_for(lambda: c.get("/readyz").status_code == 200)


def test_bad_current_version_at_startup_waits_for_a_good_one(root, artifacts, serve):
    corrupt(root.path / "versions" / "v1" / "users" / "vectors.npy")
    server = serve(root.path)
    assert serving(server) is None
    root.publish(artifacts["v2"], "v2")
    wait_for(lambda: serving(server) == "v2")


def test_a_corrupt_single_artifact_is_not_ready(tmp_path, artifacts, serve):
    import shutil

    path = tmp_path / "single"
    shutil.copytree(artifacts["v1"], path)
    corrupt(path / "items" / "ids.npy")
    server = serve(path, admin_api_key=ADMIN_KEY)
    with server.client() as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["last_failure"] == "artifact"
        shutil.copy(artifacts["v1"] / "items" / "ids.npy", path / "items" / "ids.npy")  # repaired
        r = c.post("/v1/admin/reload", headers=ADMIN)
        assert r.status_code == 200 and r.json()["status"] == "swapped"
        assert c.get("/readyz").json() == {"status": "ready", "version": "single"}
