"""What every subcommand prints: JSON on stdout, a log line on stderr, an exit code.

Exit codes: 0 done; 1 a check failed (ledger verify, replay --check, a scenario);
2 usage or configuration; 3 not found; 4 conflict (version, state, duplicate);
5 invalid input; 6 a collaborator does not answer (checker, Redis, the queue);
7 not permitted (an actor neither the goal's owner nor admin; the CLI's own commands
act as the admin operator, so they do not meet it).
Command errors get theirs from their kind (service/domain/errors.py), as the API
gets its HTTP status from it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from service.api.schemas import GoalPublic
from service.domain.errors import ErrorKind
from service.domain.goal import Goal

log = logging.getLogger("goalstore")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_INVALID, EXIT_UNAVAILABLE = 3, 4, 5, 6
EXIT_NOT_PERMITTED = 7

EXIT_CODE: dict[ErrorKind, int] = {
    ErrorKind.NOT_FOUND: EXIT_NOT_FOUND,
    ErrorKind.CONFLICT: EXIT_CONFLICT,
    ErrorKind.INVALID: EXIT_INVALID,
    ErrorKind.FORBIDDEN: EXIT_NOT_PERMITTED,
    ErrorKind.PRECONDITION: EXIT_INVALID,
    ErrorKind.UNAVAILABLE: EXIT_UNAVAILABLE,
    ErrorKind.CONFIGURATION: EXIT_USAGE,
}


def emit(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def goal_json(goal: Goal) -> dict[str, Any]:
    return GoalPublic.of(goal).model_dump(mode="json")


def fail(code: int, kind: str, detail: str, **extra: Any) -> int:
    emit({"error": kind, "detail": detail, **extra})
    log.error("%s: %s", kind, detail)
    return code
