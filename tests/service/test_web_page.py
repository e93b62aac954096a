"""The exploration page in a real headless Chromium against a real server on loopback.

Answers are checked against the same version loaded in this process. One browser and one server
per module (plus a keyed server for the key test); each test gets a fresh browser context.
Screenshots of each view land in test-artifacts/screenshots/ at the repository root, or in
$EMBRECALL_SCREENSHOTS. Needs Python playwright and a Chromium (Debian: apt-get install
chromium; never `playwright install`); the module skips, saying which, when either is absent.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import import_extra

from .support import ITEM, READ_KEY, USERS, LiveServer

import_extra("fastapi")
import_extra("uvicorn")
sync_api = import_extra(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
CHROMIUM = os.environ.get("EMBRECALL_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set EMBRECALL_CHROMIUM)",
        allow_module_level=True,
    )

from playwright.sync_api import expect  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(
    os.environ.get("EMBRECALL_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots"
)
TIMEOUT_MS = 20_000  # generous: the CI machine has 2 cores
USER = USERS[0]
TIMING = r"version v1 · server \d+\.\d\d ms · round trip \d+\.\d ms"

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def keyed_server(shared_server):
    """The same version behind a read key."""
    from embrecall.service import create_app

    app = create_app(
        target=str(shared_server.root.path_of("v1")), api_key=READ_KEY, watch_interval_s=0
    )
    server = LiveServer(app).start()
    yield server
    server.stop()


class Tab:
    """One browser tab on one server, recording every request and script error."""

    def __init__(self, browser, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.base_url}/{fragment}")
        expect(self.page.locator("#served")).not_to_have_text("Connecting…")

    def lookup(self, mode: str, text, k: int | None = None) -> None:
        """Fill the form and press Enter, as a person would."""
        self.page.select_option("#mode", mode)
        if k is not None:
            self.page.fill("#k", str(k))
        self.page.fill("#query", str(text))
        self.page.press("#query", "Enter")

    def ids(self, rows: str) -> list[str]:
        return self.page.locator(rows).evaluate_all("rows => rows.map(r => r.dataset.id)")

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_inner_texts()

    def title(self):
        return self.page.locator("#view-title")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def close(self) -> None:
        self.context.close()
        # the page works offline: nothing but this server was ever asked for anything
        assert self.requests, "no request was recorded"
        strays = [r.url for r in self.requests if not r.url.startswith(self.base_url + "/")]
        assert not strays, strays
        assert not self.errors, self.errors


@pytest.fixture
def tab(browser, shared_server):
    tab = Tab(browser, shared_server.url)
    yield tab
    tab.close()


def _titles(oracle, ids) -> list[str]:
    return [oracle.catalog.record(i)["title"] for i in ids]


def _strs(ids) -> list[str]:
    return [str(i) for i in ids]


# -- a user --------------------------------------------------------------------------------------
def test_user_view_shows_titled_recommendations_history_and_similar_users(tab, oracle):
    page = tab.page
    tab.open()
    tab.lookup("user", USER)
    expect(tab.title()).to_have_text(f"User {USER}")

    recs = oracle.recommend(USER, 10)[0].tolist()  # default k of the server: 10
    seen = oracle.seen_items(USER).tolist()
    assert tab.ids("#recommendations tbody tr") == _strs(recs)
    assert tab.texts("#recommendations .item-link") == _titles(oracle, recs)
    assert not set(seen) & set(recs)  # exclude seen is on
    expect(page.locator("#recommendations .badge")).to_have_count(0)
    genres = tab.texts("#recommendations tbody tr >> nth=0 >> .tag")
    assert genres == oracle.catalog.record(recs[0])["genres"].split("|")

    assert tab.ids("#history li") == _strs(seen)
    assert tab.texts("#history .item-link") == _titles(oracle, seen)
    expect(page.locator("#history")).to_contain_text("20 items seen")
    similar = oracle.similar_users(USER, 10)[0].tolist()
    assert tab.ids("#similar-users tbody tr") == _strs(similar)

    # which version answered, and how long it took on the server and in the browser
    expect(page.locator("#status")).to_have_text(re.compile(f"^Answered by {TIMING}$"))
    expect(page.locator(".timing")).to_have_count(3)
    for line in tab.texts(".timing"):
        assert re.fullmatch(TIMING, line), line
    tab.screenshot("user-view.png")

    # with seen items allowed back in, the seen ones that rank come back, marked
    page.uncheck("#exclude-seen")
    expect(page).to_have_url(re.compile(r"exclude_seen=false"))
    with_seen = oracle.recommend(USER, 10, exclude_seen=False)[0].tolist()
    back = set(seen) & set(with_seen)
    assert back, "fixture: this user's top 10 should include seen items"
    expect(page.locator("#recommendations .badge")).to_have_count(len(back))
    assert tab.ids("#recommendations tbody tr") == _strs(with_seen)
    assert set(tab.ids("#recommendations tr.was-seen")) == set(_strs(back))
    expect(page.locator("#recommendations")).to_contain_text("Seen items included")


def test_clicking_a_movie_opens_its_similar_movies(tab, oracle):
    page = tab.page
    tab.open(f"#/user/{USER}?k=10")
    first = page.locator("#recommendations .item-link").first
    expect(first).to_be_visible()
    item = int(first.get_attribute("data-id"))
    first.click()

    record = oracle.catalog.record(item)
    expect(tab.title()).to_have_text(record["title"])
    expect(page).to_have_url(re.compile(rf"#/item/{item}\?k=10$"))
    similar = oracle.similar_items(item, 10)[0].tolist()
    assert tab.ids("#similar-items tbody tr") == _strs(similar)
    assert tab.texts("#similar-items .item-link") == _titles(oracle, similar)
    assert tab.texts(".item-card .tag") == record["genres"].split("|")
    expect(page.locator(".item-card dd").first).to_have_text(str(item))
    tab.screenshot("item-view.png")

    # a similar movie opens its own view
    third = page.locator("#similar-items .item-link").nth(2)
    third.click()
    expect(tab.title()).to_have_text(_titles(oracle, [similar[2]])[0])

    # back to the user: a movie from the history and a similar user open too
    page.go_back()
    page.go_back()
    expect(tab.title()).to_have_text(f"User {USER}")
    watched = oracle.seen_items(USER)[0].item()
    page.locator(f"#history .item-link[data-id='{watched}']").click()
    expect(tab.title()).to_have_text(_titles(oracle, [watched])[0])
    page.go_back()
    neighbour = oracle.similar_users(USER, 10)[0][0].item()
    page.locator("#similar-users .user-link").first.click()
    expect(tab.title()).to_have_text(f"User {neighbour}")
    assert tab.ids("#recommendations tbody tr") == _strs(oracle.recommend(neighbour, 10)[0])


# -- title search ----------------------------------------------------------------------------------
def test_search_by_title_and_open_an_item(tab, oracle):
    page = tab.page
    tab.open()
    page.select_option("#mode", "title")
    expect(page.locator("#query-label")).to_have_text("Title contains")
    tab.lookup("title", "movie 12", k=20)
    expect(tab.title()).to_have_text("Titles containing “movie 12”")

    frame = oracle.catalog.frame
    expected = frame.index[frame["title"].str.contains("movie 12", case=False, regex=False)]
    assert 1 < len(expected) <= 20
    assert tab.ids("#title-results tbody tr") == _strs(expected)
    assert tab.texts("#title-results .item-link") == _titles(oracle, expected)
    tab.screenshot("title-search.png")

    target = expected[3]
    name = _titles(oracle, [target])[0]
    page.get_by_role("link", name=name, exact=True).click()
    expect(tab.title()).to_have_text(name)
    assert tab.ids("#similar-items tbody tr") == _strs(oracle.similar_items(target, 20)[0])

    tab.lookup("title", "no such film")
    expect(page.locator("#title-results")).to_contain_text("No title contains “no such film”.")


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_id_shows_the_apis_message(tab):
    page = tab.page
    message = page.locator("#message")
    tab.open()
    tab.lookup("user", "999999")
    expect(message).to_be_visible()
    expect(message).to_have_text("unknown user id 999999 (HTTP 404, unknown_id)")
    expect(page.locator("#results table")).to_have_count(0)
    expect(page.locator("#query")).to_be_focused()  # ready to type another id
    tab.screenshot("unknown-id.png")

    tab.lookup("item", "999999")
    expect(message).to_have_text("unknown item id 999999 (HTTP 404, unknown_id)")
    tab.lookup("user", "abc")
    expect(message).to_contain_text("'abc' is not an integer")

    tab.lookup("user", USER)  # a good lookup clears the message
    expect(tab.title()).to_have_text(f"User {USER}")
    expect(message).to_be_hidden()


# -- controls --------------------------------------------------------------------------------------
def test_k_sets_the_number_of_results(tab, oracle):
    page = tab.page
    tab.open(f"#/user/{USER}")
    expect(page.locator("#recommendations tbody tr")).to_have_count(10)
    expect(page.locator("#k")).to_have_value("10")

    page.fill("#k", "4")
    page.press("#k", "Enter")
    expect(page).to_have_url(re.compile(r"k=4"))
    expect(page.locator("#recommendations tbody tr")).to_have_count(4)
    expect(page.locator("#similar-users tbody tr")).to_have_count(4)
    assert tab.ids("#recommendations tbody tr") == _strs(oracle.recommend(USER, 4)[0])

    tab.open(f"#/item/{ITEM}?k=7")
    expect(page.locator("#similar-items tbody tr")).to_have_count(7)
    page.fill("#k", "3")
    page.press("#k", "Tab")  # a change applies when the field is left, too
    expect(page.locator("#similar-items tbody tr")).to_have_count(3)
    assert tab.ids("#similar-items tbody tr") == _strs(oracle.similar_items(ITEM, 3)[0])


def test_page_with_a_read_key(browser, keyed_server, oracle):
    tab = Tab(browser, keyed_server.url)
    page = tab.page
    try:
        tab.open()
        expect(page.locator("#served")).to_have_text("A read API key is needed.")
        expect(page.locator("#message")).to_contain_text("needs a read API key")
        expect(page.locator("#api-key")).to_be_focused()  # where to type it
        tab.screenshot("api-key-needed.png")

        page.keyboard.type("wrong-key")
        page.keyboard.press("Enter")
        expect(page.locator("#served")).to_have_text("The API key was refused.")
        expect(page.locator("#message")).to_contain_text("The server refused this API key")
        expect(page.locator("#message")).to_contain_text("missing or wrong API key")

        page.fill("#api-key", READ_KEY)
        page.press("#api-key", "Enter")
        expect(page.locator("#served")).to_have_text("Serving version v1 · read key in use")
        expect(page.locator("#message")).to_be_hidden()
        tab.lookup("user", USER)
        expect(page.locator("#recommendations tbody tr")).to_have_count(10)
        assert page.evaluate("sessionStorage.getItem('embrecall.apiKey')") == READ_KEY

        page.reload()  # the key lasts for the tab
        expect(page.locator("#recommendations tbody tr")).to_have_count(10)

        page.click("#forget-key")
        expect(page.locator("#served")).to_have_text("A read API key is needed.")
        assert page.evaluate("sessionStorage.getItem('embrecall.apiKey')") is None

        # the page and its files were fetched without a key; data calls carried the one typed
        for request in tab.requests:
            path = request.url[len(keyed_server.url) :]
            key = request.headers.get("x-api-key")
            if not path.startswith("/v1/"):
                assert key is None and request.response().status == 200, path
        good = [r for r in tab.requests if r.headers.get("x-api-key") == READ_KEY]
        assert good and all(r.response().status == 200 for r in good)
        assert any("/v1/users/" in r.url for r in good)
    finally:
        tab.close()


def test_main_flow_by_keyboard_alone(tab, oracle):
    page = tab.page
    tab.open()

    def focused(attribute: str = "id"):
        return page.evaluate(f"document.activeElement.getAttribute('{attribute}')")

    for _ in range(15):  # from the top of the page to the id field
        page.keyboard.press("Tab")
        if focused() == "query":
            break
    assert focused() == "query"
    page.keyboard.type(str(USER))
    page.keyboard.press("Enter")
    expect(tab.title()).to_have_text(f"User {USER}")
    expect(tab.title()).to_be_focused()

    page.keyboard.press("Tab")  # the first result comes first
    first = oracle.recommend(USER, 10)[0][0].item()
    assert focused("data-id") == str(first)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    expect(tab.title()).to_have_text(_titles(oracle, [first])[0])
    expect(tab.title()).to_be_focused()

    page.keyboard.press("Tab")  # on to the similar items
    similar = oracle.similar_items(first, 10)[0][0].item()
    assert focused("data-id") == str(similar)
    page.keyboard.press("Enter")
    expect(tab.title()).to_have_text(_titles(oracle, [similar])[0])


def test_home_view_and_offline_page(tab, shared_server):
    page = tab.page
    tab.open()
    expect(page.locator("#served")).to_have_text("Serving version v1")
    expect(tab.title()).to_have_text("Explore recommendations")
    expect(page.locator("#results")).to_contain_text("Version v1 holds 500 items, 60 users")
    paths = {r.url[len(shared_server.url) :] for r in tab.requests}
    assert {"/", "/ui/app.js", "/ui/style.css", "/v1/info"} <= paths
    # fonts, scripts and styles all come from this server (Tab.close checks every request)
    assert page.evaluate(
        "[...document.styleSheets].every(s => !s.href || s.href.startsWith(location.origin))"
    )


# -- filters ---------------------------------------------------------------------------------------
def _year(title: str) -> int:
    return int(re.search(r"\((\d{4})\)$", title).group(1))


def test_genre_chips_and_a_year_range_filter_recommendations_and_similar_items(tab, oracle):
    page = tab.page
    tab.open(f"#/user/{USER}?k=10")
    expect(page.locator("#filters")).to_be_visible()
    genres = sorted(set(oracle.catalog.frame["genres"]))
    expect(page.locator("#genre-chips .chip")).to_have_count(len(genres))
    first, second = genres[0], genres[1]
    page.locator(f"#genre-chips .chip[data-genre='{first}']").click()
    expect(page).to_have_url(re.compile(rf"genres={re.escape(first)}"))
    expect(page.locator(f".chip[data-genre='{first}']")).to_have_attribute("aria-pressed", "true")
    want = oracle.recommend(USER, 10, filter=[f"genres={first}"])[0].tolist()
    expect(page.locator("#recommendations .filter-line")).to_contain_text(f"genres={first}")
    assert tab.ids("#recommendations tbody tr") == _strs(want)

    # a second chip widens to either genre; a year range narrows
    page.locator(f"#genre-chips .chip[data-genre='{second}']").click()
    expect(page.locator("#recommendations .filter-line")).to_contain_text(f"{first}|{second}")
    page.fill("#year-min", "1990")
    page.press("#year-min", "Enter")
    page.locator("#year-min").dispatch_event("change")
    expression = [f"genres={first}|{second}", "year>=1990"]
    want = oracle.recommend(USER, 10, filter=expression)[0].tolist()
    expect(page.locator("#recommendations .filter-line")).to_contain_text("year>=1990")
    assert tab.ids("#recommendations tbody tr") == _strs(want)
    titles = tab.texts("#recommendations .item-link")
    assert titles and all(_year(t) >= 1990 for t in titles)
    tab.screenshot("user-view-filtered.png")

    # the filters follow a link to an item's similar items
    page.locator("#recommendations .item-link").first.click()
    expect(page.locator("#similar-items .filter-line")).to_contain_text("year>=1990")
    item = int(re.search(r"#/item/(\d+)", page.url).group(1))
    similar = oracle.similar_items(item, 10, filter=expression)[0].tolist()
    assert tab.ids("#similar-items tbody tr") == _strs(similar)

    page.click("#clear-filters")
    expect(page.locator("#similar-items .filter-line")).to_have_count(0)
    assert tab.ids("#similar-items tbody tr") == _strs(oracle.similar_items(item, 10)[0])
