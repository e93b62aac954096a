"""HTTP benchmark of ``embrecall serve``: latency, throughput, HTTP overhead, swaps under load.

One command (a few minutes on 2 cores; artifacts are cached in --workdir)::

    PYTHONPATH=src python benchmarks/bench_http.py

What it does, for synthetic clustered embeddings (dim 64, 10k users with 20 seen items each,
a catalog with title and genres):

1. builds artifacts: 100k items with exact ``Flat`` indexes, 1M items with ``IVF1024,Flat``
   for recommend and similar items (nprobe 64), and two 100k versions in a version root;
2. in-process: ``rec.recommend(user, k=30)`` + ``rec.results(...)`` (the catalog join) on one
   thread with one OpenMP thread (as the server runs faiss), back to back, and batched by 2, 4
   and 16 (does batching concurrent queries pay?);
3. over HTTP, once with searches in worker threads and once on the event loop
   (``search_threads`` = cores, then 0): starts ``python -m embrecall serve`` (one
   uvicorn worker) on loopback and drives ``GET /v1/users/{id}/recommendations?k=30`` with
   random users: closed loop at concurrency 1, 2, 4, 8, then open loop at 80/60/40/20% of the
   closed-loop maximum (latency from the scheduled send time); then the same queries in-process,
   paced at those rates (a VM's idle cores wake slowly: that cost is the machine's, not
   HTTP's). The HTTP overhead ratio is HTTP p50 at concurrency 1 over in-process back-to-back
   p50. With ``wrk`` installed (Debian: ``apt-get install wrk``) a wrk closed-loop run is added
   as a cross-check of the Python load generator; without it that row is skipped;
4. swaps: 20 pointer flips between the two 100k versions while an open-loop load of 100 req/s
   runs against the server with its default settings, counting non-2xx responses and the
   server's resident memory before, at peak and after.

Results go to ``benchmarks/results/bench_http.json`` and a summary to stdout.

``--workers 1,2`` runs a comparison instead: the closed-loop load (``--concurrency``) against
``embrecall serve --workers N --mmap`` for each N (mapped in every case, so that only the
number of server processes differs; each with its default ``search_threads``), with the summed
resident and proportional memory of the server processes, written to
``benchmarks/results/bench_http_workers.json``. The load generator runs on the same machine,
so on few cores it takes CPU from the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402

import embrecall  # noqa: E402
from embrecall.catalog import Catalog  # noqa: E402
from embrecall.embeddings import Embeddings  # noqa: E402
from embrecall.interactions import Interactions  # noqa: E402
from embrecall.recommender import Recommender  # noqa: E402
from embrecall.versions import VersionRoot  # noqa: E402

DIM = 64
DATA_VERSION = 2  # part of the cached artifacts' names: bump when synthetic() changes
USERS = 10_000
SEEN = 20
K = 30
OPEN_LOOP_FRACTIONS = (0.8, 0.6, 0.4, 0.2)
MODES = {
    "threads": (str(len(os.sched_getaffinity(0))), "in worker threads (search_threads = cores)"),
    "inline": ("0", "on the event loop (search_threads = 0)"),
}
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Western", "Documentary"]


# -- data ------------------------------------------------------------------------------------
def synthetic(n_items: int, seed: int):
    """Clustered item and user vectors (trained MF / two-tower vectors have such structure; on
    structureless Gaussian noise no IVF or HNSW index reaches a useful recall), skewed norms,
    seen items and a catalog."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((512, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, len(centres), n_items)
    items = centres[labels] + 0.08 * rng.standard_normal((n_items, DIM), dtype=np.float32)
    items *= rng.lognormal(0, 0.25, (n_items, 1)).astype(np.float32)
    fav = rng.integers(0, len(centres), USERS)
    users = 1.5 * centres[fav] + 0.1 * rng.standard_normal((USERS, DIM), dtype=np.float32)
    item_ids = np.arange(n_items, dtype=np.int64) + 1
    user_ids = np.arange(USERS, dtype=np.int64) + 1
    seen_items = rng.integers(0, n_items, (USERS, SEEN))
    interactions = Interactions(np.repeat(user_ids, SEEN), item_ids[seen_items.ravel()])
    frame = pd.DataFrame(
        {
            "title": [f"Item {i}" for i in item_ids],
            "genres": [GENRES[g % len(GENRES)] for g in labels],
        },
        index=pd.Index(item_ids, name="id"),
    )
    return (
        Embeddings(item_ids, items, source="items"),
        Embeddings(user_ids, users, source="users"),
        Catalog(frame),
        interactions,
    )


