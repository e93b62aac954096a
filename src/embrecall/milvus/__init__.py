"""Milvus as a second engine: versions of a recommender published into a Milvus database and
served through the same ``Recommender``, CLI and HTTP service (extra ``milvus``).

``target``: what a target string names and the one place a client is opened; ``index``:
:class:`MilvusIndex`, the search contract of the faiss index over a Milvus vector field;
``store``: one version's collections, written and read; ``publish``: which index kind each space
gets and its tuning; ``versions``: :class:`MilvusVersions`, the pointer (aliases), publish,
rollback and clean-up; ``changes``: live changes written with Milvus's own upsert and delete,
and the change-record collection; ``live``: those changes polled and merged into answers;
``compact``: a version and its changes folded into a new one.
"""

from __future__ import annotations

from embrecall.milvus.target import MilvusUnavailableError, is_milvus_target

__all__ = ["MilvusUnavailableError", "is_milvus_target", "load_milvus"]


def load_milvus(target: str, *, prefix: str | None = None, version: str | None = None):
    """The current version (or ``version``) of a Milvus target as a ``Recommender``."""
    from embrecall.milvus.versions import MilvusVersions, prefix_from_env

    source = MilvusVersions(target, prefix or prefix_from_env())
    return source.load_version(version) if version else source.load()
