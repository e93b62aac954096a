"""Writers of small embedding files in every format the readers accept.

The writers are session-scoped fixtures returning plain functions, so that hypothesis tests can
use them too. Each writes exactly what the real tool writes (pandas ``to_csv`` of lists, pyarrow
parquet, ``np.save``, the word2vec text layout).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def planted(n: int = 5, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded int ids (10, 20, ...) and float32 vectors of shape (n, d)."""
    rng = np.random.default_rng(seed)
    return np.arange(1, n + 1, dtype=np.int64) * 10, rng.standard_normal((n, d)).astype(np.float32)


def features_text(vector: Sequence[float], sep: str = ", ") -> str:
    """A vector as Spark users' CSVs hold it: ``[0.48, -0.25]`` with Python's float repr."""
    return "[" + sep.join(repr(float(x)) for x in vector) + "]"


def write_spark_csv(
    path: Path,
    ids: Sequence,
    vectors: np.ndarray | Sequence,
    *,
    index: bool = False,
    sep: str = ", ",
    columns: tuple[str, str] = ("id", "features"),
    compress: bool = False,
) -> Path:
    """Write ``ids`` and ``vectors`` as ``toPandas().to_csv(path, index=index)`` would."""
    frame = pd.DataFrame(
        {columns[0]: list(ids), columns[1]: [features_text(v, sep) for v in vectors]}
    )
    text = frame.to_csv(index=index)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def write_lines(path: Path, lines: Sequence[str], *, end: str = "\n") -> Path:
    """Write ``lines`` verbatim (for hand-made malformed files)."""
    path.write_bytes("".join(line + end for line in lines).encode("utf-8"))
    return path


def write_parquet(
    path: Path,
    ids: Sequence,
    vectors: np.ndarray | Sequence,
    *,
    kind: str = "list",
    columns: tuple[str, str] = ("id", "features"),
) -> Path:
    """Write a parquet file whose vector column is a list, fixed_size_list, Spark vector or text."""
    rows = [None if v is None else [float(x) for x in v] for v in vectors]
    if kind == "list":
        column = pa.array(rows, type=pa.list_(pa.float32()))
    elif kind == "double":
        column = pa.array(rows, type=pa.list_(pa.float64()))
    elif kind == "fixed":
        column = pa.array(rows, type=pa.list_(pa.float32(), len(rows[0])))
    elif kind == "vector":
        column = spark_vectors(rows)
    elif kind == "text":
        column = pa.array([None if r is None else features_text(r) for r in rows])
    else:
        raise ValueError(kind)
    pq.write_table(pa.table({columns[0]: pa.array(list(ids)), columns[1]: column}), path)
    return path


def spark_vectors(
    rows: Sequence[Sequence[float] | None], sparse_rows: Sequence[int] = ()
) -> pa.Array:
    """Spark ML VectorUDT as parquet stores it: struct<type, size, indices, values>."""
    kinds = [0 if i in sparse_rows else 1 for i in range(len(rows))]
    return pa.StructArray.from_arrays(
        [
            pa.array(kinds, pa.int8()),
            pa.array(
                [None if k else len(r or []) for k, r in zip(kinds, rows, strict=True)], pa.int32()
            ),
            pa.array(
                [
                    None if k else list(range(len(r or [])))
                    for k, r in zip(kinds, rows, strict=True)
                ],
                pa.list_(pa.int32()),
            ),
            pa.array(rows, pa.list_(pa.float64())),
        ],
        names=["type", "size", "indices", "values"],
        mask=pa.array([r is None for r in rows]),
    )


def write_word2vec(
    path: Path,
    tokens: Sequence[str],
    vectors: np.ndarray | Sequence,
    *,
    header: bool = True,
    trailing_space: bool = False,
    line_end: str = "\n",
) -> Path:
    """The word2vec text layout: ``n d`` then ``token v1 ... vd`` lines."""
    lines = [f"{len(tokens)} {len(vectors[0])}"] if header else []
    tail = " " if trailing_space else ""
    lines += [
        t + " " + " ".join(repr(float(x)) for x in v) + tail
        for t, v in zip(tokens, vectors, strict=True)
    ]
    return write_lines(path, lines, end=line_end)


# -- fixtures: the helpers above, for test modules (conftest is not importable by name) ---------
@pytest.fixture(scope="session")
def make_data() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return planted


@pytest.fixture(scope="session")
def write_csv() -> Callable[..., Path]:
    return write_spark_csv


@pytest.fixture(scope="session")
def write_pq() -> Callable[..., Path]:
    return write_parquet


@pytest.fixture(scope="session")
def write_w2v() -> Callable[..., Path]:
    return write_word2vec


@pytest.fixture(scope="session")
def write_text() -> Callable[..., Path]:
    return write_lines


@pytest.fixture(scope="session")
def vector_column() -> Callable[..., pa.Array]:
    return spark_vectors