def build_artifact(path: Path, n_items: int, index, seed: int) -> Path:
    if (path / "manifest.json").exists():
        return path
    t0 = time.perf_counter()
    items, users, catalog, interactions = synthetic(n_items, seed)
    rec = Recommender.build(
        items, users, catalog=catalog, interactions=interactions, index=index, progress=False
    )
    rec.save(str(path), overwrite=True)
    print(f"  built {path.name} ({n_items} items) in {time.perf_counter() - t0:.1f}s", flush=True)
    return path


# -- in-process ------------------------------------------------------------------------------
def in_process(rec, n: int) -> dict:
    """Back-to-back queries on one thread: the library's own latency and throughput."""
    users = np.random.default_rng(1).integers(1, USERS + 1, n)
    for u in users[:200]:
        rec.results(*rec.recommend(int(u), K))
    lat = []
    t_all = time.perf_counter()
    for u in users:
        t0 = time.perf_counter()
        rec.results(*rec.recommend(int(u), K))
        lat.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    out = {"requests": n, "throughput_rps": round(n / total, 1), **_percentiles(lat)}
    out["batching"] = batching(rec, users)
    return out


def in_process_paced(rec, rate: float, seconds: float) -> dict:
    """The same queries at a fixed arrival rate, latency from the scheduled time: what the
    machine gives a query that arrives at an idle moment, without any HTTP."""
    users = np.random.default_rng(2).integers(1, USERS + 1, int(rate * seconds))
    lat = []
    t0 = time.perf_counter() + 0.05
    for i, u in enumerate(users):
        due = t0 + i / rate
        if (delay := due - time.perf_counter()) > 0:
            time.sleep(delay)
        rec.results(*rec.recommend(int(u), K))
        lat.append(time.perf_counter() - due)
    return {"rate_rps": rate, **_percentiles(lat)}


def _percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {q: round(float(np.percentile(ms, v)), 3) for q, v in (("p50_ms", 50), ("p99_ms", 99))}


def batching(rec, users) -> dict:
    """Per-query time of single calls against one call with 2, 4 or 16 ids: does batching
    concurrent queries into one faiss call pay?"""
    out = {}
    for seen in (True, False):
        t0 = time.perf_counter()
        for u in users[:640]:
            rec.recommend(int(u), K, exclude_seen=seen)
        row = {"single_ms": round((time.perf_counter() - t0) / 640 * 1000, 3)}
        for size in (2, 4, 16):
            groups = users[:640].reshape(-1, size)
            t0 = time.perf_counter()
            for g in groups:
                rec.recommend(g.tolist(), K, exclude_seen=seen)
            row[f"batch{size}_ms"] = round((time.perf_counter() - t0) / 640 * 1000, 3)
        out["exclude_seen" if seen else "no_exclusions"] = row
    return out


class OtherLoad:
    """CPU the rest of the machine used meanwhile (other jobs on a shared box), in cores.

    Busy time from /proc/stat minus this process and the server's processes.
    """

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        server = [self.server_pid, *_descendants(self.server_pid)] if self.server_pid else []
        ours = _proc_ticks("self") + sum(_proc_ticks(pid) for pid in server)  # and its workers
        return time.perf_counter(), user + nice + system + irq + softirq + steal, ours

    def cores(self) -> float:
        t1, busy1, ours1 = self._snapshot()
        t0, busy0, ours0 = self.start
        ticks = os.sysconf("SC_CLK_TCK")
        return round(max(0.0, (busy1 - busy0) - (ours1 - ours0)) / ticks / (t1 - t0), 2)


def _proc_ticks(pid) -> int:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(parts[11]) + int(parts[12])  # utime + stime


