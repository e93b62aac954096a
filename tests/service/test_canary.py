"""Canary queries: agree with the exact answer, or the version is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

import embrecall
from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError
from embrecall.recommender import Recommender
from embrecall.service.canary import CanaryError, check_canary, run_canary

from .support import build_version, save_broken_index_version, wait_for


def test_a_good_version_passes_with_full_recall(tmp_path):
    report = run_canary(build_version(tmp_path, seed=0), queries=15, k=10)
    assert report.ok and set(report.recall) == {"recommend", "similar_items", "similar_users"}
    assert all(r == 1.0 for r in report.recall.values())  # exact indexes
    assert report.as_dict()["ok"] is True and "recommend 1.000" in report.summary()


def test_an_index_over_other_vectors_fails(tmp_path):
    import embrecall

    rec = embrecall.load(save_broken_index_version(tmp_path, "broken", seed=0))
    report = run_canary(rec, queries=20, k=10)
    assert report.failed == ["recommend"] and report.recall["recommend"] < 0.5
    with pytest.raises(CanaryError, match="below 0.9 for recommend") as info:
        check_canary(rec)
    assert info.value.report.recall["similar_items"] == 1.0


def test_the_verdict_is_deterministic(tmp_path):
    rec = build_version(
        tmp_path,
        seed=2,
        index="IVF8,Flat",
        search_params={
            name: {"nprobe": 1} for name in ("recommend", "similar_items", "similar_users")
        },
    )
    first = run_canary(rec, queries=10, k=10, seed=4)
    assert run_canary(rec, queries=10, k=10, seed=4).recall == first.recall


def test_zero_queries_skips(tmp_path):
    report = run_canary(build_version(tmp_path, seed=0), queries=0)
    assert report.ok and report.recall == {}


@pytest.mark.parametrize("bad", [{"queries": -1}, {"k": 0}, {"min_recall": 1.5}])
def test_bad_options(tmp_path, bad):
    with pytest.raises(InvalidArgumentError):
        run_canary(build_version(tmp_path, seed=0), **bad)


def _tied_recommender() -> Recommender:
    """Exact indexes over items where 40 share one vector and 30 another: groups larger than k,
    as in real Spark ALS factors."""
    rng = np.random.default_rng(3)
    items = rng.standard_normal((300, 8)).astype(np.float32)
    items[:40] = items[0]
    items[40:70] = items[40]
    users = rng.standard_normal((50, 8)).astype(np.float32)
    users[:10] = items[0] * 2  # these users' top-k is all one tied group
    return Recommender.build(
        Embeddings(np.arange(300) * 3 + 7, items, source="items"),
        Embeddings(np.arange(50) + 1000, users, source="users"),
        index="Flat",
    )


def test_tied_groups_larger_than_k_pass_with_full_recall():
    report = check_canary(_tied_recommender(), queries=50, k=10)
    assert report.recall == {"recommend": 1.0, "similar_items": 1.0, "similar_users": 1.0}


def test_the_server_checks_a_version_against_the_floor_it_was_published_with(tmp_path, serve):
    """One floor: a version publish accepted at its own floor is served, not refused at 0.9."""
    from embrecall.versions import VersionRoot

    weak = save_broken_index_version(tmp_path, "weak", seed=0)
    recall = min(run_canary(embrecall.load(weak)).recall.values())
    assert recall < 0.9  # the default floor would refuse it
    floor = {"min_recall": math.floor(recall * 100) / 100, "queries": 20, "k": 10}
    root = VersionRoot(tmp_path / "root")
    root.publish(weak, "v1", canary_floor=floor)
    assert root.canary_floor("v1") == floor
    with serve(root.path).client() as client:
        wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/readyz").json() == {"status": "ready", "version": "v1"}
        canary = client.get("/v1/info").json()["last_load"]["canary"]
        assert canary["min_recall"] == floor["min_recall"] and canary["ok"]
    # The server's own setting, where given, wins.
    with serve(root.path, canary_min_recall=0.9).client() as client:
        wait_for(lambda: client.get("/v1/info").json().get("last_load") is not None)
        assert client.get("/readyz").status_code == 503
