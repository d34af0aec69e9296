"""The browser tier's runners: Debian's chromium (/usr/bin/chromium, which `make test`
installs), driven by Playwright's sync API (never its own browser download), against the
Procfile's `web` and `worker` over a SQLite file and a redis-server of the module's own
(tests/e2e's Stack), with three API keys: an admin, a writer (read+write) and a reader.

One stack per module (starting one costs about 2 s); each test starts from an empty
ranking and the seed's weights: `reset()` abandons every open goal, deactivates every
belief and puts the weights back, through REST, and waits until the worker has applied it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright

from service.testing import wait_for
from tests.e2e.conftest import REPO, Stack

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make chromium`)
ARTIFACTS = REPO / "artifacts" / "console"  # screenshots of each page (not committed)
DOCS_SCREENSHOT = REPO / "docs" / "console-ranking.png"  # the README's picture
VIEWPORT = {"width": 1000, "height": 700}


@dataclass(frozen=True)
class Key:
    """An API key of the stack: its actor, its scopes as GOALSTORE_API_KEYS spells them,
    and the key itself."""

    actor: str
    scopes: str
    secret: str

    def entry(self) -> str:
        return f"{self.actor}:{self.scopes}:{self.secret}"


ADMIN = Key("ops", "admin", "console-admin-key-0001")
WRITER = Key("author", "read+write", "console-writer-key-0002")
READER = Key("viewer", "read", "console-reader-key-0003")
API_KEYS = ",".join(key.entry() for key in (ADMIN, WRITER, READER))

# The seed's goal_selected weights (migrations/*/0002_beliefs_decisions.sql).
SEED_WEIGHTS = {
    "value_weight": 0.5,
    "effort_weight": 0.25,
    "risk_weight": 0.15,
    "urgency_weight": 0.05,
    "alignment_weight": 0.05,
}
OPEN_STATES = ("proposed", "adopted", "executing")


class Console:
    """The running stack as the tests see it: its URL and a REST client per key."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = stack.url
        self._clients: dict[Key, httpx.Client] = {}

    def rest(self, key: Key) -> httpx.Client:
        """A REST client of the stack presenting `key` (closed with the stack)."""
        if key not in self._clients:
            client = httpx.Client(
                base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {key.secret}"}
            )
            self._clients[key] = client
            self.stack.clients.append(client)
        return self._clients[key]

    def prioritized(self, **params: Any) -> dict[str, Any]:
        """GET /v1/goals/prioritized (as the reader): the page, with `source`."""
        response = self.rest(READER).get("/v1/goals/prioritized", params=params)
        assert 200 == response.status_code, response.text
        body: dict[str, Any] = response.json()
        return body

    def score(self, goal_id: str) -> dict[str, Any]:
        """GET /v1/goals/{id}/score (as the reader)."""
        response = self.rest(READER).get(f"/v1/goals/{goal_id}/score")
        assert 200 == response.status_code, response.text
        body: dict[str, Any] = response.json()
        return body

    def goal(self, goal_id: str) -> dict[str, Any]:
        """GET /v1/goals/{id} (as the reader)."""
        response = self.rest(READER).get(f"/v1/goals/{goal_id}")
        assert 200 == response.status_code, response.text
        body: dict[str, Any] = response.json()
        return body

    def weights(self) -> dict[str, float]:
        """The goal_selected weights in force: parameter -> current."""
        response = self.rest(READER).get("/v1/decisions/goal_selected")
        assert 200 == response.status_code, response.text
        return {name: p["current"] for name, p in response.json()["parameters"].items()}

    def create(self, key: Key, goal_id: str, *, adopt: bool = False, **fields: Any) -> str:
        """POST /v1/goals with `fields` (any `id` among them replaced by `goal_id`) as
        `key`, then adopt it if asked; its id."""
        client = self.rest(key)
        body = {"category": "maintenance", "risk": 0.2, **fields, "id": goal_id}
        created = client.post("/v1/goals", json=body)
        assert 201 == created.status_code, created.text
        if adopt:
            adopted = client.post(f"/v1/goals/{goal_id}/adopt")
            assert 200 == adopted.status_code, adopted.text
        return goal_id

    def wait_ranked(self, ranked: Iterable[str], blocked: Iterable[str] = ()) -> dict[str, Any]:
        """Wait until Redis ranks every goal of `ranked` unblocked and every goal of
        `blocked` blocked (the worker has applied their events); the page then."""

        def applied() -> dict[str, Any] | None:
            page = self.prioritized(include_blocked="true", limit=100)
            flags = {item["goal_id"]: item["blocked"] for item in page["data"]}
            wanted = {**dict.fromkeys(ranked, False), **dict.fromkeys(blocked, True)}
            done = page["source"] == "redis" and all(
                flags.get(goal_id) is flag for goal_id, flag in wanted.items()
            )
            return page if done else None

        return wait_for("the worker to rank the goals in Redis", applied, seconds=15)

    def reset(self) -> None:
        """Back to an empty ranking and the seed's weights, applied by the worker."""
        admin = self.rest(ADMIN)
        for state in OPEN_STATES:
            listed = admin.get("/v1/goals", params={"state": state, "limit": 500})
            assert 200 == listed.status_code, listed.text
            for goal in listed.json()["data"]:
                done = admin.post(f"/v1/goals/{goal['id']}/abandon")
                # 409: a cascade from its parent abandoned it first.
                assert done.status_code in (200, 409), done.text
        beliefs = admin.get("/v1/beliefs", params={"active": "true"})
        assert 200 == beliefs.status_code, beliefs.text
        for belief in beliefs.json()["data"]:
            body = {"statement": belief["statement"], "active": False}
            put = admin.put(f"/v1/beliefs/{belief['id']}", json=body)
            assert put.status_code in (200, 201), put.text
        # Only the weights that moved: the seed's 0.05 is off the 0.02 step of two of them.
        moved = {k: v for k, v in SEED_WEIGHTS.items() if self.weights()[k] != v}
        if moved:
            put = admin.put("/v1/decisions/goal_selected", json={"parameters": moved})
            assert 200 == put.status_code, put.text

        def empty() -> bool:
            page = self.prioritized(include_blocked="true", limit=100)
            return page["source"] == "redis" and not page["data"]

        wait_for("the worker to empty the ranking", empty, seconds=15)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The module's stack: the Procfile's web and worker, keys set, a redis-server and a
    SQLite file of its own."""
    stack = Stack(tmp_path_factory.mktemp("console"))
    try:
        stack.serve(GOALSTORE_API_KEYS=API_KEYS)
        stack.worker(GOALSTORE_API_KEYS=API_KEYS)
        yield Console(stack)
    finally:
        stack.close()


@pytest.fixture
def console(running: Console) -> Console:
    """The module's stack, reset to an empty ranking and the seed's weights."""
    running.reset()
    return running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; --no-sandbox because the tests run as root."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


NewContext = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser, console: Console) -> Iterator[NewContext]:
    """`new_context(**options)`: a fresh browser profile (no cookies) whose relative URLs
    are the stack's; 1000x700 unless `viewport` says otherwise. Closed after the test."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(base_url=console.url, **options)
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def sign_in(context: BrowserContext, key: Key, path: str = "/ui") -> Page:
    """A new page of `context` that opens `path`, is sent to the sign-in form (which
    remembers `path` as `next`), signs in with `key` and lands back on `path`."""
    page = context.new_page()
    page.goto(path)
    sent = urlsplit(page.url)
    nexts = [canonical(n) for n in parse_qs(sent.query).get("next", [])]
    assert ("/ui/signin", [path]) == (sent.path, nexts), page.url
    page.fill("form#signin input[name=key]", key.secret)
    with page.expect_navigation():
        page.click("form#signin [type=submit]")
    assert path == path_of(page)
    return page