# -- server ----------------------------------------------------------------------------------
class Server:
    """``python -m embrecall serve TARGET --port 0`` in a subprocess."""

    def __init__(self, target: Path, env: dict | None = None, args: tuple[str, ...] = ()) -> None:
        src = str(Path(embrecall.__file__).resolve().parents[1])
        full_env = {**os.environ, "PYTHONPATH": src, **(env or {})}
        self.workers = 1
        if "--workers" in args:
            self.workers = int(args[args.index("--workers") + 1])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "embrecall",
                "serve",
                str(target),
                "--port",
                "0",
                "--log-level",
                "info",
                *args,
            ],
            env=full_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = None
        self.log: list[str] = []
        started = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"running on http://[\d.]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    started.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.time() + 300
        while self.port is None and time.time() < deadline and self.proc.poll() is None:
            started.wait(0.2)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log[-30:]))
        pids: set[int] = set()
        while time.time() < deadline and self.proc.poll() is None:
            try:  # every worker ready: each answered /v1/info (a new connection each time)
                status, body = self.get("/v1/info")
                if status == 200 and json.loads(body)["version"]:
                    pids.add(json.loads(body).get("pid"))
                    if len(pids) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server never became ready:\n" + "".join(self.log[-30:]))

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def memory_mib(self) -> dict:
        """Resident and proportional (shared pages split between sharers) memory summed over
        the server's processes: the parent and its workers."""
        pids = [self.proc.pid, *_descendants(self.proc.pid)]
        total = {"Rss": 0, "Pss": 0}
        for pid in pids:
            try:
                lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                key = line.split(":", 1)[0]
                if key in total:
                    total[key] += int(line.split()[1])
        return {
            "processes": len(pids),
            **{f"{k.lower()}_mib": round(v / 1024, 1) for k, v in total.items()},
        }

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1].decode()
        m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found += [int(entry.name), *_descendants(int(entry.name))]
    return found


def request_maker(n_users: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    users = rng.integers(1, n_users + 1, 1 << 16)
    raws = [loadgen.get(f"/v1/users/{u}/recommendations?k={K}") for u in users]
    state = {"i": 0}

    def make() -> bytes:
        state["i"] = (state["i"] + 1) & 0xFFFF
        return raws[state["i"]]

    return make


def http_runs(
    server: Server,
    seconds: float,
    concurrencies: list[int],
    rates: list[int] | None,
    with_wrk: bool,
) -> dict:
    make = request_maker(USERS)
    out: dict = {"closed": {}}
    for c in concurrencies:
        run = asyncio.run(
            loadgen.closed("127.0.0.1", server.port, make, concurrency=c, seconds=seconds)
        )
        out["closed"][str(c)] = run.summary()
        s = out["closed"][str(c)]
        print(
            f"      closed c={c}: {s['throughput_rps']} req/s, p50 {s['p50_ms']} ms, "
            f"p99 {s['p99_ms']} ms, non-2xx {s['non_2xx']}",
            flush=True,
        )
    # Open loop below the closed-loop maximum: the highest rate whose p99 stays within 10 ms
    # is the load this machine sustains at the latency target.
    if rates is None:
        best = max(v["throughput_rps"] for v in out["closed"].values())
        rates = [max(10, round(f * best)) for f in OPEN_LOOP_FRACTIONS]
    out["open"] = []
    for rate in rates:
        run = asyncio.run(
            loadgen.open_loop("127.0.0.1", server.port, make, rate=rate, seconds=seconds)
        )
        s = {"rate_rps": rate, **run.summary()}
        out["open"].append(s)
        print(
            f"      open loop at {rate} req/s: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
            f"p99.9 {s['p999_ms']} ms, non-2xx {s['non_2xx']}",
            flush=True,
        )
    within = [r for r in out["open"] if r["p99_ms"] is not None and r["p99_ms"] <= 10.0]
    out["sustained_at_p99_10ms"] = max(within, key=lambda r: r["rate_rps"]) if within else None
    out["wrk"] = wrk_run(server.port, seconds) if with_wrk else None
    return out


def wrk_run(port: int, seconds: float) -> dict | None:
    """A wrk closed-loop cross-check (4 connections, 1 thread), when wrk is installed."""
    if shutil.which("wrk") is None:
        print("      wrk not installed (apt-get install wrk): cross-check skipped", flush=True)
        return None
    script = (
        "math.randomseed(7)\n"
        "request = function()\n"
        f"  return wrk.format('GET', '/v1/users/' .. math.random(1, {USERS}) .. "
        f"'/recommendations?k={K}')\n"
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c4",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                f.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(f.name)

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return round(float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)], 3)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {
        "connections": 4,
        "throughput_rps": float(rps.group(1)) if rps else None,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }
    print(
        f"      wrk c=4: {result['throughput_rps']} req/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms",
        flush=True,
    )
    return result


