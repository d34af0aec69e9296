"""`goalstore mcp`: the MCP tools over stdio, for an agent that starts GoalStore itself
(docs/mcp.md). The agent's client configuration names the command and its environment.

Who the session acts as: the key in GOALSTORE_MCP_KEY, checked against
GOALSTORE_API_KEYS (its actor and scopes, as over HTTP), else the CLI's operator
(`--actor`, every tool, admin rights, as every other CLI command). With
GOALSTORE_REDIS_URL unset, `goalstore` (workers/cli.py) runs the embedded mode as
`goalstore serve` does: an in-process Redis and the workers as threads.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, Protocol

from service.auth import authenticate
from service.cli.output import EXIT_OK, EXIT_USAGE, fail
from service.runtime import Services

# Read here rather than in Settings: a secret of this one command's caller, not a knob
# of the service (the web app never reads it).
KEY_ENV = "GOALSTORE_MCP_KEY"


class Background(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...


# What workers/cli.py passes for the embedded mode: the services with an in-process
# Redis, and the workers to run beside the session (service/ does not import workers/).
Embed = Callable[[Services], tuple[Services, Background]]


def cmd_mcp(args: argparse.Namespace, services: Services) -> int:
    # Imported on use: the MCP SDK takes a second to import, which no other command needs.
    from service.mcp.server import Caller
    from service.mcp.stdio import serve_stdio

    presented = os.environ.get(KEY_ENV)
    if presented:
        key = authenticate(services.api_keys, presented)
        if key is None:
            return fail(EXIT_USAGE, "configuration",
                        f"{KEY_ENV} matches no key of GOALSTORE_API_KEYS")  # fmt: skip
        caller = Caller.of_key(key)
    else:
        caller = Caller.operator(args.actor)
    embed: Embed | None = args.embed
    background = None
    if services.redis is None and embed is not None:
        services, background = embed(services)
    services.goalstore.migrate()
    if background is not None:
        background.start()
    try:
        import anyio

        anyio.run(serve_stdio, services, caller)
    finally:
        if background is not None:
            background.stop()
    return EXIT_OK


def add_commands(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp", help="serve the MCP tools on stdin/stdout (an agent starts this; docs/mcp.md)"
    )
    mcp.set_defaults(run=cmd_mcp, embed=None)
