"""The ranked read over HTTP: GET /v1/goals/prioritized against a web process of its own,
beside a raw ZREVRANGE of the same page from the same Redis (what no read can beat)."""

from __future__ import annotations

import http.client
from typing import Any

import orjson

from service.bench.plan import TARGETS
from service.bench.processes import free_port, goalstore_process, http_status, wait_for
from service.bench.stage import Stage
from service.bench.stats import percentiles, progress, ratio, timed

WARM_UP = 20  # requests before the timed ones: the connection and the server's code paths


def measure(stage: Stage, size: int, requests: int) -> dict[str, Any]:
    port = free_port()
    log = stage.work / f"web-{size}.log"
    with goalstore_process(["serve", "--port", str(port)], stage.env, log):
        wait_for("the web process", lambda: http_status(port, "/readyz") == 200)
        progress(
            f"{stage.backend}: GET /v1/goals/prioritized x{requests} at {size} goals, "
            "and raw ZREVRANGE"
        )
        return {"goals": size, **_read_and_baseline(stage, port, requests)}


def _read_and_baseline(stage: Stage, port: int, requests: int) -> dict[str, Any]:
    """Over one keep-alive connection, with the standard library's http.client: httpx
    spends about as long per request as the server does, which would time the client
    rather than the service."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get() -> dict[str, Any]:
        conn.request("GET", "/v1/goals/prioritized")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"bench: prioritized answered {response.status}: {body[:300]!r}")
        page: dict[str, Any] = orjson.loads(body)
        return page

    try:
        source = get().get("source")
        if source != "redis":
            raise RuntimeError(f"bench: prioritized read from {source}, not redis")
        for _ in range(WARM_UP):
            get()
        http_ = percentiles(timed(get, requests))
    finally:
        conn.close()
    ranked = stage.keys.ranked
    raw = percentiles(
        timed(lambda: stage.redis.zrevrange(ranked, 0, 19, withscores=True), requests)
    )
    return {
        "http_prioritized": http_,
        "raw_zrevrange": raw,
        "ratio_http_to_raw_p50": ratio(http_["p50_ms"], raw["p50_ms"]),
        "target_p95_ms": TARGETS["ranked_read_p95_ms"],
        "met": http_["p95_ms"] <= TARGETS["ranked_read_p95_ms"],
    }
