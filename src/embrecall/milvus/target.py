"""Milvus targets: what ``milvus://HOST:PORT[/DB]`` and ``milvus-lite:PATH.db`` name, and the
one place a client is opened.

A target string is the only thing a user types; everything else (collection names, the
version pointer) derives from it and a collection prefix. Errors from the client are turned
into :class:`MilvusUnavailableError` (an :class:`~embrecall.errors.ArtifactError`) with one line
that names the target, so the CLI prints one line and the service answers 503.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from embrecall.errors import ArtifactError, InvalidArgumentError, require_extra

SCHEMES = ("milvus://", "milvus-lite:")
TOKEN_ENV = "EMBRECALL_MILVUS_TOKEN"
DEFAULT_PREFIX = "embrecall"
# Milvus names: letters, digits and underscores. No double underscore in a prefix, because
# collection names put "__" between prefix, version and space (see ``names``).
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")
_CONNECT_TIMEOUT_S = 5.0


class MilvusUnavailableError(ArtifactError):
    """The Milvus target cannot be reached, refuses the token, or lacks what it should hold."""


def is_milvus_target(target: object) -> bool:
    """Whether ``target`` names a Milvus target rather than a path."""
    return isinstance(target, str) and target.startswith(SCHEMES)


@dataclass(frozen=True)
class MilvusTarget:
    """A parsed target: where the client connects and what it says in messages."""

    text: str  # as the user typed it
    uri: str  # what pymilvus connects to: http://host:port or a local .db path
    db: str | None  # database on a server; None for Milvus Lite and the default database
    lite: bool

    @classmethod
    def parse(cls, text: str) -> MilvusTarget:
        """Parse ``milvus://HOST:PORT[/DB]`` or ``milvus-lite:PATH.db``.

        Raises
        ------
        InvalidArgumentError
            The text is neither form.
        """
        if text.startswith("milvus-lite:"):
            path = text[len("milvus-lite:") :]
            if not path.endswith(".db") or path == ".db":
                raise InvalidArgumentError(
                    f"{text}: a Milvus Lite target is milvus-lite:PATH.db (a file ending in .db)"
                )
            return cls(text, os.path.abspath(path), None, True)
        if text.startswith("milvus://"):
            rest = text[len("milvus://") :]
            address, _, db = rest.partition("/")
            if not _HOST_PORT.fullmatch(address) or "/" in db:
                raise InvalidArgumentError(
                    f"{text}: a Milvus target is milvus://HOST:PORT or milvus://HOST:PORT/DB"
                )
            return cls(text, f"http://{address}", db or None, False)
        raise InvalidArgumentError(
            f"{text}: not a Milvus target (milvus://HOST:PORT[/DB] or milvus-lite:PATH.db)"
        )


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start Milvus collection names, else :class:`InvalidArgumentError`."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or len(prefix) > 64:
        raise InvalidArgumentError(
            "collection prefix must start with a letter and hold letters, digits and single "
            f"underscores (at most 64), got {prefix!r}"
        )
    return prefix


def connect(target: MilvusTarget, *, create: bool = False) -> Any:
    """A ``pymilvus.MilvusClient`` for ``target``, checked with one round trip.

    ``create``: a Milvus Lite file may be created (publish); readers refuse a missing one rather
    than leave an empty database behind.

    The token comes from ``EMBRECALL_MILVUS_TOKEN`` only (never a flag, so it stays out of
    process lists and shell history).

    Raises
    ------
    MilvusUnavailableError
        Unreachable, refused (a wrong token) or the database does not exist.
    """
    if target.lite:
        require_extra("milvus_lite", "milvus")
        if not os.path.isdir(os.path.dirname(target.uri)):
            raise MilvusUnavailableError(
                f"{target.text}: folder {os.path.dirname(target.uri)} does not exist"
            )
        if not create and not os.path.exists(target.uri):
            raise MilvusUnavailableError(
                f"{target.text}: no Milvus Lite database at {target.uri} (publish creates one)"
            )
    pymilvus = require_extra("pymilvus", "milvus")
    # pymilvus logs every failed call with a traceback on a handler of its own; each failure
    # reaches embrecall as an exception and is reported once, in one line, so its log would
    # only repeat it (and break the CLI's one-line errors).
    logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
    options: dict[str, Any] = {"uri": target.uri, "timeout": _CONNECT_TIMEOUT_S}
    token = os.environ.get(TOKEN_ENV)
    if token and not target.lite:
        options["token"] = token
    if target.db:
        options["db_name"] = target.db
    try:
        client = pymilvus.MilvusClient(**options)
        client.list_collections(timeout=_CONNECT_TIMEOUT_S)
    except Exception as exc:  # pymilvus raises MilvusException and plain ones (gRPC, config)
        raise MilvusUnavailableError(f"{target.text}: cannot use Milvus: {one_line(exc)}") from None
    return client


def one_line(exc: BaseException) -> str:
    """A client exception as one short line (pymilvus puts codes and reprs in its messages)."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]
