"""`MilvusIndex`: one vector field of a Milvus collection behind the search contract of
:class:`~embrecall.index.faiss_index.VectorIndex`.

Rows are the collection's int64 primary key: row i of a space is the entity with ``row == i``.
Exclusions become a filter expression (``row not in [...]``) that Milvus applies inside its
search, so ``k`` rows come back whenever ``k`` exist outside them; an approximate index that still
comes back short is asked again with a 4x wider beam, like the faiss path widens its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.index.faiss_index import describe_index
from embrecall.milvus.target import MilvusUnavailableError, one_line

MILVUS_METRIC = {"ip": "IP", "cosine": "COSINE", "l2": "L2"}
# What embrecall calls a search parameter (the names faiss and `embrecall eval` use) -> Milvus's.
_PARAM_NAMES = {"HNSW": {"efSearch": "ef"}, "IVF_FLAT": {"nprobe": "nprobe"}, "FLAT": {}}
MAX_TOPK = 16_384  # Milvus refuses a larger limit
_MAX_EF = 32_768
PK = "row"


class MilvusIndex:
    """One vector field of a Milvus collection, searched over rows ``0..n-1``.

    Parameters
    ----------
    client : pymilvus.MilvusClient
    collection : str
        The versioned collection (never an alias: a served version must not move under it).
    field : str
        The vector field this index searches.
    metric : "ip" | "cosine" | "l2"
    kind : "FLAT" | "HNSW" | "IVF_FLAT"
        The Milvus index type of the field.
    ntotal, dim : int
    search_params : {"efSearch": int} or {"nprobe": int}, optional
        Defaults for every call (what publish tuned).
    notes : mapping, optional
        How the kind was chosen and tuned, for ``describe``.
    """

    def __init__(
        self,
        client: Any,
        collection: str,
        field: str,
        metric: str,
        kind: str,
        ntotal: int,
        dim: int,
        search_params: Mapping[str, int] | None = None,
        *,
        notes: Mapping[str, Any] | None = None,
    ) -> None:
        if metric not in MILVUS_METRIC:
            raise InvalidArgumentError(f"metric must be one of ip, cosine, l2, not {metric!r}")
        if kind not in _PARAM_NAMES:
            raise InvalidArgumentError(f"Milvus index kind must be one of {list(_PARAM_NAMES)}")
        self.client = client
        self.collection = collection
        self.field = field
        self.metric = metric
        self.milvus_kind = kind
        self.spec = f"milvus:{kind}"
        self._ntotal = int(ntotal)
        self._dim = int(dim)
        self.search_params = self._checked(search_params or {})
        self.notes = dict(notes or {})
        self.mips = None
        # Set once the collection may hold rows added live (embrecall.milvus.live): a search
        # that does not map them (the canary, a filter's plain search) keeps to rows 0..n-1.
        self.base_rows_only = False

    # -- facts -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def kind(self) -> str:
        return f"Milvus{self.milvus_kind}"

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "l2"

    @property
    def is_exact(self) -> bool:
        return self.milvus_kind == "FLAT"

    @property
    def memory_bytes(self) -> int:
        """What the field's index takes on the query nodes (vectors, plus an HNSW graph of
        about 2 * M links of 4 bytes per vector); an estimate, Milvus does not report it."""
        graph = 2 * 16 * 4 if self.milvus_kind == "HNSW" else 0
        return self._ntotal * (self._dim * 4 + graph + 8)

    def describe(self) -> dict:
        return describe_index(
            self,
            mips=None,
            engine="milvus",
            collection=self.collection,
            field=self.field,
            **self.notes,
        )

    # -- search ------------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[np.ndarray | None] | None = None,
        params: Mapping[str, int] | None = None,
        live_total: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows for each query, never returning an excluded row.

        Parameters
        ----------
        queries : (m, d) float32, validated by the caller
        k : int, >= 1
        exclude : list of m int64 row arrays (or None per query), optional
            Applied inside the Milvus search as a filter expression on the row key.
        params : {"efSearch": int} (HNSW) or {"nprobe": int} (IVF_FLAT), optional
        live_total : int, optional
            Rows the collection holds now with live changes (embrecall.milvus.live): every row,
            those added live too, is searched, at strong consistency (a change acknowledged
            before the call is seen).

        Returns
        -------
        scores : (m, k') float32, rows : (m, k') int64 with k' = min(k, ntotal); a query left
        with fewer candidates is padded with row -1 and score NaN.
        """
        if isinstance(k, bool) or k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k}")
        merged = {**self.search_params, **self._checked(params or {})}
        q = np.ascontiguousarray(queries, dtype=np.float32)
        m = q.shape[0]
        ntotal = self._ntotal if live_total is None else int(live_total)
        live = live_total is not None
        kk = min(int(k), ntotal)
        if kk > MAX_TOPK:
            raise InvalidArgumentError(f"k is at most {MAX_TOPK} on Milvus, got {k}")
        scores = np.full((m, kk), np.nan, dtype=np.float32)
        rows = np.full((m, kk), -1, dtype=np.int64)
        if kk == 0 or m == 0:
            return scores, rows
        lists = [_rows(exclude[i]) if exclude is not None else _NONE for i in range(m)]
        plain = [i for i in range(m) if lists[i].size == 0]
        if plain:  # one batched call for every query without exclusions
            self._fill(q[plain], kk, merged, None, plain, scores, rows, live)
        for i in range(m):
            if lists[i].size:
                # a filter is per call in Milvus: one call per query that excludes rows
                self._fill(q[i : i + 1], kk, merged, lists[i], [i], scores, rows, live)
        for i in range(m):
            excluded = lists[i] if live else lists[i][lists[i] < ntotal]
            want = min(kk, ntotal - np.unique(excluded).size)
            found = int((rows[i] >= 0).sum())
            wider = dict(merged)
            while found < want and self._widen(wider, kk):
                # an approximate index that visited too few survivors: a wider beam
                self._fill(
                    q[i : i + 1],
                    kk,
                    wider,
                    lists[i] if lists[i].size else None,
                    [i],
                    scores,
                    rows,
                    live,
                )
                found = int((rows[i] >= 0).sum())
        return scores, rows

    def _fill(self, q, kk, params, excluded, at, scores, rows, live=False) -> None:
        terms = []
        if excluded is not None:
            terms.append(f"{PK} not in [{','.join(map(str, excluded.tolist()))}]")
        if self.base_rows_only and not live:
            terms.append(f"{PK} < {self._ntotal}")
        expr = " and ".join(terms)
        options = {"consistency_level": "Strong"} if live else {}
        search_params: dict[str, Any] = {"metric_type": MILVUS_METRIC[self.metric]}
        native = {_PARAM_NAMES[self.milvus_kind][name]: v for name, v in params.items()}
        if "ef" in native:
            native["ef"] = max(native["ef"], kk)  # Milvus refuses ef below the limit
        if native:
            search_params["params"] = native
        try:
            hits = self.client.search(
                self.collection,
                data=q,
                anns_field=self.field,
                limit=kk,
                filter=expr,
                output_fields=[],
                search_params=search_params,
                **options,
            )
        except Exception as exc:
            raise MilvusUnavailableError(f"searching {self.collection}: {one_line(exc)}") from None
        for j, answer in zip(at, hits):
            n = len(answer)
            scores[j, :] = np.nan
            rows[j, :] = -1
            if n:
                rows[j, :n] = [hit[PK] for hit in answer]
                scores[j, :n] = [hit["distance"] for hit in answer]

    def _widen(self, params: dict, kk: int) -> bool:
        if self.milvus_kind == "HNSW":
            ef = max(params.get("efSearch", kk), kk)
            if ef >= _MAX_EF or ef >= self._ntotal:
                return False
            params["efSearch"] = min(ef * 4, _MAX_EF)
            return True
        if self.milvus_kind == "IVF_FLAT":
            nlist = int(self.notes.get("build_params", {}).get("nlist", 0)) or 1 << 16
            nprobe = params.get("nprobe", 1)
            if nprobe >= nlist:
                return False
            params["nprobe"] = min(nprobe * 4, nlist)
            return True
        return False  # exact: what it found is all there is

    def _checked(self, params: Mapping[str, int]) -> dict[str, int]:
        known = _PARAM_NAMES[self.milvus_kind]
        for name, value in params.items():
            if name not in known:
                names = ", ".join(known) or "none"
                raise InvalidArgumentError(
                    f"unknown search parameter {name!r} for a Milvus {self.milvus_kind} index; "
                    f"known: {names}"
                )
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(
                    f"search parameter {name} must be a positive integer, got {value!r}"
                )
        return {name: int(value) for name, value in params.items()}


_NONE = np.empty(0, dtype=np.int64)


def _rows(excluded: np.ndarray | None) -> np.ndarray:
    if excluded is None:
        return _NONE
    rows = np.asarray(excluded, dtype=np.int64).ravel()
    return rows[rows >= 0]
