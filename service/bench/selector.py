"""One selector process of the selection benchmark:

    python -m service.bench.selector QUOTA BATCH GO_KEY [--ready READY_KEY]

It builds the services from the environment (GOALSTORE_*, as the bench sets them),
connects to the store and to Redis, says so with a word on the Redis list READY_KEY
(the bench waits for every selector's), waits for a word on GO_KEY (so that every
selector starts at once, imports and connections done), then selects until it has
emitted QUOTA goals, BATCH per call (select() for 1, select_many() otherwise), or until
nothing more is emitted. It prints one JSON object on stdout: {"emitted": [goal ids],
"seconds": time spent selecting}.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis import Redis

from service.commands import Context
from service.commands.selection import Selection
from service.runtime import build_services

GO_TIMEOUT_S = 120  # how long to wait for the start signal before starting anyway


class Selects(Protocol):
    def select(self, ctx: Context) -> Selection: ...

    def select_many(self, ctx: Context, want: int) -> list[Selection]: ...


@dataclass(frozen=True)
class Args:
    quota: int  # goals to emit
    batch: int  # goals asked for per call
    go: str  # the Redis list whose first word starts the run
    ready: str | None = None  # the Redis list told once this process is connected


def parse_args(argv: Sequence[str]) -> Args:
    parser = argparse.ArgumentParser(prog="python -m service.bench.selector")
    parser.add_argument("quota", type=int, help="goals to emit")
    parser.add_argument("batch", type=int, help="goals per call: 1 = select(), else select_many()")
    parser.add_argument("go", help="Redis list to wait on (BLPOP) before starting")
    parser.add_argument("--ready", help="Redis list to RPUSH a word on once connected")
    ns = parser.parse_args(argv)
    return Args(quota=ns.quota, batch=ns.batch, go=ns.go, ready=ns.ready)


def select_until(selector: Selects, quota: int, batch: int) -> list[str]:
    """The ids of the goals emitted, at most `quota`, in the order they were emitted."""
    ctx = Context(actor="bench")
    emitted: list[str] = []
    while len(emitted) < quota:
        want = min(batch, quota - len(emitted))
        # one at a time is select(), the path of POST /v1/goals/select and `goalstore select`
        selections = [selector.select(ctx)] if want == 1 else selector.select_many(ctx, want)
        if not selections or selections[0].mode != "emitted":
            break
        emitted += [s.goal.id for s in selections if s.goal is not None]
    return emitted


def report(emitted: list[str], seconds: float) -> bytes:
    """The line the bench reads back from this process's stdout."""
    return orjson.dumps({"emitted": emitted, "seconds": seconds}) + b"\n"


def wait_for_go(redis: Redis, go: str) -> None:
    """Block until a word arrives on `go`, or GO_TIMEOUT_S passed. BLPOP a second at a
    time: the services' client gives up on a reply after 2 s (socket_timeout)."""
    deadline = time.monotonic() + GO_TIMEOUT_S
    while redis.blpop([go], timeout=1) is None and time.monotonic() < deadline:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    services = build_services()
    if services.redis is None:
        print("selector: GOALSTORE_REDIS_URL is unset", file=sys.stderr)
        return 2
    # Built, and the store's first connection made, before the start: the run times
    # selecting, not starting up.
    selector = services.selector
    if not services.db.answers():
        print(f"selector: {services.db.shown} does not answer", file=sys.stderr)
        return 1
    if args.ready is not None:
        services.redis.rpush(args.ready, "ready")
    wait_for_go(services.redis, args.go)
    started = time.perf_counter()
    emitted = select_until(selector, args.quota, args.batch)
    sys.stdout.buffer.write(report(emitted, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
