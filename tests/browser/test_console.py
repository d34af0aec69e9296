"""The web console (/ui) in a real browser: Debian's chromium through Playwright, against
the Procfile's web and worker, a redis-server and a SQLite file (see conftest.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from service.testing import wait_for
from tests.browser.conftest import (
    ADMIN,
    DOCS_SCREENSHOT,
    READER,
    WRITER,
    Console,
    NewContext,
    canonical,
    cookie,
    docs_screenshot_wanted,
    path_of,
    screenshot,
    sign_in,
    submit,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TERMS = ("value", "effort", "risk", "urgency", "alignment")
ACTIONS = "form.action-adopt, form.action-abandon, form#weights button"
PIPELINE_FIGURES = (
    "outbox_pending", "outbox_lag_s", "events_queue", "scheduler_queue", "cache_warm",
    "cache_staleness_s", "workers", "last_rebuild",
)  # fmt: skip

# Everything the ranking table shows, read in one go (the board is swapped every 3 s).
READ_RANKING = """() => {
  const rows = document.querySelectorAll('table#ranking tbody tr.goal-row');
  return [...rows].map(row => {
    const bar = row.querySelector('div.bar');
    const style = bar && getComputedStyle(bar);
    const inner = bar
        ? bar.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
        : 0;
    return {
        id: row.dataset.goalId, rank: row.dataset.rank, score: row.dataset.score,
        text: row.textContent + ' ' + (bar ? bar.getAttribute('aria-label') || '' : ''),
        link: !!row.querySelector(`a[href="/ui/goals/${row.dataset.goalId}"]`),
        terms: bar ? [...bar.querySelectorAll('span.term')].map(span => ({
            term: span.dataset.term, value: span.dataset.value, style: span.style.width,
            drawn: inner ? span.getBoundingClientRect().width / inner * 100 : null,
        })) : [],
    };
  });
}"""
READ_BLOCKED = """() => {
  const rows = document.querySelectorAll('table#blocked tbody tr.goal-row');
  return [...rows].map(row => ({
    id: row.dataset.goalId,
    reasons: [...row.querySelectorAll('li.reason')].map(li => [li.dataset.reason, li.dataset.ref]),
  }));
}"""
ROW_IDS = """() => {
  const rows = document.querySelectorAll('table#ranking tbody tr.goal-row');
  return [...rows].map(row => row.dataset.goalId);
}"""


def problem(page: Page, status: int) -> str:
    """The text of the page's `#problem[data-status=status]` (asserting there is one)."""
    found = page.locator(f'#problem[data-status="{status}"]')
    assert 1 == found.count(), page.content()[:2000]
    return found.inner_text()


def problem_in(context: BrowserContext, html: str, status: int) -> str:
    """The `#problem[data-status=status]` text of an HTML answer, rendered in a new page."""
    page = context.new_page()
    try:
        page.set_content(html)
        return problem(page, status)
    finally:
        page.close()


def field(page: Page, name: str) -> str:
    """The goal page's `dl#goal dd[data-field=name]`, as text."""
    return page.locator(f'dl#goal dd[data-field="{name}"]').inner_text().strip()


def actions(page: Page) -> int:
    """How many action forms (adopt, abandon) and weight buttons the page shows."""
    return page.locator(ACTIONS).count()


# A few goals in four categories, each with a different score (no ties); the ids and
# order the ranking test expects: 0.76, 0.71, 0.545, 0.535, 0.385 at the seed's weights.
SEED_GOALS: list[dict[str, Any]] = [
    {"id": "answer-questions", "text": "Answer the user's open questions",
     "category": "user_requested", "value": 0.9, "effort": 0.3, "risk": 0.1},
    {"id": "reflect", "text": "Weekly self-reflection on identity coherence",
     "category": "introspection", "value": 0.7, "effort": 0.3, "risk": 0.1,
     "aligns_with": ["core.coherence"]},
    {"id": "reindex", "text": "Re-index the knowledge base",
     "category": "maintenance", "value": 0.6, "effort": 0.5, "risk": 0.2},
    {"id": "failed-tasks", "text": "Summarise yesterday's failed tasks",
     "category": "maintenance", "value": 0.4, "effort": 0.2, "risk": 0.1},
    {"id": "explore-planner", "text": "Explore the new planning API",
     "category": "exploration", "value": 0.5, "effort": 0.7, "risk": 0.6},
]  # fmt: skip


