"""Notes, manual blocks, linked work and criteria reviews (issue 15) over real HTTP and the
CLI, on each engine.

A note is a ledger event (actor, trace, outbox row) that leaves the goal and its version
alone and is allowed in every state; a block, a link and a review are versioned changes
of the goal, for its owner or an admin, refused once the goal is finished, and a repeat
changes nothing. Every expected value below is written out by hand.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service import commands
from service.commands import Context
from service.commands.starting import Started
from service.domain.inputs import GoalCreate
from service.domain.limits import MAX_LINKS
from service.domain.tasks import TaskState
from service.testing import goal_spec, migrated_database, row_counts
from tests.integration.conftest import CliRunner, LiveServer, ServerFactory

PROBLEM = "application/problem+json"
ALICE = Context(actor="alice")  # not admin: she makes goals as their owner
CRITERIA = [{"id": "c1", "text": "Tests pass"}, {"id": "c2", "text": "Docs updated"}]


def _goal(server: LiveServer, **overrides: Any) -> str:
    spec = GoalCreate.model_validate(goal_spec(**overrides))
    return server.services.goalstore.create_goal(ALICE, spec).id


def _satisfied(server: LiveServer) -> str:
    """A goal of alice's taken through the gate: adopted, started, its task verified."""
    gs = server.services.goalstore
    goal_id = _goal(server)
    gs.adopt_goal(ALICE, goal_id)
    [started] = commands.start_goals(gs.db, ALICE, [(goal_id, 2)], gs.vetting)
    assert isinstance(started, Started), started
    gs.report_task(ALICE, started.task.task_id, TaskState.SUCCEEDED, evidence={"summary": "ok"})
    gs.review_task(ALICE, goal_id, started.task.task_id, "verify")
    gs.satisfy_goal(ALICE, goal_id, {"summary": "done"})
    assert "satisfied" == gs.get_goal(goal_id).state.value
    return goal_id


def _rows(server: LiveServer) -> dict[str, int]:
    return row_counts(server.services.db.connection())


def _events(server: LiveServer, goal_id: str) -> list[str]:
    return [e.event_type for e in server.services.goalstore.goal_history(goal_id)]


# --- notes ------------------------------------------------------------------------------


def test_a_note_on_a_satisfied_goal_is_a_traced_ledger_event(
    server: LiveServer, client: httpx.Client
) -> None:
    """A note is accepted on a finished goal (201), carries the caller's trace id and actor,
    is one ledger event plus its outbox row, and changes neither the goal nor its version."""
    goal_id = _satisfied(server)
    before, version = _rows(server), server.services.goalstore.get_goal(goal_id).version
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    response = client.post(
        f"/v1/goals/{goal_id}/notes", json={"kind": "decision", "text": "  Keep v1 API.  "},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )  # fmt: skip

    assert 201 == response.status_code, response.text
    note = response.json()
    assert (goal_id, "decision", "Keep v1 API.", "anonymous", trace_id) == (
        note["goal_id"], note["kind"], note["text"], note["actor"], note["trace_id"]
    )  # fmt: skip
    event = server.services.goalstore.goal_history(goal_id)[-1]
    assert ("goal_note_added", note["seq"], trace_id, "anonymous") == (
        event.event_type, event.seq, event.trace_id, event.actor
    )  # fmt: skip
    assert {"kind": "decision", "text": "Keep v1 API."} == event.payload
    assert {**before, "ledger": before["ledger"] + 1, "outbox": before["outbox"] + 1} == _rows(
        server
    )
    assert version == client.get(f"/v1/goals/{goal_id}").json()["version"]


