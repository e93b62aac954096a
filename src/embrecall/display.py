"""Plain-text tables for results, shared by the CLI and the demo (no search logic here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_MAX_CELL = 60


def results_table(results: Sequence[dict[str, Any]], *, score_digits: int = 4) -> str:
    """``rank  id  score  <catalog fields...>`` for results shaped ``{"id", "score", ...}``."""
    if not results:
        return "(no results)"
    extra = [c for c in results[0] if c not in ("id", "score")]
    header = ["rank", "id", "score", *extra]
    rows = [
        [
            str(rank),
            str(r["id"]),
            f"{r['score']:.{score_digits}f}",
            *(_cell(r.get(c)) for c in extra),
        ]
        for rank, r in enumerate(results, 1)
    ]
    return table(header, rows, right_aligned={0, 2})


def query_output(
    results: Sequence[dict[str, Any]],
    *,
    as_json: bool,
    query: str,
    id: Any,
    k: int,
    metric: str,
    score: str,
    filter: dict[str, Any] | None = None,
) -> str:
    """A query's answer as the CLI prints it: the ``--json`` object, or a table.

    The JSON shape (``query, id, k, metric, score, returned, results``) is what scripts rely on,
    the same as the HTTP API's; the online ``recommend`` and the offline ``cached`` both print it
    from here. ``k`` is the k asked; ``returned`` is fewer when fewer items exist to answer.
    """
    if not as_json:
        return results_table(results)
    body = {
        "query": query,
        "id": id,
        "k": k,
        "metric": metric,
        "score": score,
        "returned": len(results),
        "results": results,
    }
    if filter is not None:  # which filter applied, how many passed, which plan answered
        body["filter"] = filter
    return json.dumps(body, ensure_ascii=False)


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right_aligned: set[int] = frozenset()
) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right_aligned else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
