"""Live updates on a Milvus target, against real Milvus Lite: `embrecall update`, the admin
HTTP routes, a second process seeing a change within a second, a reopen, the publish rule and
bad input. Milvus itself holds the changes (its own upsert and delete)."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

import embrecall
from embrecall.cli import main
from embrecall.live import changes as live_changes
from embrecall.live.apply import load_for_export
from embrecall.milvus import changes as milvus_changes
from embrecall.milvus.versions import MilvusVersions
from helpers import ServeProcess, import_extra
from service.support import ADMIN_KEY, USERS, LiveServer, save_version, wait_for

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

DIM = 16
ADMIN = {"X-API-Key": ADMIN_KEY}
ITEMS = [7 * i + 3 for i in range(500)]  # the item ids of helpers.small_world


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _milvus_entities(source: MilvusVersions, version: str, space: str, expr: str) -> list:
    name = source.manifest(version)["spaces"][space]["collection"]
    return source.client.query(name, filter=expr, output_fields=["row", "id"])


def _every_answer(rec, seeds=40) -> set:
    """Ids returned by hundreds of queries of every kind (by id, by vector, filtered)."""
    out: set = set()
    users = rec.users.ids.tolist()
    held_users = [u for u in users if rec.live.holds(rec, "users", u)]
    items = [i for i in rec.items.ids.tolist()[:200] if rec.live.holds(rec, "items", i)]
    for user in held_users:
        out.update(rec.recommend(user, 40).ids.tolist())
        out.update(rec.recommend(user, 10, filter="genres=Comedy").ids.tolist())
    for batch in np.array_split(np.array(held_users), 4):
        out.update(np.ravel(rec.recommend(batch.tolist(), 30).ids).tolist())
    for item in items:
        out.update(rec.similar_items(item, 30).ids.tolist())
    queries = _vectors(seeds, 99)
    out.update(np.ravel(rec.recommend_by_vector(queries, 50).ids).tolist())
    out.update(np.ravel(rec.similar_items_by_vector(queries, 50).ids).tolist())
    for q in queries[:10]:
        out.update(rec.similar_items_by_vector(q, 20, filter="genres=Drama").ids.tolist())
    return out


def _users_answered(rec) -> set:
    out: set = set()
    for user in rec.users.ids.tolist()[:30]:
        if rec.live.holds(rec, "users", user):
            out.update(rec.similar_users(user, 20).ids.tolist())
    out.update(np.ravel(rec.similar_users_by_vector(_vectors(20, 5), 30).ids).tolist())
    return out


def test_update_then_queries_of_every_kind_follow_it(published, tmp_path, capsys):
    target = published.target.text
    new = _vectors(3, 0)
    np.save(tmp_path / "items.npy", new)
    np.save(tmp_path / "items_ids.npy", np.array([900_000, 900_001, ITEMS[0]], dtype=np.int64))
    pd.DataFrame({"id": [900_000, 900_001], "title": ["Fresh (2026)", "Fresher (2026)"]}).to_csv(
        tmp_path / "cat.csv", index=False
    )
    pd.DataFrame({"userId": [1000, 1000], "movieId": [900_000, ITEMS[5]]}).to_csv(
        tmp_path / "seen.csv", index=False
    )
    rec = published.load()
    top = rec.recommend(USERS[:20], 10).ids  # items answers really return, deleted below
    gone = list(dict.fromkeys(np.ravel(top).tolist()))[:15]
    (tmp_path / "gone.txt").write_text("# removed\n" + "\n".join(map(str, gone)) + "\n")
    code = main(
        [
            "update",
            target,
            "--items",
            str(tmp_path / "items.npy"),
            "--catalog",
            str(tmp_path / "cat.csv"),
            "--delete-items",
            str(tmp_path / "gone.txt"),
            "--delete-users",
            "1001,1002",
            "--seen",
            str(tmp_path / "seen.csv"),
            "--json",
            "-q",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["version"] == "v1" and summary["upserted_items"] == 3
    assert summary["deleted_items"] == 15 and summary["deleted_users"] == 2
    assert summary["seen"] == 2 and summary["records"] == 3 + 15 + 2 + 1

    # Milvus holds the changes natively: the rows are gone from, or in, its collections
    source = MilvusVersions(target)
    rows = _milvus_entities(source, "v1", "items", f"id in [{','.join(map(str, gone))}]")
    assert rows == []
    assert len(_milvus_entities(source, "v1", "items", "id in [900000, 900001]")) == 2

    rec = source.load()
    answered = _every_answer(rec)
    assert not set(gone) & answered
    assert not {1001, 1002} & _users_answered(rec)
    for i, item in enumerate([900_000, 900_001, ITEMS[0]]):  # rank 1 by its own vector
        assert rec.similar_items_by_vector(new[i], 1).ids[0] == item
    found = rec.similar_items_by_vector(new[0], 3)
    assert found.records[0]["title"] == "Fresh (2026)"
    assert rec.similar_items(900_000, 5).ids.size == 5  # a new id is a query too
    assert not {900_000, ITEMS[5]} & set(rec.recommend(1000, 60).ids.tolist())
    assert {900_000, ITEMS[5]} <= set(rec.seen_items(1000).tolist())
    assert rec.recommend(1000, 60).ids.size == 60  # k kept
    with pytest.raises(embrecall.errors.UnknownIdError):
        rec.similar_users(1001)
    with pytest.raises(embrecall.errors.UnknownIdError):
        rec.similar_items(gone[0])

    # a batch export computes from the changed data
    exported, applied = load_for_export(target, verify=True, exact=True)
    assert applied == summary["records"]
    held = set(exported.items.ids.tolist())
    assert {900_000, 900_001} <= held and not set(gone) & held
    users = [u for u in USERS[:20] if u not in (1001, 1002)]
    assert not set(gone) & set(np.ravel(exported.recommend(users, 10).ids).tolist())
    assert load_for_export(target, verify=True, exact=True, changes=False)[1] == 0


def test_admin_http_on_a_milvus_server(published):
    from embrecall.service import create_app

    app = create_app(target=published.target.text, admin_api_key=ADMIN_KEY, watch_interval_s=0.05)
    server = LiveServer(app).start()
    try:
        with server.client() as c:
            vector = _vectors(1, 7)[0].tolist()
            r = c.put(
                "/v1/items/910000",
                json={"vector": vector, "fields": {"title": "Live (2026)", "genres": "Comedy"}},
                headers=ADMIN,
            )
            assert r.status_code == 200, r.text
            assert r.json() == {
                "version": "v1",
                "op": "upsert",
                "space": "items",
                "id": 910000,
                "durable": True,
            }
            body = c.post(
                "/v1/search", json={"vector": vector, "k": 5, "query": "similar_items"}
            ).json()
            assert body["results"][0]["id"] == 910000
            assert body["results"][0]["title"] == "Live (2026)"
            assert c.get("/v1/items/910000").json()["metadata"]["title"] == "Live (2026)"
            filtered = c.get("/v1/users/1000/recommendations?k=500&filter=genres=Comedy").json()
            assert 910000 in [x["id"] for x in filtered["results"]]

            top = [x["id"] for x in c.get("/v1/users/1000/recommendations?k=5").json()["results"]]
            assert c.delete(f"/v1/items/{top[0]}", headers=ADMIN).status_code == 200
            r = c.post("/v1/users/1000/seen", json={"items": [top[1]]}, headers=ADMIN)
            assert r.status_code == 200, r.text
            assert c.delete("/v1/users/1003", headers=ADMIN).status_code == 200
            for _ in range(3):
                got = c.get("/v1/users/1000/recommendations?k=20").json()["results"]
                assert len(got) == 20 and not {top[0], top[1]} & {x["id"] for x in got}
                got = c.post("/v1/items/similar", json={"ids": ITEMS[:30], "k": 20}).json()
                assert top[0] not in {x["id"] for row in got["batch"] for x in row["results"]}
            assert c.get("/v1/users/1003/similar").status_code == 404

            before = c.get("/v1/info").json()["live_changes"]
            assert before["engine"] == "milvus" and before["records"] == 4
            refusals = [
                c.put("/v1/items/1", json={"vector": [1.0] * 3}, headers=ADMIN),
                c.put("/v1/items/1", json={"vector": [1e39] * DIM}, headers=ADMIN),
                c.put("/v1/users/1000", json={"vector": [0.0] * DIM}, headers=ADMIN),
                c.delete("/v1/items/4", headers=ADMIN),
                c.post("/v1/users/1000/seen", json={"items": [4]}, headers=ADMIN),
                c.put("/v1/items/1", json={"vector": vector, "what": 1}, headers=ADMIN),
                c.delete(f"/v1/items/{ITEMS[9]}"),
            ]
            codes = [r.status_code for r in refusals]
            assert codes == [422, 422, 422, 404, 404, 422, 401], [r.text for r in refusals]
            assert all("error" in r.json() for r in refusals)
            assert c.get("/v1/info").json()["live_changes"]["records"] == 4  # nothing written
    finally:
        server.stop()


def test_a_second_process_sees_a_change_within_a_second(milvus_server, artifacts):
    source = MilvusVersions(milvus_server)
    source.publish(str(artifacts["v1"]), "v1")
    writer = source.load()
    with ServeProcess(milvus_server, "--port", "0") as reader:
        import httpx

        with httpx.Client(base_url=reader.url, timeout=10) as c:
            assert wait_for(lambda: c.get("/readyz").status_code == 200, timeout=60)
            lags = []
            for n, vector in enumerate(_vectors(5, 11)):
                item = 920_000 + n
                writer.live.feed.write([live_changes.upsert(writer, "items", item, vector)])
                acked = time.monotonic()
                body = {"vector": vector.tolist(), "k": 1, "query": "similar_items"}
                while c.post("/v1/search", json=body).json()["results"][0]["id"] != item:
                    assert time.monotonic() - acked < 1.0, "not seen within a second"
                    time.sleep(0.01)
                lags.append(time.monotonic() - acked)
            gone = ITEMS[17]
            writer.live.feed.write([live_changes.delete(writer, writer.live, "items", gone)])
            acked = time.monotonic()
            while c.get(f"/v1/items/{gone}/similar").status_code != 404:
                assert time.monotonic() - acked < 1.0, "delete not seen within a second"
                time.sleep(0.01)
            lags.append(time.monotonic() - acked)
    print(f"freshness lag on a second process: max {max(lags) * 1000:.0f} ms")


def test_changes_survive_a_reopen_and_concurrent_writers_agree(published):
    target = published.target.text
    a = published.load()
    b = MilvusVersions(target).load()  # a second writer with its own client
    vectors = _vectors(8, 3)
    # two writers change the same ids; whatever Milvus kept, both end up holding
    for n in range(4):
        a.live.feed.write([live_changes.upsert(a, "items", 930_000, vectors[n])])
        b.live.feed.write([live_changes.upsert(b, "items", 930_000, vectors[4 + n])])
    a.live.feed.write([live_changes.delete(a, a.live, "items", ITEMS[3])])
    b.live.feed.write([live_changes.delete(b, b.live, "users", 1010)])
    a.live.feed.poll()
    b.live.feed.poll()
    for rec in (a, b):
        assert rec.similar_items_by_vector(vectors[7], 1).ids[0] == 930_000
        assert not rec.live.holds(rec, "items", ITEMS[3])
        assert not rec.live.holds(rec, "users", 1010)
    np.testing.assert_allclose(a.live.state.snapshot.spaces["items"].vectors[0], vectors[7])

    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(target.split(":", 1)[1])
    again = MilvusVersions(target).load()
    assert again.similar_items_by_vector(vectors[7], 1).ids[0] == 930_000
    assert ITEMS[3] not in _every_answer(again, seeds=10)
    assert not again.live.holds(again, "users", 1010)
    with pytest.raises(embrecall.errors.UnknownIdError):
        again.similar_items(ITEMS[3])


def test_bad_input_is_one_line_and_writes_nothing(published, tmp_path, capsys):
    target = published.target.text
    np.save(tmp_path / "bad.npy", np.ones((2, 3), dtype=np.float32))
    assert main(["update", target, "--items", str(tmp_path / "bad.npy"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("embrecall: error:") and "dimension" in err and "\n" not in err
    assert main(["update", target, "--delete-items", f"{ITEMS[1]},4", "-q"]) == 1
    assert "unknown item id 4" in capsys.readouterr().err
    changes = milvus_changes.changes_name("embrecall", "v1")
    assert milvus_changes.read(published.client, changes) == []
    assert len(_milvus_entities(published, "v1", "items", f"id == {ITEMS[1]}")) == 1


def test_a_newer_version_carries_changes_acknowledged_after_it_was_built(
    published, artifacts, tmp_path
):
    rec = published.load()
    early = _vectors(2, 21)
    rec.live.feed.write([live_changes.upsert(rec, "items", 940_000, early[0])])
    time.sleep(1.1)  # an artifact's created_at has whole seconds
    late_build = save_version(tmp_path, "v3", seed=2)  # built after that change
    time.sleep(1.1)
    rec.live.feed.write([live_changes.upsert(rec, "items", 940_001, early[1])])
    rec.live.feed.write([live_changes.delete(rec, rec.live, "items", ITEMS[2])])

    published.publish(str(artifacts["v2"]), "v2")  # built before both: both carried
    v2 = MilvusVersions(published.target.text).load()
    assert v2.info["version"] == "v2"
    assert v2.similar_items_by_vector(early[0], 1).ids[0] == 940_000
    assert v2.similar_items_by_vector(early[1], 1).ids[0] == 940_001
    assert not v2.live.holds(v2, "items", ITEMS[2])

    published.publish(str(late_build), "v3")  # built between them: only the later ones
    v3 = MilvusVersions(published.target.text).load()
    assert not v3.live.holds(v3, "items", 940_000)
    assert v3.similar_items_by_vector(early[1], 1).ids[0] == 940_001
    assert not v3.live.holds(v3, "items", ITEMS[2])


def test_string_ids_and_an_approximate_index(tmp_path, lite):
    from service.support import build_version

    path = tmp_path / "artifact"
    build_version(tmp_path / "data", 0, string_ids=True).save(str(path))
    source = MilvusVersions(lite)
    source.publish(str(path), "s1", index="HNSW")
    rec = source.load()
    vector = _vectors(1, 4)[0]
    gone = rec.recommend("user-0", 3).ids[0]
    rec.live.feed.write([live_changes.upsert(rec, "items", "item-new", vector)])
    rec.live.feed.write([live_changes.delete(rec, rec.live, "items", gone)])
    again = MilvusVersions(lite).load()
    for r in (rec, again):
        assert r.similar_items_by_vector(vector, 1).ids[0] == "item-new"
        assert r.similar_items("item-new", 5).ids.size == 5
        answered = np.ravel(r.recommend(r.users.ids[:30].tolist(), 20).ids).tolist()
        assert gone not in answered and None not in answered


def test_compact_folds_changes_into_a_new_version_and_carries_later_ones(published, capsys):
    target = published.target.text
    rec = published.load()
    new = _vectors(2, 31)
    rec.live.feed.write(
        [
            live_changes.upsert(rec, "items", 950_000, new[0], {"title": "Folded (2026)"}),
            live_changes.delete(rec, rec.live, "items", ITEMS[4]),
            live_changes.seen(rec, rec.live, 1000, [ITEMS[6]]),
        ]
    )
    assert main(["compact", target, "--id", "c1", "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["version"] == "c1" and summary["previous"] == "v1"
    assert summary["items"] == 500 and summary["folded_records"] == 3
    rec.live.feed.write([live_changes.upsert(rec, "items", 950_001, new[1])])  # still on v1

    source = MilvusVersions(target)
    assert source.current() == "c1" and source.manifest("c1")["folded"]["from"] == "v1"
    c1 = source.load()
    assert c1.items.lookup_rows([950_000])[0] >= 0  # a published row now
    assert c1.similar_items_by_vector(new[0], 1).records[0]["title"] == "Folded (2026)"
    assert c1.similar_items_by_vector(new[1], 1).ids[0] == 950_001  # carried over
    assert not c1.live.holds(c1, "items", ITEMS[4]) and ITEMS[4] not in _every_answer(c1, 10)
    assert ITEMS[6] in c1.seen_items(1000).tolist()
