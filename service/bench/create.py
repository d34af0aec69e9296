"""POST /v1/goals by concurrent writers: CREATE_CLIENTS threads of this process, each over
one keep-alive `http.client` connection to one of the backend's web processes (one on
SQLite, where every process shares one file's write lock; three on PostgreSQL, as three
hosts would run). Each sends its share of the requests one after another; all start on
one barrier. Timed per request, from sending it to reading the whole answer.

Afterwards the rows are counted in the store (every 201 a goal written, nothing more) and
the ledger is verified (`goalstore ledger verify`). The client's own CPU time is reported
beside the run's: well under one core means the writers' GIL is not what limits the run.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

import orjson

from service.bench.dataset import CATEGORIES
from service.bench.plan import CREATE_CLIENTS, POSTGRESQL, SQLITE, TARGETS
from service.bench.processes import free_port, goalstore_process, http_status, wait_for
from service.bench.stage import Stage
from service.bench.stats import percentiles, progress
from service.commands.ledger import verify_ledger

ID_PREFIX = "bench-create-"  # the timed run's goals
WARM_ID_PREFIX = "bench-warm-"  # one untimed request per connection first
CREATED = 201


def measure(stage: Stage, webs: int, requests: int) -> dict[str, Any]:
    progress(
        f"{stage.backend}: create: {CREATE_CLIENTS} clients POST /v1/goals x{requests} "
        f"over {webs} web process{'es' if webs > 1 else ''}"
    )
    ports = [free_port() for _ in range(webs)]
    with ExitStack() as processes:
        for n, port in enumerate(ports):
            args, log = ["serve", "--port", str(port)], stage.work / f"create-web-{n}.log"
            processes.enter_context(goalstore_process(args, stage.env, log))
        wait_for("the web processes", lambda: all(http_status(p, "/readyz") == 200 for p in ports))
        run = _drive(ports, requests)
    rows = _count(stage, ID_PREFIX)
    verifying = time.perf_counter()
    ledger = verify_ledger(stage.db)
    verified_in = time.perf_counter() - verifying
    statuses = run.pop("statuses")
    created = statuses.get(CREATED, 0)
    latency = run.pop("latency")
    target = TARGETS["create_p99_ms"]
    return {
        "webs": webs, "clients": CREATE_CLIENTS, "requests": requests, "created": created,
        "failed": {str(code): n for code, n in sorted(statuses.items()) if code != CREATED},
        "rows_written": rows, "all_written": created == rows == requests,
        "ledger_ok": ledger.ok, "ledger_events": ledger.rows,
        "ledger_verified_in_s": round(verified_in, 3),
        **run, "latency": latency, "target_p99_ms": target,
        "met": latency["p99_ms"] <= target and created == rows == requests and ledger.ok,
    }  # fmt: skip


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The create section: each backend's run, and PostgreSQL's throughput over SQLite's."""
    out: dict[str, Any] = dict(runs)
    if SQLITE in runs and POSTGRESQL in runs:
        ratio = runs[POSTGRESQL]["requests_per_s"] / max(runs[SQLITE]["requests_per_s"], 1e-9)
        target = TARGETS["create_postgresql_over_sqlite_throughput"]
        out["postgresql_over_sqlite_throughput"] = {
            "ratio": round(ratio, 2), "target_ratio": target, "met": ratio >= target,
        }  # fmt: skip
    return out


def _bodies(prefix: str, count: int) -> list[bytes]:
    """Create bodies, encoded before the clock starts."""
    return [orjson.dumps(_spec(f"{prefix}{n}", n)) for n in range(count)]


def _spec(goal_id: str, n: int) -> dict[str, Any]:
    return {
        "id": goal_id, "text": f"bench created goal {n}", "category": CATEGORIES[n % 4],
        "value": (n % 10) / 10, "effort": (n % 7) / 7, "risk": (n % 5) / 5,
    }  # fmt: skip


def _drive(ports: list[int], requests: int) -> dict[str, Any]:
    """The timed run: client k sends requests k, k + CREATE_CLIENTS, … to web k % webs."""
    bodies = _bodies(ID_PREFIX, requests)
    warm = _bodies(WARM_ID_PREFIX, CREATE_CLIENTS)
    conns = [
        http.client.HTTPConnection("127.0.0.1", ports[k % len(ports)], timeout=60)
        for k in range(CREATE_CLIENTS)
    ]
    samples: list[list[float]] = [[] for _ in conns]
    statuses: list[Counter[int]] = [Counter() for _ in conns]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(conns) + 1)
    headers = {"Content-Type": "application/json"}

    def post(conn: http.client.HTTPConnection, body: bytes) -> int:
        conn.request("POST", "/v1/goals", body, headers)
        response = conn.getresponse()
        response.read()
        return response.status

    def client(k: int) -> None:
        conn = conns[k]
        try:
            post(conn, warm[k])  # the connection made, the server's paths warm
        except BaseException as exc:
            errors.append(exc)
        barrier.wait()
        try:
            for body in bodies[k :: len(conns)]:
                start = time.perf_counter()
                status = post(conn, body)
                samples[k].append(time.perf_counter() - start)
                statuses[k][status] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(len(conns))]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
        cpu, started = time.process_time(), time.perf_counter()
        for thread in threads:
            thread.join()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        for conn in conns:
            conn.close()
    if errors:
        raise RuntimeError(f"bench: a create client failed: {errors[0]!r}") from errors[0]
    total: Counter[int] = sum(statuses, Counter())
    return {
        "seconds": round(seconds, 3),
        "requests_per_s": round(total[CREATED] / seconds, 1),
        # the writers' own CPU, as a share of one core over the run
        "client_cpu_share": round(cpu / seconds, 2),
        "latency": percentiles([s for per in samples for s in per], p99=True),
        "statuses": total,
    }


def _count(stage: Stage, prefix: str) -> int:
    conn = stage.db.connection()
    row = conn.execute("SELECT count(*) FROM goals WHERE id LIKE ?", (f"{prefix}%",)).fetchone()
    return int(row[0])
