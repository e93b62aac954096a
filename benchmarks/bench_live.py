"""Live updates: latency with pending changes, change throughput, freshness across processes,
and deleted ids never returned.

    PYTHONPATH=src python benchmarks/bench_live.py                 # 50k items x 64, minutes
    PYTHONPATH=src python benchmarks/bench_live.py --items 200000 --index HNSW32

On synthetic embeddings (lognormal norms, users with seen items), one version is published in a
version root; then:

1. in-process, interleaved round-robin: ``recommend(user, k)`` and ``similar_items(item, k)``
   on the version with no pending change and on the same version with ``--pending`` upserted
   items (half new ids, half replaced vectors) in its delta: p50 / p99 and their ratio, and
   the recall@30 of each against exact search of its own data (with the changes);
2. over HTTP, with two ``embrecall serve`` processes on the root: ``GET
   /v1/users/{id}/recommendations`` p50 with none pending and with ``--pending`` pending;
   sequential ``PUT /v1/items/{id}`` acknowledgements per second (each one fsynced); and, for
   ``--fresh`` upserts acknowledged by one process, the time until the other process answers
   the item at rank 1 by its own vector; then p50 interleaved, request by request, against a
   third server on a root with the same version and no change;
3. ``--deletes`` of the most recommended items deleted through ``embrecall update``, then
   ``--delete-queries`` recommend queries (in-process, the same search path as the server) and
   a tenth as many over HTTP, counting deleted ids returned (the goal: none).

``--parts`` runs some of the three; ``--out`` names the results file.

Results: stdout and benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from bench_core import machine, percentiles, synthetic, time_interleaved

import embrecall
from embrecall.embeddings import Embeddings
from embrecall.index.recall import recall_at_k
from embrecall.interactions import Interactions
from embrecall.live import changes
from embrecall.live.apply import update
from embrecall.live.changelog import ChangeLog
from embrecall.live.delta import LiveState
from embrecall.live.feed import LiveFeed
from embrecall.live.fold import fold
from embrecall.recommender import Recommender
from embrecall.versions import VersionRoot

RESULTS = Path(__file__).parent / "results" / "live.json"
ADMIN_KEY = "bench-admin"


class Server:
    """``embrecall serve ROOT --port 0`` as a process (admin key set)."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "EMBRECALL_ADMIN_API_KEY": ADMIN_KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embrecall", "serve", str(root), "--port", "0",
             "--log-level", "info"],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.port = None
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 300
        while self.port is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.proc.stderr:
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def build_root(work: Path, n_items: int, n_users: int, dim: int, index: str) -> VersionRoot:
    items, users = synthetic(n_items, n_users, dim)
    rng = np.random.default_rng(1)
    seen_u = np.repeat(np.arange(n_users), 20)
    seen_i = rng.integers(0, n_items, len(seen_u))
    rec = Recommender.build(
        Embeddings(np.arange(n_items), items),
        Embeddings(np.arange(10**6, 10**6 + n_users), users),
        interactions=Interactions(seen_u + 10**6, seen_i),
        index=index,
        progress=False,
    )
    rec.save(str(work / "artifact"))
    root = VersionRoot(work / "root")
    root.publish(work / "artifact", "v1")
    return root


