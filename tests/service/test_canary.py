"""Canary queries: agree with the exact answer, or the version is refused."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.index import exact_search
from embrecall.service import canary
from embrecall.service.canary import CanaryError, check_canary, run_canary

from .support import build_version, save_broken_index_version


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


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_chunked_exact_equals_one_pass(monkeypatch, metric):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1000, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    exclude = [np.array([0, 999]), np.array([]), np.array([500]), np.array([1, 2, 3]), np.array([])]
    monkeypatch.setattr(canary, "_EXACT_BUDGET_BYTES", 5 * 8 * 70)  # chunks of ~70 rows or fewer
    chunked = canary._chunked_exact(base, queries, 10, metric, exclude)
    _, whole = exact_search(base, queries, 10, metric, exclude=exclude)
    np.testing.assert_array_equal(chunked, whole)
