"""embrecall: real-time embedding recall for recommender systems.

>>> import embrecall
>>> rec = embrecall.load("artifacts/movies")          # doctest: +SKIP
>>> ids, scores = rec.recommend(1, k=30)              # doctest: +SKIP
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

from embrecall.embeddings import Embeddings  # noqa: E402
from embrecall.errors import (  # noqa: E402
    ArtifactError,
    DimensionMismatchError,
    DuplicateIdError,
    EmbrecallError,
    InputFormatError,
    InvalidArgumentError,
    InvalidVectorError,
    MissingExtraError,
    UnknownIdError,
)


def load(path: str | os.PathLike, *, verify: bool = True, mmap: bool = False):
    """Load an artifact directory as a :class:`~embrecall.recommender.Recommender`.

    ``mmap=True`` maps vectors and index codes from the files (shared between processes).
    ``path`` may also be a Milvus target, ``milvus://HOST:PORT[/DB]`` or ``milvus-lite:PATH.db``
    (extra ``milvus``): the version its aliases name, searched in Milvus (collection prefix from
    ``EMBRECALL_MILVUS_PREFIX``, default ``embrecall``).
    """
    from embrecall.milvus.target import is_milvus_target

    if is_milvus_target(path):
        from embrecall.milvus import load_milvus

        return load_milvus(str(path))
    from embrecall.artifact import load_artifact

    return load_artifact(path, verify=verify, mmap=mmap)


def read_embeddings(path, format: str = "auto", **options):
    """Read embeddings from Spark CSV, parquet, npy or word2vec text; see ``embrecall.io``."""
    from embrecall.io import read_embeddings as _read

    return _read(path, format, **options)


def __getattr__(name: str):
    # Heavier nouns load on first use so `import embrecall` stays light.
    if name == "Recommender":
        from embrecall.recommender import Recommender

        return Recommender
    if name == "Neighbors":
        from embrecall.neighbors import Neighbors

        return Neighbors
    if name == "BuildOptions":
        from embrecall.options import BuildOptions

        return BuildOptions
    if name in ("Catalog", "read_catalog"):
        from embrecall import catalog

        return getattr(catalog, name)
    if name in ("read_interactions", "Interactions"):
        from embrecall import interactions

        return getattr(interactions, name)
    if name == "build":
        from embrecall.pipeline import build

        return build
    raise AttributeError(f"module 'embrecall' has no attribute {name!r}")


__all__ = [
    "ArtifactError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "Embeddings",
    "EmbrecallError",
    "InputFormatError",
    "InvalidArgumentError",
    "InvalidVectorError",
    "MissingExtraError",
    "UnknownIdError",
    "load",
    "read_embeddings",
    "__version__",
]
