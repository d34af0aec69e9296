"""The console's ranking page (GET /ui/) as a browser asks for it, and its refresh (GET
/ui/board, gzip accepted, as htmx fetches it every few seconds), against one web process
of its own (real uvicorn), beside REST's ranked read in the same run as the baseline.

The page's time is the request's on loopback: the server renders it (the board's reads
and every shown goal's explanation included) and nothing else is between. What a refresh
moves is the compressed body's size."""

from __future__ import annotations

import http.client
from typing import Any

from service.bench.plan import TARGETS
from service.bench.processes import free_port, goalstore_process, http_status, wait_for
from service.bench.stage import Stage
from service.bench.stats import percentiles, progress, ratio, timed

WARM_UP = 20


def measure(stage: Stage, size: int, requests: int) -> dict[str, Any]:
    port = free_port()
    log = stage.work / "web-console.log"
    with goalstore_process(["serve", "--port", str(port)], stage.env, log):
        wait_for("the web process", lambda: http_status(port, "/readyz") == 200)
        progress(f"{stage.backend}: the console's ranking page x{requests} at {size} goals")
        return {"goals": size, **_page_and_rest(port, requests)}


def _get(conn: http.client.HTTPConnection, path: str, **headers: str) -> tuple[bytes, str]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"bench: GET {path} answered {response.status}: {body[:200]!r}")
    return body, response.getheader("content-encoding") or ""


def _page_and_rest(port: int, requests: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        page, _ = _get(conn, "/ui/")
        if b'data-source="redis"' not in page:
            raise RuntimeError("bench: the ranking page did not read Redis")
        refresh, encoding = _get(conn, "/ui/board", **{"Accept-Encoding": "gzip"})
        for _ in range(WARM_UP):
            _get(conn, "/ui/")
            _get(conn, "/v1/goals/prioritized")
        shown = percentiles(timed(lambda: _get(conn, "/ui/"), requests))
        conn.close()  # idle past uvicorn's keep-alive while the page was timed: a fresh one
        _get(conn, "/v1/goals/prioritized")
        rest = percentiles(timed(lambda: _get(conn, "/v1/goals/prioritized"), requests))
    finally:
        conn.close()
    target, most = TARGETS["console_ranking_page_p95_ms"], TARGETS["console_refresh_bytes"]
    return {
        "ranking_page": shown,
        "rest_prioritized": rest,
        "ratio_page_to_rest_p50": ratio(shown["p50_ms"], rest["p50_ms"]),
        "page_bytes": len(page),
        "refresh_bytes": len(refresh),
        "refresh_encoding": encoding,
        "target_p95_ms": target,
        "target_refresh_bytes": most,
        "met": shown["p95_ms"] <= target and len(refresh) <= most,
    }