# -- swaps -----------------------------------------------------------------------------------
def swaps_under_load(root: Path, swaps: int, rate: float) -> dict:
    server = Server(root, env={"EMBRECALL_WATCH_INTERVAL_S": "0.2"})
    try:
        make = request_maker(USERS)
        asyncio.run(loadgen.closed("127.0.0.1", server.port, make, concurrency=2, seconds=3))
        time.sleep(1)
        rss_one = server.rss_mib()
        vroot = VersionRoot(root)
        ids = vroot.ids()
        peak = [rss_one]
        swap_log: list[float] = []

        def serving() -> str | None:
            status, body = server.get("/readyz")
            return json.loads(body).get("version") if status == 200 else None

        def flipper() -> None:
            # one swap every ~1.5 s, so that the load spans both versions evenly
            for _ in range(swaps):
                target = ids[(ids.index(vroot.current()) + 1) % len(ids)]
                t0 = time.perf_counter()
                vroot.activate(target)
                while serving() != target:
                    peak.append(server.rss_mib())
                    time.sleep(0.05)
                swap_log.append(time.perf_counter() - t0)
                peak.append(server.rss_mib())
                time.sleep(1.0)

        seconds = swaps * 2.5 + 5  # the swaps take ~1.5 s each, then a few seconds on one
        other = OtherLoad(server.proc.pid)
        thread = threading.Thread(target=flipper, daemon=True)
        thread.start()
        run = asyncio.run(
            loadgen.open_loop("127.0.0.1", server.port, make, rate=rate, seconds=seconds)
        )
        thread.join(timeout=120)
        deadline = time.time() + 20
        while server.metric("embrecall_versions_in_memory") > 1 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        rss_after = server.rss_mib()
        summary = run.summary()
        result = {
            "swaps": len(swap_log),
            "swaps_counted_by_server": server.metric("embrecall_swaps_total"),
            "load_failures": server.metric('embrecall_version_loads_total{result="failed"}'),
            "swap_seconds_mean": round(float(np.mean(swap_log)), 3) if swap_log else None,
            "rate_rps": rate,
            **summary,
            "rss_one_version_mib": round(rss_one, 1),
            "rss_peak_mib": round(max(peak), 1),
            "rss_after_mib": round(rss_after, 1),
            "versions_in_memory_after": server.metric("embrecall_versions_in_memory"),
            "other_jobs_cores": other.cores(),
        }
        print(
            f"    {result['swaps']} swaps under {rate} req/s: {summary['requests']} requests, "
            f"non-2xx {summary['non_2xx']}, p99 {summary['p99_ms']} ms, "
            f"versions {summary['versions']}; "
            f"RSS one version {result['rss_one_version_mib']} MiB, peak {result['rss_peak_mib']}, "
            f"after {result['rss_after_mib']}",
            flush=True,
        )
        return result
    finally:
        server.stop()


# -- workers ---------------------------------------------------------------------------------
def workers_comparison(path: Path, workers: list[int], seconds: float, concurrencies) -> dict:
    """The same closed-loop load against ``serve --workers N --mmap`` for each N."""
    out = {}
    for n in workers:
        print(f"    HTTP, --workers {n} --mmap:", flush=True)
        server = Server(path, args=("--workers", str(n), "--mmap"))
        try:
            other = OtherLoad(server.proc.pid)
            make = request_maker(USERS)
            asyncio.run(loadgen.closed("127.0.0.1", server.port, make, concurrency=2, seconds=2))
            run: dict = {"closed": {}}
            for c in concurrencies:
                result = asyncio.run(
                    loadgen.closed("127.0.0.1", server.port, make, concurrency=c, seconds=seconds)
                )
                s = run["closed"][str(c)] = result.summary()
                print(
                    f"      closed c={c}: {s['throughput_rps']} req/s, p50 {s['p50_ms']} ms, "
                    f"p99 {s['p99_ms']} ms, non-2xx {s['non_2xx']}",
                    flush=True,
                )
            run["memory"] = server.memory_mib()
            run["other_jobs_cores"] = other.cores()
            print(f"      memory of the server processes: {run['memory']}", flush=True)
        finally:
            server.stop()
        out[str(n)] = run
    return out


