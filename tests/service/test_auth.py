"""API keys: admin endpoints always need one (off without it), reads when configured."""

from __future__ import annotations

from helpers import import_extra

from .support import ADMIN_KEY, READ_KEY, USERS

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

READ = f"/v1/users/{USERS[0]}/recommendations?k=2"
OPEN = ["/healthz", "/readyz", "/metrics"]


def test_read_key_when_configured(root, serve):
    server = serve(root.path, api_key=READ_KEY, admin_api_key=ADMIN_KEY)
    with server.client() as c:
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ADMIN_KEY[:-1]}):
            r = c.get(READ, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "X-API-Key"
        assert c.post("/v1/search", json={"vector": [0.0] * 16}).status_code == 401
        assert c.get("/v1/info").status_code == 401
        assert c.get(READ, headers={"X-API-Key": READ_KEY}).status_code == 200
        for path in OPEN:  # probes and scrapers need no key
            assert c.get(path).status_code == 200
        # the read key is not an admin key
        assert c.post("/v1/admin/reload", headers={"X-API-Key": READ_KEY}).status_code == 401
        r = c.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 200 and r.json()["status"] == "unchanged"
        info = c.get("/v1/info", headers={"X-API-Key": READ_KEY})
        assert info.json()["limits"]["read_key_required"] is True
        for text in (info.text, c.get("/openapi.json").text, c.get("/metrics").text):
            assert READ_KEY not in text and ADMIN_KEY not in text


def test_no_default_secret(root, serve, monkeypatch):
    for name in ("EMBRECALL_API_KEY", "EMBRECALL_ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    server = serve(root.path)
    with server.client() as c:
        assert c.get(READ).status_code == 200  # reads are open without a read key
        for key in ({}, {"X-API-Key": ""}, {"X-API-Key": "admin"}, {"X-API-Key": ADMIN_KEY}):
            r = c.post("/v1/admin/versions/v1/load", headers=key)
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


def test_keys_from_the_environment(root, serve, monkeypatch):
    monkeypatch.setenv("EMBRECALL_API_KEY", READ_KEY)
    monkeypatch.setenv("EMBRECALL_ADMIN_API_KEY", ADMIN_KEY)
    server = serve(root.path)
    with server.client() as c:
        assert c.get(READ).status_code == 401
        assert c.get(READ, headers={"X-API-Key": READ_KEY}).status_code == 200
        assert c.get("/v1/admin/versions", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
