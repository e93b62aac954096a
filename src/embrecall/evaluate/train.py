"""Fit user and item embeddings from interactions, with a well-kept matrix-factorisation library.

This exists so that recommendation quality can be measured end to end (split, train, build,
evaluate); production teams usually bring embeddings from their own pipeline. Two backends fit
implicit-feedback ALS (Hu, Koren & Volinsky 2008), whose user . item inner product is what the
``recommend`` index scores with:

``implicit`` (default)
    ``implicit.cpu.als.AlternatingLeastSquares`` from the ``implicit`` package
    (``pip install 'embrecall[eval]'``). Always the CPU model, so results do not depend on
    whether a GPU happens to be present.
``spark``
    ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` on a local Spark session
    (``pip install 'embrecall[spark]'``; needs Java).

The result is two :class:`~embrecall.embeddings.Embeddings` over the users and items of the
training interactions; :func:`write_spark_csv` writes them in the layout Spark users produce
(``id,features`` with a JSON array; it lives with the reader in :mod:`embrecall.io.spark_csv`),
which ``read_embeddings`` reads back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from embrecall._progress import bar_disabled
from embrecall.embeddings import Embeddings
from embrecall.errors import InputFormatError, InvalidArgumentError, require_extra
from embrecall.interactions import Interactions
from embrecall.io.spark_csv import write_spark_csv as write_spark_csv  # public here too

log = logging.getLogger("embrecall")

Backend = Literal["implicit", "spark"]
Weighting = Literal["binary", "rating"]
BACKENDS: tuple[str, ...] = ("implicit", "spark")
WEIGHTINGS: tuple[str, ...] = ("binary", "rating")


def train_als(
    interactions: Interactions,
    *,
    factors: int = 64,
    iterations: int = 15,
    regularization: float = 8.0,
    alpha: float = 1.0,
    weighting: Weighting = "binary",
    backend: Backend = "implicit",
    seed: int = 0,
    threads: int = 0,
    progress: bool | None = None,
) -> tuple[Embeddings, Embeddings]:
    """Fit implicit-feedback ALS and return ``(users, items)`` embeddings.

    Parameters
    ----------
    interactions : Interactions
        n training interactions; a (user, item) pair seen twice counts once (``binary``) or
        with its ratings summed (``rating``).
    factors : int
        Embedding dimension d.
    iterations : int
        ALS sweeps.
    regularization : float
        L2 penalty on the factors.
    alpha : float
        Confidence of an observed pair: ``1 + alpha * value``.

        The defaults (64 factors, regularization 8, alpha 1) scored best by NDCG@10 on a
        validation split carved from the training part of ml-latest-small
        (``benchmarks/tune_als.py``); retune them for other data.
    weighting : {"binary", "rating"}
        The value of an observed pair: 1, or its rating (ratings must then be positive).
    backend : {"implicit", "spark"}
    seed : int
        Seeds the factor initialisation; with the same inputs the result is the same.
    threads : int
        Worker threads (0: all cores).
    progress : show the library's progress bar; ``None``: only on a terminal

    Returns
    -------
    users : Embeddings, shape (n_users, factors)
    items : Embeddings, shape (n_items, factors)
        Over the distinct users and items of ``interactions``, in order of first appearance.
    """
    _check_positive_int(factors, "factors")
    _check_positive_int(iterations, "iterations")
    if not regularization >= 0 or not alpha > 0:
        raise InvalidArgumentError(
            f"regularization must be >= 0 and alpha > 0, got {regularization!r} and {alpha!r}"
        )
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if len(interactions) == 0:
        raise InputFormatError(f"{interactions.source}: no interactions to train on")
    user_codes, user_ids = pd.factorize(interactions.users)
    item_codes, item_ids = pd.factorize(interactions.items)
    user_codes, item_codes, values = _pairs(
        user_codes, item_codes, _values(interactions, weighting), binary=weighting == "binary"
    )
    job = _Job(
        user_codes,
        item_codes,
        values,
        len(user_ids),
        len(item_ids),
        factors=factors,
        iterations=iterations,
        regularization=regularization,
        alpha=alpha,
        seed=seed,
        threads=threads,
        progress=progress,
    )
    t0 = time.perf_counter()
    fit = _fit_implicit if backend == "implicit" else _fit_spark
    user_vectors, item_vectors = fit(job)
    log.info(
        "trained %s ALS (%d users x %d items, %d factors) in %.2fs",
        backend,
        len(user_ids),
        len(item_ids),
        factors,
        time.perf_counter() - t0,
    )
    source = f"ALS ({backend}) on {interactions.source}"
    return (
        Embeddings(np.asarray(user_ids), user_vectors, source=f"{source}: users"),
        Embeddings(np.asarray(item_ids), item_vectors, source=f"{source}: items"),
    )


# -- backends --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """What a backend fits: each (user, item) pair once, as codes 0..n-1, and the settings."""

    user_codes: np.ndarray
    item_codes: np.ndarray
    values: np.ndarray
    n_users: int
    n_items: int
    factors: int
    iterations: int
    regularization: float
    alpha: float
    seed: int
    threads: int
    progress: bool | None


def _fit_implicit(job: _Job) -> tuple[np.ndarray, np.ndarray]:
    require_extra("implicit", "eval")
    scipy_sparse = require_extra("scipy.sparse", "eval")
    from implicit.cpu.als import AlternatingLeastSquares

    matrix = scipy_sparse.coo_matrix(
        (job.values.astype(np.float32), (job.user_codes, job.item_codes)),
        shape=(job.n_users, job.n_items),
    ).tocsr()
    with _single_threaded_blas():
        model = AlternatingLeastSquares(
            factors=job.factors,
            iterations=job.iterations,
            regularization=job.regularization,
            alpha=job.alpha,
            random_state=job.seed,
            num_threads=job.threads,
        )
        model.fit(matrix, show_progress=not bar_disabled(job.progress))
    return (
        np.ascontiguousarray(model.user_factors, dtype=np.float32),
        np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )


@contextlib.contextmanager
def _single_threaded_blas():
    """implicit solves many small systems in its own threads; a multi-threaded BLAS underneath
    oversubscribes the cores (implicit warns about it), so BLAS gets one thread while fitting."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, "blas"):
        yield


