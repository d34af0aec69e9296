"""The console (/ui) over real HTTP, on each engine: what its pages show, and that its
form posts follow REST's rules (scopes, versions, vetting) behind a CSRF token.

The browser tier (tests/browser) drives the same pages in Chromium; here the HTML is read
as served, through the data attributes the pages promise (docs/console.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from html.parser import HTMLParser

import httpx
import pytest
from redis import Redis

from service.auth import parse_api_keys
from service.console.session import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL_S, session_token
from service.domain.ledger import chain_hash
from service.store import ledger as ledger_table
from service.store.db import Database
from service.testing import goal_spec, row_counts, tampering
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import KEYS, LiveServer, ServerFactory

KEY = {
    "ops": "ops-console-key-0123456",
    "alice": "alice-console-key-01234",
    "viewer": "viewer-console-key-0123",
}
API_KEYS = f"ops:admin:{KEY['ops']},alice:read+write:{KEY['alice']},viewer:read:{KEY['viewer']}"


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, attribute: str, tag: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.found if attribute in a and (tag is None or t == tag)]


def section(html: str, element_id: str) -> str:
    """The markup of the table (or list) with this id, up to its end tag."""
    match = re.search(rf'<(table|ol|dl) id="{element_id}".*?</\1>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group(0)


def csrf_of(http: httpx.Client, path: str = "/ui/") -> str:
    """Open a page (which sets the CSRF cookie) and return the token its forms carry."""
    page = http.get(path)
    assert 200 == page.status_code, page.text
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the page has no form with a CSRF token"
    assert match.group(1) == http.cookies[CSRF_COOKIE]
    return match.group(1)


@contextmanager
def signed_in(server: LiveServer, who: str) -> Iterator[httpx.Client]:
    """A client of the console signed in with `who`'s key."""
    with server.client() as http:
        token = csrf_of(http, "/ui/signin")
        answer = http.post("/ui/signin", data={"csrf": token, "key": KEY[who], "next": "/ui/"})
        assert 303 == answer.status_code, answer.text
        yield http


def create(http: httpx.Client, goal_id: str, **fields: object) -> None:
    assert 201 == http.post("/v1/goals", json=goal_spec(id=goal_id, **fields)).status_code


def adopt(http: httpx.Client, goal_id: str) -> None:
    answer = http.post(f"/v1/goals/{goal_id}/adopt")
    assert 200 == answer.status_code, answer.text


@pytest.fixture
def keyless(start_server: ServerFactory) -> Iterator[httpx.Client]:
    with start_server().client() as http:
        yield http


@pytest.fixture
def keyed(start_server: ServerFactory) -> LiveServer:
    return start_server(api_keys=API_KEYS)


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY[who]}"}


# --- the ranking ----------------------------------------------------------------------


def test_ranking_page_lists_the_ranked_read_with_each_scores_terms(
    keyless: httpx.Client,
) -> None:
    for n, value in enumerate([0.3, 0.9, 0.6], start=1):
        create(keyless, f"g{n}", value=value)
        adopt(keyless, f"g{n}")
    create(keyless, "waits", value=1.0, depends_on=["g1"])
    adopt(keyless, "waits")

    page = keyless.get("/ui/")
    assert 200 == page.status_code
    rows = Elements(section(page.text, "ranking")).having("data-goal-id", "tr")
    ranked = keyless.get("/v1/goals/prioritized").json()["data"]
    assert [r["goal_id"] for r in ranked] == [row["data-goal-id"] for row in rows]
    assert ["1", "2", "3"] == [row["data-rank"] for row in rows]
    for row in rows:
        terms = keyless.get(f"/v1/goals/{row['data-goal-id']}/score").json()["terms"]
        bar = Elements(section_of_row(page.text, row["data-goal-id"])).having("data-term")
        drawn = {s["data-term"]: s for s in bar}
        assert {"value", "effort", "risk", "urgency", "alignment"} == set(drawn)
        for name, segment in drawn.items():
            assert float(segment["data-value"]) == pytest.approx(terms[name], abs=1e-9)
            width = float(re.fullmatch(r"width: ([\d.]+)%", segment["style"]).group(1))  # type: ignore[union-attr]
            assert width == pytest.approx(terms[name] * 100, abs=0.001)

    blocked = Elements(section(page.text, "blocked")).having("data-reason")
    assert [("dependency_unsatisfied", "g1")] == [
        (b["data-reason"], b["data-ref"]) for b in blocked
    ]
    source = Elements(page.text).having("data-source")
    assert [keyless.get("/v1/goals/prioritized").json()["source"]] == [
        s["data-source"] for s in source
    ]


