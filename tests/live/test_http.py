"""Live updates on real HTTP: acknowledged changes are visible at once, on every server of the
root, to every query kind; refusals are 4xx JSON and change nothing."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

import embrecall
from helpers import ServeProcess
from service.support import ADMIN_KEY, USERS, wait_for

ADMIN = {"X-API-Key": ADMIN_KEY}
DIM = 16


def _top_items(client, n: int) -> list[int]:
    """Items that answers really return (so deleting them is a real test)."""
    found: dict[int, int] = {}
    for user in USERS[:20]:
        for r in client.get(f"/v1/users/{user}/recommendations?k=10").json()["results"]:
            found[r["id"]] = found.get(r["id"], 0) + 1
    return sorted(found, key=found.get, reverse=True)[:n]


def _returned(body: dict) -> list:
    rows = body.get("batch", [body])
    return [r["id"] for row in rows for r in row["results"]]


def test_deleted_items_are_never_returned_afterwards(root, serve):
    server = serve(root.path)
    with server.client() as c:
        gone = _top_items(c, 15)
        for item in gone:
            r = c.delete(f"/v1/items/{item}", headers=ADMIN)
            assert r.status_code == 200, r.text
            assert r.json()["durable"] is True
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((40, DIM)).tolist()
        seen_ids = set()
        queries = 0
        for _ in range(6):
            for user in USERS:
                seen_ids.update(_returned(c.get(f"/v1/users/{user}/recommendations?k=20").json()))
                queries += 1
            body = c.post("/v1/users/recommendations", json={"ids": USERS[:40], "k": 20})
            seen_ids.update(_returned(body.json()))
            queries += 40
            for item in range(3, 3500, 70):
                if item in gone:
                    continue
                seen_ids.update(_returned(c.get(f"/v1/items/{item}/similar?k=20").json()))
                queries += 1
            body = c.post("/v1/search", json={"vectors": vectors[:20], "k": 20}).json()
            seen_ids.update(_returned(body))
            for v in vectors[20:]:
                for query in ("recommend", "similar_items"):
                    r = c.post("/v1/search", json={"vector": v, "k": 20, "query": query})
                    seen_ids.update(_returned(r.json()))
            queries += 60
        assert queries > 1000
        assert not seen_ids & set(gone)
        for item in gone:
            assert c.get(f"/v1/items/{item}").status_code == 404
            assert c.get(f"/v1/items/{item}/similar").status_code == 404


def test_an_upsert_is_at_rank_1_on_another_server_process_within_a_second(root, serve, monkeypatch):
    writer = serve(root.path)
    monkeypatch.setenv("EMBRECALL_ADMIN_API_KEY", ADMIN_KEY)
    with ServeProcess(str(root.path), "--port", "0") as other:
        import httpx

        vector = np.random.default_rng(1).standard_normal(DIM).tolist()
        fields = {"title": "Brand New (2026)", "genres": "Drama"}
        with writer.client() as c:
            r = c.put("/v1/items/777777", json={"vector": vector, "fields": fields}, headers=ADMIN)
            assert r.status_code == 200, r.text
            acked = time.monotonic()
            mine = c.post("/v1/search", json={"vector": vector, "query": "similar_items"}).json()
            assert mine["results"][0]["id"] == 777777

        def rank_1() -> bool:
            body = httpx.post(
                other.url + "/v1/search", json={"vector": vector, "query": "similar_items"}
            ).json()
            return (
                body["results"][0]["id"] == 777777
                and body["results"][0]["title"] == (fields["title"])
            )

        wait_for(rank_1, timeout=5, interval=0.01)
        assert time.monotonic() - acked < 1.0
        item = httpx.get(other.url + "/v1/items/777777").json()
        assert item["metadata"]["genres"] == "Drama"
        similar = httpx.get(other.url + "/v1/items/777777/similar?k=5").json()
        assert len(similar["results"]) == 5 and 777777 not in _returned(similar)


def test_seen_items_are_excluded_at_once(root, serve):
    server = serve(root.path)
    with server.client() as c:
        user = USERS[3]
        top = [r["id"] for r in c.get(f"/v1/users/{user}/recommendations?k=5").json()["results"]]
        r = c.post(f"/v1/users/{user}/seen", json={"items": top[:3]}, headers=ADMIN)
        assert r.status_code == 200, r.text
        after = _returned(c.get(f"/v1/users/{user}/recommendations?k=5").json())
        assert not set(after) & set(top[:3]) and len(after) == 5
        assert set(top[:3]) <= set(c.get(f"/v1/users/{user}/seen").json()["items"])
        raw = _returned(c.get(f"/v1/users/{user}/recommendations?k=5&exclude_seen=false").json())
        assert set(top[:3]) <= set(raw)
        live = c.get("/v1/info").json()["live_changes"]
        assert live["records"] == 1 and live["users_with_seen"] == 1


def test_users_are_added_replaced_and_removed(root, serve):
    server = serve(root.path)
    with server.client() as c:
        vector = np.random.default_rng(2).standard_normal(DIM).tolist()
        assert c.put("/v1/users/424242", json={"vector": vector}, headers=ADMIN).status_code == 200
        mine = c.get("/v1/users/424242/recommendations?k=5").json()
        by_vector = c.post("/v1/search", json={"vector": vector, "k": 5}).json()
        assert _returned(mine) == _returned(by_vector)
        found = c.post("/v1/search", json={"vector": vector, "space": "users"}).json()
        assert found["results"][0]["id"] == 424242
        assert c.delete(f"/v1/users/{USERS[0]}", headers=ADMIN).status_code == 200
        assert c.get(f"/v1/users/{USERS[0]}/recommendations").status_code == 404
        similar = c.get(f"/v1/users/{USERS[1]}/similar?k=100").json()
        assert USERS[0] not in _returned(similar)


def test_refusals_are_4xx_json_and_change_nothing(root, serve):
    server = serve(root.path)
    with server.client() as c:
        before = c.get(f"/v1/users/{USERS[0]}/recommendations").json()["results"]
        cases = [
            (c.put, "/v1/items/5", {"vector": [1.0, 2.0]}, 422, "dimension_mismatch"),
            (c.put, "/v1/items/5", {"vector": [1e39] * DIM}, 422, "invalid_vector"),
            (c.put, "/v1/items/5", {"vector": [0.0] * DIM}, 422, "invalid_vector"),
            (c.put, "/v1/items/5", {"vector": ["a"] * DIM}, 422, "invalid_request"),
            (c.put, "/v1/items/5", {"vector": [1.0] * DIM, "extra": 1}, 422, "invalid_request"),
            (c.put, "/v1/items/x", {"vector": [1.0] * DIM}, 422, "invalid_id"),
            (c.delete, "/v1/items/4", None, 404, "unknown_id"),
            (c.delete, "/v1/users/1", None, 404, "unknown_id"),
            (c.post, f"/v1/users/{USERS[0]}/seen", {"items": [4]}, 404, "unknown_id"),
            (c.post, "/v1/users/1/seen", {"items": [3]}, 404, "unknown_id"),
            (c.post, f"/v1/users/{USERS[0]}/seen", {"items": []}, 422, "invalid_request"),
        ]
        for method, path, body, status, code in cases:
            kwargs = {"json": body} if body is not None else {}
            r = method(path, headers=ADMIN, **kwargs)
            assert r.status_code == status, (path, body, r.text)
            assert r.json()["error"]["code"] == code, (path, r.text)
        assert c.delete("/v1/items/3").status_code == 401
        assert c.delete("/v1/items/3", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get(f"/v1/users/{USERS[0]}/recommendations").json()["results"] == before
    log = root.path / "changes" / "v1.log"
    assert not log.exists() or log.stat().st_size == 0


def test_a_single_artifact_refuses_live_updates(artifacts, serve):
    server = serve(artifacts["v1"])
    with server.client() as c:
        r = c.delete("/v1/items/3", headers=ADMIN)
        assert r.status_code == 409 and r.json()["error"]["code"] == "live_updates_off"


def test_no_errors_while_changes_run_under_read_load(root, serve):
    from service.support import Hammer

    server = serve(root.path, search_threads=2)
    paths = [f"/v1/users/{u}/recommendations?k=10" for u in USERS[:30]] + [
        f"/v1/items/{3 + 7 * i}/similar?k=10" for i in range(0, 500, 25)
    ]
    rng = np.random.default_rng(4)
    statuses: list[int] = []
    with Hammer(server.url, paths, concurrency=4) as hammer, server.client() as c:
        t0 = time.monotonic()
        for i in range(30):  # 10 changes a second for 3 seconds
            op = i % 3
            if op == 0:
                body = {"vector": rng.standard_normal(DIM).tolist(), "fields": {"title": "x"}}
                statuses.append(
                    c.put(f"/v1/items/{800000 + i}", json=body, headers=ADMIN).status_code
                )
            elif op == 1:
                statuses.append(c.delete(f"/v1/items/{800000 + i - 1}", headers=ADMIN).status_code)
            else:
                statuses.append(
                    c.post(
                        f"/v1/users/{USERS[i]}/seen", json={"items": [3 + 7 * i]}, headers=ADMIN
                    ).status_code
                )
            time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
        served = hammer.count()
    assert statuses == [200] * 30
    assert served > 50
    assert not hammer.failures
    bad = [(p, s) for p, s, _, _ in hammer.responses if s != 200]
    assert not bad


def test_a_newer_version_keeps_changes_acknowledged_after_it_was_built(root, serve, artifacts):
    server = serve(root.path)
    with server.client() as c:
        gone = _top_items(c, 1)[0]
        vector = np.random.default_rng(5).standard_normal(DIM).tolist()
        assert c.put("/v1/items/999001", json={"vector": vector}, headers=ADMIN).status_code == 200
        assert c.delete(f"/v1/items/{gone}", headers=ADMIN).status_code == 200
        root.publish(artifacts["v2"], "v2")  # built before those changes were made
        wait_for(lambda: c.get("/v1/info").json()["version"] == "v2")
        found = c.post("/v1/search", json={"vector": vector, "query": "similar_items"}).json()
        assert found["version"] == "v2" and found["results"][0]["id"] == 999001
        assert c.get(f"/v1/items/{gone}").status_code == 404
    # a server started afresh on v2 replays the carried changes from v2's own log
    fresh = embrecall.load(root.path_of("v2"))
    from embrecall.live.feed import LiveFeed

    LiveFeed(root.path, "v2", fresh)
    assert fresh.similar_items_by_vector(vector, 1).ids[0] == 999001


def test_acknowledged_changes_survive_kill_9_and_a_restart(root, monkeypatch):
    import httpx

    monkeypatch.setenv("EMBRECALL_ADMIN_API_KEY", ADMIN_KEY)
    rng = np.random.default_rng(6)
    vectors = {900000 + i: rng.standard_normal(DIM).tolist() for i in range(20)}
    server = ServeProcess(str(root.path), "--port", "0")
    try:
        acked_deletes = []
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as c:
            for item, v in vectors.items():
                assert c.put(f"/v1/items/{item}", json={"vector": v}).status_code == 200
            for item in (3, 10, 17):
                assert c.delete(f"/v1/items/{item}").status_code == 200
                acked_deletes.append(item)
            assert c.post(f"/v1/users/{USERS[0]}/seen", json={"items": [24]}).status_code == 200
    finally:
        os.kill(server.proc.pid, 9)
        server.proc.wait()
    with (
        ServeProcess(str(root.path), "--port", "0") as again,
        httpx.Client(base_url=again.url, timeout=30) as c,
    ):
        for item, v in vectors.items():
            body = c.post("/v1/search", json={"vector": v, "query": "similar_items"}).json()
            assert body["results"][0]["id"] == item
        for item in acked_deletes:
            assert c.get(f"/v1/items/{item}").status_code == 404
        assert 24 in c.get(f"/v1/users/{USERS[0]}/seen").json()["items"]


def test_a_torn_tail_left_by_a_killed_writer_is_dropped(tmp_path):
    from embrecall.live.changelog import ChangeLog

    log = ChangeLog(tmp_path / "changes" / "v.log")
    log.append([{"op": "delete", "space": "items", "id": 1}])
    with open(log.path, "ab") as f:
        f.write(b'{"op": "delete", "spa')  # a write cut short: never fsynced, never acked
    records, end = log.read()
    assert [r["id"] for r in records] == [1] and end < log.size()
    log.append([{"op": "delete", "space": "items", "id": 2}])
    assert [r["id"] for r in log.read()[0]] == [1, 2]


def test_concurrent_writers_never_interleave(tmp_path):
    from embrecall.live.changelog import ChangeLog

    path = tmp_path / "changes" / "v.log"

    def write(n: int) -> None:
        log = ChangeLog(path)
        for i in range(50):
            log.append([{"op": "delete", "space": "items", "id": n * 1000 + i, "pad": "x" * 500}])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, _ = ChangeLog(path).read()
    assert sorted(r["id"] for r in records) == sorted(
        n * 1000 + i for n in range(4) for i in range(50)
    )


def test_title_search_sees_new_and_removed_items(root, serve):
    server = serve(root.path)
    with server.client() as c:
        first = c.get("/v1/items/search?q=Movie 1&limit=5").json()["results"][0]["id"]
        vector = np.random.default_rng(8).standard_normal(DIM).tolist()
        body = {"vector": vector, "fields": {"title": "Zyzzyva Returns (2026)"}}
        assert c.put("/v1/items/555555", json=body, headers=ADMIN).status_code == 200
        assert c.delete(f"/v1/items/{first}", headers=ADMIN).status_code == 200
        found = c.get("/v1/items/search?q=zyzzyva").json()["results"]
        assert [r["id"] for r in found] == [555555]
        again = c.get("/v1/items/search?q=Movie 1&limit=50").json()["results"]
        assert first not in [r["id"] for r in again] and again


def test_every_worker_of_serve_workers_sees_a_change_within_a_second(root, monkeypatch):
    import httpx

    monkeypatch.setenv("EMBRECALL_ADMIN_API_KEY", ADMIN_KEY)
    vector = np.random.default_rng(9).standard_normal(DIM).tolist()
    with ServeProcess(str(root.path), "--port", "0", "--workers", "2") as server:
        pids = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:  # both workers answer
            try:
                pids.add(httpx.get(server.url + "/v1/info", timeout=30).json()["pid"])
            except httpx.ConnectError:  # the port listens once the first worker has started
                time.sleep(0.1)
        assert len(pids) == 2
        body = {"vector": vector, "fields": {"title": "Both"}}
        r = httpx.put(server.url + "/v1/items/616161", json=body, headers=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        time.sleep(1.0)
        answered_by: dict[int, list[int]] = {}
        for _ in range(200):  # a connection per request: the kernel hands them to either worker
            if len(answered_by) == 2 and min(map(len, answered_by.values())) >= 5:
                break
            info = httpx.get(server.url + "/v1/info", timeout=30).json()
            top = httpx.post(
                server.url + "/v1/search",
                json={"vector": vector, "query": "similar_items", "k": 1},
                timeout=30,
            ).json()["results"][0]["id"]
            answered_by.setdefault(info["pid"], []).append(info["live_changes"]["records"])
            assert top == 616161
        assert len(answered_by) == 2
        assert all(records == [1] * len(records) for records in answered_by.values())


def test_metrics_count_accepted_changes_and_show_what_is_pending(root, serve):
    server = serve(root.path)
    with server.client() as c:
        rng = np.random.default_rng(4)
        for i in range(3):
            vector = rng.standard_normal(DIM).tolist()
            r = c.put(f"/v1/items/{880_000 + i}", json={"vector": vector}, headers=ADMIN)
            assert r.status_code == 200, r.text
        assert c.delete(f"/v1/items/{880_000}", headers=ADMIN).status_code == 200
        assert c.put("/v1/items/oops", json={"vector": [1.0]}, headers=ADMIN).status_code == 422
        text = c.get("/metrics").text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("embrecall_live_")
    }
    assert samples['embrecall_live_changes_total{op="upsert",space="items"}'] == 3
    assert samples['embrecall_live_changes_total{op="delete",space="items"}'] == 1
    assert samples["embrecall_live_pending_records"] == 4
    assert samples['embrecall_live_pending{part="upserted",space="items"}'] == 2
    assert samples['embrecall_live_pending{part="hidden_rows",space="items"}'] == 0
    assert samples['embrecall_live_pending{part="deleted",space="items"}'] == 1
    assert samples['embrecall_live_pending{part="upserted",space="users"}'] == 0
    assert samples["embrecall_live_log_bytes"] > 0