def seed_ranking(console: Console, prefix: str = "") -> tuple[list[str], str]:
    """SEED_GOALS adopted (one aligned with an active belief), and one more blocked: it
    waits on a proposed goal. The ids ranked, best first, and the blocked one's; each id
    starts with `prefix` (the store keeps the goals of earlier tests)."""
    belief = {"statement": "Identity stays coherent across sessions", "active": True}
    put = console.rest(ADMIN).put("/v1/beliefs/core.coherence", json=belief)
    assert put.status_code in (200, 201), put.text
    ranked = [
        console.create(WRITER, f"{prefix}{spec['id']}", adopt=True, **spec) for spec in SEED_GOALS
    ]
    draft = console.create(
        WRITER, f"{prefix}draft-report", text="Draft the quarterly report", value=0.7, effort=0.5
    )
    blocked = console.create(
        WRITER, f"{prefix}ship-report", text="Ship the quarterly report", value=0.8,
        effort=0.4, depends_on=[draft], adopt=True,
    )  # fmt: skip
    console.wait_ranked(ranked, [blocked])
    return ranked, blocked


def test_signin_sets_strict_httponly_cookies_and_refuses_a_bad_key(
    console: Console, new_context: NewContext
) -> None:
    """Without a session /ui sends the browser to the sign-in form; its CSRF field equals
    the HttpOnly SameSite=Strict CSRF cookie; a bad key is a 401 page; a good key sets an
    HttpOnly SameSite=Strict session cookie (not Secure over plain HTTP) and lands on
    /ui showing the actor; signing out ends the session."""
    context = new_context()
    page = context.new_page()
    page.goto("/ui")
    sent = urlsplit(page.url)
    nexts = [canonical(n) for n in parse_qs(sent.query).get("next", [])]
    assert ("/ui/signin", ["/ui"]) == (sent.path, nexts)
    assert "password" == page.get_attribute("form#signin input[name=key]", "type")
    csrf = cookie(context, "goalstore_csrf")
    assert (True, "Strict") == (csrf["httpOnly"], csrf["sameSite"])
    assert csrf["value"] == page.input_value("form#signin input[name=csrf]")

    page.fill("form#signin input[name=key]", "not-a-key-of-this-stack")
    assert 401 == submit(page, "form#signin").status
    assert problem(page, 401)
    assert [] == [c for c in context.cookies() if c["name"] == "goalstore_session"]

    page.fill("form#signin input[name=key]", ADMIN.secret)
    assert 200 == submit(page, "form#signin").status
    assert "/ui" == path_of(page)
    session = cookie(context, "goalstore_session")
    assert (True, "Strict", False) == (session["httpOnly"], session["sameSite"], session["secure"])
    assert ADMIN.actor in page.inner_text("#whoami")
    for hrefs in (("/ui", "/ui/"), ("/ui/beliefs",), ("/ui/pipeline",)):
        links = ", ".join(f'nav a[href="{href}"]' for href in hrefs)
        assert 1 <= page.locator(links).count(), hrefs

    token = cookie(context, "goalstore_csrf")["value"]
    signed_out = page.request.post("/ui/signout", form={"csrf": token}, max_redirects=0)
    assert signed_out.status in (302, 303), signed_out.status
    page.goto("/ui/pipeline")
    assert "/ui/signin" == path_of(page).split("?")[0]


def test_ranking_shows_the_api_order_and_bar_widths_from_score(
    console: Console, new_context: NewContext
) -> None:
    """Goals created and adopted over REST appear on the ranking page best first, in the
    order and with the scores of GET /v1/goals/prioritized; each bar's term widths (the
    inline style and as drawn) are terms*100 of GET /v1/goals/{id}/score within half a
    point; the blocked goal is apart with /score's reasons; the source is Redis; the
    category filter narrows the table as the API's does."""
    ranked, blocked = seed_ranking(console)
    page = sign_in(new_context(), READER)

    api = console.prioritized()
    rows: list[dict[str, Any]] = page.evaluate(READ_RANKING)
    assert [item["goal_id"] for item in api["data"]] == [row["id"] for row in rows]
    assert ranked == [row["id"] for row in rows]
    assert [str(n) for n in range(1, len(rows) + 1)] == [row["rank"] for row in rows]
    for item, row in zip(api["data"], rows, strict=True):
        assert item["score"] == pytest.approx(float(row["score"]), abs=0.005), row["id"]
        assert row["link"], f"no link to /ui/goals/{row['id']}"
    assert api["source"] == page.get_attribute("#source", "data-source") == "redis"

    for row in rows:
        terms = console.score(row["id"])["terms"]
        drawn = {t["term"]: t for t in row["terms"]}
        assert set(TERMS) == set(drawn), row
        for name in TERMS:
            expected = terms[name] * 100
            term = drawn[name]
            style = re.fullmatch(r"\s*([0-9.]+)%\s*", term["style"])
            assert style, f"{row['id']} {name}: style width {term['style']!r}"
            assert expected == pytest.approx(float(style.group(1)), abs=0.5), (row["id"], name)
            assert expected == pytest.approx(term["drawn"], abs=0.5), (row["id"], name)
            assert terms[name] == pytest.approx(float(term["value"]), abs=0.005)
            assert name in row["text"], f"{row['id']}: no text of {name} for screen readers"

    blocked_rows: list[dict[str, Any]] = page.evaluate(READ_BLOCKED)
    reasons = [[b["reason"], b["ref"]] for b in console.score(blocked)["blocked_by"]]
    assert [{"id": blocked, "reasons": reasons}] == blocked_rows
    assert [["dependency_unsatisfied", "draft-report"]] == reasons

    if docs_screenshot_wanted():
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
    screenshot(page, "ranking")

    filtered = [item["goal_id"] for item in console.prioritized(category="maintenance")["data"]]
    assert ["reindex", "failed-tasks"] == filtered
    page.goto("/ui?category=maintenance")  # what form#filters asks for
    assert filtered == page.evaluate(ROW_IDS)
    assert "maintenance" == page.input_value("form#filters select[name=category]")