def _fit_spark(job: _Job) -> tuple[np.ndarray, np.ndarray]:
    require_extra("pyspark", "spark")
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    # Spark ALS takes int32 ids: the codes 0..n-1 are, and map back to the external ids.
    frame = pd.DataFrame(
        {
            "user": job.user_codes.astype(np.int32),
            "item": job.item_codes.astype(np.int32),
            "value": job.values.astype(np.float32),
        }
    )
    spark = (
        SparkSession.builder.master(f"local[{job.threads or '*'}]")
        .appName("embrecall-train")
        .config("spark.ui.showConsoleProgress", str(not bar_disabled(job.progress)).lower())
        .getOrCreate()
    )
    als = ALS(
        rank=job.factors,
        maxIter=job.iterations,
        regParam=job.regularization,
        alpha=job.alpha,
        implicitPrefs=True,
        seed=job.seed,
        userCol="user",
        itemCol="item",
        ratingCol="value",
        nonnegative=False,
    )
    model = als.fit(spark.createDataFrame(frame))
    users = _spark_factors(model.userFactors.toPandas(), job.n_users, job.factors)
    items = _spark_factors(model.itemFactors.toPandas(), job.n_items, job.factors)
    return users, items


def _spark_factors(frame: pd.DataFrame, n: int, factors: int) -> np.ndarray:
    """Spark's (id, features) rows as an (n, factors) matrix in code order."""
    out = np.zeros((n, factors), dtype=np.float32)
    out[frame["id"].to_numpy()] = np.asarray(frame["features"].tolist(), dtype=np.float32)
    return out


# -- helpers ---------------------------------------------------------------------------------
def _pairs(
    user_codes: np.ndarray, item_codes: np.ndarray, values: np.ndarray, *, binary: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (user, item) pair once: values summed (ratings) or kept at 1 (binary)."""
    frame = pd.DataFrame({"user": user_codes, "item": item_codes, "value": values})
    summed = frame.groupby(["user", "item"], sort=False, as_index=False)["value"].sum()
    if binary:
        summed["value"] = 1.0
    return (
        summed["user"].to_numpy(np.int64),
        summed["item"].to_numpy(np.int64),
        summed["value"].to_numpy(np.float64),
    )


def _values(interactions: Interactions, weighting: str) -> np.ndarray:
    if weighting == "binary":
        return np.ones(len(interactions), dtype=np.float64)
    if weighting != "rating":
        raise InvalidArgumentError(
            f"weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r}"
        )
    if interactions.ratings is None:
        raise InputFormatError(
            f"{interactions.source}: weighting='rating' needs ratings, and there are none"
        )
    if (interactions.ratings <= 0).any():
        raise InputFormatError(
            f"{interactions.source}: weighting='rating' needs positive ratings, found "
            f"{interactions.ratings.min()}"
        )
    return interactions.ratings


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
