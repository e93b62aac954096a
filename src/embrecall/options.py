"""`BuildOptions`: how indexes are chosen, built and tuned, as one value.

The CLI makes it once from its flags; :func:`embrecall.build` and :meth:`Recommender.build`
make it from their keyword arguments; it travels down to each :meth:`VectorIndex.build`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class BuildOptions:
    """Index choice, budget and tuning of a build (every field optional).

    Attributes
    ----------
    index : str or {query kind: faiss factory string}, optional
        ``"auto"`` (the default) picks the kind from the size, dimension, metric, memory budget
        and latency target; ``"Flat"`` is exact.
    metrics : {query kind: "ip" | "cosine" | "l2"}, optional
        Overrides of the default metric per query kind.
    search_params : {query kind: {"nprobe": int, "efSearch": int}}, optional
    max_memory : bytes or a size like ``"8G"``, optional
        Budget per index.
    max_latency_ms : float, optional
        Single-query latency ``auto`` aims for.
    target_recall : float, optional
        Tune each approximate index to reach this recall@``tune_k`` against exact search.
    tune_k : int
    mips : "auto" | "augment" | "native"
        How ``ip`` indexes search inner product.
    progress : bool, optional
        Progress bars (``None``: only on a terminal).
    race : bool
        ``auto`` races candidate kinds on a sample of the vectors when exact search is too slow
        (see :mod:`embrecall.index.race`); False keeps the size ladder alone (a faster build).
    """

    index: Mapping[str, str] | str | None = None
    metrics: Mapping[str, str] | None = None
    search_params: Mapping[str, Mapping[str, int]] | None = None
    max_memory: int | str | None = None
    max_latency_ms: float | None = None
    target_recall: float | None = None
    tune_k: int = 10
    mips: str = "auto"
    progress: bool | None = None
    race: bool = True

    @classmethod
    def of(cls, options: BuildOptions | None, arguments: Mapping[str, Any]) -> BuildOptions:
        """``options`` as given, or one made from a build function's keyword ``arguments`` (its
        ``locals()``: the names of this class's fields are taken, the rest ignored); not both."""
        defaults = {f.name: f.default for f in fields(cls)}
        kwargs = {name: arguments[name] for name in defaults if name in arguments}
        if options is None:
            return cls(**kwargs)
        given = sorted(name for name, value in kwargs.items() if value != defaults[name])
        if given:
            from embrecall.errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"give build options either as options= or as keyword arguments, not both "
                f"({', '.join(given)} given with options=)"
            )
        return options
