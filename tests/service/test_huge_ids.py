"""Integer ids beyond int64 are unknown ids (404 JSON, one CLI line), never an overflow.

The shared server's ids are integers (users 1000-1059, items 7 * i + 3).
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
HUGE = [2**63, 99999999999999999999999, -(2**63) - 1]


@pytest.fixture(autouse=True)
def still_serving(client):
    yield
    r = client.get(f"/v1/users/{USER}/recommendations?k=3")
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def unknown(r, ids: list[int]) -> str:
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "unknown_id" and error["ids"] == ids, error
    return error["message"]


@pytest.mark.parametrize("huge", HUGE)
@pytest.mark.parametrize(
    "path",
    [
        "/v1/users/{}/recommendations",
        "/v1/users/{}/similar",
        "/v1/items/{}/similar",
        "/v1/users/{}/seen",
        "/v1/items/{}",
    ],
)
def test_id_beyond_int64_in_the_path_is_404(client, path, huge):
    message = unknown(client.get(path.format(huge)), [huge])
    assert str(huge) in message and ("user id" in message or "item id" in message)


@pytest.mark.parametrize("huge", HUGE)
def test_id_beyond_int64_in_a_batch_is_named_with_the_other_unknown_ids(client, huge):
    r = client.post("/v1/users/recommendations", json={"ids": [USER, huge, 5]})
    unknown(r, [huge, 5])
    r = client.post("/v1/items/similar", json={"ids": [huge, ITEM]})
    unknown(r, [huge])


@pytest.mark.parametrize("huge", HUGE)
def test_id_beyond_int64_in_exclude_is_ignored_like_any_unknown_id(client, huge):
    plain = client.get(f"/v1/users/{USER}/recommendations?k=5").json()["results"]
    r = client.get(f"/v1/users/{USER}/recommendations?k=5&exclude={huge},5")
    assert r.status_code == 200 and r.json()["results"] == plain
    body = {"ids": [USER], "k": 5, "exclude": [huge, 5]}
    r = client.post("/v1/users/recommendations", json=body)
    assert r.status_code == 200 and r.json()["batch"][0]["results"] == plain
    r = client.post("/v1/search", json={"vector": [0.1] * 16, "k": 3, "exclude": [huge]})
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "embrecall", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command, what", [("recommend", "user"), ("similar-users", "user"), ("similar-items", "item")]
)
def test_cli_id_beyond_int64_is_one_line_error(artifacts, command, what):
    out = _cli(command, str(artifacts["v1"]), "99999999999999999999999")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == f"embrecall: error: unknown {what} id 99999999999999999999999"


def test_cli_exclude_beyond_int64_is_ignored(artifacts):
    base = ["recommend", str(artifacts["v1"]), str(USER), "-k", "4", "--json"]
    plain = _cli(*base)
    excluded = _cli(*base, "--exclude", f"{2**64},5")
    assert plain.returncode == excluded.returncode == 0, excluded.stderr
    assert json.loads(excluded.stdout)["results"] == json.loads(plain.stdout)["results"]
