"""Small things every reader shares: the logger, option checks, column checks, quoting bad rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from embrecall.errors import InputFormatError, InvalidArgumentError

logger = logging.getLogger("embrecall")

IdType = Literal["auto", "int", "str"]

_SNIPPET = 60  # characters of a bad row quoted in messages


def snippet(text: str | None) -> str:
    """The start of a bad row's text, short enough for an error message."""
    text = "" if text is None else text
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def check_on_bad_row(on_bad_row: str) -> None:
    if on_bad_row not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_bad_row must be 'raise' or 'skip', not {on_bad_row!r}")


def check_id_type(id_type: str) -> None:
    if id_type not in ("auto", "int", "str"):
        raise InvalidArgumentError(f"id_type must be 'auto', 'int' or 'str', not {id_type!r}")


def check_columns(source: object, found: Sequence[str], id_column: str, vector_column: str) -> None:
    """Refuse a table ``source`` whose columns ``found`` lack the id or the vector column."""
    for name in (id_column, vector_column):
        if name not in found:
            raise InputFormatError(
                f"{source}: no column {name!r} (columns found: {', '.join(map(repr, found))}); "
                "name the columns with id_column= and vector_column="
            )


def log_read(path: object, rows: int, dims: int, started: float) -> None:
    """Log a finished read; ``started`` is the ``time.perf_counter()`` it began at."""
    logger.info(
        "read %s: %d rows x %d dims in %.2fs", path, rows, dims, time.perf_counter() - started
    )
