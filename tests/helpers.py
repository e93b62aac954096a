"""Builders for small recommenders with known answers, shared by several test modules."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embrecall.catalog import read_catalog
from embrecall.embeddings import Embeddings
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def planted_clusters(
    n: int = 2000, dim: int = 16, clusters: int = 8, seed: int = 0, spread: float = 0.15
):
    """Vectors in tight clusters around orthonormal centres; returns (vectors, labels, centres).

    The right neighbours of a vector are the members of its own cluster, whatever the index.
    """
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:clusters].astype(np.float32)
    labels = rng.integers(0, clusters, n)
    vectors = centres[labels] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    norms = rng.lognormal(0, 0.3, (n, 1)).astype(
        np.float32
    )  # skewed norms, as trained MF vectors have
    return (vectors * norms).astype(np.float32), labels, centres


# The optional libraries `pip install -e ".[test]"` brings (embrecall's extras and the test tools),
# by import name. CI installs them all and sets EMBRECALL_REQUIRE_EXTRAS=1: there, one that fails
# to import is a failure, not a skip. Torch is not among them: CI installs it only from a local
# wheel, so its tests (and the CUDA ones) keep skipping where it is absent.
EXTRAS = frozenset(
    {
        "fastapi",
        "uvicorn",
        "httptools",
        "prometheus_client",
        "httpx",
        "redis",
        "pymilvus",
        "milvus_lite",
        "pyspark",
        "implicit",
        "matplotlib",
        "hnswlib",
        "usearch",
        "schemathesis",
        "playwright",
    }
)


def extras_required() -> bool:
    return os.environ.get("EMBRECALL_REQUIRE_EXTRAS", "") not in ("", "0")


def import_extra(name: str, reason: str | None = None):
    """``pytest.importorskip`` for an optional library of ours (``EXTRAS``): the module, or a skip
    where it is not installed; under EMBRECALL_REQUIRE_EXTRAS=1 a failed import fails the test."""
    if name.split(".")[0] not in EXTRAS:
        raise ValueError(f"{name} is not one of the extras in helpers.EXTRAS")
    if not extras_required():
        return pytest.importorskip(name, reason=reason)
    try:
        return importlib.import_module(name)
    except Exception as exc:  # an installed library can fail with more than ImportError
        pytest.fail(
            f"{name} failed to import, and EMBRECALL_REQUIRE_EXTRAS is set: {exc!r}",
            pytrace=False,
        )


def require_native():
    """embrecall's C loops (``embrecall._native``), or a skip where the install built none (no
    C compiler); under EMBRECALL_REQUIRE_EXTRAS=1 (CI, which has one) their absence fails."""
    from embrecall.native import native

    if native is None:
        if os.environ.get("EMBRECALL_NO_NATIVE", "") not in ("", "0"):
            pytest.skip("EMBRECALL_NO_NATIVE is set: the Python paths are under test")
        message = "embrecall was installed without its C loops (embrecall._native)"
        if extras_required():
            pytest.fail(f"{message}, and EMBRECALL_REQUIRE_EXTRAS is set", pytrace=False)
        pytest.skip(message)
    return native


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


GENRES = [
    "Sci-Fi",
    "Romance",
    "Horror",
    "Comedy",
    "Animation",
    "Western",
    "Documentary",
    "Thriller",
]


def small_world(tmp: Path, *, string_ids: bool = False, seed: int = 0):
    """500 items in 8 planted genres, 60 users who each like one genre and have seen 20 items.

    Returns (items, users, catalog_path, ratings_path, favourite) where favourite[user_id] is the
    genre index the user was planted to like.
    """
    vectors, labels, centres = planted_clusters(n=500, dim=16, clusters=8, seed=seed)
    rng = np.random.default_rng(seed + 1)
    item_ids = (
        (np.arange(500) * 7 + 3)
        if not string_ids
        else np.array([f"item-{i:04d}" for i in range(500)])
    )
    fav = rng.integers(0, 8, 60)
    user_vectors = (1.5 * centres[fav] + 0.1 * rng.standard_normal((60, 16))).astype(np.float32)
    user_ids = (
        np.arange(1000, 1060) if not string_ids else np.array([f"user-{u}" for u in range(60)])
    )
    items = Embeddings(item_ids, vectors, source="items")
    users = Embeddings(user_ids, user_vectors, source="users")
    catalog = pd.DataFrame(
        {
            "id": item_ids,
            "title": [f"Movie {i}, The ({1950 + i % 70})" for i in range(500)],
            "genres": [GENRES[g] for g in labels],
        }
    )
    catalog_path = tmp / "catalog.csv"
    catalog.to_csv(catalog_path, index=False)
    seen_rows = [rng.choice(np.flatnonzero(labels == fav[u]), 20, replace=False) for u in range(60)]
    ratings = pd.DataFrame(
        {
            "userId": np.repeat(user_ids, 20),
            "movieId": np.concatenate([item_ids[r] for r in seen_rows]),
            "rating": 4.0,
            "timestamp": 1_500_000_000,
        }
    )
    ratings_path = tmp / "ratings.csv"
    ratings.to_csv(ratings_path, index=False)
    favourite = {u.item() if hasattr(u, "item") else u: int(f) for u, f in zip(user_ids, fav)}
    return items, users, catalog_path, ratings_path, favourite, labels


def build_small(
    tmp: Path, *, string_ids: bool = False, index: str | None = None, **kwargs
) -> Recommender:
    items, users, catalog_path, ratings_path, _, _ = small_world(tmp, string_ids=string_ids)
    return Recommender.build(
        items,
        users,
        catalog=read_catalog(catalog_path),
        interactions=read_interactions(ratings_path),
        index=index,
        **kwargs,
    )


def skewed_recsys(n_items: int = 20_000, n_users: int = 500, dim: int = 32, seed: int = 0):
    """Items in Zipf-popular topics with lognormal norms, users from a shifted mixture: the
    inner-product case that IVF on raw vectors gets wrong. Returns (items, users) float32."""
    rng = np.random.default_rng(seed)
    topics = 64
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    popularity = 1 / np.arange(1, topics + 1) ** 0.8
    popularity /= popularity.sum()
    items = centres[rng.choice(topics, n_items, p=popularity)]
    items = items + 0.6 * rng.standard_normal((n_items, dim)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    items *= rng.lognormal(0, 0.6, (n_items, 1)).astype(np.float32)
    users = centres[rng.choice(topics, (n_users, 2), p=popularity)].mean(axis=1)
    users = users + 0.8 * rng.standard_normal((n_users, dim)) + 0.3
    return items.astype(np.float32), users.astype(np.float32)


def assert_same_list(got, want, *, score_of=None, rtol=1e-5):
    """Two top-k lists of ``(ids, scores)`` are equally right, ties tolerated.

    The scores must agree place by place. Where the ids differ, the id must tie a score of the
    reference list; an id absent from the reference is right only when it ties the k-th score
    (a group of identical vectors larger than k: any k of them is the answer). ``score_of``, when
    given, recomputes an id's exact score, so a wrong id cannot hide behind a copied score.
    """
    (ids, scores), (ref_ids, ref_scores) = got, want
    ids, ref_ids = np.asarray(ids), np.asarray(ref_ids)
    assert len(ids) == len(ref_ids)
    assert len(set(ids.tolist())) == len(ids), "an id is returned twice"
    np.testing.assert_allclose(scores, ref_scores, rtol=rtol, atol=1e-6)
    for i in np.flatnonzero(ids != ref_ids):
        if ids[i] in set(ref_ids.tolist()):
            tied = np.isclose(ref_scores, scores[i], rtol=rtol, atol=1e-6)
            assert ids[i] in set(ref_ids[tied].tolist()), f"{ids[i]!r} moved past a better score"
        else:
            assert np.isclose(scores[i], ref_scores[-1], rtol=rtol, atol=1e-6), (
                f"{ids[i]!r} is not in the reference list and does not tie its k-th score"
            )
        if score_of is not None:
            exact = score_of(ids[i])
            assert np.isclose(exact, scores[i], rtol=1e-4, atol=1e-5), (
                f"{ids[i]!r} is served with score {scores[i]}, its exact score is {exact}"
            )


SRC = str(REPO_ROOT / "src")


def run_embrecall(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """The real `embrecall` command (``python -m embrecall``) on this checkout, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "embrecall", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=timeout,
        **kwargs,
    )


class ServeProcess:
    """`embrecall serve TARGET --port 0` as a real process; ``.port`` once it listens, ``.lines``
    what it logged. Use as a context manager: SIGTERM and wait on exit."""

    def __init__(self, *args: str, timeout: float = 120) -> None:
        self.lines: list[str] = []
        self.port: int | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embrecall", "serve", *args, "--log-level", "info"],
            env={**os.environ, "PYTHONPATH": SRC},
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while self.port is None and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))

    @property
    def url(self) -> str:
        assert self.port is not None, "".join(self.lines)
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=10)  # the last lines it logged are in .lines
        return code
