"""The pure rules of links and criteria reviews (service/domain/annotations.py), and the
input models every entry point validates with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from service.domain.annotations import (
    CriterionNotFound,
    CriterionReview,
    LinkCreate,
    NoteCreate,
    validated,
    with_link,
    with_review,
)
from service.domain.errors import IllegalTransition, InvalidInput
from service.domain.goal import Criterion, GoalState
from service.domain.limits import MAX_LINKS
from service.testing import START, make_goal

LATER = START + timedelta(minutes=5)
LATER_TS = "2026-01-01T12:05:00.000000Z"  # LATER as stored
PR = LinkCreate(kind="pull_request", ref="org/repo#1", url="https://github.com/org/repo/pull/1")


def test_a_link_is_appended_with_who_and_when_at_a_new_version() -> None:
    """The link carries kind, ref, url as sent, the actor and the time; version + 1."""
    linked = with_link(make_goal(), PR, "alice", LATER)

    assert (2, LATER) == (linked.version, linked.updated_at)
    assert (
        {"kind": "pull_request", "ref": "org/repo#1", "url": "https://github.com/org/repo/pull/1",
         "actor": "alice", "at": LATER_TS},
    ) == linked.links  # fmt: skip


def test_the_same_kind_and_ref_again_is_the_goal_itself() -> None:
    """Relinking is a no-op even with another url; another kind with the same ref is new."""
    goal = with_link(make_goal(), PR, "alice", LATER)
    relinked = PR.model_copy(update={"url": "https://elsewhere.example"})
    as_issue = PR.model_copy(update={"kind": "issue"})

    assert goal is with_link(goal, relinked, "bob", LATER)
    assert 2 == len(with_link(goal, as_issue, "bob", LATER).links)


def test_a_finished_goal_or_a_full_one_refuses_a_new_link() -> None:
    """Satisfied: IllegalTransition (action link); MAX_LINKS held: InvalidInput on links."""
    full = make_goal(links=tuple({"kind": "s", "ref": str(n)} for n in range(MAX_LINKS)))

    with pytest.raises(IllegalTransition) as refused:
        with_link(make_goal(state=GoalState.SATISFIED), PR, "alice", LATER)
    with pytest.raises(InvalidInput) as over:
        with_link(full, PR, "alice", LATER)

    assert "link" == refused.value.action
    assert [("links",)] == [e.loc for e in over.value.errors]


CRITERIA = (Criterion("c1", "Tests pass"), Criterion("c2", "Docs updated"))


def test_a_review_sets_only_its_criterion() -> None:
    """c1 gets met, evidence, reviewer and time; c2 stays unreviewed; version + 1."""
    review = CriterionReview(met=True, evidence={"ci": "green"})

    reviewed = with_review(make_goal(criteria=CRITERIA), "c1", review, "alice", LATER)

    assert (
        Criterion("c1", "Tests pass", True, {"ci": "green"}, "alice", LATER_TS),
        Criterion("c2", "Docs updated"),
    ) == reviewed.criteria  # fmt: skip
    assert 2 == reviewed.version


def test_the_same_review_again_is_the_goal_itself_but_new_evidence_is_not() -> None:
    """Same decision and evidence: unchanged; same decision, other evidence: a change."""
    goal = with_review(make_goal(criteria=CRITERIA), "c1", CriterionReview(met=False), "a", LATER)

    assert goal is with_review(goal, "c1", CriterionReview(met=False), "b", LATER)
    assert (
        3 == with_review(goal, "c1", CriterionReview(met=False, evidence="log"), "b", LATER).version
    )


def test_an_unknown_criterion_or_a_finished_goal_is_refused() -> None:
    """CriterionNotFound names goal and criterion; an abandoned goal is IllegalTransition."""
    with pytest.raises(CriterionNotFound) as unknown:
        with_review(make_goal(criteria=CRITERIA), "c9", CriterionReview(met=True), "a", LATER)
    with pytest.raises(IllegalTransition):
        goal = make_goal(criteria=CRITERIA, state=GoalState.ABANDONED)
        with_review(goal, "c1", CriterionReview(met=True), "a", LATER)

    assert {"goal_id": "goal_001", "criterion_id": "c9"} == unknown.value.fields()


@pytest.mark.parametrize(
    ("model", "values", "loc"),
    [(NoteCreate, {"kind": "gossip", "text": "x"}, ("kind",)),
     (NoteCreate, {"kind": "info", "text": " \n "}, ("text",)),
     (LinkCreate, {"kind": "pr", "ref": "1", "url": "mailto:a@b.c"}, ("url",)),
     (LinkCreate, {"kind": "pr", "ref": "1", "url": "https://a.io/" + "x" * 2000}, ("url",)),
     (LinkCreate, {"kind": "pr/1", "ref": "1"}, ("kind",)),
     (LinkCreate, {"kind": "pr", "ref": "r" * 513}, ("ref",)),
     (CriterionReview, {"met": "true"}, ("met",)),
     (CriterionReview, {"met": True, "evidence": {"a": float("inf")}}, ("evidence",))],
)  # fmt: skip
def test_validated_names_the_bad_field(model: Any, values: dict[str, Any], loc: tuple[str]) -> None:
    """Bad values are InvalidInput (the domain's error, not Pydantic's) at the field."""
    with pytest.raises(InvalidInput) as refused:
        validated(model, **values)

    assert [loc] == [e.loc for e in refused.value.errors]


def test_validated_strips_and_keeps_the_url_as_written() -> None:
    """Text and ref are stripped; a URL is checked, not normalised (no slash added)."""
    note = validated(NoteCreate, kind="info", text="  hi  ")
    link = validated(LinkCreate, kind="session", ref=" s-1 ", url="https://chat.example")

    assert ("hi", "s-1", "https://chat.example") == (note.text, link.ref, link.url)
