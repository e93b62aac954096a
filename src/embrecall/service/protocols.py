"""Uvicorn's HTTP protocols, answering requests they cannot parse in the API's JSON error shape.

A request whose framing is broken (a garbage request line, a negative Content-Length, a bad
chunk, oversized headers) never reaches the app: uvicorn's parser refuses it and answers a
plain-text 400 itself. These subclasses answer it as every other refusal is answered,
``{"error": {"code", "message"}}``, and give the httptools parser the limit on the request head
that h11 already has (httptools has none: a client could send headers without end).

``embrecall serve`` passes :func:`http_protocol` to ``uvicorn.Config(http=...)``; with workers,
the import string ``embrecall.service.protocols:HttpProtocol``.
"""

from __future__ import annotations

import sys

from embrecall.errors import require_extra
from embrecall.service.errors import error_body

require_extra("uvicorn", "server")

import h11  # noqa: E402  (uvicorn's own dependency)
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

# h11's default bound on a request head, used for both parsers so that they refuse the same
MAX_HEAD_BYTES = 16 * 1024
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised from a parser callback when the request line and headers pass MAX_HEAD_BYTES."""


def _refusal() -> tuple[int, bytes]:
    """Status and JSON body for the parse error being handled (uvicorn calls its 400 method
    from inside its ``except`` block, without passing the error on, so it is read here)."""
    exc = sys.exc_info()[1]
    cause = exc.__context__ if exc is not None else None
    if isinstance(cause, HeadTooLarge) or getattr(exc, "error_status_hint", None) == 431:
        limit = f"the request line and headers are over the limit of {MAX_HEAD_BYTES} bytes"
        return 431, error_body("headers_too_large", limit)
    detail = str(exc) if exc is not None and str(exc) else "cannot be parsed"
    # h11 hints 501 for an unsupported Transfer-Encoding: still the client's request to fix,
    # so a 400 like any other framing error, never a 5xx
    return 400, error_body("bad_request", f"malformed HTTP request: {detail}")


def _head(status: int, body: bytes, default_headers) -> list[tuple[bytes, bytes]]:
    return [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
    ]


class _BoundedConnection(h11.Connection):
    """h11 bounds only a head that arrives in pieces; one that arrives whole is measured here."""

    def next_event(self):
        event = super().next_event()
        if isinstance(event, h11.Request):
            size = len(event.method) + len(event.target)
            size += sum(len(name) + len(value) + 4 for name, value in event.headers)
            if size > MAX_HEAD_BYTES:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event


class JsonErrorsH11Protocol(H11Protocol):
    """h11 (the pure-Python parser) with JSON refusals and a bound on the request head."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _BoundedConnection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def send_400_response(self, msg: str) -> None:
        status, body = _refusal()
        headers = _head(status, body, self.server_state.default_headers)
        event = h11.Response(status_code=status, headers=headers, reason=_REASONS[status])
        for part in (event, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(part))
        self.transport.close()


def _httptools_protocol() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
        """httptools (the C parser) with JSON refusals and a bound on the request head."""

        _head_bytes = 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > MAX_HEAD_BYTES:
                raise HeadTooLarge  # httptools turns it into a parser error and stops

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            status, body = _refusal()
            lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
            for name, value in _head(status, body, self.server_state.default_headers):
                lines.append(name + b": " + value + b"\r\n")
            self.transport.write(b"".join([*lines, b"\r\n", body]))
            self.transport.close()

    return JsonErrorsHttpToolsProtocol


def http_protocol() -> type:
    """The protocol class ``uvicorn.Config(http=...)`` gets: httptools when installed (as
    uvicorn's "auto" picks), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return JsonErrorsH11Protocol
    return _httptools_protocol()


def __getattr__(name: str) -> type:
    # HttpProtocol: http_protocol() by import string, for a uvicorn config pickled to workers
    if name == "HttpProtocol":
        return http_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
