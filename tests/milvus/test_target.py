"""Milvus target strings, collection names and version-id escaping (no Milvus needed)."""

from __future__ import annotations

import os

import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.milvus import store
from embrecall.milvus.target import MilvusTarget, check_prefix, is_milvus_target
from embrecall.versions import open_target


def test_targets_parse():
    t = MilvusTarget.parse("milvus://milvus.internal:19530/recsys")
    assert (t.uri, t.db, t.lite) == ("http://milvus.internal:19530", "recsys", False)
    assert MilvusTarget.parse("milvus://10.0.0.9:19530").db is None
    lite = MilvusTarget.parse("milvus-lite:data/m.db")
    assert lite.lite and lite.uri == os.path.abspath("data/m.db")
    assert is_milvus_target("milvus-lite:x.db") and not is_milvus_target("artifacts/movies")


@pytest.mark.parametrize(
    "text",
    [
        "milvus://host",
        "milvus://host:port",
        "milvus://h:1/a/b",
        "milvus-lite:x.sqlite",
        "mlv://h:1",
    ],
)
def test_malformed_targets_are_refused(text):
    with pytest.raises(InvalidArgumentError):
        MilvusTarget.parse(text)


@pytest.mark.parametrize("prefix", ["", "1abc", "a__b", "a_", "a-b", "x" * 65])
def test_prefixes_that_cannot_name_collections_are_refused(prefix):
    with pytest.raises(InvalidArgumentError):
        check_prefix(prefix)


@pytest.mark.parametrize("version", ["v1", "2024-06-01", "a_b.c-d", "__", "x" * 64])
def test_version_ids_survive_collection_names(version):
    name = store.collection_name("embrecall", version, "items")
    assert store.version_of("embrecall", name) == version
    assert all(c.isalnum() or c == "_" for c in name)
    assert store.version_of("other", name) is None


def test_open_target_dispatches_milvus_targets_without_connecting():
    source = open_target("milvus://127.0.0.1:1")
    assert source.mode == "milvus" and source.prefix == "embrecall"
