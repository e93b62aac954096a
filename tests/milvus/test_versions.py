"""Versions on a Milvus target: publish moves the aliases, rollback, --keep, a canary that
refuses, and a publish killed midway that leaves the previous version serving."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import embrecall
from embrecall.errors import ArtifactError
from embrecall.milvus import store
from embrecall.milvus.versions import MilvusVersions
from embrecall.service.canary import CanaryError, check_canary
from embrecall.versions import ActivationRefusedError
from helpers import SRC, assert_same_list
from service.support import save_broken_index_version

USER = 1000


def canary(rec, version):
    check_canary(rec, queries=20, k=10, min_recall=0.99)


def test_publish_rollback_and_keep(published, artifacts):
    source = published
    faiss_v1, faiss_v2 = embrecall.load(artifacts["v1"]), embrecall.load(artifacts["v2"])
    source.publish(str(artifacts["v2"]), "v2", check=canary)
    assert source.current() == "v2" and source.ids() == ["v1", "v2"]
    assert source.history()["previous"] == ["v1"]
    client = source.client
    assert client.describe_alias("embrecall__items")["collection_name"] == "embrecall__v2__items"
    assert client.describe_alias("embrecall__users")["collection_name"] == "embrecall__v2__users"
    assert_same_list(
        embrecall.load(source.target.text).recommend(USER, 10), faiss_v2.recommend(USER, 10)
    )
    assert source.rollback(check=canary) == "v1" and source.current() == "v1"
    assert_same_list(
        embrecall.load(source.target.text).recommend(USER, 10), faiss_v1.recommend(USER, 10)
    )
    with pytest.raises(ActivationRefusedError, match="no earlier version"):
        source.rollback()
    source.activate("v2")
    with pytest.raises(ArtifactError, match="already exists"):
        source.publish(str(artifacts["v1"]), "v2")
    source.publish(str(artifacts["v1"]), "v3", keep=2)
    assert source.ids() == ["v2", "v3"] and source.current() == "v3"
    assert source.history()["previous"] == ["v2"]  # v1 was dropped: not a rollback target
    assert not any(store.version_of("embrecall", n) == "v1" for n in client.list_collections())


def test_a_version_its_check_refuses_is_dropped_and_the_old_one_stays(published, artifacts):
    """The check runs on the version as read back from Milvus (here: its similar_items answers
    are compared with v1's, which a different version cannot match)."""
    v1 = embrecall.load(artifacts["v1"])

    def same_as_v1(rec, version):
        if rec.similar_items(3, 10).ids.tolist() != v1.similar_items(3, 10).ids.tolist():
            raise CanaryError("answers differ from v1", None)

    with pytest.raises(CanaryError):
        published.publish(str(artifacts["v2"]), "bad", check=same_as_v1)
    assert published.current() == "v1" and published.ids() == ["v1"]
    assert published.leftovers() == [] and "bad" not in published.manifests()
    # the broken faiss index of an artifact does not travel: Milvus indexes the shipped vectors
    published.publish(
        str(save_broken_index_version(artifacts["v1"].parent, "b", 0)), "rebuilt", check=canary
    )
    assert published.current() == "rebuilt"


def test_a_publish_killed_midway_leaves_the_old_version_serving(milvus_server, artifacts):
    """Over the Milvus network protocol: a publisher process is killed (SIGKILL) after writing
    its collections and before moving anything; the next publish cleans up."""
    source = MilvusVersions(milvus_server)
    source.publish(str(artifacts["v1"]), "v1")
    script = textwrap.dedent(
        f"""
        import os, signal
        from embrecall.milvus.versions import MilvusVersions
        MilvusVersions({milvus_server!r}).publish(
            {str(artifacts["v2"])!r}, "v2",
            after_write=lambda: os.kill(os.getpid(), signal.SIGKILL),
        )
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], env={"PYTHONPATH": SRC}, capture_output=True, timeout=300
    )
    assert run.returncode == -9, run.stderr.decode()[-2000:]
    assert source.current() == "v1" and source.ids() == ["v1"]
    assert "embrecall__v2__items" in source.leftovers()
    faiss_v1 = embrecall.load(artifacts["v1"])
    assert_same_list(
        embrecall.load(milvus_server).recommend(USER, 10), faiss_v1.recommend(USER, 10)
    )
    source.publish(str(artifacts["v2"]), "v3")
    assert source.leftovers() == [] and source.ids() == ["v1", "v3"]
    assert "v2" not in source.manifests()