def pending_upserts(rec, n: int, seed: int = 2) -> list[dict]:
    rng = np.random.default_rng(seed)
    dim = rec.items.dim
    new = [(10**7 + i) for i in range(n // 2)]
    replaced = rng.choice(len(rec.items), n - len(new), replace=False).tolist()
    vectors = rng.standard_normal((n, dim)) * 1.2
    return [
        changes.upsert(rec, "items", i, v) for i, v in zip(new + replaced, vectors, strict=True)
    ]


def in_process(root: VersionRoot, n_pending: int, queries: int) -> dict:
    """p50 with nothing pending and with ``n_pending`` upserts, interleaved, and the recall@30 of
    each against exact search of its data (with the changes)."""
    base = embrecall.load(root.path_of("v1"))
    live = embrecall.load(root.path_of("v1"))
    LiveFeed(root.path, "v1", live)  # a serving process's overlay
    live.live.state.apply(pending_upserts(live, n_pending))
    rng = np.random.default_rng(3)
    users = rng.choice(base.users.ids, queries).tolist()
    items = rng.choice(base.items.ids, queries).tolist()
    variants = {"none": base, "pending": live}
    out: dict = {}
    for name, qs, fn in (
        ("recommend", users, lambda r, q: r.recommend(q, 30)),
        ("similar_items", items, lambda r, q: r.similar_items(q, 30)),
    ):
        timed = {v: lambda q, r=r, fn=fn: fn(r, q) for v, r in variants.items()}
        row = {v: percentiles(t) for v, t in time_interleaved(timed, qs).items()}
        row["p50_ratio"] = row["pending"]["p50_ms"] / row["none"]["p50_ms"]
        row["recall@30"] = {v: _recall(r, name, qs[:300]) for v, r in variants.items()}
        out[name] = row
    return out


def _recall(rec: Recommender, query: str, ids: list) -> float:
    """Mean recall@30 of ``rec``'s answers against exact search of its data with its changes."""
    state = rec.live.state if rec.live is not None else LiveState(rec.items, rec.users)
    data = fold(rec, state.snapshot)  # with nothing pending: the artifact's own data
    items = data.items
    oracle = Recommender.build(
        items, data.users, interactions=data.interactions, index="Flat", progress=False
    )
    kind = oracle.query_kinds[query]
    got = getattr(rec, query)(ids, 30)
    want = getattr(oracle, query)(ids, 30)
    space = oracle.query_space(kind)
    queries = space.vectors[space.lookup_rows(ids)]
    found = items.lookup_rows(got.ids.ravel()).reshape(got.ids.shape)
    exact_rows = items.lookup_rows(want.ids.ravel()).reshape(want.ids.shape)
    return float(recall_at_k(items.vectors, queries, found, exact_rows, kind.metric).mean())


def http_p50(client, users, n: int) -> dict:
    times = []
    for u in users[:n]:
        t = time.perf_counter()
        r = client.get(f"/v1/users/{u}/recommendations?k=30")
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    return percentiles(times)


def http_interleaved(clients: dict, users) -> dict:
    """p50 of each server on the same users, one request to each in turn (drift hits both)."""
    times: dict = {name: [] for name in clients}
    for u in users:
        for name, client in clients.items():
            t = time.perf_counter()
            r = client.get(f"/v1/users/{u}/recommendations?k=30")
            times[name].append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
    return {name: percentiles(v) for name, v in times.items()}


def over_http(root: VersionRoot, n_pending: int, queries: int, fresh: int, dim: int) -> dict:
    import httpx

    a, b = Server(root.path), Server(root.path)
    out: dict = {}
    try:
        users = (
            np.random.default_rng(4)
            .choice(embrecall.load(root.path_of("v1")).users.ids, queries)
            .tolist()
        )
        headers = {"X-API-Key": ADMIN_KEY}
        with (
            httpx.Client(base_url=a.url, timeout=30) as ca,
            httpx.Client(base_url=b.url, timeout=30) as cb,
        ):
            http_p50(ca, users, 50)  # warm up
            out["p50_none"] = http_p50(ca, users, queries)
            # freshness: acknowledged by a, answered at rank 1 by b
            rng = np.random.default_rng(5)
            lags = []
            for i in range(fresh):
                v = rng.standard_normal(dim).tolist()
                r = ca.put(f"/v1/items/{2 * 10**7 + i}", json={"vector": v}, headers=headers)
                acked = time.perf_counter()
                assert r.status_code == 200, r.text
                while True:
                    body = cb.post("/v1/search", json={"vector": v, "query": "similar_items",
                                                       "k": 1}).json()  # fmt: skip
                    if body["results"][0]["id"] == 2 * 10**7 + i:
                        break
                lags.append(time.perf_counter() - acked)
            out["fresh_on_other_process_s"] = {
                "p50": float(np.median(lags)),
                "max": float(np.max(lags)),
                "n": fresh,
            }
            # acknowledged changes per second, one client, each PUT fsynced
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 5:
                v = rng.standard_normal(dim).tolist()
                r = ca.put(f"/v1/items/{3 * 10**7 + n}", json={"vector": v}, headers=headers)
                assert r.status_code == 200
                n += 1
            out["put_per_s"] = n / (time.perf_counter() - t0)
            # bulk: n_pending upserts through `embrecall update`'s library call
            rec = embrecall.load(root.path_of("v1"))
            rows = pending_upserts(rec, n_pending, seed=9)
            emb = Embeddings([r["id"] for r in rows], [r["vector"] for r in rows])
            t0 = time.perf_counter()
            update(root.path, items=emb, progress=False)
            out["bulk_update_per_s"] = n_pending / (time.perf_counter() - t0)
            target = ChangeLog.of(root.path, "v1").size()
            time.sleep(1.0)  # both processes poll the log
            out["log_bytes"] = target
            out["p50_pending"] = http_p50(ca, users, queries)
            out["pending"] = n_pending + fresh + n
            out["p50_ratio"] = out["p50_pending"]["p50_ms"] / out["p50_none"]["p50_ms"]
        # the same, interleaved against a server of a root with the same version and no change
        clean = VersionRoot(root.path.parent / "clean")
        clean.publish(root.path_of("v1"), "v1")
        c = Server(clean.path)
        try:
            with (
                httpx.Client(base_url=a.url, timeout=30) as ca,
                httpx.Client(base_url=c.url, timeout=30) as cc,
            ):
                http_interleaved({"none": cc, "pending": ca}, users[:50])  # warm up
                both = http_interleaved({"none": cc, "pending": ca}, users)
            out["interleaved"] = {
                **both,
                "p50_ratio": both["pending"]["p50_ms"] / both["none"]["p50_ms"],
            }
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()
    return out


def deleted_never_returned(root: VersionRoot, n_deletes: int, n_queries: int) -> dict:
    import httpx

    rec = embrecall.load(root.path_of("v1"))
    feed = LiveFeed(root.path, "v1", rec)
    counts: dict[int, int] = {}
    for u in rec.users.ids[:500].tolist():
        for i in rec.recommend(u, 30).ids.tolist():
            counts[i] = counts.get(i, 0) + 1
    gone = sorted(counts, key=counts.get, reverse=True)[:n_deletes]
    update(root.path, delete_items=gone, progress=False)
    server = Server(root.path)
    try:
        feed.poll()  # the deletes, as every server applies them
        gone_set = set(gone)
        users = rec.users.ids.tolist()
        returned = 0
        t0 = time.perf_counter()
        for q in range(n_queries):
            returned += len(gone_set.intersection(rec.recommend(users[q % len(users)], 30).ids))
        seconds = time.perf_counter() - t0
        http_returned = 0
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for q in range(n_queries // 10):
                body = c.get(f"/v1/users/{users[q % len(users)]}/recommendations?k=30").json()
                http_returned += len(gone_set.intersection(r["id"] for r in body["results"]))
    finally:
        server.stop()
    return {
        "deleted": len(gone),
        "queries_in_process": n_queries,
        "deleted_returned_in_process": returned,
        "queries_http": n_queries // 10,
        "deleted_returned_http": http_returned,
        "in_process_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--users", type=int, default=2_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--index", default="HNSW32")
    p.add_argument("--pending", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=2_000)
    p.add_argument("--fresh", type=int, default=20)
    p.add_argument("--deletes", type=int, default=1_000)
    p.add_argument("--delete-queries", type=int, default=100_000)
    p.add_argument(
        "--parts",
        default="in_process,http,deletes",
        help="comma-separated parts to run (in_process, http, deletes)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    results: dict = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = build_root(work, args.items, args.users, args.dim, args.index)
        if "in_process" in parts:
            results["in_process"] = in_process(root, args.pending, args.queries)
            print(json.dumps(results["in_process"], indent=1))
        if "http" in parts:
            results["http"] = over_http(root, args.pending, args.queries // 2, args.fresh, args.dim)
            print(json.dumps(results["http"], indent=1))
        if "deletes" in parts:
            root2 = VersionRoot(work / "root2")
            root2.publish(work / "artifact", "v1")
            results["deletes"] = deleted_never_returned(root2, args.deletes, args.delete_queries)
            print(json.dumps(results["deletes"], indent=1))
    args.out.parent.mkdir(exist_ok=True)
    results["args"] = {**results["args"], "out": str(args.out)}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