# -- main ------------------------------------------------------------------------------------
def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next((int(x.split()[1]) for x in meminfo if x.startswith("MemTotal")), 0)
    return {
        "nproc": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": model,
        "memory_gib": round(mem / 2**20, 1),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        default=os.path.join(tempfile.gettempdir(), "embrecall-bench"),
        help="where artifacts are built and cached",
    )
    parser.add_argument("--sizes", default="100k,1m", help="comma-separated: 100k, 1m")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load phase")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument(
        "--swap-rate", type=float, default=100.0, help="req/s during the swaps (default 100)"
    )
    parser.add_argument(
        "--modes",
        default="threads,inline",
        help="server search modes to compare: threads (search_threads = cores), inline (0)",
    )
    parser.add_argument(
        "--workers",
        default=None,
        help="compare `serve --workers N` for these N (e.g. 1,2) instead of the default runs",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="default: results/bench_http.json, or results/bench_http_workers.json with --workers",
    )
    args = parser.parse_args(argv)
    default_out = "bench_http_workers.json" if args.workers else "bench_http.json"
    args.out = args.out or str(HERE / "results" / default_out)
    print(f"event loop: {loadgen.install_fast_loop()}", flush=True)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = {
        "100k": (100_000, "Flat"),
        "1m": (
            1_000_000,
            {"recommend": "IVF1024,Flat", "similar_items": "IVF1024,Flat", "similar_users": "Flat"},
        ),
    }
    results: dict = {"machine": machine(), "k": K, "dim": DIM, "users": USERS, "sizes": {}}
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    for name in [x for x in args.sizes.split(",") if x]:
        n, index = sizes[name]
        print(f"{name}: {n} items, index {index}", flush=True)
        path = build_artifact(work / f"art-{name}-d{DATA_VERSION}", n, index, seed=11)
        if args.workers:
            counts = [int(w) for w in args.workers.split(",")]
            results["sizes"][name] = {
                "items": n,
                "index": index,
                "workers": workers_comparison(path, counts, args.seconds, concurrencies),
            }
            continue
        faiss.omp_set_num_threads(1)  # as the server runs it
        rec = embrecall.load(path)
        inproc = in_process(rec, 3000)
        print(
            f"    in-process: p50 {inproc['p50_ms']} ms, p99 {inproc['p99_ms']} ms, "
            f"{inproc['throughput_rps']} q/s on one thread; batching {inproc['batching']}",
            flush=True,
        )
        http: dict = {}
        rates = None
        for i, mode in enumerate(args.modes.split(",")):
            print(f"    HTTP, searches {MODES[mode][1]}:", flush=True)
            server = Server(path, env={"EMBRECALL_SEARCH_THREADS": MODES[mode][0]})
            try:
                other = OtherLoad(server.proc.pid)
                run = http_runs(server, args.seconds, concurrencies, rates, with_wrk=i == 0)
                run["rss_mib"] = round(server.rss_mib(), 1)
                run["other_jobs_cores"] = other.cores()
                print(f"      other jobs on the machine used {run['other_jobs_cores']} cores")
            finally:
                server.stop()
            rates = [r["rate_rps"] for r in run["open"]]  # the same rates for every mode
            c1 = run["closed"].get("1")
            run["overhead_p50_ratio"] = round(c1["p50_ms"] / inproc["p50_ms"], 2) if c1 else None
            print(
                f"      HTTP overhead (p50 at c=1 / in-process p50): {run['overhead_p50_ratio']}x"
            )
            http[mode] = run
        half = args.seconds / 2
        inproc["paced"] = [in_process_paced(rec, r, half) for r in rates or []]
        for p in inproc["paced"]:
            print(
                f"    in-process paced at {p['rate_rps']} q/s: p50 {p['p50_ms']} ms, "
                f"p99 {p['p99_ms']} ms",
                flush=True,
            )
        del rec
        results["sizes"][name] = {"items": n, "index": index, "in_process": inproc, "http": http}
    if args.swaps and not args.workers:
        print(f"swaps: {args.swaps} under load, 100k items", flush=True)
        root = work / f"root-d{DATA_VERSION}"
        if not (root / "versions").is_dir() or len(VersionRoot(root).ids()) < 2:
            shutil.rmtree(root, ignore_errors=True)
            vroot = VersionRoot(root)
            for vid, seed in (("a", 21), ("b", 22)):
                art = build_artifact(
                    work / f"art-swap-{vid}-d{DATA_VERSION}", 100_000, "Flat", seed
                )
                vroot.publish(art, vid)
        rate = args.swap_rate or 100
        results["swaps"] = swaps_under_load(root, args.swaps, rate=rate)
    results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
