"""The MCP tool catalogue and its error mapping, without a transport: schemas come from
the REST models, hints follow scopes, problems are REST's."""

from __future__ import annotations

import anyio
import pytest
from pydantic import ValidationError

from service.api.errors import domain_problem_body
from service.auth import Scope, parse_api_keys
from service.domain.errors import VersionConflict
from service.domain.inputs import GoalCreate
from service.mcp.errors import ScopeMissing, problem_of, tool_error
from service.mcp.server import Caller, listed
from service.mcp.stdio import UNREADABLE, Utf8Lines
from service.mcp.tools import TOOLS


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_schemas_are_the_models(tool: object) -> None:
    """A tool's input and output schemas are its models' JSON Schema, nothing written by hand."""
    from service.mcp.tools import ToolSpec

    assert isinstance(tool, ToolSpec)
    shown = listed(tool)
    assert tool.args.model_json_schema() == shown.input_schema
    assert tool.result.model_json_schema(mode="serialization") == shown.output_schema
    assert "object" == shown.input_schema["type"] == shown.output_schema["type"]


def test_read_tools_are_exactly_the_read_only_ones() -> None:
    """The tools a read key sees are the ones hinted read-only; none of them destroys."""
    read = {tool.name for tool in TOOLS if tool.scope is Scope.READ}
    hinted = {tool.name for tool in TOOLS if tool.read_only}
    assert read == hinted
    assert not any(tool.destructive for tool in TOOLS if tool.read_only)
    assert {"propose_goal", "update_goal", "adopt_goal"} <= {t.name for t in TOOLS} - read


def test_callers_hold_the_scopes_their_key_implies() -> None:
    """A write key's caller may read and write, not execute; an admin key may do all."""
    writer, admin = parse_api_keys("w:write:" + "k" * 16 + ",a:admin:" + "j" * 16)
    assert {Scope.READ, Scope.WRITE} == Caller.of_key(writer).scopes
    assert (set(Scope), True) == (set(Caller.of_key(admin).scopes), Caller.of_key(admin).admin)
    assert Caller.operator("cli").allows(Scope.EXECUTE)


def test_a_domain_error_is_the_problem_rest_gives() -> None:
    """The tool error for a command error carries REST's body: type, title, status,
    detail and the extension fields."""
    exc = VersionConflict("g-1", expected_version=1, current_version=3)
    result = tool_error(exc, "tools/call/update_goal")
    assert result.is_error
    assert domain_problem_body(exc, "tools/call/update_goal") == result.structured_content
    assert 3 == (result.structured_content or {})["current_version"]


def test_validation_errors_name_the_argument_and_echo_no_input() -> None:
    """Pydantic's errors become REST's invalid-request problem, each located under
    `arguments`, without echoing the (possibly huge) input."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate({"text": "t", "category": "exploration", "value": "x" * 999,
                                   "effort": 0, "risk": 0})  # fmt: skip
    problem = problem_of(caught.value, "tools/call/propose_goal")
    assert (422, ["arguments", "value"]) == (problem["status"], problem["errors"][0]["loc"])
    assert "x" * 999 not in str(problem)


def test_an_unexpected_error_is_a_bare_500() -> None:
    """An error no rule expects is answered as REST answers it: 500, no detail, no trace."""
    problem = problem_of(RuntimeError("secret path /etc/x"), "tools/call/get_goal")
    assert (500, None) == (problem["status"], problem["detail"])
    assert 403 == problem_of(ScopeMissing(Scope.WRITE), "i")["status"]


def test_lines_that_are_not_utf8_become_a_refusal_or_nothing() -> None:
    """A request line that is not UTF-8 becomes the request the server refuses, under its
    id; a notification (no id) or unreadable JSON is dropped; good lines pass as text."""

    class Lines:
        def __init__(self, lines: list[bytes]) -> None:
            self.lines = lines

        def __aiter__(self) -> Lines:
            return self

        async def __anext__(self) -> bytes:
            if not self.lines:
                raise StopAsyncIteration
            return self.lines.pop(0)

    async def read(lines: list[bytes]) -> list[str]:
        return [line async for line in Utf8Lines(Lines(lines))]  # type: ignore[arg-type]

    got = anyio.run(read, [b'{"id": 4, "method": "x", "p": "\xff"}\n', b'{"method": "\xfe"}\n',
                           b"\xff not json\n", b'{"id": 5}\n'])  # fmt: skip
    assert [f'{{"jsonrpc":"2.0","id":4,"method":"{UNREADABLE}"}}', '{"id": 5}\n'] == got