def test_notes_are_listed_newest_first_a_page_at_a_time(
    server: LiveServer, client: httpx.Client
) -> None:
    """Five notes read back with limit 2: three pages, newest first, each page's
    next_cursor fetching the next; the last page has none. Another goal's notes and the
    goal's other events are not notes."""
    goal_id, other = _goal(server), _goal(server)
    client.post(f"/v1/goals/{other}/notes", json={"kind": "info", "text": "elsewhere"})
    for n in range(1, 6):
        posted = client.post(f"/v1/goals/{goal_id}/notes", json={"kind": "info", "text": f"n{n}"})
        assert 201 == posted.status_code, posted.text
    client.post(f"/v1/goals/{goal_id}/adopt")  # an event that is not a note

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/v1/goals/{goal_id}/notes", params=params).json()
        pages.append([note["text"] for note in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert [["n5", "n4"], ["n3", "n2"], ["n1"]] == pages


@pytest.mark.parametrize(
    ("route", "body"),
    [("notes", {"kind": "rumour", "text": "x"}), ("notes", {"kind": "info", "text": "   "}),
     ("notes", {"kind": "info", "text": "x" * 4001}), ("notes", {"kind": "info"}),
     ("notes", {"kind": "info", "text": "x", "y": 1}),
     ("links", {"kind": "pr", "ref": "1", "url": "ftp://example.com/x"}),
     ("links", {"kind": "pr", "ref": "1", "url": "not a url"}),
     ("links", {"kind": "pr", "ref": "1", "url": "https://example.com/" + "x" * 2000}),
     ("links", {"kind": "pull request", "ref": "1"}), ("links", {"kind": "pr", "ref": ""}),
     ("links", {"kind": "pr", "ref": "x" * 513})],
    ids=["note: unknown kind", "note: blank text", "note: text too long", "note: no text",
         "note: unknown field", "link: ftp url", "link: not a url", "link: url too long",
         "link: kind with a space", "link: empty ref", "link: ref too long"],
)  # fmt: skip
def test_a_bad_note_or_link_is_a_422_and_writes_nothing(
    route: str, body: dict[str, Any], server: LiveServer, client: httpx.Client
) -> None:
    """Each malformed note or link is a 422 problem; the goal and the store are unchanged."""
    goal_id = _goal(server)
    before = _rows(server)

    response = client.post(f"/v1/goals/{goal_id}/{route}", json=body)

    assert (422, PROBLEM) == (response.status_code, response.headers["content-type"])
    assert before == _rows(server)


def test_a_deleted_or_unknown_goal_takes_no_note(server: LiveServer, client: httpx.Client) -> None:
    """Notes on a deleted goal, or one that never was, are 404 `goal-not-found` both ways."""
    goal_id = _goal(server)
    server.services.goalstore.delete_goal(ALICE, goal_id)
    before = _rows(server)

    statuses = [
        client.post(f"/v1/goals/{g}/notes", json={"kind": "info", "text": "x"}).status_code
        for g in (goal_id, "g-nowhere")
    ] + [client.get(f"/v1/goals/{g}/notes").status_code for g in (goal_id, "g-nowhere")]

    assert [404, 404, 404, 404] == statuses
    assert before == _rows(server)


# --- who may: keys ----------------------------------------------------------------------

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789ab",
        "ops": "ops-key-0123456789ab", "viewer": "viewer-key-012345678"}  # fmt: skip
API_KEYS = ",".join([f"alice:read+write:{KEYS['alice']}", f"bob:read+write:{KEYS['bob']}",
                     f"ops:admin:{KEYS['ops']}", f"viewer:read:{KEYS['viewer']}"])  # fmt: skip


@pytest.fixture
def keyed(start_server: ServerFactory) -> LiveServer:
    return start_server(api_keys=API_KEYS)


def _as(server: LiveServer, actor: str) -> httpx.Client:
    return server.client(headers={"Authorization": f"Bearer {KEYS[actor]}"})


def test_any_writer_may_add_a_note_and_the_ledger_names_them(keyed: LiveServer) -> None:
    """bob may note alice's goal (the owner rule is for changes; a note changes nothing)
    and is named as its actor; a read-only key is refused with nothing written."""
    goal_id = _goal(keyed)
    with _as(keyed, "bob") as bob:
        noted = bob.post(f"/v1/goals/{goal_id}/notes", json={"kind": "blocker", "text": "CI red"})
    before = _rows(keyed)
    with _as(keyed, "viewer") as viewer:
        refused = viewer.post(f"/v1/goals/{goal_id}/notes", json={"kind": "info", "text": "x"})
        listed = viewer.get(f"/v1/goals/{goal_id}/notes")

    assert (201, "bob") == (noted.status_code, noted.json()["actor"])
    assert 403 == refused.status_code
    assert before == _rows(keyed)
    assert [("blocker", "CI red", "bob")] == [
        (n["kind"], n["text"], n["actor"]) for n in listed.json()["data"]
    ]


CHANGES: dict[str, tuple[str, dict[str, Any]]] = {
    "block": ("block", {"reason": "waiting on legal"}),
    "unblock": ("unblock", {}),
    "link": ("links", {"kind": "session", "ref": "s-1"}),
    "review": ("criteria/c1/review", {"met": True}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_only_the_owner_or_an_admin_may_block_link_or_review(
    change: str, keyed: LiveServer
) -> None:
    """bob (another writer) is 403 `not-permitted` naming the action, and nothing is
    written; alice (the owner) and ops (admin) get 200."""
    path, body = CHANGES[change]
    statuses: dict[str, int] = {}
    for actor in ("bob", "alice", "ops"):
        goal_id = _goal(keyed, criteria=CRITERIA)
        keyed.services.goalstore.block_goal(ALICE, goal_id, "held")  # something to unblock
        before = (_rows(keyed), keyed.services.goalstore.get_goal(goal_id).version)
        with _as(keyed, actor) as http:
            response = http.post(f"/v1/goals/{goal_id}/{path}", json=body)
        statuses[actor] = response.status_code
        if actor == "bob":
            assert "urn:goalstore:problem:not-permitted" == response.json()["type"]
            assert change == response.json()["action"]
            assert before == (_rows(keyed), keyed.services.goalstore.get_goal(goal_id).version)

    assert {"bob": 403, "alice": 200, "ops": 200} == statuses


# --- manual blocks ----------------------------------------------------------------------


def test_block_and_unblock_show_on_the_goal_and_in_the_ledger(
    server: LiveServer, client: httpx.Client
) -> None:
    """Blocking sets manual_block (reason, actor) at a new version with its ETag and a
    `goal_blocked` event; the same block again changes nothing; unblocking clears it with
    `goal_unblocked`."""
    goal_id = _goal(server)

    blocked = client.post(f"/v1/goals/{goal_id}/block", json={"reason": " vendor key "})
    again = client.post(f"/v1/goals/{goal_id}/block", json={"reason": "vendor key"})
    unblocked = client.post(f"/v1/goals/{goal_id}/unblock", headers={"If-Match": '"2"'})

    body = blocked.json()
    assert (200, 2, '"2"') == (blocked.status_code, body["version"], blocked.headers["etag"])
    assert ("vendor key", "anonymous") == (
        body["manual_block"]["reason"], body["manual_block"]["actor"]
    )  # fmt: skip
    assert (200, 2) == (again.status_code, again.json()["version"])
    assert (200, 3, None) == (
        unblocked.status_code, unblocked.json()["version"], unblocked.json()["manual_block"]
    )  # fmt: skip
    assert ["goal_created", "goal_blocked", "goal_unblocked"] == _events(server, goal_id)


@pytest.mark.parametrize("how", ["body", "If-Match"])
def test_a_stale_block_is_a_conflict_event_and_a_409(
    how: str, server: LiveServer, client: httpx.Client
) -> None:
    """A block naming a version the goal has moved past is a 409 `version-conflict` and a
    `goal_conflict_detected` event; the goal stays unblocked at its version."""
    goal_id = _goal(server)
    body: dict[str, Any] = {"reason": "hold"}
    headers = {}
    if how == "body":
        body["expected_version"] = 5
    else:
        headers["If-Match"] = '"5"'

    response = client.post(f"/v1/goals/{goal_id}/block", json=body, headers=headers)

    problem = response.json()
    assert (409, "urn:goalstore:problem:version-conflict", 1) == (
        response.status_code, problem["type"], problem["current_version"]
    )  # fmt: skip
    assert ["goal_created", "goal_conflict_detected"] == _events(server, goal_id)
    goal = client.get(f"/v1/goals/{goal_id}").json()
    assert (1, None) == (goal["version"], goal["manual_block"])


def test_a_finished_goal_cannot_be_blocked_or_unblocked(
    server: LiveServer, client: httpx.Client
) -> None:
    """Blocking an abandoned goal is 409 `illegal-transition` naming its state; a goal
    abandoned while blocked keeps its block as history (unblock is 409, nothing written)."""
    gs = server.services.goalstore
    goal_id = _goal(server)
    held = _goal(server)
    gs.block_goal(ALICE, held, "waiting on legal")
    gs.abandon_goal(ALICE, goal_id)
    version = gs.abandon_goal(ALICE, held).goal.version
    rows = _rows(server)

    blocked = client.post(f"/v1/goals/{goal_id}/block", json={"reason": "too late"})
    unblocked = client.post(f"/v1/goals/{held}/unblock")

    assert [(409, "abandoned")] * 2 == [
        (r.status_code, r.json()["current_state"]) for r in (blocked, unblocked)
    ]  # fmt: skip
    assert (rows, version, "waiting on legal") == (
        _rows(server), gs.get_goal(held).version, gs.get_goal(held).manual_block["reason"]
    )  # fmt: skip


# --- linked work ------------------------------------------------------------------------


def test_linking_work_is_versioned_and_idempotent(server: LiveServer, client: httpx.Client) -> None:
    """A link joins the goal's links (kind, ref, url, actor, at) at a new version with a
    `goal_linked` event naming it; the same kind and ref again changes nothing, even with
    another url; the same ref of another kind is another link."""
    goal_id = _goal(server)
    url = "https://github.com/org/repo/pull/42"

    first = client.post(
        f"/v1/goals/{goal_id}/links",
        json={"kind": "pull_request", "ref": "org/repo#42", "url": url},
    )
    again = client.post(
        f"/v1/goals/{goal_id}/links",
        json={"kind": "pull_request", "ref": "org/repo#42", "url": "https://x.io"},
    )
    other = client.post(
        f"/v1/goals/{goal_id}/links",
        json={"kind": "issue", "ref": "org/repo#42", "expected_version": 2},
    )

    assert (200, 200, 200) == (first.status_code, again.status_code, other.status_code)
    assert (2, 2, 3) == (first.json()["version"], again.json()["version"], other.json()["version"])
    links = other.json()["links"]
    assert [
        ("pull_request", "org/repo#42", url, "anonymous"),
        ("issue", "org/repo#42", None, "anonymous"),
    ] == [(k["kind"], k["ref"], k["url"], k["actor"]) for k in links]
    history = server.services.goalstore.goal_history(goal_id)
    assert ["goal_created", "goal_linked", "goal_linked"] == [e.event_type for e in history]
    assert ("pull_request", "org/repo#42") == (
        history[1].payload["kind"],
        history[1].payload["ref"],
    )


def test_links_are_refused_past_the_limit_and_on_finished_goals(
    server: LiveServer, client: httpx.Client
) -> None:
    """The link after MAX_LINKS is a 422 naming `links`; any new link to a satisfied goal
    is 409 `illegal-transition`; nothing is written either time."""
    gs, full = server.services.goalstore, _goal(server)
    for n in range(MAX_LINKS):
        gs.link_work(ALICE, full, "session", f"s-{n}")
    done = _satisfied(server)
    before = _rows(server)

    over = client.post(f"/v1/goals/{full}/links", json={"kind": "session", "ref": "one more"})
    late = client.post(f"/v1/goals/{done}/links", json={"kind": "session", "ref": "s-late"})

    assert (422, ["links"]) == (over.status_code, over.json()["errors"][0]["loc"])
    assert (409, "urn:goalstore:problem:illegal-transition") == (late.status_code,
                                                                  late.json()["type"])  # fmt: skip
    assert before == _rows(server)
    assert 64 == len(gs.get_goal(full).links)


# --- acceptance criteria ----------------------------------------------------------------


def test_reviewing_criteria_records_the_decision_and_the_reviewer(
    server: LiveServer, client: httpx.Client
) -> None:
    """c1 reviewed met with evidence, then c2 not met: each at a new version with a
    `goal_criterion_reviewed` event naming the criterion and the decision; the same
    review again changes nothing."""
    goal_id = _goal(server, criteria=CRITERIA)
    evidence = {"ci": "run 1234 green"}

    met = client.post(
        f"/v1/goals/{goal_id}/criteria/c1/review", json={"met": True, "evidence": evidence}
    )
    again = client.post(
        f"/v1/goals/{goal_id}/criteria/c1/review",
        json={"met": True, "evidence": evidence, "expected_version": 1},
    )
    unmet = client.post(f"/v1/goals/{goal_id}/criteria/c2/review", json={"met": False},
                        headers={"If-Match": '"2"'})  # fmt: skip

    assert [200, 200, 200] == [met.status_code, again.status_code, unmet.status_code]
    assert [2, 2, 3] == [r.json()["version"] for r in (met, again, unmet)]
    c1, c2 = unmet.json()["criteria"]
    assert ("c1", True, evidence, "anonymous") == (
        c1["id"], c1["met"], c1["evidence"], c1["reviewed_by"]
    )  # fmt: skip
    assert c1["reviewed_at"] is not None
    assert ("c2", False, None, "anonymous") == (
        c2["id"], c2["met"], c2["evidence"], c2["reviewed_by"]
    )  # fmt: skip
    history = server.services.goalstore.goal_history(goal_id)
    assert [("c1", True), ("c2", False)] == [
        (e.payload["criterion_id"], e.payload["met"])
        for e in history if e.event_type == "goal_criterion_reviewed"
    ]  # fmt: skip


def test_an_unknown_criterion_is_a_404_naming_it(server: LiveServer, client: httpx.Client) -> None:
    """Reviewing a criterion the goal does not have is 404 `criterion-not-found` naming the
    goal and the criterion; nothing is written."""
    goal_id = _goal(server, criteria=CRITERIA)
    before = _rows(server)

    response = client.post(f"/v1/goals/{goal_id}/criteria/c9/review", json={"met": True})

    problem = response.json()
    assert (404, PROBLEM) == (response.status_code, response.headers["content-type"])
    assert ("urn:goalstore:problem:criterion-not-found", goal_id, "c9") == (
        problem["type"], problem["goal_id"], problem["criterion_id"]
    )  # fmt: skip
    assert before == _rows(server)


@pytest.mark.parametrize(
    "body", [b'{"met": "yes"}', b'{"met": 1}', b'{}', b'{"met": true, "evidence": {"a": NaN}}'],
    ids=["string", "number", "missing", "NaN evidence"],
)  # fmt: skip
def test_a_review_must_say_met_as_a_boolean(
    body: bytes, server: LiveServer, client: httpx.Client
) -> None:
    """`met` must be a JSON boolean and evidence JSON: a 4xx problem, nothing written."""
    goal_id = _goal(server, criteria=CRITERIA)
    before = _rows(server)

    response = client.post(
        f"/v1/goals/{goal_id}/criteria/c1/review", content=body,
        headers={"content-type": "application/json"},
    )  # fmt: skip

    assert response.status_code in (400, 422), response.text
    assert PROBLEM == response.headers["content-type"]
    assert before == _rows(server)


def test_a_finished_goals_criteria_are_not_reviewed(
    server: LiveServer, client: httpx.Client
) -> None:
    """A review of an abandoned goal's criterion is 409 `illegal-transition`."""
    goal_id = _goal(server, criteria=CRITERIA)
    server.services.goalstore.abandon_goal(ALICE, goal_id)

    response = client.post(f"/v1/goals/{goal_id}/criteria/c1/review", json={"met": True})

    assert (409, "urn:goalstore:problem:illegal-transition") == (
        response.status_code, response.json()["type"]
    )  # fmt: skip


def test_the_ledger_replays_to_the_annotated_goal(server: LiveServer, client: httpx.Client) -> None:
    """After a note, a block, a link and a review, the chain verifies and replaying the
    ledger rebuilds the goals table exactly."""
    goal_id = _goal(server, criteria=CRITERIA)
    for path, body in [
        ("notes", {"kind": "info", "text": "start"}),
        ("block", {"reason": "hold"}),
        ("links", {"kind": "session", "ref": "s"}),
        ("criteria/c1/review", {"met": True, "evidence": "ok"}),
        ("unblock", {}),
    ]:
        assert client.post(f"/v1/goals/{goal_id}/{path}", json=body).status_code in (200, 201)

    gs = server.services.goalstore
    assert gs.verify_ledger().ok
    report = gs.replay_check()
    assert (True, []) == (report.ok, report.differences)


# --- the CLI ----------------------------------------------------------------------------


def _cli_goal(database_location: str) -> None:
    """Goal G-cli of alice's, with criteria c1 and c2, in the test's store."""
    store = migrated_database(database_location)
    try:
        spec = GoalCreate.model_validate(goal_spec(id="G-cli", criteria=CRITERIA))
        commands.create_goal(store, ALICE, spec)
    finally:
        store.close()


def test_the_cli_notes_blocks_links_and_reviews(database_location: str, run_cli: CliRunner) -> None:
    """Each command prints JSON and exits 0; the notes list is newest first; the goal shows
    the block lifted, the link and the review; the ledger names `--actor`."""
    _cli_goal(database_location)

    runs = [
        run_cli(database_location, "--actor", "ops", "notes", "add", "G-cli", "--kind",
                "decision", "--text", "first"),
        run_cli(database_location, "notes", "add", "G-cli", "--kind", "info", "--text", "second"),
        run_cli(database_location, "block", "G-cli", "--reason", "hold"),
        run_cli(database_location, "unblock", "G-cli", "--expected-version", "2"),
        run_cli(database_location, "link", "G-cli", "--kind", "session", "--ref", "s-1", "--url",
                "https://chat.example/s-1"),
        run_cli(database_location, "criteria", "review", "G-cli", "c1", "--met", "--evidence",
                '{"ci": "green"}'),
        run_cli(database_location, "criteria", "review", "G-cli", "c2", "--not-met"),
    ]  # fmt: skip
    code, listing = run_cli(database_location, "notes", "list", "G-cli", "--limit", "1")
    _, older = run_cli(database_location, "notes", "list", "G-cli", "--cursor",
                       listing["next_cursor"])  # fmt: skip
    _, shown = run_cli(database_location, "goals", "show", "G-cli")

    assert [0] * 7 == [c for c, _ in runs]
    assert ("ops", "decision", "first") == (
        runs[0][1]["actor"], runs[0][1]["kind"], runs[0][1]["text"]
    )  # fmt: skip
    assert (0, ["second"], ["first"]) == (
        code, [n["text"] for n in listing["data"]], [n["text"] for n in older["data"]]
    )  # fmt: skip
    assert (6, None) == (shown["version"], shown["manual_block"])
    assert [("session", "s-1", "https://chat.example/s-1", "cli")] == [
        (k["kind"], k["ref"], k["url"], k["actor"]) for k in shown["links"]
    ]
    assert [(True, {"ci": "green"}), (False, None)] == [
        (c["met"], c["evidence"]) for c in shown["criteria"]
    ]


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [(("notes", "add", "G-none", "--kind", "info", "--text", "x"), 3),
     (("notes", "add", "G-cli", "--kind", "info", "--text", "  "), 5),
     (("block", "G-cli", "--reason", "hold", "--expected-version", "9"), 4),
     (("link", "G-cli", "--kind", "pr", "--ref", "1", "--url", "ftp://x"), 5),
     (("criteria", "review", "G-cli", "c9", "--met"), 3),
     (("criteria", "review", "G-cli", "c1", "--met", "--evidence", "{not json"), 5),
     (("notes", "list", "G-cli", "--limit", "0"), 5)],
    ids=["unknown goal", "blank note", "stale block", "bad url", "unknown criterion",
         "evidence not JSON", "limit 0"],
)  # fmt: skip
def test_cli_errors_exit_with_their_kinds_code(
    argv: tuple[str, ...], exit_code: int, database_location: str, run_cli: CliRunner
) -> None:
    """Not found 3, conflict 4, invalid input 5, with the error as JSON on stdout."""
    _cli_goal(database_location)

    code, out = run_cli(database_location, *argv)

    assert exit_code == code, out
    assert "error" in out
