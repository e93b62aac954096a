"""Every refusal becomes a 4xx with one JSON body shape; nothing leaks a stack trace.

Body: ``{"error": {"code": "unknown_id", "message": "unknown user id 42", ...details}}``.

=====  ====================  ==================================================================
 400   malformed_json        the body is not JSON
 400   bad_request           the request cannot be parsed as HTTP (answered by ``protocols``)
 401   unauthorized          missing or wrong API key
 403   admin_disabled        admin endpoints without EMBRECALL_ADMIN_API_KEY configured
 404   unknown_id            an id the served version does not hold (``ids`` lists them)
 404   unknown_version       an admin call named a version the root does not hold
 404   not_found             no such route
 405   method_not_allowed
 409   version_refused       the named version failed its checks; the old one keeps serving
 413   body_too_large        the body is over max_body_bytes
 431   headers_too_large     the request line and headers are over 16 KiB (``protocols``)
 422   invalid_request       the body or query string does not fit the schema
 422   invalid_k, too_many_ids, invalid_vector, dimension_mismatch, invalid_id,
       invalid_argument, invalid_version_id
 503   not_ready             no version loaded yet
 500   internal              a bug: logged with its trace, the client gets this line only
=====  ====================  ==================================================================
"""

from __future__ import annotations

import json
import logging
from typing import Any

from embrecall.errors import (
    DimensionMismatchError,
    EmbrecallError,
    InputFormatError,
    InvalidArgumentError,
    InvalidVectorError,
    UnknownIdError,
    require_extra,
)

require_extra("fastapi", "server")
require_extra("orjson", "server")

import orjson  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.responses import Response  # noqa: E402

log = logging.getLogger("embrecall.service")


class ApiError(Exception):
    """A refusal with its HTTP status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BodyTooLarge(HTTPException):
    """Raised from the body-size guard while the body streams in.

    A starlette ``HTTPException`` on purpose: FastAPI re-raises those from body parsing instead
    of turning them into a generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit} bytes")


# First match wins: subclasses before their bases.
_LIBRARY_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownIdError, 404, "unknown_id"),
    (DimensionMismatchError, 422, "dimension_mismatch"),
    (InvalidVectorError, 422, "invalid_vector"),
    (InputFormatError, 422, "invalid_id"),  # an id of the wrong kind ("abc" for integer ids)
    (InvalidArgumentError, 422, "invalid_argument"),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str, **details: Any) -> bytes:
    """``{"error": {"code", "message", ...details}}`` as JSON bytes."""
    body = {"error": {"code": code, "message": message, **details}}
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson stops at 64 bits; an unknown id of 30 digits is named as sent
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, **details: Any
) -> Response:
    content = error_body(code, message, **details)
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to a JSON error response on ``app``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "X-API-Key"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers, **exc.details)

    @app.exception_handler(EmbrecallError)
    async def _library_error(request: Request, exc: EmbrecallError) -> Response:
        for kind, status, code in _LIBRARY_ERRORS:
            if isinstance(exc, kind):
                details = {"ids": exc.ids} if isinstance(exc, UnknownIdError) and exc.ids else {}
                return error_response(status, code, str(exc), **details)
        log.error(
            "unexpected library error on %s %s", request.method, request.url.path, exc_info=exc
        )
        return error_response(500, "internal", "internal error")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "JSON decode error")
            return error_response(400, "malformed_json", f"the body is not valid JSON: {reason}")
        return error_response(422, "invalid_request", _validation_message(errors))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error")


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """``"query.k: Input should be a valid integer; body.ids: Field required"`` (first three)."""
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
