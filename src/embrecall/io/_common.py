"""Small things every reader shares: the logger, option checks, quoting bad rows."""

from __future__ import annotations

import logging
from typing import Literal

from embrecall.errors import InvalidArgumentError

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