def test_a_weight_changed_by_an_admin_reorders_the_open_ranking_without_a_reload(
    console: Console, new_context: NewContext
) -> None:
    """An admin lowers value_weight on /ui/beliefs (form#weights, min/max/step from the
    decision); the ranking page open in another tab shows the two goals swapped within
    10 s by its own refresh, without navigating; a value off the step is a 422 shown
    inline with the form."""
    console.create(WRITER, "valuable", text="Valuable but costly", value=0.9, effort=0.9,
                   risk=0.5, adopt=True)  # fmt: skip
    console.create(WRITER, "cheap", text="Cheap but modest", value=0.3, effort=0.1, risk=0.5,
                   adopt=True)  # fmt: skip
    admin = console.rest(ADMIN)
    for belief, active in (("core.safety", True), ("core.curiosity", False)):
        put = admin.put(f"/v1/beliefs/{belief}", json={"statement": belief, "active": active})
        assert put.status_code in (200, 201), put.text
    console.wait_ranked(["valuable", "cheap"])
    context = new_context()
    ranking = sign_in(context, ADMIN)
    assert ["valuable", "cheap"] == ranking.evaluate(ROW_IDS)
    ranking.evaluate("window.__marker = 1")
    navigations: list[str] = []
    ranking.on("framenavigated", lambda frame: navigations.append(frame.url))

    beliefs = context.new_page()
    beliefs.goto("/ui/beliefs")
    decision = console.rest(READER).get("/v1/decisions/goal_selected").json()["parameters"]
    for name, parameter in decision.items():
        weight = beliefs.locator(f'form#weights input[type=number][name="{name}"]')
        assert 1 == weight.count(), name
        shown = [weight.get_attribute(a) for a in ("min", "max", "step")]
        assert [parameter[a] for a in ("min", "max", "step")] == [float(v or "nan") for v in shown]
        assert parameter["current"] == float(weight.input_value())
    flags = {
        belief: beliefs.locator(f'table#beliefs tr[data-belief-id="{belief}"] td.active')
        for belief in ("core.safety", "core.curiosity")
    }
    assert [1, 1] == [flag.count() for flag in flags.values()]
    assert flags["core.safety"].inner_text() != flags["core.curiosity"].inner_text()

    beliefs.fill("form#weights input[name=value_weight]", "0.33")
    off_step = "form#weights input[name=value_weight]"
    assert not beliefs.eval_on_selector(off_step, "input => input.checkValidity()")
    # The browser refuses it by itself (min/max/step); past that, the server's check:
    beliefs.eval_on_selector("form#weights", "form => { form.noValidate = true; }")
    assert 422 == submit(beliefs, "form#weights").status
    assert "value_weight" in problem(beliefs, 422)
    assert 1 == beliefs.locator("form#weights").count()
    assert 0.5 == console.weights()["value_weight"]

    beliefs.goto("/ui/beliefs")
    beliefs.fill("form#weights input[name=value_weight]", "0.1")
    invalid = beliefs.eval_on_selector(
        "form#weights",
        "form => form.noValidate ? [] : [...form.querySelectorAll('input')]"
        "  .filter(i => !i.checkValidity())"
        "  .map(i => `${i.name}=${i.value}: ${i.validationMessage}`)",
    )
    assert [] == invalid, "the browser will not submit the weights"
    assert 200 == submit(beliefs, "form#weights").status
    assert "/ui/beliefs" == path_of(beliefs)
    assert 0.1 == console.weights()["value_weight"]
    screenshot(beliefs, "beliefs")

    swapped = ["cheap", "valuable"]
    wait_for("the open page to swap them", lambda: swapped == ranking.evaluate(ROW_IDS), seconds=10)
    assert 1 == ranking.evaluate("window.__marker")
    assert [] == navigations
    api = [item["goal_id"] for item in console.prioritized()["data"]]
    assert ["cheap", "valuable"] == api


