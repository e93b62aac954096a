"""Request body size guard: refuse oversized bodies with 413 before they are read into memory."""

from __future__ import annotations

from embrecall.service.errors import BodyTooLarge, error_response


class BodyLimitMiddleware:
    """Pure ASGI: checks ``Content-Length`` up front and counts streamed (chunked) bytes.

    A declared length over the limit is answered at once without reading the body; a chunked
    body is cut off at the first chunk that crosses the limit.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = error_response(400, "bad_request", "Content-Length is not a number")
                    await response(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    response = error_response(
                        413,
                        "body_too_large",
                        f"request body of {declared} bytes is over the limit of {self.max_bytes}",
                    )
                    await response(scope, receive, send)
                    return
                break
        received = 0
        limit = self.max_bytes

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)
