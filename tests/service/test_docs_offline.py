"""/docs (Swagger UI) and /redoc work with no network: every file they need comes from the server.

The Chromium checks follow test_web_page.py (a real headless Chromium, never downloaded) and
skip, saying why, when playwright or Chromium is absent; the HTTP checks always run.
"""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urljoin, urlsplit

import pytest

from helpers import import_extra

from .support import ITEM

import_extra("fastapi")
import_extra("httpx")

CHROMIUM = os.environ.get("EMBRECALL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000  # generous: the CI machine has 2 cores
REFERENCE = re.compile(r"""(?:src|href|spec-url|data-openapi-url)="([^"]+)\"""")


def _references(html: str) -> list[str]:
    return REFERENCE.findall(html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_and_every_file_it_references_are_served_here(shared_server, client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "default-src 'none'" in csp
    # nothing from elsewhere: no absolute or protocol-relative URL, no inline script
    assert not re.search(r"https?:|//[a-z]", r.text), r.text
    assert not re.search(r"<script>|<script [^>]*>[^<]", r.text), r.text
    references = _references(r.text)
    assert len(references) >= 3, references
    for ref in references:
        url = urljoin(shared_server.url + path, ref)
        assert urlsplit(url).netloc == urlsplit(shared_server.url).netloc
        got = client.get(url)
        assert got.status_code == 200, (ref, got.status_code)
        assert got.content, ref
    # the scripts it loads: the bundle, and for Swagger UI the start-up script
    scripts = [ref for ref in references if ref.endswith(".js")]
    assert scripts and all(
        client.get(s).headers["content-type"].startswith("text/javascript") for s in scripts
    )


def test_a_file_the_docs_do_not_ship_is_404_json(client):
    for name in ("nothing.js", "..%2Fapp.py", "index.html"):
        r = client.get(f"/docs/assets/{name}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# -- in a real browser ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    sync_api = import_extra(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Recorder:
    """A tab that records every request, failed request, page error and CSP report."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.failed: list[tuple[str, str | None]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append((r.url, r.failure)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def elsewhere(self, base_url: str) -> list[str]:
        return [u for u in self.requests if not u.startswith((base_url + "/", "blob:" + base_url))]


def _operations(client) -> list[str]:
    """Operation ids, once per tag: both pages show an operation under each of its tags."""
    schema = client.get("/openapi.json").json()
    return [
        op["operationId"]
        for item in schema["paths"].values()
        for op in item.values()
        for _ in op.get("tags") or [None]
    ]


def test_swagger_ui_renders_every_operation_and_calls_this_server_only(
    browser, shared_server, client
):
    from playwright.sync_api import expect

    tab = Recorder(browser)
    page = tab.page
    try:
        page.goto(shared_server.url + "/docs")
        operations = _operations(client)
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() == len(operations)
        # try an operation out, as a reader of the docs would
        op = page.locator(".opblock", has=page.locator("[data-path='/v1/items/{item_id}/similar']"))
        op = op.filter(has=page.locator(".opblock-summary-method", has_text="GET"))
        op.locator(".opblock-summary").click()
        op.locator(".try-out__btn").click()
        op.locator("input[placeholder='item_id']").fill(str(ITEM))
        op.locator(".execute").click()
        status = op.locator(".live-responses-table tbody .response-col_status")
        expect(status).to_have_text("200", timeout=TIMEOUT_MS)
        assert f"{shared_server.url}/v1/items/{ITEM}/similar" in tab.requests
    finally:
        tab.context.close()
    assert not tab.elsewhere(shared_server.url), tab.requests
    assert not tab.failed and not tab.errors, (tab.failed, tab.errors)


def test_redoc_renders_every_operation_and_nothing_leaves_this_server(
    browser, shared_server, client
):
    tab = Recorder(browser)
    try:
        tab.page.goto(shared_server.url + "/redoc")
        tab.page.wait_for_selector("[id^='operation/']")
        rendered = tab.page.locator("[id^='operation/']").count()
        assert rendered == len(_operations(client))
    finally:
        tab.context.close()
    # ReDoc's bundle asks for its vendor's logo; the page's policy stops it in the browser
    stray = tab.elsewhere(shared_server.url)
    assert all(url in {f for f, _ in tab.failed} for url in stray), (stray, tab.failed)
    assert all(reason == "csp" for url, reason in tab.failed if url in stray), tab.failed
    assert not [e for e in tab.errors if "cdn.redoc.ly" not in e], tab.errors