def section_of_row(html: str, goal_id: str) -> str:
    match = re.search(rf'<tr class="goal-row" data-goal-id="{goal_id}".*?</tr>', html, re.S)
    assert match
    return match.group(0)


def test_category_filter_shows_only_that_category(keyless: httpx.Client) -> None:
    create(keyless, "m1", category="maintenance")
    create(keyless, "e1", category="exploration")
    adopt(keyless, "m1")
    adopt(keyless, "e1")
    page = keyless.get("/ui/", params={"category": "exploration"})
    rows = Elements(section(page.text, "ranking")).having("data-goal-id", "tr")
    assert ["e1"] == [r["data-goal-id"] for r in rows]
    assert "/ui/board?category=exploration" in page.text  # the refresh keeps the filter
    assert 422 == keyless.get("/ui/", params={"category": "nonsense"}).status_code
    every = keyless.get("/ui/board", params={"category": ""})  # the filter's "all"
    assert 200 == every.status_code
    assert {"m1", "e1"} == {
        r["data-goal-id"] for r in Elements(section(every.text, "ranking")).having("data-goal-id")
    }


def test_board_refresh_is_the_board_alone_and_small_when_compressed(
    start_server: ServerFactory,
) -> None:
    with start_server().client() as http:
        for n in range(40):  # more than the board shows: 20 ranked and 10 blocked
            create(http, f"goal-{n:03d}", value=round(0.1 + n / 50, 3),
                   depends_on=["goal-000"] if n % 3 == 0 and n else [])  # fmt: skip
            adopt(http, f"goal-{n:03d}")
        answer = http.get("/ui/board", headers={"Accept-Encoding": "gzip"})
        assert 200 == answer.status_code
        assert "gzip" == answer.headers["content-encoding"]
        assert answer.text.lstrip().startswith('<section id="board"')
        assert "<html" not in answer.text
        ranked = Elements(section(answer.text, "ranking")).having("data-goal-id", "tr")
        blocked = Elements(section(answer.text, "blocked")).having("data-goal-id", "tr")
        assert (20, 10) == (len(ranked), len(blocked))
        moved = answer.num_bytes_downloaded
        assert moved < 20_000  # what a refresh moves
        assert moved * 3 < len(answer.content)  # gzip does the work


