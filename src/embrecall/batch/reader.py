"""Reading batch results back: ``cached(user_id, sink)`` answers like ``recommend``.

The reader follows the sink's *current* pointer, then reads the values of that version. Values
of a version never change once written and the previous version outlives a flip (Redis: a TTL;
files: the folder or table is kept), so everything one lookup returns comes from one complete
version. If the pointer moved and the previous version was retired between the two reads, the
lookup follows the pointer again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embrecall.batch.plan import QUERY_KEYS
from embrecall.batch.sinks import Sink, SinkError, open_sink
from embrecall.catalog import Catalog
from embrecall.embeddings import coerce_id
from embrecall.errors import InvalidArgumentError, UnknownIdError
from embrecall.queries import ID_WHAT, query_space

_FOLLOW_TRIES = 3


class CachedRecall:
    """The current batch results of a sink, looked up by id.

    Parameters
    ----------
    source : str or Sink
        A sink address (``redis://...``, ``out.sqlite``, a parquet folder) or a sink.
    catalog : Catalog or str, optional
        Item metadata for :meth:`results`; by default the catalog of the artifact the batch
        run read, when that artifact is still where it was.

    Examples
    --------
    >>> recall = CachedRecall("redis://localhost:6379/0?prefix=recs")   # doctest: +SKIP
    >>> ids, scores = recall.recommend(42, k=10)                         # doctest: +SKIP
    >>> recall.results(ids, scores)[0]["title"]                           # doctest: +SKIP
    """

    def __init__(self, source: str | Sink, *, catalog: Catalog | str | None = None) -> None:
        self.sink = open_sink(source)
        self._reader = self.sink.reader()
        self._catalog = catalog
        self.version: str | None = None  # the version the last lookup answered from

    # -- queries ---------------------------------------------------------------------------
    def recommend(self, user_id, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored top items of a user, best first: ``(ids (k,), scores (k,))``."""
        return self.lookup("recommend", [user_id], k)[0]

    def similar_items(self, item_id, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored items most like an item."""
        return self.lookup("similar_items", [item_id], k)[0]

    def similar_users(self, user_id, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored users most like a user."""
        return self.lookup("similar_users", [user_id], k)[0]

    def lookup(
        self, query: str, ids: Sequence, k: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Results of many ids at once, all from one version.

        Parameters
        ----------
        query : {"recommend", "similar_items", "similar_users"}
        ids : sequence of m ids (integer text is accepted for integer ids)
        k : int, optional
            At most this many results each (default: all stored).

        Returns
        -------
        list of m ``(ids, scores)`` pairs of 1-D arrays.

        Raises
        ------
        UnknownIdError
            An id has no stored results (not in the artifact, or not in the run's user list).
        SinkError
            The sink is unreachable or holds no completed run.
        """
        if query not in QUERY_KEYS:
            raise InvalidArgumentError(
                f"unknown query kind {query!r}; known: {', '.join(QUERY_KEYS)}"
            )
        for _ in range(_FOLLOW_TRIES):
            version = self._current()
            meta = self._reader.meta(version)
            described = self._query_meta(meta, query)
            stored_k = int(meta["k"])
            if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
                raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
            if k is not None and k > stored_k:
                raise InvalidArgumentError(
                    f"the batch run stored {stored_k} results per id; {k} were asked for"
                )
            kind = meta["id_kinds"][query_space(query)]
            wanted = [coerce_id(i, kind) for i in ids]
            values = self._reader.get_many(described["key"], wanted, version)
            missing = [i for i, v in zip(wanted, values) if v is None]
            if not missing or self._reader.current() == version:
                break  # a miss in the version still current is a real miss
        self.version = version
        if missing:
            what = ID_WHAT[query_space(query)]
            shown = ", ".join(repr(m) for m in missing[:5])
            raise UnknownIdError(
                f"no cached {query} results for {what} {shown} in version {version} of "
                f"{self.sink.url}",
                missing,
            )
        return [(ids_[:k], scores[:k]) if k else (ids_, scores) for ids_, scores in values]

    # -- description and metadata ------------------------------------------------------------
    def describe(self, query: str = "recommend") -> dict[str, Any]:
        """``{"version", "k", "id_kind", "metric", "score", ...}`` of the current ``query``.

        ``id_kind`` is the kind (``"int"`` / ``"str"``) of the ids that ``query`` is asked with.
        """
        version = self._current()
        meta = self._reader.meta(version)
        return {
            "version": version,
            "k": meta["k"],
            "id_kind": meta["id_kinds"][query_space(query)],
            **self._query_meta(meta, query),
        }

    def results(self, ids, scores, *, space: str = "items") -> list[dict[str, Any]]:
        """One result list as ``[{"id", "score", <catalog fields>}]``, as online."""
        id_list = [i.item() if isinstance(i, np.generic) else i for i in ids]
        catalog = self._load_catalog() if space == "items" else None
        meta = catalog.records(id_list) if catalog is not None else [{} for _ in id_list]
        return [{"id": i, "score": float(s), **m} for i, s, m in zip(id_list, scores, meta)]

    def close(self) -> None:
        self._reader.close()

    # -- internals ---------------------------------------------------------------------------
    def _current(self) -> str:
        version = self._reader.current()
        if version is None:
            raise SinkError(f"{self.sink.url}: no batch run has completed there yet")
        return version

    def _query_meta(self, meta: dict, query: str) -> dict[str, Any]:
        try:
            return meta["queries"][query]
        except KeyError:
            raise InvalidArgumentError(
                f"the batch run in {self.sink.url} computed {', '.join(meta['queries'])}, "
                f"not {query}"
            ) from None

    def _load_catalog(self) -> Catalog | None:
        if isinstance(self._catalog, Catalog) or self._catalog is None and self.version is None:
            return self._catalog
        if isinstance(self._catalog, (str, Path)):
            from embrecall.catalog import read_catalog

            self._catalog = read_catalog(self._catalog)
            return self._catalog
        artifact = self._reader.meta(self.version).get("artifact")
        self._catalog = _artifact_catalog(artifact) if artifact else None
        return self._catalog


def cached(
    user_id, source: str | Sink, *, k: int | None = None, query: str = "recommend"
) -> tuple[np.ndarray, np.ndarray]:
    """Stored results of one id in the sink ``source``: ``(ids, scores)``, best first.

    The offline twin of ``Recommender.recommend(user_id, k)``: the same ids and scores that an
    exact artifact gives online, read from Redis, SQLite or parquet.
    """
    recall = CachedRecall(source)
    try:
        return recall.lookup(query, [user_id], k)[0]
    finally:
        recall.close()


def _artifact_catalog(path: str) -> Catalog | None:
    """The catalog of the artifact at ``path``, without loading its indexes."""
    from embrecall.artifact import read_manifest

    root = Path(path)
    if not root.is_dir():
        return None
    entry = read_manifest(root).get("catalog")
    return Catalog.from_parquet(root / entry["file"]) if entry else None
