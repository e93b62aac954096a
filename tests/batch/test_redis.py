"""The Redis sink against a real redis-server: results, the atomic flip, kills, faults, memory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import embrecall
from embrecall.batch import CachedRecall, SinkError, cached, open_sink, plan_batch, run_batch
from embrecall.batch.commands import describe_plan
from embrecall.embeddings import Embeddings
from embrecall.recommender import Recommender
from helpers import assert_same_list, import_extra

from .support import RedisServer, save_synthetic

redis = import_extra("redis", reason="the redis client is not installed (embrecall[redis])")
REPO = Path(__file__).resolve().parents[2]


def client_of(url: str):
    return redis.Redis.from_url(url.split("?")[0])


def prefix_of(url: str) -> str:
    return url.split("prefix=")[1]


def test_every_list_equals_online_with_exclusions(rec, redis_url):
    plan = plan_batch(rec, k=20, queries=["recommend", "similar_items"], block_size=16)
    report = run_batch(plan, redis_url, progress=False)
    recall = CachedRecall(redis_url)
    for user in rec.users.ids:
        ids, scores = recall.recommend(user)
        assert_same_list((ids, scores), rec.recommend(user, 20))
        assert not np.isin(ids, rec.seen_items(user)).any()
    for item in rec.items.ids:
        assert_same_list(recall.similar_items(item), rec.similar_items(item, 20))
    client, p = client_of(redis_url), prefix_of(redis_url)
    assert client.get(f"{p}:current").decode() == report.version
    assert client.exists(f"{p}:v:{report.version}:u2i:{rec.users.ids[0]}")
    assert not client.exists(f"{p}:v:{report.version}:done")  # bookkeeping gone after commit
    assert client.hlen(f"{p}:pending") == 0 and not client.exists(f"{p}:lock")


def test_a_reader_during_a_write_never_sees_mixed_versions(rec, redis_url):
    # A second recommender with other user vectors, so that the two versions answer differently.
    shifted = Embeddings(rec.users.ids, rec.users.vectors[::-1].copy())
    rec2 = Recommender.build(rec.items, shifted, catalog=rec.catalog)
    users = list(rec.users.ids)
    first = run_batch(plan_batch(rec, k=8), redis_url, progress=False)
    expected = {first.version: [rec.recommend(u, 8) for u in users]}
    want2 = [rec2.recommend(u, 8) for u in users]
    reads: list[tuple[str, list]] = []
    single: list[tuple[str, object, tuple]] = []
    pointer: list[str] = []
    done = threading.Event()

    def reader() -> None:
        recall = CachedRecall(redis_url)
        client, p = client_of(redis_url), prefix_of(redis_url)
        i = 0
        while True:
            # a read begun once the writer returned must see its version: the last one does
            last = done.is_set() and i >= 2
            lists = recall.lookup("recommend", users)  # many ids: one version for all
            reads.append((recall.version, lists))
            user = users[i % len(users)]
            got = recall.recommend(user)  # one id: pointer, then key
            single.append((recall.version, user, got))
            pointer.append(client.get(f"{p}:current").decode())
            i += 1
            if last:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        second = run_batch(plan_batch(rec2, k=8, block_size=2), redis_url, progress=False)
    finally:
        done.set()
        thread.join(timeout=60)
    expected[second.version] = want2
    assert {v for v, _ in reads} <= set(expected)
    for version, lists in reads:  # every lookup: one whole version, never a mix
        for got, want in zip(lists, expected[version]):
            assert_same_list(got, want)
    for version, user, got in single:
        assert_same_list(got, expected[version][users.index(user)])
    assert set(pointer) <= {first.version, second.version}
    assert reads[-1][0] == second.version  # and the new one once it is current
    assert reads[0][0] == first.version  # the reader was reading before and during the write


def test_a_killed_run_leaves_the_previous_version_current_and_resumes(tmp_path, redis_url):
    art = save_synthetic(tmp_path / "big", n_users=40_000, n_items=2_000)
    rec = embrecall.load(art)
    first = run_batch(plan_batch(rec, k=5, user_ids=rec.users.ids[:10]), redis_url, progress=False)
    client, p = client_of(redis_url), prefix_of(redis_url)
    script = (
        "import sys, embrecall\n"
        "from embrecall.batch import plan_batch, run_batch\n"
        "rec = embrecall.load(sys.argv[1])\n"
        "run_batch(plan_batch(rec, k=20, block_size=32), sys.argv[2], progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    proc = subprocess.Popen([sys.executable, "-c", script, str(art), redis_url], env=env)
    try:
        done_blocks, deadline = 0, time.monotonic() + 120
        while done_blocks < 10 and time.monotonic() < deadline and proc.poll() is None:
            keys = list(client.scan_iter(match=f"{p}:v:*:done"))
            done_blocks = client.scard(keys[0]) if keys else 0
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert client.get(f"{p}:current").decode() == first.version
    user = rec.users.ids[0]
    assert len(cached(user, redis_url)[0]) == 5  # the first version, whole
    with pytest.raises(embrecall.UnknownIdError):
        cached(rec.users.ids[-1], redis_url)  # not in the first version: no half-written data
    report = run_batch(plan_batch(rec, k=20, block_size=32), redis_url, progress=False)
    assert report.blocks_resumed >= 10
    assert report.blocks_resumed + report.blocks_computed == -(-40_000 // 32)
    recall = CachedRecall(redis_url)
    for u in rec.users.ids[::997]:
        assert_same_list(recall.recommend(u), rec.recommend(u, 20))
    assert client.ttl(f"{p}:v:{first.version}:u2i:{user}") > 0  # the old one expires


def test_an_unreachable_redis_fails_fast_and_flips_nothing(rec, redis_url):
    run_batch(plan_batch(rec, k=3), redis_url, progress=False)
    client, p = client_of(redis_url), prefix_of(redis_url)
    before = client.get(f"{p}:current")
    keys_before = client.dbsize()
    t0 = time.perf_counter()
    with pytest.raises(SinkError, match="cannot reach Redis at redis://127.0.0.1:1/0") as err:
        run_batch(plan_batch(rec, k=3), f"redis://127.0.0.1:1/0?prefix={p}", progress=False)
    assert time.perf_counter() - t0 < 5
    assert "the current version is unchanged" in str(err.value)
    assert client.get(f"{p}:current") == before and client.dbsize() == keys_before


def test_a_server_that_dies_mid_run_raises_a_sink_error(rec, tmp_path_factory):
    if not shutil.which("redis-server"):
        pytest.skip("needs a redis-server binary to start (and stop) a server of its own")
    server = RedisServer(shutil.which("redis-server"), tmp_path_factory.mktemp("r"))
    sink = open_sink(server.url + "?prefix=dies")
    first = run_batch(plan_batch(rec, k=3), sink, progress=False)
    plan = plan_batch(rec, k=4, queries=["similar_items"], block_size=5)

    calls = [0]

    original = sink.open_run

    def open_run(*args, **kwargs):
        run = original(*args, **kwargs)
        write = run.write_block

        def write_block(*a):
            calls[0] += 1
            if calls[0] == 5:
                server.stop()  # the real server goes away between two blocks
            write(*a)

        run.write_block = write_block
        return run

    sink.open_run = open_run
    with pytest.raises(SinkError, match="Redis at redis://127.0.0.1:.*cannot write block"):
        run_batch(plan, sink, progress=False)
    assert first.version  # nothing else to check: the server, and its data, are gone


def test_old_versions_expire_or_are_deleted(rec, redis_server):
    url = f"{redis_server}?prefix=retire"
    client = client_of(url)
    a = run_batch(plan_batch(rec, k=3), open_sink(url, old_ttl=0), progress=False)
    b = run_batch(plan_batch(rec, k=4), open_sink(url, old_ttl=0), progress=False)
    assert not list(client.scan_iter(match=f"retire:v:{a.version}:*"))  # deleted at once
    c = run_batch(plan_batch(rec, k=5), open_sink(url, old_ttl=120), progress=False)
    ttls = {client.ttl(k) for k in client.scan_iter(match=f"retire:v:{b.version}:*")}
    assert ttls and all(0 < t <= 120 for t in ttls)
    assert all(client.ttl(k) == -1 for k in client.scan_iter(match=f"retire:v:{c.version}:*"))
    assert {v.decode() for v in client.smembers("retire:versions")} == {c.version}


def test_a_second_writer_on_the_same_prefix_is_refused(rec, redis_url):
    sink = open_sink(redis_url)
    plan = plan_batch(rec, k=3)
    run = sink.open_run(plan.fingerprint, plan.meta(), restart=False)
    try:
        with pytest.raises(SinkError, match="another batch run .* is writing under prefix"):
            run_batch(plan_batch(rec, k=7), redis_url, progress=False)
    finally:
        run.close()
    run_batch(plan_batch(rec, k=7), redis_url, progress=False)  # free again once closed


def test_the_memory_estimate_is_close_to_what_redis_uses(tmp_path, redis_server):
    rec = embrecall.load(save_synthetic(tmp_path / "mem", n_users=8_000, n_items=1_000))
    url = f"{redis_server}?prefix=memory"
    client = client_of(url)
    sink = open_sink(url)
    plan = plan_batch(rec, k=50)
    estimate = sink.estimate_bytes(8_000, plan.value_bytes(plan.tasks[0]), 6)
    before = client.info("memory")["used_memory"]
    run_batch(plan, sink, progress=False)
    used = client.info("memory")["used_memory"] - before
    assert 0.85 * used < estimate < 1.15 * used, (estimate, used)
    assert "in Redis for 8,000 result lists" in describe_plan(plan, open_sink(url))
