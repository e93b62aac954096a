"""Requests that cannot be parsed as HTTP get a 4xx JSON error, not uvicorn's plain text.

Sent byte for byte on a raw socket to a real ``embrecall serve`` process on loopback (httptools,
as uvicorn's "auto" picks it), and to in-process servers on each of uvicorn's two parsers.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from helpers import ServeProcess, import_extra

from .support import USERS, LiveServer

import_extra("fastapi")
import_extra("uvicorn")

SRC = str(Path(__file__).resolve().parents[2] / "src")
GOOD = f"GET /v1/users/{USERS[0]}/recommendations?k=2 HTTP/1.1\r\nHost: t\r\n\r\n".encode()

# name -> (raw request, expected status, expected error code)
FRAMING = {
    "negative Content-Length": (
        b"POST /v1/users/recommendations HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/json\r\nContent-Length: -5\r\n\r\n{}",
        400,
        "bad_request",
    ),
    "garbage request line": (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    "TLS sent to the plain port": (
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        400,
        None,
    ),
    "header without a colon": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
        400,
        None,
    ),
    "two Content-Lengths": (
        b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400,
        "bad_request",
    ),
    "unsupported Transfer-Encoding": (
        b"POST /v1/search HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n{}",
        400,
        "bad_request",
    ),
    "bad chunk size": (
        b"POST /v1/search HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ZZ\r\n{}\r\n0\r\n\r\n",
        400,
        "bad_request",
    ),
    "oversize header": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
    "many headers": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(3000))
        + b"\r\n",
        431,
        "headers_too_large",
    ),
}


def exchange(port: int, data: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send ``data``, read until the server closes or one response is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, body


def check_refusal(port: int, name: str) -> None:
    data, status, code = FRAMING[name]
    got, headers, body = exchange(port, data)
    assert got == status, (name, got, body)
    assert headers["content-type"] == "application/json", (name, headers)
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["message"], error
    assert error["code"] == (code or "bad_request"), error
    assert headers.get("connection") == "close"
    # and the server goes on serving
    got, _, body = exchange(port, GOOD)
    assert got == 200 and len(json.loads(body)["results"]) == 2


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory) -> int:
    """``embrecall serve`` on a free loopback port; yields the port."""
    from .support import save_version

    artifact = save_version(tmp_path_factory.mktemp("framing"), "v1", seed=0)
    with ServeProcess(str(artifact), "--port", "0") as server:
        assert server.port, "".join(server.lines)
        yield server.port
    assert not any("Traceback" in line for line in server.lines), "".join(server.lines)


@pytest.mark.parametrize("name", list(FRAMING))
def test_serve_answers_unparsable_requests_in_json(serve_process, name):
    check_refusal(serve_process, name)


@pytest.fixture(scope="module", params=["h11", "httptools"])
def parser_server(request, artifacts):
    from embrecall.service import create_app
    from embrecall.service.protocols import JsonErrorsH11Protocol, _httptools_protocol

    if request.param == "httptools":
        import_extra("httptools")
        protocol = _httptools_protocol()
    else:
        protocol = JsonErrorsH11Protocol
    app = create_app(target=str(artifacts["v1"]), watch_interval_s=0)
    server = LiveServer(app, http=protocol).start()
    yield server
    server.stop()


@pytest.mark.parametrize("name", list(FRAMING))
def test_each_parser_answers_unparsable_requests_in_json(parser_server, name):
    check_refusal(parser_server.port, name)


def test_a_head_just_under_the_limit_is_served(parser_server):
    from embrecall.service.protocols import MAX_HEAD_BYTES

    filler = b"a" * (MAX_HEAD_BYTES - 2048)
    request = GOOD.replace(b"Host: t\r\n", b"Host: t\r\nX-Pad: " + filler + b"\r\n")
    status, _, body = exchange(parser_server.port, request)
    assert status == 200 and len(json.loads(body)["results"]) == 2
