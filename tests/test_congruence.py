"""Every way of asking gives the same lists: the library, the CLI, HTTP and cached batch results.

One small seeded artifact; the same queries through ``embrecall.load(...)``, ``embrecall
recommend|similar-items|similar-users --json`` (a real process), a real ``embrecall serve`` on
loopback, and ``embrecall batch`` into SQLite read back by ``embrecall cached --json`` and
``CachedRecall``. Same ids and scores, ties tolerated.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import embrecall
from embrecall.batch import CachedRecall
from helpers import ServeProcess, assert_same_list, build_small, import_extra, run_embrecall

K = 7
USERS = [0, 7, 33]  # positions in helpers.small_world's users (ids 1000... or "user-0"...)
ITEMS = [0, 1, 100]  # positions in its items
# query kind -> (CLI command, HTTP path, the space asked about, positions of the ids asked about)
QUERIES = {
    "recommend": ("recommend", "/v1/users/{}/recommendations", "users", USERS),
    "similar_items": ("similar-items", "/v1/items/{}/similar", "items", ITEMS),
    "similar_users": ("similar-users", "/v1/users/{}/similar", "users", USERS[:2]),
}
CASES = [(query, at) for query, (*_, positions) in QUERIES.items() for at in positions]


def _id(library, query: str, at: int):
    """The external id at a position of the space a query kind asks about (int or str)."""
    return getattr(library, QUERIES[query][2]).ids[at : at + 1].tolist()[0]


def _as_list(payload: dict):
    results = payload["results"]
    return np.array([r["id"] for r in results]), np.array([r["score"] for r in results])


@pytest.fixture(scope="module", params=["int-ids", "string-ids"])
def artifact(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("congruence")
    path = tmp / "artifact"
    build_small(tmp, string_ids=request.param == "string-ids").save(path)
    return path


@pytest.fixture(scope="module")
def library(artifact):
    return embrecall.load(artifact)


@pytest.fixture(scope="module")
def batch_out(artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("congruence-batch") / "top.sqlite"
    queries = [arg for command, *_ in QUERIES.values() for arg in ("--query", command)]
    done = run_embrecall("batch", str(artifact), "--out", str(out), "-k", str(K), "-q", *queries)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def http(artifact):
    import_extra("fastapi")
    import_extra("uvicorn")
    httpx = import_extra("httpx")
    server = ServeProcess(str(artifact), "--port", "0")
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:  # the artifact loads after start
            assert time.monotonic() < deadline, "".join(server.lines)
            time.sleep(0.1)
        yield client


@pytest.mark.parametrize("query, at", CASES)
def test_http_answers_like_the_library(http, library, query, at):
    id_ = _id(library, query, at)
    response = http.get(QUERIES[query][1].format(id_), params={"k": K})
    assert response.status_code == 200, response.text
    assert_same_list(_as_list(response.json()), getattr(library, query)(id_, K))


@pytest.mark.parametrize("query, at", CASES)
def test_cached_batch_results_answer_like_the_library(batch_out, library, query, at):
    id_ = _id(library, query, at)
    recall = CachedRecall(str(batch_out))
    try:
        assert_same_list(getattr(recall, query)(id_, K), getattr(library, query)(id_, K))
    finally:
        recall.close()


@pytest.mark.parametrize("query", list(QUERIES))
def test_cli_and_cached_cli_answer_like_the_library(artifact, batch_out, library, query):
    """One id per query kind through real processes (each start costs a second or two)."""
    command, *_, positions = QUERIES[query]
    id_ = _id(library, query, positions[-1])
    want = getattr(library, query)(id_, K)
    online = run_embrecall(command, str(artifact), str(id_), "-k", str(K), "--json")
    assert online.returncode == 0, online.stderr
    assert_same_list(_as_list(json.loads(online.stdout)), want)
    offline = run_embrecall(
        "cached", str(id_), "--from", str(batch_out), "--query", command, "-k", str(K), "--json"
    )
    assert offline.returncode == 0, offline.stderr
    assert_same_list(_as_list(json.loads(offline.stdout)), want)
