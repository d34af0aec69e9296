"""One classification of errors, read by both edges (issue 13).

Every GoalStoreError class has a kind, a problem code and a title; the API's HTTP
status and the CLI's exit code both come from tables keyed by the kind. A sample of
every class (found by walking the packages, so a new class without one fails here)
is served as problem+json with the status of its kind and run through the CLI to
the exit code of its kind.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import orjson
import pytest
from starlette.requests import Request

import service
import workers
from service import cli
from service.api.errors import HTTP_STATUS, domain_problem
from service.cache.idempotency import IdempotencyUnavailable
from service.cli.output import EXIT_CODE
from service.commands.gate import GateClosed, ResultInvalid
from service.commands.selection import SchedulerUnavailable
from service.commands.starting import GoalMovedOn
from service.commands.tasks import GoalManuallyBlocked
from service.commands.trees import ChildrenOpen
from service.domain.annotations import CriterionNotFound
from service.domain.blocks import Block
from service.domain.errors import (
    BeliefNotFound,
    DecisionNotFound,
    ErrorKind,
    FieldError,
    GoalAlreadyExists,
    GoalNotFound,
    GoalStoreError,
    IllegalTransition,
    InvalidGoal,
    InvalidInput,
    NotPermitted,
    PreconditionRequired,
    RedisRequired,
    VersionConflict,
)
from service.domain.tasks import (
    GateCounts,
    IllegalTaskTransition,
    TaskNotFound,
    TaskVersionConflict,
)
from service.domain.vetting import CheckerUnavailable, GoalBlocked, Verdict
from service.store.copy import CopyRefused
from service.store.db import StoreBusy, StoreUnavailable

SAMPLES: list[GoalStoreError] = [
    GoalNotFound("g-1"),
    BeliefNotFound("b-1"),
    DecisionNotFound("d-1"),
    GoalAlreadyExists("g-1"),
    VersionConflict("g-1", 1, 2),
    PreconditionRequired("g-1", "update"),
    IllegalTransition("g-1", "satisfied", "adopt"),
    NotPermitted("g-1", "abandon"),
    InvalidInput([FieldError(("limit",), "too big")]),
    InvalidGoal([FieldError(("depends_on",), "cycle")]),
    RedisRequired("the test"),
    CheckerUnavailable("timed out"),
    GoalBlocked("g-1", Verdict((Block("contradicts_belief", "no", ("b-1",)),))),
    IllegalTaskTransition("t-1", "queued", "verify"),
    TaskNotFound("t-1"),
    SchedulerUnavailable("queue down"),
    GateClosed("g-1", GateCounts(live=2, verified=1), ["c-1"]),
    ChildrenOpen("g-1", "abandon", ["g-2", "g-3"]),
    TaskVersionConflict("g-1", "t-1", 1, 2),
    GoalManuallyBlocked("g-1", "waiting for legal"),
    ResultInvalid("g-1", "generic", [FieldError(("summary",), "missing")]),
    IdempotencyUnavailable("which does not answer"),
    StoreBusy("database is locked"),
    StoreUnavailable("connection refused"),
    GoalMovedOn(),
    CopyRefused("the target is not empty", {"target_goals": 1, "target_ledger_rows": 2}),
    CriterionNotFound("g-1", "c-9"),
]


def _every_error_class() -> set[type[GoalStoreError]]:
    for package in (service, workers):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found: set[type[GoalStoreError]] = set()
    todo: list[type[GoalStoreError]] = [GoalStoreError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_every_error_class_has_a_sample_here() -> None:
    """A new error class must be added to SAMPLES, so both edges are checked for it."""
    assert set() == _every_error_class() - {type(sample) for sample in SAMPLES}


def test_both_edges_map_every_kind() -> None:
    """Each kind has an HTTP status and an exit code: no error falls through."""
    assert set(ErrorKind) == set(HTTP_STATUS) == set(EXIT_CODE)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_the_api_serves_an_error_as_the_problem_of_its_kind(error: GoalStoreError) -> None:
    """Status from the kind, type from the code, the fields beside the detail."""
    request = Request({"type": "http", "method": "GET", "path": "/boom", "headers": []})
    response = domain_problem(request, error)
    body = orjson.loads(bytes(response.body))
    assert HTTP_STATUS[error.kind] == response.status_code
    assert "application/problem+json" == response.headers["content-type"]
    assert f"urn:goalstore:problem:{error.code}" == body["type"]
    assert (error.title, str(error), "/boom") == (body["title"], body["detail"], body["instance"])
    fields: dict[str, Any] = orjson.loads(orjson.dumps(error.fields()))
    assert fields == {k: body[k] for k in fields}
    retry = str(error.retry_after_s) if error.kind is ErrorKind.UNAVAILABLE else None
    assert retry == response.headers.get("retry-after")


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_the_cli_exits_with_the_code_of_the_kind(
    error: GoalStoreError,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI prints the kind as `error` and exits with the kind's code."""

    def failing(sub: Any) -> None:
        def run(*_: Any) -> int:
            raise error

        sub.add_parser("boom").set_defaults(run=run)

    monkeypatch.setenv("GOALSTORE_DATABASE", str(tmp_path / "cli.db"))
    assert 0 == cli.main(["migrate"])
    capsys.readouterr()
    code = cli.main(["boom"], groups=(*cli.GROUPS, failing))
    out = orjson.loads(capsys.readouterr().out)
    assert (EXIT_CODE[error.kind], error.kind.value, str(error)) == (
        code,
        out["error"],
        out["detail"],
    )