def test_ranking_reads_redis_when_the_cache_is_warm(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    server = start_server(redis_url=TEST_REDIS_URL, redis_prefix=KEYS.prefix)
    with server.client() as http:
        for n, value in enumerate([0.2, 0.8], start=1):
            create(http, f"r{n}", value=value)
            adopt(http, f"r{n}")
        for n, value in enumerate([0.1, 0.9], start=1):  # both wait on r1
            create(http, f"w{n}", value=value, depends_on=["r1"])
            adopt(http, f"w{n}")
        server.services.goalstore.rebuild_cache()
        page = http.get("/ui/").text
        listed = http.get("/v1/goals/prioritized", params={"include_blocked": True}).json()
    assert ["redis"] == [s["data-source"] for s in Elements(page).having("data-source")]
    rows = Elements(section(page, "ranking")).having("data-goal-id", "tr")
    assert ["r2", "r1"] == [r["data-goal-id"] for r in rows]
    blocked = Elements(section(page, "blocked")).having("data-goal-id", "tr")
    assert [i["goal_id"] for i in listed["data"] if i["blocked"]] == [
        b["data-goal-id"] for b in blocked
    ]
    assert ["w2", "w1"] == [b["data-goal-id"] for b in blocked]  # the higher score first


# --- a goal's page --------------------------------------------------------------------


def test_goal_page_shows_fields_tasks_and_the_verified_timeline(keyless: httpx.Client) -> None:
    create(keyless, "g1")
    assert (
        200 == keyless.patch("/v1/goals/g1", json={"value": 0.7, "expected_version": 1}).status_code
    )
    adopt(keyless, "g1")
    page = keyless.get("/ui/goals/g1")
    assert 200 == page.status_code
    fields = {f["data-field"] for f in Elements(section(page.text, "goal")).having("data-field")}
    assert {"state", "version", "owner", "progress"} <= fields
    assert re.search(r'data-field="state">adopted<', page.text)
    assert re.search(r'data-field="version">3<', page.text)
    history = keyless.get("/v1/goals/g1/history").json()["data"]
    rows = Elements(section(page.text, "timeline")).having("data-event", "tr")
    assert [(h["event_type"], str(h["seq"])) for h in history] == [
        (r["data-event"], r["data-seq"]) for r in rows
    ]
    assert len(history) == section(page.text, "timeline").count(">verified<")


def test_a_tampered_event_shows_broken_on_the_goals_timeline(keyed: LiveServer) -> None:
    server = keyed
    with server.client(headers=bearer("ops")) as http:
        create(http, "g1")
        adopt(http, "g1")
        seq = http.get("/v1/goals/g1/history").json()["data"][-1]["seq"]
        with tampering(server.services.goalstore.db) as conn:
            conn.execute("UPDATE ledger SET actor = 'mallory' WHERE seq = ?", (seq,))
    with signed_in(server, "ops") as http:
        timeline = section(http.get("/ui/goals/g1").text, "timeline")
    assert 1 == timeline.count(">BROKEN<")
    assert re.search(rf'data-seq="{seq}">.*?>BROKEN<', timeline, re.S)


def test_an_event_edited_and_rehashed_shows_broken_on_its_goals_timeline(
    keyed: LiveServer,
) -> None:
    """Re-hashing the edited event to fit its prev_hash does not hide it: the event after
    it (another goal's) still names the old hash."""
    with keyed.client(headers=bearer("ops")) as http:
        create(http, "g1")
        adopt(http, "g1")
        create(http, "g2")  # the event after g1's last is g2's
        edited = http.get("/v1/goals/g1/history").json()["data"][-1]["seq"]
    db = keyed.services.goalstore.db
    row = ledger_table.newest_for_goal(db.connection(), "g1", 1)[0]
    forged = replace(row, actor="mallory")
    with tampering(db) as conn:
        conn.execute("UPDATE ledger SET actor = 'mallory', hash = ? WHERE seq = ?",
                     (chain_hash(forged.prev_hash, forged.content()), edited))  # fmt: skip
    with signed_in(keyed, "ops") as http:
        g1 = section(http.get("/ui/goals/g1").text, "timeline")
        g2 = section(http.get("/ui/goals/g2").text, "timeline")
    assert re.search(rf'data-seq="{edited}">.*?>BROKEN<', g1, re.S)
    assert 1 == g1.count(">BROKEN<")
    assert 1 == g2.count(">BROKEN<")  # its link back to the edited event is broken too


def test_checked_history_keeps_the_newest_and_says_it_is_not_all(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    with server.client() as http:
        create(http, "g1")
        adopt(http, "g1")
        create(http, "g2")
        seqs = [e["seq"] for e in http.get("/v1/goals/g1/history").json()["data"]]
    newest = server.services.goalstore.checked_history("g1", newest=1)
    assert (False, [(seqs[-1], True)]) == (
        newest.complete, [(row.seq, ok) for row, ok in newest.events]
    )  # fmt: skip
    every = server.services.goalstore.checked_history("g1", newest=10)
    assert (True, [(s, True) for s in seqs]) == (
        every.complete, [(row.seq, ok) for row, ok in every.events]
    )  # fmt: skip


def test_a_deleted_goals_page_is_still_served(keyless: httpx.Client) -> None:
    create(keyless, "g1")
    assert 204 == keyless.delete("/v1/goals/g1", headers={"If-Match": '"1"'}).status_code
    page = keyless.get("/ui/goals/g1")
    assert 200 == page.status_code
    assert re.search(r'data-field="state">proposed \(deleted', page.text)
    assert "action-adopt" not in page.text and "action-abandon" not in page.text
    events = Elements(section(page.text, "timeline")).having("data-event", "tr")
    assert "goal_deleted" == events[-1]["data-event"]


def test_goal_page_of_an_unknown_goal_is_a_404_page(keyless: httpx.Client) -> None:
    answer = keyless.get("/ui/goals/nope")
    assert 404 == answer.status_code
    assert answer.headers["content-type"].startswith("text/html")
    assert 'data-status="404"' in answer.text


# --- actions: CSRF, versions, vetting, scopes ----------------------------------------


def test_adopt_and_abandon_from_the_goal_page(keyless: httpx.Client) -> None:
    create(keyless, "g1")
    token = csrf_of(keyless, "/ui/goals/g1")
    answer = keyless.post("/ui/goals/g1/adopt", data={"csrf": token, "version": "1"})
    assert (303, "/ui/goals/g1") == (answer.status_code, answer.headers["location"])
    assert "adopted" == keyless.get("/v1/goals/g1").json()["state"]
    answer = keyless.post("/ui/goals/g1/abandon", data={"csrf": token, "version": "2"})
    assert 303 == answer.status_code
    assert ("abandoned", 3) == tuple(
        keyless.get("/v1/goals/g1").json()[k] for k in ("state", "version")
    )


@pytest.mark.parametrize(
    "form, headers",
    [
        ({"version": "1"}, {}),  # no token
        ({"version": "1", "csrf": "x" * 43}, {}),  # not the cookie's
        ({"version": "1", "csrf": "TOKEN"}, {"Origin": "http://evil.example"}),  # elsewhere
        ({"version": "1", "csrf": "TOKEN"}, {"Sec-Fetch-Site": "same-site"}),  # a sibling
    ],
    ids=["no-token", "wrong-token", "other-origin", "other-site"],
)
def test_a_post_without_the_pages_token_is_refused_and_writes_nothing(
    keyless: httpx.Client, db: Database, form: dict[str, str], headers: dict[str, str]
) -> None:
    create(keyless, "g1")
    token = csrf_of(keyless, "/ui/goals/g1")
    before = row_counts(db.connection())
    form = {k: token if v == "TOKEN" else v for k, v in form.items()}
    answer = keyless.post("/ui/goals/g1/adopt", data=form, headers=headers)
    assert 403 == answer.status_code
    assert 'data-status="403"' in answer.text
    assert before == row_counts(db.connection())
    assert "proposed" == keyless.get("/v1/goals/g1").json()["state"]


@pytest.mark.parametrize(
    "form, status",
    [
        ({f"f{n}": "1" for n in range(70)}, 400),  # more fields than any form has
        ({"version": "\u00b2"}, 422),  # a digit to str.isdigit(), not to int()
        ({"version": "\uff11"}, 422),  # a full-width 1
        ({"version": ""}, 422),
    ],
    ids=["70-fields", "superscript", "full-width", "empty"],
)
def test_odd_form_input_is_a_4xx_and_writes_nothing(
    keyless: httpx.Client, db: Database, form: dict[str, str], status: int
) -> None:
    create(keyless, "g1")
    token = csrf_of(keyless, "/ui/goals/g1")
    before = row_counts(db.connection())
    answer = keyless.post("/ui/goals/g1/adopt", data={"csrf": token, **form})
    assert status == answer.status_code
    assert f'data-status="{status}"' in answer.text
    assert before == row_counts(db.connection())


def test_a_stale_page_gets_409_naming_the_current_version(keyless: httpx.Client) -> None:
    create(keyless, "g1")
    token = csrf_of(keyless, "/ui/goals/g1")  # the page shows version 1
    assert (
        200 == keyless.patch("/v1/goals/g1", json={"value": 0.9, "expected_version": 1}).status_code
    )
    answer = keyless.post("/ui/goals/g1/adopt", data={"csrf": token, "version": "1"})
    assert 409 == answer.status_code
    assert re.search(r'id="problem"[^>]*data-status="409"', answer.text)
    assert "now at version 2" in answer.text
    assert "proposed" == keyless.get("/v1/goals/g1").json()["state"]
    assert re.search(r'data-field="version">2<', answer.text)  # the page, read again


def test_adopting_against_an_active_contradicting_belief_names_it(keyless: httpx.Client) -> None:
    belief = {"statement": "the sky is green", "active": True}
    assert keyless.put("/v1/beliefs/sky-green", json=belief).status_code in (200, 201)
    create(keyless, "g1", contradicts=["sky-green"])
    token = csrf_of(keyless, "/ui/goals/g1")
    answer = keyless.post("/ui/goals/g1/adopt", data={"csrf": token, "version": "1"})
    assert 409 == answer.status_code
    problem = re.search(r'<div id="problem".*?</div>', answer.text, re.S)
    assert problem and "sky-green" in problem.group(0)


def test_signing_in_keeps_the_key_in_a_strict_httponly_cookie(keyed: LiveServer) -> None:
    with keyed.client() as http:
        first = http.get("/ui/goals/g1")
        assert (303, "/ui/signin?next=%2Fui%2Fgoals%2Fg1") == (
            first.status_code, first.headers["location"]
        )  # fmt: skip
        token = csrf_of(http, "/ui/signin")
        wrong = http.post("/ui/signin", data={"csrf": token, "key": "not-a-key-at-all-0000"})
        assert 401 == wrong.status_code
        answer = http.post("/ui/signin", data={"csrf": token, "key": KEY["viewer"],
                                               "next": "/ui/pipeline"})  # fmt: skip
        assert (303, "/ui/pipeline") == (answer.status_code, answer.headers["location"])
        cookie = answer.headers["set-cookie"].lower()
        assert f"{SESSION_COOKIE}=" in cookie
        assert KEY["viewer"].lower() not in cookie  # a session token, not the key
        assert {"httponly", "samesite=strict", "path=/ui"} <= {p.strip() for p in cookie.split(";")}
        assert "secure" not in {p.strip() for p in cookie.split(";")}  # plain http here
        assert "viewer (read)" in http.get("/ui/").text
        out = http.post("/ui/signout", data={"csrf": token})
        assert 303 == out.status_code
        assert 303 == http.get("/ui/").status_code  # signed out: to the sign-in page


def test_an_expired_or_forged_session_is_signed_out(keyed: LiveServer) -> None:
    viewer = next(k for k in parse_api_keys(API_KEYS) if k.actor == "viewer")
    now = int(time.time())
    fresh = session_token(viewer, now)
    cases = {
        "fresh": (fresh, 200),
        "expired": (session_token(viewer, now - SESSION_TTL_S - 5), 303),
        "forged": (fresh[:-4] + ("0000" if not fresh.endswith("0000") else "1111"), 303),
        "the key itself": (KEY["viewer"], 303),
    }
    for name, (token, status) in cases.items():
        with keyed.client(cookies={SESSION_COOKIE: token}) as http:
            assert status == http.get("/ui/").status_code, name
            if status == 303:  # the refresh says so, where the board was, and stops
                board = http.get("/ui/board")
                assert (200, True) == (board.status_code, 'data-status="401"' in board.text)
                assert "hx-trigger" not in board.text


def test_sign_in_goes_only_to_console_pages(keyed: LiveServer) -> None:
    with keyed.client() as http:
        token = csrf_of(http, "/ui/signin")
        for target in ("https://evil.example/", "//evil.example/ui/", "/v1/goals"):
            answer = http.post("/ui/signin", data={"csrf": token, "key": KEY["viewer"],
                                                   "next": target})  # fmt: skip
            assert "/ui/" == answer.headers["location"], target


def test_a_read_key_sees_no_actions_and_its_posts_are_refused(
    keyed: LiveServer, db: Database
) -> None:
    with keyed.client(headers=bearer("alice")) as rest:
        create(rest, "g1")
    with signed_in(keyed, "viewer") as http:
        page = http.get("/ui/goals/g1").text
        assert "action-adopt" not in page and "action-abandon" not in page
        beliefs = http.get("/ui/beliefs").text
        assert not re.search(r'<form id="weights".*?<button', beliefs, re.S)
        before = row_counts(db.connection())
        token = http.cookies[CSRF_COOKIE]
        answer = http.post("/ui/goals/g1/adopt", data={"csrf": token, "version": "1"})
        assert 403 == answer.status_code
        assert "lacks the write scope" in answer.text
        assert before == row_counts(db.connection())


def test_the_owner_rule_holds_in_the_console(keyed: LiveServer) -> None:
    with keyed.client(headers=bearer("ops")) as rest:
        create(rest, "ops-goal")  # owned by ops
    with signed_in(keyed, "alice") as http:
        token = http.cookies[CSRF_COOKIE]
        answer = http.post("/ui/goals/ops-goal/adopt", data={"csrf": token, "version": "1"})
        assert 403 == answer.status_code
    with keyed.client(headers=bearer("ops")) as rest:
        assert "proposed" == rest.get("/v1/goals/ops-goal").json()["state"]


def test_weights_change_as_admin_and_are_refused_inline_when_invalid(
    keyed: LiveServer,
) -> None:
    with signed_in(keyed, "alice") as writer:
        token = writer.cookies[CSRF_COOKIE]
        refused = writer.post("/ui/decisions/goal_selected",
                              data={"csrf": token, "value_weight": "0.3"})  # fmt: skip
        assert 403 == refused.status_code
    with signed_in(keyed, "ops") as http:
        token = http.cookies[CSRF_COOKIE]
        page = http.get("/ui/beliefs").text
        assert re.search(r'<form id="weights".*?<button', page, re.S)
        bad = http.post("/ui/decisions/goal_selected",
                        data={"csrf": token, "value_weight": "0.33333"})  # fmt: skip
        assert 422 == bad.status_code
        assert re.search(r'data-status="422"', bad.text)
        assert "parameters.value_weight" in bad.text
        assert 'value="0.33333"' in bad.text  # the form again, with what was entered
        for odd in ("nan", "1e400", "much"):
            refused = http.post("/ui/decisions/goal_selected",
                                data={"csrf": token, "risk_weight": odd})  # fmt: skip
            assert 422 == refused.status_code, odd
            assert "parameters.risk_weight" in refused.text, odd
        # the whole form, as a browser posts it: every weight, one of them changed (the
        # seed's urgency and alignment weights are not on their own step: unchanged, they
        # are not checked)
        form = dict(re.findall(r'type="number" name="(\w+)" value="([^"]*)"', page))
        assert {"value_weight", "urgency_weight", "alignment_weight"} <= set(form)
        good = http.post("/ui/decisions/goal_selected",
                         data={**form, "csrf": token, "value_weight": "0.3"})  # fmt: skip
        assert (303, "/ui/beliefs") == (good.status_code, good.headers["location"])
        decision = http.get("/v1/decisions/goal_selected", headers=bearer("ops")).json()
        assert 0.3 == decision["parameters"]["value_weight"]["current"]


# --- pipeline and headers ---------------------------------------------------------------


def test_pipeline_shows_the_figures_metrics_serves(keyless: httpx.Client) -> None:
    create(keyless, "g1")
    metrics = keyless.get("/metrics").text
    pending = re.search(r"^goalstore_outbox_pending (\S+)$", metrics, re.M)
    assert pending
    page = keyless.get("/ui/pipeline").text
    shown = re.search(r'data-figure="outbox_pending">(\d+) events<', page)
    assert shown and int(float(pending.group(1))) == int(shown.group(1))
    assert re.search(r'data-figure="goals_by_state">proposed 1,', page)


def test_console_pages_forbid_framing_and_outside_scripts(keyless: httpx.Client) -> None:
    answer = keyless.get("/ui/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "no-store" == answer.headers["cache-control"]
    assert not re.search(r'(src|href)="(https?:)?//', answer.text)  # nothing from elsewhere
    assert "htmx" in keyless.get("/ui/static/htmx.min.js").text
    assert "/ui" not in str(keyless.get("/openapi.json").json()["paths"])
