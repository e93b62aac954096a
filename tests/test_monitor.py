"""LiveRecallMonitor: exact answers checked off the request path, drops instead of blocking."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError
from embrecall.interactions import Interactions
from embrecall.recommender import Recommender
from embrecall.service.monitor import LiveRecallMonitor
from helpers import import_extra


@pytest.fixture(scope="module")
def exact_rec():
    """Items in 8 planted clusters, users who each like one and have seen 20 of its items:
    the seen items rank high, so an answer that fails to exclude them is visibly wrong."""
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.standard_normal((16, 16)))[0][:8]
    labels = rng.integers(0, 8, 500)
    norms = rng.lognormal(0, 0.3, (500, 1))
    items = (centres[labels] + 0.15 * rng.standard_normal((500, 16))) * norms
    favourite = rng.integers(0, 8, 60)
    users = 1.5 * centres[favourite] + 0.1 * rng.standard_normal((60, 16))
    item_ids, user_ids = np.arange(500) * 7 + 3, np.arange(1000, 1060)
    seen = [rng.choice(np.flatnonzero(labels == f), 20, replace=False) for f in favourite]
    seen_ids = np.concatenate([item_ids[s] for s in seen])
    interactions = Interactions(np.repeat(user_ids, 20), seen_ids)
    return Recommender.build(
        Embeddings(item_ids, items.astype(np.float32)),
        Embeddings(user_ids, users.astype(np.float32)),
        interactions=interactions,
    )


@pytest.fixture(scope="module")
def weak_rec():
    rng = np.random.default_rng(2)
    items = Embeddings(np.arange(3000), rng.standard_normal((3000, 16)).astype(np.float32))
    users = Embeddings(np.arange(100) + 10, rng.standard_normal((100, 16)).astype(np.float32))
    return Recommender.build(
        items, users, index={"recommend": "IVF64,Flat"}, search_params={"recommend": {"nprobe": 1}}
    )


def _serve_all_kinds(rec: Recommender, monitor: LiveRecallMonitor, n: int = 15) -> None:
    for user in rec.users.ids[:n]:
        ids, _ = rec.recommend(user, k=10)
        monitor.observe("recommend", ids, query_id=user, k=10)
        ids, _ = rec.similar_users(user, k=5)
        monitor.observe("similar_users", ids, query_id=user, k=5)
    for item in rec.items.ids[:n]:
        ids, _ = rec.similar_items(item, k=10, exclude=[rec.items.ids[-1]])
        monitor.observe("similar_items", ids, query_id=item, k=10, exclude=[rec.items.ids[-1]])
        vector = rec.items.vectors[rec.items.row_of(item)]
        ids, _ = rec.recommend_by_vector(vector, k=10)
        monitor.observe("recommend", ids, vector=vector, k=10)


def test_exact_index_reads_recall_one_for_every_kind(exact_rec):
    with LiveRecallMonitor(exact_rec, sample_rate=1.0, seed=0) as monitor:
        _serve_all_kinds(exact_rec, monitor)
        assert monitor.flush(timeout=10)
        snap = monitor.snapshot()
    assert snap["errors"] == 0, snap["last_error"]
    assert snap["sampled"] == 60 and snap["dropped"] == 0 and snap["running"]
    kinds = snap["query_kinds"]
    assert set(kinds) == {"recommend", "similar_items", "similar_users"}
    assert all(s["recall"] == 1.0 for s in kinds.values()), kinds
    assert kinds["recommend"]["samples"] == kinds["recommend"]["checked"] == 30


def test_a_weak_index_reads_lower(weak_rec):
    with LiveRecallMonitor(weak_rec, sample_rate=1.0, seed=0) as monitor:
        for user in weak_rec.users.ids:
            ids, _ = weak_rec.recommend(user, k=10)
            monitor.observe("recommend", ids, query_id=user, k=10)
        monitor.flush(timeout=10)
        recall = monitor.snapshot()["query_kinds"]["recommend"]["recall"]
    assert recall < 0.6


def test_exclusions_are_mirrored_so_a_wrong_answer_is_caught(exact_rec):
    """Serving seen items when the query asked to exclude them must read as lost recall."""
    with LiveRecallMonitor(exact_rec, sample_rate=1.0) as monitor:
        for user in exact_rec.users.ids[:10]:
            ids, _ = exact_rec.recommend(user, k=10, exclude_seen=False)
            monitor.observe("recommend", ids, query_id=user, k=10, exclude_seen=True)
        monitor.flush(timeout=10)
        assert monitor.snapshot()["query_kinds"]["recommend"]["recall"] < 0.9
        monitor.set_recommender(exact_rec)
        for user in exact_rec.users.ids[:10]:
            ids, _ = exact_rec.recommend(user, k=10, exclude_seen=False)
            monitor.observe("recommend", ids, query_id=user, k=10, exclude_seen=False)
        monitor.flush(timeout=10)
        assert monitor.snapshot()["query_kinds"]["recommend"]["recall"] == 1.0


def test_recall_is_measured_at_the_monitors_k(exact_rec):
    with LiveRecallMonitor(exact_rec, sample_rate=1.0, k=5) as monitor:
        user = exact_rec.users.ids[0]
        ids, _ = exact_rec.recommend(user, k=30)
        wrong_tail = np.concatenate([ids[:5], ids[::-1][:25]])  # head right, tail scrambled
        monitor.observe("recommend", wrong_tail, query_id=user, k=30)
        monitor.flush(timeout=10)
        assert monitor.snapshot()["query_kinds"]["recommend"]["recall"] == 1.0


def test_full_queue_drops_without_blocking(exact_rec):
    monitor = LiveRecallMonitor(exact_rec, sample_rate=1.0, max_queue=2, start=False)
    ids, _ = exact_rec.recommend(exact_rec.users.ids[0], k=10)
    t = time.perf_counter()
    queued = [monitor.observe("recommend", ids, query_id=exact_rec.users.ids[0]) for _ in range(50)]
    elapsed = time.perf_counter() - t
    assert queued[:2] == [True, True] and not any(queued[2:])
    snap = monitor.snapshot()
    assert snap["sampled"] == 2 and snap["dropped"] == 48 and snap["queue"]["size"] == 2
    assert elapsed < 0.5  # 50 observes, nothing waited on the (stopped) worker
    monitor.start()
    assert monitor.flush(timeout=10)
    assert monitor.snapshot()["query_kinds"]["recommend"]["checked"] == 2
    monitor.close()


def test_sampling_rate_is_respected_and_seeded(exact_rec):
    ids, _ = exact_rec.recommend(exact_rec.users.ids[0], k=10)

    def sampled(seed: int) -> list[bool]:
        monitor = LiveRecallMonitor(
            exact_rec, sample_rate=0.1, max_queue=10_000, seed=seed, start=False
        )
        out = [
            monitor.observe("recommend", ids, query_id=exact_rec.users.ids[0]) for _ in range(2000)
        ]
        monitor.close()
        return out

    first = sampled(7)
    assert first == sampled(7)
    assert 150 <= sum(first) <= 250
    off = LiveRecallMonitor(exact_rec, sample_rate=0.0, start=False)
    assert not off.observe("recommend", ids, query_id=exact_rec.users.ids[0])


def test_bad_samples_are_counted_never_raised(exact_rec):
    with LiveRecallMonitor(exact_rec, sample_rate=1.0) as monitor:
        assert monitor.observe("recommend", [1, 2], query_id=424242)  # unknown user
        assert monitor.observe("u2i", [1, 2], query_id=exact_rec.users.ids[0])
        assert monitor.observe("recommend", [1, 2])  # neither id nor vector
        assert monitor.observe("recommend", [1, 2], vector=[1.0, 2.0])  # wrong dimension
        monitor.flush(timeout=10)
        assert "dimension 2" in monitor.snapshot()["last_error"]
        # Refused while copying, on the request path: counted, not raised.
        assert not monitor.observe("recommend", [1, 2], vector=[[1.0], [2.0, 3.0]])
        assert not monitor.observe("recommend", [1, 2], query_id=1000, exclude=5)
        snap = monitor.snapshot()
    assert snap["errors"] == 6 and snap["running"] and snap["sampled"] == 4


def test_swap_restarts_the_windows_and_ignores_the_old_recommender(exact_rec, weak_rec):
    monitor = LiveRecallMonitor(exact_rec, sample_rate=1.0)
    _serve_all_kinds(exact_rec, monitor, n=3)
    monitor.flush(timeout=10)
    monitor.set_recommender(weak_rec)
    snap = monitor.snapshot()
    assert all(s["samples"] == 0 and s["recall"] is None for s in snap["query_kinds"].values())
    assert snap["query_kinds"]["recommend"]["checked"] == 6  # counters keep counting
    ids, _ = exact_rec.recommend(exact_rec.users.ids[0], k=10)
    # An answer from the old recommender after the swap is not sampled.
    assert not monitor.observe(
        "recommend", ids, query_id=exact_rec.users.ids[0], recommender=exact_rec
    )
    monitor.close()
    monitor.close()
    assert not monitor.observe("recommend", ids, query_id=exact_rec.users.ids[0])
    assert not monitor.snapshot()["running"]


def test_many_threads_at_once(exact_rec):
    monitor = LiveRecallMonitor(exact_rec, sample_rate=0.5, max_queue=64, seed=1)
    users = exact_rec.users.ids
    answers = {u: exact_rec.recommend(u, k=10)[0] for u in users[:20]}
    counts = []

    def serve(offset: int) -> None:
        n = 0
        for i in range(200):
            user = users[(offset + i) % 20]
            n += monitor.observe("recommend", answers[user], query_id=user, k=10)
        counts.append(n)

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.flush(timeout=20)
    snap = monitor.snapshot()
    monitor.close()
    assert snap["errors"] == 0
    assert snap["sampled"] == sum(counts)
    assert snap["sampled"] + snap["dropped"] > 600  # about half of 1600 offered
    assert snap["query_kinds"]["recommend"]["checked"] == snap["sampled"]
    assert snap["query_kinds"]["recommend"]["recall"] == 1.0


def test_prometheus_export(exact_rec):
    prometheus_client = import_extra("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    with LiveRecallMonitor(exact_rec, sample_rate=1.0, k=10) as monitor:
        collector = monitor.register_prometheus(registry)
        text = prometheus_client.generate_latest(registry).decode()
        assert "embrecall_live_recall_dropped_total 0.0" in text
        assert 'embrecall_live_recall{query_kind="recommend"}' not in text  # nothing checked yet
        _serve_all_kinds(exact_rec, monitor, n=2)
        monitor.flush(timeout=10)
        text = prometheus_client.generate_latest(registry).decode()
        assert 'embrecall_live_recall{query_kind="recommend"} 1.0' in text
        assert 'embrecall_live_recall_checked_total{query_kind="similar_items"} 2.0' in text
        with pytest.raises(ValueError, match="Duplicated"):
            monitor.register_prometheus(registry)
        registry.unregister(collector)


def test_refusals(exact_rec):
    for kwargs in ({"sample_rate": 1.5}, {"k": 0}, {"window": 0}, {"max_queue": True}):
        with pytest.raises(InvalidArgumentError):
            LiveRecallMonitor(exact_rec, start=False, **kwargs)


def test_batches_are_observed_row_by_row_without_padding(exact_rec):
    users = list(exact_rec.users.ids[:6])
    with LiveRecallMonitor(exact_rec, sample_rate=1.0) as monitor:
        ids, _ = exact_rec.recommend(users, k=10, exclude=[[exact_rec.items.ids[0]]] * 6)
        queued = monitor.observe_batch(
            "recommend", ids, query_ids=users, k=10, exclude=[[exact_rec.items.ids[0]]] * 6
        )
        vectors = exact_rec.items.vectors[:3]
        per_row = [list(exact_rec.items.ids[:5]), [], []]
        # k = every item, so the row with 5 exclusions is padded with -1.
        ids, _ = exact_rec.search("similar_items", vectors, k=500, exclude=per_row)
        assert (ids[0] == -1).sum() == 5 and not (ids[1:] == -1).any()
        queued += monitor.observe_batch(
            "similar_items", ids, vectors=vectors, k=500, exclude=per_row
        )
        monitor.flush(timeout=10)
        snap = monitor.snapshot()
    assert queued == 9 and snap["errors"] == 0, snap["last_error"]
    assert snap["query_kinds"]["recommend"]["recall"] == 1.0
    assert snap["query_kinds"]["similar_items"]["recall"] == 1.0


def test_nothing_is_sampled_before_a_recommender_is_set(exact_rec):
    with LiveRecallMonitor(None, sample_rate=1.0) as monitor:
        ids, _ = exact_rec.recommend(exact_rec.users.ids[0], k=10)
        assert not monitor.observe("recommend", ids, query_id=exact_rec.users.ids[0])
        monitor.set_recommender(exact_rec)
        assert monitor.observe(
            "recommend", ids, query_id=exact_rec.users.ids[0], recommender=exact_rec
        )
        assert monitor.flush(timeout=10)
        assert monitor.snapshot()["query_kinds"]["recommend"]["recall"] == 1.0
