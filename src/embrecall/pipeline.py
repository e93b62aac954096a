"""`build`: files in, recommender (and artifact) out. The one place that wires readers, catalog,
interactions and indexes together, shared by the CLI, the demo and library users."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embrecall.artifact import ArtifactExistsError
from embrecall.catalog import Catalog, read_catalog
from embrecall.embeddings import Embeddings
from embrecall.interactions import Interactions, read_interactions
from embrecall.io import read_embeddings
from embrecall.options import BuildOptions
from embrecall.recommender import Recommender, cosine_spaces, default_query_kinds

log = logging.getLogger("embrecall")
PathLike = str | os.PathLike


def build(
    items: PathLike | Embeddings,
    users: PathLike | Embeddings | None = None,
    *,
    out: PathLike | None = None,
    catalog: PathLike | Catalog | None = None,
    interactions: PathLike | Interactions | None = None,
    user_catalog: PathLike | Catalog | None = None,
    options: BuildOptions | None = None,
    metrics: Mapping[str, str] | None = None,
    index: Mapping[str, str] | str | None = None,
    search_params: Mapping[str, Mapping[str, int]] | None = None,
    read_options: Mapping[str, Any] | None = None,
    catalog_options: Mapping[str, Any] | None = None,
    interactions_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    max_memory: int | str | None = None,
    max_latency_ms: float | None = None,
    target_recall: float | None = None,
    tune_k: int = 10,
    mips: str = "auto",
) -> Recommender:
    """Read embeddings (and optionally a catalog and interactions), build, and save to ``out``.

    Parameters
    ----------
    items, users : path or Embeddings
        Files in any format ``read_embeddings`` takes, or already-read embeddings.
    out : path, optional
        Artifact directory to write; nothing is written when omitted.
    catalog : path or Catalog, optional
        Item metadata (MovieLens ``movies.dat``/``movies.csv``, generic CSV/parquet).
    interactions : path or Interactions, optional
        Who has seen what (MovieLens ``ratings.csv``/``ratings.dat``, generic CSV/parquet).
    user_catalog : path or Catalog, optional
        User metadata (ml-1m ``users.dat``, generic CSV/parquet): joined onto similar-users
        results and filterable (``gender=F``).
    options : BuildOptions, optional
        The index options below as one value (then leave them out).
    metrics, index, search_params
        Per query kind overrides; see :meth:`Recommender.build`. ``index`` is ``"auto"`` by
        default: the kind is chosen from the sizes, ``max_memory`` and ``max_latency_ms``.
    max_memory, max_latency_ms, target_recall, tune_k, mips
        Index choice, budget and tuning; see :meth:`Recommender.build`.
    read_options : dict
        Passed to ``read_embeddings`` for both files (``format``, ``id_column``,
        ``vector_column``, ``on_bad_row``, ``id_type``). With ``on_bad_row="skip"``, all-zero
        vectors in a space that a cosine query kind uses are dropped too (and listed in
        ``.skipped``); otherwise they are refused.
    overwrite : bool
        Replace an existing ``out``; without it an existing ``out`` is refused before anything
        is read (:class:`~embrecall.artifact.ArtifactExistsError`).
    """
    if out is not None and not overwrite and os.path.lexists(out):
        raise ArtifactExistsError(Path(out))  # before minutes of reading and indexing
    build_options = BuildOptions.of(options, locals())
    t0 = time.perf_counter()
    opts = dict(read_options or {})
    item_emb = items if isinstance(items, Embeddings) else read_embeddings(items, **opts)
    user_emb = (
        users
        if (users is None or isinstance(users, Embeddings))
        else read_embeddings(users, **opts)
    )
    if opts.get("on_bad_row") == "skip":
        item_emb, user_emb = _drop_zero_vectors(item_emb, user_emb, build_options.metrics)
    cat = catalog
    if catalog is not None and not isinstance(catalog, Catalog):
        cat = read_catalog(catalog, **dict(catalog_options or {}))
    user_cat = user_catalog
    if user_catalog is not None and not isinstance(user_catalog, Catalog):
        user_cat = read_catalog(user_catalog)
    inter = interactions
    if interactions is not None and not isinstance(interactions, Interactions):
        inter = read_interactions(interactions, **dict(interactions_options or {}))
    t1 = time.perf_counter()
    rec = Recommender.build(
        item_emb,
        user_emb,
        catalog=cat,
        interactions=inter,
        user_catalog=user_cat,
        options=build_options,
    )
    t2 = time.perf_counter()
    if out is not None:
        rec.save(out, overwrite=overwrite)
    log.info(
        "build: read %.2fs, index %.2fs, save %.2fs", t1 - t0, t2 - t1, time.perf_counter() - t2
    )
    return rec


def _drop_zero_vectors(
    items: Embeddings, users: Embeddings | None, metrics: Mapping[str, str] | None
) -> tuple[Embeddings, Embeddings | None]:
    """Skip mode: drop the zero vectors that ``Recommender.build`` would refuse (cosine spaces)."""
    spaces = {"items": items, "users": users}
    for space, names in cosine_spaces(default_query_kinds(metrics)).items():
        emb = spaces[space]
        if emb is not None:
            why = f"vector is all zeros, which cosine ({', '.join(names)}) cannot rank"
            spaces[space] = emb.without_rows(emb.zero_rows(), why)
    return spaces["items"], spaces["users"]
