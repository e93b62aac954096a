"""Read speed of ``read_embeddings`` on a Spark-format CSV, against the naive way.

Writes a synthetic ``id,features`` CSV in the layout ``toPandas().to_csv(index=False)`` gives
(``10,"[-1.1158843040466309, 0.2526657879352569, ...]"``), times ``read_embeddings`` on it
(best of ``--repeat``), and times the usual hand-written reader, ``pandas.read_csv`` followed by
``json.loads`` on every row, on at most ``--baseline-rows`` rows, extrapolated when that is
fewer than the file holds.

    python benchmarks/bench_read.py --rows 1000000 --dim 64
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

try:
    from embrecall.io import read_embeddings
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from embrecall.io import read_embeddings

POOL = 1 << 20  # distinct numbers formatted once, then drawn per cell: fast to write, still varied


def write_spark_csv(path: Path, rows: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the file; return the ids and the float32 vectors it holds.

    Numbers are float32 values printed as their float64 repr, as Spark's factors come out of
    ``toPandas()``; arrow formats them, vectorised.
    """
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal(POOL).astype(np.float32)
    texts = pc.cast(pa.array(pool.astype(np.float64)), pa.string())
    cells = rng.integers(0, POOL, size=(rows, dim))
    lists = pa.ListArray.from_arrays(
        pa.array(np.arange(0, rows * dim + 1, dim, dtype=np.int32)),
        texts.take(pa.array(cells.ravel())),
    )
    features = pc.binary_join_element_wise("[", pc.binary_join(lists, ", "), "]", "")
    ids = np.arange(rows, dtype=np.int64) * 10 + 1
    with open(path, "wb") as f:
        f.write(b"id,features\n")
        pcsv.write_csv(
            pa.table({"id": ids, "features": features}),
            f,
            pcsv.WriteOptions(include_header=False, quoting_style="needed"),
        )
    return ids, pool[cells]


def time_embrecall(path: Path, repeat: int) -> tuple[list[float], object]:
    times, emb = [], None
    for _ in range(repeat):
        emb = None
        gc.collect()
        started = time.perf_counter()
        emb = read_embeddings(path)
        times.append(time.perf_counter() - started)
    return times, emb


def time_naive(path: Path, rows: int) -> float:
    """pandas.read_csv + json.loads per row, the reader most projects start with."""
    started = time.perf_counter()
    frame = pd.read_csv(path, nrows=rows)
    vectors = np.array([json.loads(cell) for cell in frame["features"]], dtype=np.float32)
    elapsed = time.perf_counter() - started
    assert vectors.shape[0] == min(rows, len(frame))
    return elapsed


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"nproc={os.cpu_count()}, {model}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of read_embeddings (best kept)")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=100_000,
        help="rows the naive reader is timed on (extrapolated beyond)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="embrecall-bench-") as tmp:
        path = Path(tmp) / "factors.csv"
        started = time.perf_counter()
        ids, vectors = write_spark_csv(path, args.rows, args.dim, args.seed)
        size = path.stat().st_size
        print(
            f"file     {args.rows:,} rows x {args.dim} dims, {size / 1e9:.2f} GB "
            f"(written in {time.perf_counter() - started:.1f}s)"
        )
        print(f"machine  {machine()}")

        times, emb = time_embrecall(path, args.repeat)
        assert np.array_equal(emb.ids, ids) and np.array_equal(emb.vectors, vectors)
        best = min(times)
        print(
            f"embrecall.read_embeddings  best of {args.repeat}: {best:.2f} s  "
            f"({args.rows / best:,.0f} rows/s, {size / best / 1e6:,.0f} MB/s)  "
            f"runs: {', '.join(f'{t:.2f}' for t in times)}"
        )
        del emb
        gc.collect()

        measured = min(args.baseline_rows, args.rows)
        naive = time_naive(path, measured) * args.rows / measured
        label = (
            "measured" if measured == args.rows else f"measured on {measured:,} rows, extrapolated"
        )
        print(
            f"pandas.read_csv + json.loads per row: {naive:.2f} s  "
            f"({args.rows / naive:,.0f} rows/s)  [{label}]"
        )
        print(f"speed-up {naive / best:.1f}x")


if __name__ == "__main__":
    main()
