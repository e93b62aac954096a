"""k above the number of items: the CLI and HTTP answer alike.

Both answer the items that exist, with ``"k"`` the k asked and ``"returned"`` how many came back.
Only HTTP caps k, at max_k (a protection of the service; 1000 by default): above it, 422.
The version has 500 items; each user has seen 20 of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import import_extra

from .support import ITEM, USERS

import_extra("fastapi")
import_extra("httpx")

USER = USERS[0]
SRC = str(Path(__file__).resolve().parents[2] / "src")
N_ITEMS = 500


def cli_json(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-m", "embrecall", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def server(artifacts):
    from embrecall.service import create_app

    from .support import LiveServer

    live = LiveServer(create_app(target=str(artifacts["v1"]), watch_interval_s=0)).start()
    yield live
    live.stop()


@pytest.mark.parametrize(
    "command, path, qid, expected",
    [
        ("recommend", "/v1/users/{}/recommendations", USER, N_ITEMS - 20),
        ("similar-items", "/v1/items/{}/similar", ITEM, N_ITEMS - 1),
    ],
)
def test_k_above_the_items_answers_the_items_that_exist_on_both(
    server, artifacts, command, path, qid, expected
):
    k = 600  # above the 500 items, within max_k
    cli = cli_json(command, str(artifacts["v1"]), str(qid), "-k", str(k))
    with server.client() as c:
        r = c.get(path.format(qid), params={"k": k})
    assert r.status_code == 200, r.text
    http = r.json()
    for answer in (cli, http):
        assert answer["k"] == k and answer["returned"] == len(answer["results"]) == expected
    assert [x["id"] for x in http["results"]] == [x["id"] for x in cli["results"]]


def test_k_above_max_k_is_a_service_limit_only(server, artifacts):
    cli = cli_json("recommend", str(artifacts["v1"]), str(USER), "-k", "100000")
    assert cli["k"] == 100000 and cli["returned"] == len(cli["results"]) == N_ITEMS - 20
    with server.client() as c:
        r = c.get(f"/v1/users/{USER}/recommendations", params={"k": 100000})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_k"
        assert "between 1 and 1000" in r.json()["error"]["message"]
        # the limit itself is allowed, and answers what exists
        r = c.get(f"/v1/users/{USER}/recommendations", params={"k": 1000})
        assert r.status_code == 200 and r.json()["returned"] == N_ITEMS - 20


def test_batch_and_vector_answers_say_how_many_each_returned(server):
    with server.client() as c:
        r = c.post("/v1/items/similar", json={"ids": [ITEM], "k": 600})
        entry = r.json()["batch"][0]
        assert r.json()["k"] == 600 and entry["returned"] == len(entry["results"]) == N_ITEMS - 1
        r = c.post("/v1/search", json={"vector": [0.1] * 16, "k": 3})
        assert r.json()["returned"] == len(r.json()["results"]) == 3
        r = c.post("/v1/search", json={"vectors": [[0.1] * 16], "k": 3})
        assert r.json()["batch"][0]["returned"] == 3