def test_adopt_then_abandon_from_the_goal_page(console: Console, new_context: NewContext) -> None:
    """Its owner adopts a proposed goal from its page, then abandons it: each a form post
    that comes back to the goal page with the new state and version, as REST sees them;
    the timeline lists the ledger's events, each verified; a finished goal has no actions."""
    goal_id = console.create(WRITER, "tidy-logs", text="Tidy the log rotation", value=0.5,
                             effort=0.5)  # fmt: skip
    page = sign_in(new_context(), WRITER, f"/ui/goals/{goal_id}")
    assert ("proposed", "1") == (field(page, "state"), field(page, "version"))
    assert WRITER.actor in field(page, "owner")

    response = submit(page, "form.action-adopt")
    assert 200 == response.status
    posted = response.request.redirected_from  # the form's POST, answered 303
    assert posted is not None and "POST" == posted.method
    assert f"/ui/goals/{goal_id}" == path_of(page)
    goal = console.goal(goal_id)
    assert ("adopted", 2) == (goal["state"], goal["version"])
    assert ("adopted", "2") == (field(page, "state"), field(page, "version"))
    history = console.rest(READER).get(f"/v1/goals/{goal_id}/history").json()["data"]
    timeline = page.locator("table#timeline tbody tr[data-event]")
    shown = [(r.get_attribute("data-event") or "", r.get_attribute("data-seq") or "")
             for r in timeline.all()]  # fmt: skip
    assert sorted((e["event_type"], str(e["seq"])) for e in history) == sorted(shown)
    assert ["verified"] * len(history) == [
        c.strip() for c in page.locator("table#timeline tbody td.verified").all_inner_texts()
    ]
    screenshot(page, "goal")

    assert 0 == page.locator("form.action-adopt").count()
    assert 200 == submit(page, "form.action-abandon").status
    assert "abandoned" == console.goal(goal_id)["state"]
    assert "abandoned" == field(page, "state")
    assert 0 == actions(page)


def test_a_stale_goal_page_shows_the_conflict_and_the_current_version(
    console: Console, new_context: NewContext
) -> None:
    """A goal changed over REST after its page was loaded: adopting from the stale page
    is a 409 page naming the version the goal is now at, and the goal is not adopted."""
    goal_id = console.create(WRITER, "stale", text="Rotate the signing keys", value=0.6,
                             effort=0.3)  # fmt: skip
    page = sign_in(new_context(), WRITER, f"/ui/goals/{goal_id}")
    assert "1" == page.input_value("form.action-adopt input[name=version]")
    patched = console.rest(WRITER).patch(
        f"/v1/goals/{goal_id}", json={"value": 0.7}, headers={"If-Match": '"1"'}
    )
    assert 200 == patched.status_code, patched.text

    assert 409 == submit(page, "form.action-adopt").status
    assert re.search(r"\bversion 2\b", problem(page, 409)), problem(page, 409)
    goal = console.goal(goal_id)
    assert ("proposed", 2) == (goal["state"], goal["version"])


def test_a_read_key_sees_no_actions_and_its_posts_are_refused(
    console: Console, new_context: NewContext
) -> None:
    """A reader's pages show no adopt or abandon form and no weights button; its posts,
    with a valid CSRF token, are refused 403 and change nothing."""
    proposed = console.create(WRITER, "read-proposed", text="Proposed goal", value=0.5,
                              effort=0.5)  # fmt: skip
    adopted = console.create(WRITER, "read-adopted", text="Adopted goal", value=0.5,
                             effort=0.5, adopt=True)  # fmt: skip
    console.wait_ranked([adopted])
    context = new_context()
    page = sign_in(context, READER)
    assert [adopted] == page.evaluate(ROW_IDS)
    for path in (f"/ui/goals/{proposed}", f"/ui/goals/{adopted}", "/ui/beliefs", "/ui"):
        page.goto(path)
        assert 0 == actions(page), path
    page.goto("/ui/beliefs")
    assert 1 == page.locator("form#weights input[name=value_weight]").count()

    token = cookie(context, "goalstore_csrf")["value"]
    refused = page.request.post(
        f"/ui/goals/{proposed}/adopt", form={"csrf": token, "version": "1"}, max_redirects=0
    )
    assert 403 == refused.status
    assert "csrf" not in problem_in(context, refused.text(), 403).lower()
    weights = page.request.post(
        "/ui/decisions/goal_selected",
        form={"csrf": token, "value_weight": "0.1"},
        max_redirects=0,
    )
    assert 403 == weights.status
    assert problem_in(context, weights.text(), 403)
    assert "proposed" == console.goal(proposed)["state"]
    assert 0.5 == console.weights()["value_weight"]