def path_of(page: Page) -> str:
    """The path (and query) of the page's URL, canonical."""
    parts = urlsplit(page.url)
    return canonical(f"{parts.path}?{parts.query}" if parts.query else parts.path)


def canonical(path: str) -> str:
    """`path` with the ranking's `/ui/` spelled `/ui` (the console is mounted at /ui, and
    Starlette's mount serves its root at /ui/, redirecting /ui there)."""
    return re.sub(r"^/ui/(?=$|\?)", "/ui", path)


def submit(page: Page, selector: str) -> Response:
    """Click the submit button of the form at `selector`; the response the browser
    finally shows (after any redirect)."""
    with page.expect_navigation() as navigation:
        page.click(f"{selector} [type=submit]")
    response = navigation.value
    assert response is not None
    return response


def cookie(context: BrowserContext, name: str) -> dict[str, Any]:
    """The context's cookie `name` (HttpOnly ones too), with its flags."""
    found = [dict(c) for c in context.cookies() if c["name"] == name]
    assert 1 == len(found), context.cookies()
    return found[0]


def screenshot(page: Page, name: str) -> Path:
    """The page as a PNG in artifacts/console/ (a test artifact, not committed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def docs_screenshot_wanted() -> bool:
    """docs/console-ranking.png is written when it is missing, or when
    GOALSTORE_DOCS_SCREENSHOT=1 asks for a new one: a test run leaves the committed
    picture alone otherwise (every run's would differ in its bytes)."""
    return not DOCS_SCREENSHOT.exists() or os.environ.get("GOALSTORE_DOCS_SCREENSHOT") == "1"
