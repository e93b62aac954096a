"""`Recommender`: recommend / similar_items / similar_users over external ids.

It owns the mapping between the users' ids and index rows, the three default query kinds (their
spaces and exclusion policy are written in :mod:`embrecall.queries`; everything else asks the
recommender: :meth:`Recommender.space`, :meth:`Recommender.exclusions`), the exclusions (seen
items, self, per-query lists) and the answers (:class:`~embrecall.neighbors.Neighbors`).
Search itself is the index's job; the on-disk layout is the artifact's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings, check_query_vectors
from embrecall.errors import InvalidArgumentError
from embrecall.filters import FieldTable, parse_filters
from embrecall.index import VectorIndex
from embrecall.index.choice import AUTO, IndexChoice
from embrecall.index.faiss_index import Metric
from embrecall.index.filtered import filtered_search
from embrecall.index.kernel import gather_rows
from embrecall.index.memory import parse_size
from embrecall.index.race import auto_choice, single_query_p50_ms
from embrecall.index.tuning import tune_to_recall
from embrecall.interactions import Interactions, SeenItems
from embrecall.neighbors import Neighbors, join_records
from embrecall.options import BuildOptions
from embrecall.queries import ID_WHAT, QUERY_SPACES, QueryKind

if TYPE_CHECKING:
    from embrecall.live.overlay import LiveOverlay

IdLike = int | str
Ids = np.ndarray
Scores = np.ndarray


# the types of one query id (bool is an int subclass, and is not among them)
_SCALAR_IDS = frozenset({int, str, np.int64, np.int32, np.uint32, np.int16, np.uint16})
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_ROWS.flags.writeable = False

__all__ = ["DEFAULT_METRICS", "Neighbors", "QueryKind", "Recommender", "default_query_kinds"]

DEFAULT_METRICS: dict[str, Metric] = {
    "recommend": "ip",  # how MF / two-tower models score a user against items
    "similar_items": "cosine",
    "similar_users": "cosine",
}


def default_query_kinds(
    metrics: Mapping[str, Metric] | None = None,
    specs: Mapping[str, str] | str | None = None,
    search_params: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, QueryKind]:
    """The three query kinds, with metrics/index specs overridden where given."""
    metrics = {**DEFAULT_METRICS, **(metrics or {})}
    unknown = set(metrics) - set(DEFAULT_METRICS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown query kind {sorted(unknown)[0]!r}; known: {', '.join(DEFAULT_METRICS)}"
        )
    if isinstance(specs, str) or specs is None:
        specs = dict.fromkeys(DEFAULT_METRICS, specs or AUTO)
    kinds = {}
    for name, (query_space, target_space) in QUERY_SPACES.items():
        kinds[name] = QueryKind(
            name,
            query_space,
            target_space,
            metrics[name],
            specs.get(name, AUTO),
            dict((search_params or {}).get(name, {})),
        )
    return kinds


def cosine_spaces(kinds: Mapping[str, QueryKind]) -> dict[str, list[str]]:
    """The spaces a cosine query kind reads (its queries or its targets) -> those kinds' names.

    A zero vector there has no direction: as a query it would get arbitrary neighbours, as a
    target arbitrary ranks. Build refuses (or, on request, drops) such vectors in these spaces.
    """
    out: dict[str, list[str]] = {}
    for kind in kinds.values():
        if kind.metric == "cosine":
            for space in dict.fromkeys((kind.query_space, kind.target_space)):
                out.setdefault(space, []).append(kind.name)
    return out


class Recommender:
    """Recall over user and item embeddings.

    Build one with :meth:`build` (in memory) or load an artifact with ``embrecall.load(path)``.
    Every query answers with :class:`~embrecall.neighbors.Neighbors`, which unpacks as
    ``(ids, scores)`` and names the query kind, the space answered, the metric and the score
    direction: 1-D arrays for one query id or vector, best first,
    never padded (fewer than ``k`` only when fewer exist); 2-D arrays ``(m, k')`` for a batch,
    where a row with fewer results than the others is padded with id ``-1`` (``None`` for string
    ids) and score ``NaN``. Scores are higher-is-better for ``ip``/``cosine``; for ``l2`` they are
    squared distances, lower is better.
    """

    def __init__(
        self,
        items: Embeddings,
        users: Embeddings | None,
        indexes: Mapping[str, VectorIndex],
        query_kinds: Mapping[str, QueryKind],
        *,
        catalog: Catalog | None = None,
        seen: SeenItems | None = None,
        info: Mapping[str, Any] | None = None,
        user_catalog: Catalog | None = None,
        fields: Mapping[str, FieldTable] | None = None,
    ) -> None:
        self.items = items
        self.users = users
        self.indexes = dict(indexes)
        self.query_kinds = dict(query_kinds)
        self.catalog = catalog
        self.user_catalog = user_catalog
        self.seen = seen
        # filter fields per space: from the artifact, else typed from the catalogues on first use
        self._fields: dict[str, FieldTable] = dict(fields or {})
        self.info = dict(info or {})
        # pending live changes over this version (embrecall.live), attached by whoever serves it
        self.live: LiveOverlay | None = None
        for kind in self.query_kinds.values():
            if kind.index_name not in self.indexes:
                raise InvalidArgumentError(
                    f"query kind {kind.name} needs index {kind.index_name}, which is missing"
                )

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        items: Embeddings,
        users: Embeddings | None = None,
        *,
        catalog: Catalog | None = None,
        interactions: Interactions | None = None,
        user_catalog: Catalog | None = None,
        options: BuildOptions | None = None,
        metrics: Mapping[str, Metric] | None = None,
        index: Mapping[str, str] | str | None = None,
        search_params: Mapping[str, Mapping[str, int]] | None = None,
        progress: bool | None = None,
        max_memory: int | str | None = None,
        max_latency_ms: float | None = None,
        target_recall: float | None = None,
        tune_k: int = 10,
        mips: str = "auto",
        race: bool = True,
    ) -> Recommender:
        """Build indexes for every query kind the given embeddings allow.

        Parameters
        ----------
        items, users : Embeddings
            ``users`` may be omitted: then only ``similar_items`` and by-vector queries work.
        catalog : Catalog, optional
            Item metadata joined onto results; its fields are what item filters test
            (``genres=Comedy``, and ``year`` parsed from MovieLens titles).
        user_catalog : Catalog, optional
            User metadata (ml-1m ``users.dat``: gender, age, occupation, zip), joined onto
            ``similar_users`` results and what their filters test.
        interactions : Interactions, optional
            Who has seen what; ``recommend`` excludes seen items by default.
        options : BuildOptions, optional
            All of the following as one value (then leave them out).
        metrics : {"recommend": "ip", "similar_items": "cosine", "similar_users": "cosine"}
            Overrides per query kind.
        index : str or {query kind: faiss factory string}
            ``"auto"`` (the default) searches exactly when a scan fits the latency target, and
            otherwise races candidate kinds on a sample of the real vectors and queries, each
            tuned to the recall target, keeping the fastest that fits the memory budget (see
            :mod:`embrecall.index.race`; ``race=False``: the size ladder of
            :mod:`embrecall.index.choice` alone); ``"Flat"`` is exact.
        max_memory : bytes or a size like ``"8G"``, optional
            Budget per index: ``auto`` picks a kind that fits, an explicit spec that cannot fit
            is refused before training.
        max_latency_ms : float, optional
            Single-query latency ``auto`` aims for (1 ms by default): how large exact search may go.
        target_recall : float, optional
            Tune ``nprobe`` / ``efSearch`` of each approximate index to the smallest value whose
            recall@``tune_k`` against exact search reaches this, on a sample of real queries.
            An index chosen by a race is always tuned, to 0.95 unless this says otherwise.
        mips : "auto" | "augment" | "native"
            How ``ip`` indexes search inner product (see :mod:`embrecall.index.mips`).
        """
        opts = BuildOptions.of(options, locals())
        budget = parse_size(opts.max_memory) if opts.max_memory is not None else None
        kinds = default_query_kinds(opts.metrics, opts.index, opts.search_params)
        if users is None:
            kinds = {
                n: k for n, k in kinds.items() if "users" not in (k.query_space, k.target_space)
            }
        elif users.dim != items.dim:
            raise InvalidArgumentError(
                f"user vectors have dimension {users.dim}, item vectors {items.dim}: "
                "recommend scores a user vector against item vectors, so they must match"
            )
        spaces = {"items": items, "users": users}
        for space, names in cosine_spaces(kinds).items():
            spaces[space].require_nonzero(f"cosine ({', '.join(names)})")
        choices = _choose_auto(kinds, spaces, opts, budget)
        kinds = {
            name: replace(kind, spec=choices[name].spec) if name in choices else kind
            for name, kind in kinds.items()
        }
        indexes: dict[str, VectorIndex] = {}
        targets: dict[str, float] = {}  # index name -> recall it is tuned to
        for name, kind in kinds.items():
            if kind.index_name in indexes:
                continue
            choice = choices.get(name)
            indexes[kind.index_name] = VectorIndex.build(
                spaces[kind.target_space].vectors,
                kind.metric,
                kind.spec,
                search_params=kind.search_params or None,
                progress=opts.progress,
                mips=choice.mips if choice is not None and opts.mips == "auto" else opts.mips,
                max_memory=budget,
                notes={"choice": choice.to_dict()} if choice is not None else None,
            )
            if opts.target_recall is not None:
                targets[kind.index_name] = opts.target_recall
            elif choice is not None and choice.race is not None:
                targets[kind.index_name] = choice.race["target_recall"]
        if targets:
            _tune(indexes, kinds, spaces, targets, opts.tune_k, opts.progress)
            kinds = {
                name: replace(kind, search_params=indexes[kind.index_name].search_params)
                for name, kind in kinds.items()
            }
        if catalog is not None:
            catalog = catalog.with_id_kind(items.id_kind)
            catalog.check_coverage(items.ids)
        seen = None
        if interactions is not None and users is not None:
            seen = SeenItems.from_interactions(interactions, users=users, items=items)
        if user_catalog is not None and users is not None:
            user_catalog = user_catalog.with_id_kind(users.id_kind)
            user_catalog.check_coverage(users.ids)
        else:
            user_catalog = None
        rec = cls(
            items, users, indexes, kinds, catalog=catalog, seen=seen, user_catalog=user_catalog
        )
        for space in ("items", "users"):
            rec.field_table(space)  # typed once here, saved in the artifact
        return rec

    def save(self, path: str, *, overwrite: bool = False) -> None:
        """Write this recommender as a versioned artifact directory (see ``embrecall.artifact``)."""
        from embrecall.artifact import save_artifact

        save_artifact(self, path, overwrite=overwrite)

    # -- queries by id -----------------------------------------------------------------------
    def recommend(
        self,
        user_id: IdLike | Sequence[IdLike] | np.ndarray,
        k: int = 10,
        *,
        exclude: Iterable[IdLike] | Sequence[Iterable[IdLike]] | None = None,
        exclude_seen: bool = True,
        params: Mapping[str, int] | None = None,
        filter: str | Sequence[str] | None = None,
    ) -> Neighbors:
        """Top-``k`` items for a user id (or a batch of them), by the user's vector.

        Items the user has seen (when interactions were loaded) are excluded inside the search
        unless ``exclude_seen=False``; ``exclude`` adds item ids to leave out (ids the catalogue
        does not hold are ignored). For a batch, ``exclude`` is one list for every query or a
        list of lists, one per query. ``filter`` keeps only items whose catalogue fields pass
        every expression (``["genres=Comedy", "year>=2000"]``; see :mod:`embrecall.filters`):
        the exact filtered top-k, k kept whenever k items pass.
        """
        return self._by_id("recommend", user_id, k, exclude, exclude_seen, params, filter)

    def similar_items(
        self,
        item_id: IdLike | Sequence[IdLike] | np.ndarray,
        k: int = 10,
        *,
        exclude: Iterable[IdLike] | Sequence[Iterable[IdLike]] | None = None,
        params: Mapping[str, int] | None = None,
        filter: str | Sequence[str] | None = None,
    ) -> Neighbors:
        """Items most like an item id (the item itself excluded), among those passing
        ``filter`` when given."""
        return self._by_id("similar_items", item_id, k, exclude, True, params, filter)

    def similar_users(
        self,
        user_id: IdLike | Sequence[IdLike] | np.ndarray,
        k: int = 10,
        *,
        exclude: Iterable[IdLike] | Sequence[Iterable[IdLike]] | None = None,
        params: Mapping[str, int] | None = None,
        filter: str | Sequence[str] | None = None,
    ) -> Neighbors:
        """Users most like a user id (the user itself excluded), among those passing
        ``filter`` (fields of the user catalogue) when given."""
        return self._by_id("similar_users", user_id, k, exclude, True, params, filter)

    # -- queries by raw vector ---------------------------------------------------------------
    def recommend_by_vector(
        self, vector, k: int = 10, *, exclude=None, params=None, filter=None
    ) -> Neighbors:
        """Top-``k`` items for a raw user vector (d,) or a batch (m, d)."""
        return self.search("recommend", vector, k, exclude=exclude, params=params, filter=filter)

    def similar_items_by_vector(
        self, vector, k: int = 10, *, exclude=None, params=None, filter=None
    ) -> Neighbors:
        """Items closest (cosine by default) to a raw vector (d,) or a batch (m, d)."""
        return self.search(
            "similar_items", vector, k, exclude=exclude, params=params, filter=filter
        )

    def similar_users_by_vector(
        self, vector, k: int = 10, *, exclude=None, params=None, filter=None
    ) -> Neighbors:
        """Users closest (cosine by default) to a raw vector (d,) or a batch (m, d)."""
        return self.search(
            "similar_users", vector, k, exclude=exclude, params=params, filter=filter
        )

    def search(
        self,
        query_kind: str,
        vector: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
        k: int = 10,
        *,
        exclude: Iterable[IdLike] | Sequence[Iterable[IdLike]] | None = None,
        params: Mapping[str, int] | None = None,
        filter: str | Sequence[str] | None = None,
    ) -> Neighbors:
        """Search one query kind's index with raw vectors: (d,) -> 1-D results, (m, d) -> 2-D.

        Only ``exclude`` is left out: a raw vector has no seen items and no self. ``filter``
        keeps only targets passing every expression.
        """
        if self.live is not None and self.live.active:
            return self.live.search(self, query_kind, vector, k, exclude, params, filter)
        kind = self._kind(query_kind)
        index = self.indexes[kind.index_name]
        queries, single = check_query_vectors(vector, index.dim, nonzero=kind.metric == "cosine")
        excluded = self._listed(kind, len(queries), exclude, single)
        return self._run(kind, queries, k, excluded, params, single, filter)

    # -- results with metadata ---------------------------------------------------------------
    def results(self, ids: Ids, scores: Scores, *, space: str = "items") -> list[dict[str, Any]]:
        """One query's results as ``[{"id", "score", <catalog fields>}]``, best first.

        The same as ``Neighbors.records``; kept for ``rec.results(*rec.recommend(...))``.
        """
        return join_records(ids, scores, self.catalog_of(space))

    def find_items(self, text: str, limit: int) -> tuple[list, bool]:
        """Item ids whose title contains ``text`` (any case), in catalog order, at most
        ``limit``, and whether more match.

        Only items this recommender can query (they have embeddings) are listed, so each one
        can be asked for similar items.
        """
        if self.live is not None and self.live.active:
            return self.live.find_items(self, text, limit)
        if self.catalog is None:
            raise InvalidArgumentError("this version has no catalog to search")
        matches = self.catalog.find(text)
        found: list = []
        step = 4 * (limit + 1)  # a chunk at a time: a short query can match most of the catalog
        for start in range(0, len(matches), step):
            chunk = matches[start : start + step]
            held = chunk[self.items.lookup_rows(chunk) >= 0]
            found.extend(held[: limit + 1 - len(found)].tolist())
            if len(found) > limit:
                break
        return found[:limit], len(found) > limit

    def vector_query(self, space: str | None = None, query: str | None = None) -> str:
        """The query kind a raw-vector search uses: ``query`` as given, or ``space``'s default
        (``users``: similar_users; ``items``: recommend where users were loaded, else
        similar_items). Refuses a query kind that does not answer ``space``."""
        if query is None:
            space = space or "items"
            query = (
                "similar_users"
                if space == "users"
                else ("recommend" if "recommend" in self.query_kinds else "similar_items")
            )
        if query not in QUERY_SPACES and query not in self.query_kinds:
            raise InvalidArgumentError(
                f"unknown query kind {query!r}; known: {', '.join(self.query_kinds)}"
            )
        kind = self.query_kinds.get(query)
        target = kind.target_space if kind is not None else QUERY_SPACES[query][1]
        if space is not None and space != target:
            raise InvalidArgumentError(f"query {query} searches {target}, not {space}")
        if kind is None:
            raise InvalidArgumentError(f"{query} needs user embeddings, and this version has none")
        return query

    def seen_items(self, user_id: IdLike) -> Ids:
        """Item ids the user has interacted with (empty without interactions)."""
        users = self.space("users", "seen_items")
        if self.live is not None and self.live.active:
            return self.live.seen_items(self, user_id)
        if self.seen is None:
            return self.items.ids[:0]
        return self.items.ids[self.seen.rows_for(users.row_of(user_id, what="user id"))]

    def describe(self) -> dict[str, Any]:
        """Counts, dimensions, metrics, index kinds and parameters, as a JSON-safe dict."""
        spaces = {
            name: {"count": len(e), "dim": e.dim, "id_kind": e.id_kind}
            for name, e in (("items", self.items), ("users", self.users))
            if e is not None
        }
        return {
            **self.info,
            "spaces": spaces,
            "queries": {
                name: {
                    "from": k.query_space,
                    "returns": k.target_space,
                    "index": k.index_name,
                    **self.indexes[k.index_name].describe(),
                }
                for name, k in self.query_kinds.items()
            },
            "catalog": None
            if self.catalog is None
            else {"count": len(self.catalog), "columns": list(self.catalog.columns)},
            "user_catalog": None
            if self.user_catalog is None
            else {"count": len(self.user_catalog), "columns": list(self.user_catalog.columns)},
            "filters": {
                space: table.describe()
                for space in ("items", "users")
                if (table := self.field_table(space)) is not None
            },
            "seen": None
            if self.seen is None
            else {"users": int(self.seen.n_users), "interactions": int(self.seen.nnz)},
        }

    # -- the one owner of spaces and exclusions ----------------------------------------------
    def space(self, name: str, query: str | None = None) -> Embeddings:
        """The embeddings of a space, ``"items"`` or ``"users"``; refused when not loaded."""
        space = self.items if name == "items" else self.users
        if space is None:
            raise InvalidArgumentError(
                f"{query or name} needs user embeddings, and none were loaded"
            )
        return space

    def query_space(self, kind: str | QueryKind) -> Embeddings:
        """The space a query kind's query ids (and their vectors) come from."""
        kind = self._kind(kind) if isinstance(kind, str) else kind
        return self.space(kind.query_space, kind.name)

    def target_space(self, kind: str | QueryKind) -> Embeddings:
        """The space a query kind answers with."""
        kind = self._kind(kind) if isinstance(kind, str) else kind
        return self.space(kind.target_space, kind.name)

    def excludes_seen(self, kind: str | QueryKind, exclude_seen: bool = True) -> bool:
        """Whether queries by id of ``kind`` leave out seen items here (interactions loaded)."""
        kind = self._kind(kind) if isinstance(kind, str) else kind
        return kind.excludes_seen and exclude_seen and self.seen is not None

    def exclusions(
        self,
        kind: str | QueryKind,
        query_rows: Sequence[int] | np.ndarray,
        *,
        exclude_seen: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What queries by id leave out, by the query kind's policy, as CSR target rows.

        ``recommend``: the user's seen items (unless ``exclude_seen=False``, or without
        interactions); ``similar_items`` / ``similar_users``: the query itself.

        Parameters
        ----------
        kind : query kind name or QueryKind
        query_rows : (m,) rows of the query space

        Returns
        -------
        indptr : (m + 1,) int64
        cols : (indptr[-1],) int64 rows of the target space
        """
        kind = self._kind(kind) if isinstance(kind, str) else kind
        rows = np.asarray(query_rows, dtype=np.int64)
        if self.excludes_seen(kind, exclude_seen):
            return gather_rows(self.seen.indptr, self.seen.item_rows, rows)
        if kind.excludes_self:
            return np.arange(len(rows) + 1, dtype=np.int64), rows
        return np.zeros(len(rows) + 1, dtype=np.int64), np.empty(0, dtype=np.int64)

    def exclusion_lists(
        self,
        kind: str | QueryKind,
        query_rows: Sequence[int] | np.ndarray,
        *,
        exclude_seen: bool = True,
    ) -> list[np.ndarray]:
        """:meth:`exclusions` as one array of target rows per query (views, no copies: the
        by-id queries take this path one query at a time)."""
        kind = self._kind(kind) if isinstance(kind, str) else kind
        rows = np.asarray(query_rows, dtype=np.int64)
        if self.excludes_seen(kind, exclude_seen):
            return [self.seen.rows_for(r) for r in rows]
        if kind.excludes_self:
            return [rows[i : i + 1] for i in range(len(rows))]
        return [rows[:0]] * len(rows)

    # -- filters -----------------------------------------------------------------------------
    def catalog_of(self, space: str) -> Catalog | None:
        """The catalogue of a space: item metadata, or user metadata (``user_catalog``)."""
        return self.catalog if space == "items" else self.user_catalog

    def field_table(self, space: str) -> FieldTable | None:
        """The filter fields of ``space`` (None without a catalogue for it)."""
        table = self._fields.get(space)
        if table is None:
            catalog = self.catalog_of(space)
            embeddings = self.items if space == "items" else self.users
            if catalog is None or embeddings is None:
                return None
            table = self._fields[space] = FieldTable.from_catalog(catalog, embeddings.ids)
        return table

    def compile_filter(self, space: str, filter: str | Sequence[str]):
        """The rows of ``space`` passing every expression of ``filter``, as a
        :class:`~embrecall.filters.RowFilter` (cached per filter).

        Raises
        ------
        InvalidArgumentError
            The space has no catalogue, or an expression names an unknown field, uses a bad
            operator, or gives text where a number is needed.
        """
        table = self.field_table(space)
        if table is None:
            conditions = parse_filters(filter)
            what = "catalog" if space == "items" else "user catalog (--user-catalog)"
            raise InvalidArgumentError(
                f"filter {', '.join(map(str, conditions))}: this version has no {what} for "
                f"{space} to filter on"
            )
        return table.compile(filter)

    # -- internals ---------------------------------------------------------------------------
    def _by_id(self, name, query_id, k, exclude, exclude_seen, params, filter=None) -> Neighbors:
        if self.live is not None and self.live.active:  # pending changes: merged in the search
            return self.live.by_id(self, name, query_id, k, exclude, exclude_seen, params, filter)
        kind = self.query_kinds.get(name) or self._kind(name)
        if type(query_id) in _SCALAR_IDS:  # one id: the service's case, in as few steps as can be
            space = self.space(kind.query_space, name)
            row = space.row_of(query_id, what=ID_WHAT[kind.query_space])
            policy = self._own_exclusion(kind, row, exclude_seen)
            if exclude is not None:
                listed = self._listed(kind, 1, exclude, True)[0]
                if len(listed):
                    policy = np.concatenate([policy, listed]) if len(policy) else listed
            # a slice is a view of one row, five times cheaper than a fancy index or take
            queries = space.vectors[row : row + 1]
            return self._run(kind, queries, k, [policy], params, True, filter)
        ids, single = _as_batch(query_id)
        space = self.space(kind.query_space, name)
        rows = space.rows_of(ids, what=ID_WHAT[kind.query_space])
        listed = self._listed(kind, len(rows), exclude, single)
        # the query kind's own exclusions (seen items, or the query itself), then the request's
        policy = self.exclusion_lists(kind, rows, exclude_seen=exclude_seen)
        excluded = [np.concatenate([p, e]) if len(e) else p for p, e in zip(policy, listed)]
        # take: a fancy index costs five times as much for one row
        queries = space.vectors.take(rows, axis=0)
        return self._run(kind, queries, k, excluded, params, single, filter)

    def _own_exclusion(self, kind: QueryKind, row: int, exclude_seen: bool) -> np.ndarray:
        """:meth:`exclusion_lists` of one query row, without the batch's lists."""
        if kind.excludes_seen:
            seen = self.seen
            if exclude_seen and seen is not None:
                return seen.item_rows[seen.indptr[row] : seen.indptr[row + 1]]
            return _NO_ROWS
        if kind.excludes_self:
            return np.array([row], dtype=np.int64)
        return _NO_ROWS

    def _run(self, kind: QueryKind, queries, k, excluded, params, single, filter=None):
        if type(k) is not int or k < 1:  # an int >= 1 needs no more checks
            k = _check_k(k)
        index = self.indexes[kind.index_name]
        target = self.space(kind.target_space, kind.name)
        applied = None
        if filter is None:
            scores, rows = index.search(queries, k, exclude=excluded, params=params)
        else:
            allowed = self.compile_filter(kind.target_space, filter)
            scores, rows, plan = filtered_search(
                index, target.vectors, queries, k, allowed, exclude=excluded, params=params
            )
            applied = {"expressions": allowed.expressions, "passing": allowed.count, "plan": plan}
        if single:
            rows, scores = rows[0], scores[0]
            if rows.size and rows[-1] < 0:  # fewer than k exist: the padding is at the end
                valid = rows >= 0
                rows, scores = rows[valid], scores[valid]
            ids = target.ids.take(rows)
        else:
            ids = np.empty(rows.shape, dtype=target.ids.dtype)
            valid = rows >= 0
            ids[valid] = target.ids[rows[valid]]
            ids[~valid] = -1 if target.id_kind == "int" else None
        return Neighbors(
            ids,
            scores,
            query=kind.name,
            space=kind.target_space,
            metric=kind.metric,
            higher_is_better=index.higher_is_better,
            catalog=self.catalog if kind.target_space == "items" else self.user_catalog,
            filter=applied,
        )

    def _listed(self, kind: QueryKind, m: int, exclude, single: bool) -> list[np.ndarray]:
        """Per-query arrays of the rows ``exclude`` names; unknown ids are ignored (nothing to
        leave out)."""
        if exclude is None:
            return [_NO_ROWS] * m
        target = self.space(kind.target_space, "exclude")
        if isinstance(exclude, (str, bytes)):
            raise InvalidArgumentError("exclude must be a list of ids, not a single string")
        lists = exclude if type(exclude) is list else list(exclude)
        per_query = not single and lists and all(_is_listlike(e) for e in lists)
        if per_query:
            if len(lists) != m:
                raise InvalidArgumentError(f"exclude has {len(lists)} lists for {m} queries")
            return [_known_rows(target, e) for e in lists]
        rows = _known_rows(target, lists)
        return [rows] * m

    def _kind(self, name: str) -> QueryKind:
        try:
            return self.query_kinds[name]
        except KeyError:
            if name in DEFAULT_METRICS:
                raise InvalidArgumentError(
                    f"{name} needs user embeddings, and none were loaded"
                ) from None
            raise InvalidArgumentError(
                f"unknown query kind {name!r}; known: {', '.join(self.query_kinds)}"
            ) from None


def _choose_auto(kinds, spaces, opts: BuildOptions, budget) -> dict[str, IndexChoice]:
    """query kind -> the index choice of each ``auto`` kind (:func:`auto_choice`), made once per
    space and metric: kinds that would share an index share its choice."""
    choices: dict[str, IndexChoice] = {}
    made: dict[tuple, IndexChoice] = {}
    for name, kind in kinds.items():
        if kind.spec != AUTO:
            continue
        key = (kind.target_space, kind.metric)
        if key not in made:
            made[key] = auto_choice(
                spaces[kind.target_space].vectors,
                None if kind.excludes_self else spaces[kind.query_space].vectors,
                kind.metric,
                k=opts.tune_k,
                target_recall=opts.target_recall,
                max_memory=budget,
                max_latency_ms=opts.max_latency_ms,
                mips=opts.mips,
                race=opts.race,
                progress=opts.progress,
            )
        choices[name] = made[key]
    return choices


def _tune(indexes, kinds, spaces, targets: Mapping[str, float], k, progress) -> None:
    """Tune each index named in ``targets`` to its recall target on the queries its query kinds
    really ask; an index chosen by a race then measures its single-query p50 at full size."""
    for name, target_recall in targets.items():
        index = indexes[name]
        # kinds sharing an index share its metric and target space: the first one's queries
        kind = next(kind for kind in kinds.values() if kind.index_name == name)
        queries = spaces[kind.query_space].vectors
        self_rows = np.arange(len(queries)) if kind.excludes_self else None
        tuning = tune_to_recall(
            index,
            spaces[kind.target_space].vectors,
            queries,
            target=target_recall,
            k=k,
            self_rows=self_rows,
            progress=progress,
        )
        index.notes["tuning"] = {"query_kind": kind.name, **tuning.to_dict()}
        choice = index.notes.get("choice")
        if choice is not None and "race" in choice:
            pick = np.random.default_rng(2).choice(len(queries), min(200, len(queries)), False)
            own = None if self_rows is None else self_rows[pick]
            choice["p50_ms_measured"] = single_query_p50_ms(index, queries[pick], k, own)


def _as_batch(value) -> tuple[list, bool]:
    if isinstance(value, (str, bytes, int, np.integer)):
        return [value], True
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return [value.item()], True
    values = list(value)
    if not values:
        raise InvalidArgumentError("empty batch of ids")
    return values, False


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _is_listlike(value) -> bool:
    return not isinstance(value, (str, bytes)) and isinstance(
        value, (Sequence, np.ndarray, set, frozenset)
    )


def _known_rows(space: Embeddings, ids: Iterable) -> np.ndarray:
    """Rows of ``ids``, -1 for the ids not held: the index leaves rows it does not hold out
    of its exclusions, so they need no pass of their own here."""
    return space.lookup_rows(ids if type(ids) is list else list(ids))
