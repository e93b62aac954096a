"""The `embrecall` command on Milvus targets: publish, versions, rollback, recommend --json as
on the faiss artifact, inspect, eval, batch; bad targets get one line and exit 1."""

from __future__ import annotations

import json

import pytest

import embrecall
from helpers import assert_same_list, run_embrecall


def test_publish_query_versions_rollback(tmp_path, artifacts):
    target = f"milvus-lite:{tmp_path / 'm.db'}"
    for v in ("v1", "v2"):
        placement = ["--shards", "2", "--replicas", "1"] if v == "v2" else []
        r = run_embrecall("publish", str(artifacts[v]), target, "--id", v, "--json", *placement)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["current"] == v
    listed = json.loads(run_embrecall("versions", target, "--json").stdout)
    assert [v["id"] for v in listed["versions"]] == ["v1", "v2"]
    assert listed["current"] == "v2" and listed["rollback_to"] == "v1"
    r = run_embrecall("rollback", target, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["current"] == "v1"
    got = json.loads(run_embrecall("recommend", target, "1000", "-k", "10", "--json").stdout)
    want = embrecall.load(artifacts["v1"]).recommend(1000, 10).to_dict()
    assert {k: v for k, v in got.items() if k != "results"} == {
        **{k: v for k, v in want.items() if k != "results"},
        "id": 1000,
        "k": 10,
    }
    assert_same_list(
        ([r["id"] for r in got["results"]], [r["score"] for r in got["results"]]),
        ([r["id"] for r in want["results"]], [r["score"] for r in want["results"]]),
    )
    r = run_embrecall("batch", target, "--out", str(tmp_path / "top.parquet"), "-k", "5")
    assert r.returncode == 0, r.stderr
    assert any((tmp_path / "top.parquet").rglob("*.parquet"))


@pytest.mark.parametrize(
    "target, message",
    [
        ("milvus://127.0.0.1:1", "cannot use Milvus"),
        ("milvus://no-port", "milvus://HOST:PORT"),
        ("milvus-lite:/no/such/folder/m.db", "does not exist"),
        ("milvus-lite:{tmp}/absent.db", "no Milvus Lite database"),
        ("milvus-lite:{empty}", "no version published"),
    ],
    ids=["unreachable", "malformed", "no-folder", "no-database", "no-version"],
)
def test_a_bad_target_is_one_line(tmp_path, target, message):
    empty = tmp_path / "empty.db"
    empty.mkdir()  # a Milvus Lite database holding nothing (its engine creates the rest)
    r = run_embrecall("recommend", target.format(tmp=tmp_path, empty=empty), "1000")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
