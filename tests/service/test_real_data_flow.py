"""The README's real-data flow, end to end with no flags: build -> publish -> serve (ready) ->
recommend, similar items, similar users. Real CLI processes, a real server on loopback, the real
Spark ALS files (skipped when ../shared/data is absent).

These factors hold many identical vectors (462 groups of items, the largest 100 strong), so every
list comparison here tolerates ties at the k-th score, as the canary does.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from embrecall.index import exact_search
from helpers import ServeProcess, import_extra, run_embrecall, shared_file

import_extra("fastapi")
import_extra("uvicorn")
httpx = import_extra("httpx")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    items = shared_file("spark-als", "movielens_sparkals_item_embedding.csv")
    users = shared_file("spark-als", "movielens_sparkals_user_embedding.csv")
    movies = shared_file("movielens", "ml-latest-small", "movies.csv")
    ratings = shared_file("movielens", "ml-latest-small", "ratings.csv")
    tmp = tmp_path_factory.mktemp("real-flow")
    art, root = tmp / "artifact", tmp / "root"
    build = run_embrecall(
        "build", "--items", str(items), "--users", str(users), "--catalog", str(movies),
        "--interactions", str(ratings), "--out", str(art),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    publish = run_embrecall("publish", str(art), str(root), "--id", "v1")
    assert publish.returncode == 0, publish.stderr
    assert "(ok)" in publish.stderr  # the canary passed, ties and all
    with ServeProcess(str(root), "--port", "0") as server:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.monotonic() < deadline:  # the version loads (and is canaried) after start
                ready = client.get("/readyz")
                if ready.status_code == 200:
                    break
                time.sleep(0.1)
            assert ready.json() == {"status": "ready", "version": "v1"}, "".join(server.lines)
            import embrecall

            yield client, embrecall.load(art), art


def _assert_exact_with_ties(results, base, query, metric, exclude_rows, ids_of, k):
    """Served results equal the exact top-k up to ties at the k-th score."""
    scores = np.array([r["score"] for r in results])
    exact_scores, exact_rows = exact_search(base, query[None, :], k, metric, [exclude_rows])
    np.testing.assert_allclose(scores, exact_scores[0], rtol=1e-4, atol=1e-5)
    served_rows = ids_of([r["id"] for r in results])
    assert (served_rows >= 0).all() and len(set(served_rows.tolist())) == k
    assert not set(served_rows.tolist()) & set(exclude_rows.tolist())
    true = exact_search(base[served_rows], query[None, :], k, metric)[0][0]
    np.testing.assert_allclose(np.sort(true), np.sort(exact_scores[0]), rtol=1e-4, atol=1e-5)


def test_every_user_gets_k_unseen_titled_movies_exact_up_to_ties(served):
    client, rec, _ = served
    for user in rec.users.ids[::61].tolist() + [80]:  # 80: a tied group straddles the 10th place
        r = client.get(f"/v1/users/{user}/recommendations", params={"k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "recommend" and len(body["results"]) == 10
        assert all(res["title"] for res in body["results"])
        row = rec.users.row_of(user)
        seen = rec.seen.rows_for(row)
        _assert_exact_with_ties(
            body["results"], rec.items.vectors, rec.users.vectors[row], "ip", seen,
            rec.items.lookup_rows, 10,
        )  # fmt: skip


def test_similar_items_and_users_are_exact_up_to_ties(served):
    client, rec, _ = served
    for item in (1, 260, 2571):
        r = client.get(f"/v1/items/{item}/similar", params={"k": 10})
        assert r.status_code == 200, r.text
        row = rec.items.row_of(item)
        _assert_exact_with_ties(
            r.json()["results"], rec.items.vectors, rec.items.vectors[row], "cosine",
            np.array([row]), rec.items.lookup_rows, 10,
        )  # fmt: skip
    r = client.get("/v1/users/1/similar", params={"k": 10})
    assert r.status_code == 200, r.text
    row = rec.users.row_of(1)
    _assert_exact_with_ties(
        r.json()["results"], rec.users.vectors, rec.users.vectors[row], "cosine",
        np.array([row]), rec.users.lookup_rows, 10,
    )  # fmt: skip


def test_the_cli_answers_the_same_as_the_server(served):
    client, _, art = served
    cli = run_embrecall("recommend", str(art), "1", "-k", "10", "--json")
    assert cli.returncode == 0, cli.stderr
    http = client.get("/v1/users/1/recommendations", params={"k": 10}).json()
    got = json.loads(cli.stdout)
    np.testing.assert_allclose(
        [r["score"] for r in got["results"]], [r["score"] for r in http["results"]], rtol=1e-6
    )
