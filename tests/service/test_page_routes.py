"""The exploration page as HTTP, without a browser: served without a key, offline-only headers,
kept out of the API schema, every file it loads shipped, and the switch that turns it off.
(tests/service/test_web_page.py drives it in a real browser.)"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

import pytest

from helpers import import_extra

from .support import READ_KEY

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

from embrecall.service import Settings  # noqa: E402
from embrecall.service.page import ASSETS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "src" / "embrecall" / "service" / "web"


def test_page_and_its_files_need_no_key(root, serve):
    server = serve(root.path, api_key=READ_KEY)
    with server.client() as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="ui/app.js">' in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        for name, media_type in ASSETS.items():
            if name == "index.html":
                continue
            r = c.get(f"/ui/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == media_type, name
            assert r.content == (WEB / name).read_bytes()
            assert r.headers["x-content-type-options"] == "nosniff"
        assert c.get("/v1/info").status_code == 401  # the data still needs the key


def test_every_file_the_page_loads_is_served():
    """A new module or stylesheet must be listed in ASSETS, or the page breaks in production."""
    referenced = set(re.findall(r'(?:src|href)="ui/([^"]+)"', (WEB / "index.html").read_text()))
    for script in WEB.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert referenced and referenced <= set(ASSETS)
    assert {p.name for p in WEB.iterdir()} == set(ASSETS)  # and nothing unlisted ships


def test_page_files_are_package_data():
    """A non-editable install ships only what package-data names."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["embrecall"]
    for name in ASSETS:
        relative = f"service/web/{name}"
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_unknown_page_file_is_a_json_404(root, serve):
    server = serve(root.path)
    with server.client() as c:
        for path in ("/ui/nope.js", "/ui/index.html", "/ui/..%2Fpage.py"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


def test_page_is_not_part_of_the_api_schema(root, serve):
    server = serve(root.path)
    with server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert "/" not in paths and not any(p.startswith("/ui") for p in paths)
        assert c.get("/docs").status_code == 200 and "/v1/info" in paths


def test_page_can_be_turned_off(root, serve):
    assert Settings.from_env({"EMBRECALL_WEB_PAGE": "false"}).web_page is False
    server = serve(root.path, web_page=False)
    with server.client() as c:
        for path in ("/", "/ui/app.js"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/v1/info").status_code == 200


def test_serve_flag_turns_the_page_off():
    import argparse

    from embrecall.service.commands import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    assert parser.parse_args(["serve", "root", "--no-web-page"]).web_page is False
    # unset: the setting decides (EMBRECALL_WEB_PAGE, default on)
    assert parser.parse_args(["serve", "root"]).web_page is None
