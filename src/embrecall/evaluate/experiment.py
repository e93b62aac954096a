"""One experiment directory: split interactions by time, train embeddings on the training part,
and write everything a later ``embrecall build`` / ``embrecall eval`` needs.

Layout of ``OUT/``::

    user_embedding.csv, item_embedding.csv   Spark-style ``id,features``, for read_embeddings
    train.parquet, test.parquet              the split (user_id, item_id[, rating], timestamp)
    artifact/                                an embrecall artifact of the trained embeddings, with
                                             the training interactions as seen items
    experiment.json                          parameters, split counts, versions, timings
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embrecall.errors import InvalidArgumentError
from embrecall.evaluate.split import Split, Strategy, time_split
from embrecall.evaluate.train import train_als, write_spark_csv
from embrecall.interactions import Interactions

log = logging.getLogger("embrecall")

FILES = (
    "user_embedding.csv",
    "item_embedding.csv",
    "train.parquet",
    "test.parquet",
    "experiment.json",
    "artifact",
)


@dataclass(frozen=True)
class Experiment:
    """Where an experiment's files are, and its record (the content of ``experiment.json``)."""

    root: Path
    users: Path
    items: Path
    train: Path
    test: Path | None
    artifact: Path | None
    record: dict[str, Any]


def run_experiment(
    interactions: Interactions,
    out: str | os.PathLike,
    *,
    split: bool = True,
    holdout: float | int = 0.2,
    strategy: Strategy = "per_user",
    min_interactions: int = 5,
    als: Mapping[str, Any] | None = None,
    artifact: bool = True,
    catalog=None,
    index: str | Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Experiment:
    """Split (optionally), train ALS on the training part, and write the files under ``out``.

    Parameters
    ----------
    interactions : Interactions
        All interactions (with timestamps when ``split``).
    out : directory to write; refused when it already holds experiment files, unless
        ``overwrite``
    split, holdout, strategy, min_interactions
        See :func:`embrecall.evaluate.split.time_split`; ``split=False`` trains on everything
        and writes no test part.
    als : keyword arguments of :func:`~embrecall.evaluate.train.train_als`
    artifact : also build and save ``out/artifact`` (exact indexes unless ``index`` says)
    catalog : Catalog, optional
        Item metadata for the artifact.
    index : faiss factory string(s) for the artifact, as in ``Recommender.build``
    """
    from embrecall import __version__
    from embrecall.recommender import Recommender

    root = Path(out)
    _check_out(root, overwrite)
    t0 = time.perf_counter()
    parts: Split | None = None
    if split:
        parts = time_split(
            interactions, holdout=holdout, strategy=strategy, min_interactions=min_interactions
        )
        train = parts.train
    else:
        train = interactions
    t1 = time.perf_counter()
    options = dict(als or {})
    users, items = train_als(train, progress=progress, **options)
    t2 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / name for name in FILES}
    write_spark_csv(users, paths["user_embedding.csv"])
    write_spark_csv(items, paths["item_embedding.csv"])
    write_interactions_parquet(train, paths["train.parquet"])
    if parts is not None:
        write_interactions_parquet(parts.test, paths["test.parquet"])
    elif paths["test.parquet"].exists():
        paths["test.parquet"].unlink()  # a stale test part from an earlier run would mislead
    t3 = time.perf_counter()
    if artifact:
        rec = Recommender.build(
            items,
            users,
            catalog=catalog,
            interactions=train,
            index=index or "Flat",
            progress=progress,
        )
        rec.save(str(paths["artifact"]), overwrite=overwrite)
    t4 = time.perf_counter()
    record = {
        "embrecall_version": __version__,
        "interactions": interactions.source,
        "split": parts.info if parts is not None else None,
        "als": {"backend": "implicit", **options, "factors_written": users.dim},
        "users": len(users),
        "items": len(items),
        "index": index or "Flat",
        "seconds": {
            "split": round(t1 - t0, 3),
            "train": round(t2 - t1, 3),
            "write": round(t3 - t2, 3),
            "artifact": round(t4 - t3, 3),
        },
    }
    paths["experiment.json"].write_text(json.dumps(record, indent=2, default=str) + "\n")
    log.info(
        "experiment in %s: split %.2fs, train %.2fs, write %.2fs, artifact %.2fs",
        root,
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t4 - t3,
    )
    return Experiment(
        root,
        paths["user_embedding.csv"],
        paths["item_embedding.csv"],
        paths["train.parquet"],
        paths["test.parquet"] if parts is not None else None,
        paths["artifact"] if artifact else None,
        record,
    )


def write_interactions_parquet(interactions: Interactions, path: str | os.PathLike) -> None:
    """Write ``user_id, item_id[, rating][, timestamp]`` columns, which ``read_interactions``
    recognises by name."""
    columns: dict[str, Any] = {
        "user_id": _id_column(interactions.users),
        "item_id": _id_column(interactions.items),
    }
    if interactions.ratings is not None:
        columns["rating"] = pa.array(interactions.ratings, type=pa.float64())
    if interactions.timestamps is not None:
        columns["timestamp"] = pa.array(interactions.timestamps, type=pa.int64())
    pq.write_table(pa.table(columns), str(path))


def _id_column(ids) -> pa.Array:
    return pa.array(ids, type=pa.int64() if ids.dtype.kind == "i" else pa.string())


def _check_out(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(f"{root} exists and is not a directory")
    present = [name for name in FILES if (root / name).exists()]
    if present and not overwrite:
        raise InvalidArgumentError(
            f"{root} already holds {', '.join(present)} (pass overwrite=True / --force to replace)"
        )