def test_a_post_without_the_csrf_token_is_refused(
    console: Console, new_context: NewContext
) -> None:
    """With a writer's session, an adopt posted without the CSRF field, with a wrong one,
    or without the CSRF cookie is refused 403 with a problem that says CSRF; the same post
    with the page's token adopts the goal."""
    goal_id = console.create(WRITER, "csrf-goal", text="Renew the certificates", value=0.5,
                             effort=0.5)  # fmt: skip
    context = new_context()
    page = sign_in(context, WRITER, f"/ui/goals/{goal_id}")
    token = page.input_value("form.action-adopt input[name=csrf]")
    assert cookie(context, "goalstore_csrf")["value"] == token
    url = f"/ui/goals/{goal_id}/adopt"

    forms: list[dict[str, str | float | bool]] = [
        {"version": "1"},
        {"version": "1", "csrf": "x" * len(token)},
    ]
    for form in forms:
        refused = page.request.post(url, form=form, max_redirects=0)
        assert 403 == refused.status, form
        assert "csrf" in problem_in(context, refused.text(), 403).lower()
    session = cookie(context, "goalstore_session")["value"]
    with httpx.Client(base_url=console.url, timeout=10) as bare:  # no CSRF cookie at all
        refused_bare = bare.post(
            url,
            data={"version": "1", "csrf": token},
            headers={"Cookie": f"goalstore_session={session}"},
        )
    assert 403 == refused_bare.status_code
    assert "csrf" in problem_in(context, refused_bare.text, 403).lower()
    assert "proposed" == console.goal(goal_id)["state"]

    accepted = page.request.post(url, form={"version": "1", "csrf": token}, max_redirects=0)
    assert 303 == accepted.status
    assert accepted.headers["location"].endswith(f"/ui/goals/{goal_id}")
    assert "adopted" == console.goal(goal_id)["state"]


def test_every_page_fits_a_360px_wide_screen(console: Console, new_context: NewContext) -> None:
    """At 360 px wide no page scrolls sideways: the document is no wider than the screen."""
    ranked, _ = seed_ranking(console, prefix="narrow-")
    page = sign_in(new_context(viewport={"width": 360, "height": 740}), WRITER)
    assert sorted(ranked) == sorted(page.evaluate(ROW_IDS))
    for path in ("/ui", f"/ui/goals/{ranked[0]}", "/ui/beliefs", "/ui/pipeline"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 361, f"{path} is {width} px wide"
    page.goto("/ui")
    screenshot(page, "ranking-360")


def test_keyboard_alone_reaches_the_adopt_button_and_enter_submits_it(
    console: Console, new_context: NewContext
) -> None:
    """Tab reaches the adopt button of a goal page, and Enter adopts the goal."""
    goal_id = console.create(WRITER, "keyboard", text="Adopt me by keyboard", value=0.5,
                             effort=0.5)  # fmt: skip
    page = sign_in(new_context(), WRITER, f"/ui/goals/{goal_id}")
    in_adopt = "!!document.activeElement?.closest('form.action-adopt')"
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(in_adopt):
            break
    assert page.evaluate(in_adopt), "Tab never reached the adopt form"
    assert "BUTTON" == page.evaluate("document.activeElement.tagName")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "adopted" == console.goal(goal_id)["state"]
    assert "adopted" == field(page, "state")


def test_pipeline_page_shows_every_figure(console: Console, new_context: NewContext) -> None:
    """The pipeline page has each figure of /metrics it promises, each with a text."""
    page = sign_in(new_context(), READER, "/ui/pipeline")
    for figure in PIPELINE_FIGURES:
        shown = page.locator(f'dl#pipeline dd[data-figure="{figure}"]')
        assert 1 == shown.count(), figure
        assert shown.inner_text().strip(), figure
    screenshot(page, "pipeline")
