"""GET /metrics: every process's counts (kept in Redis) and exact figures from the store.

See service/metrics.py for the names and why the counts live in Redis. A scrape
reads the metrics hash, the queue lengths and the cache's meta from Redis, and
goals, tasks and the outbox from SQLite in one read transaction. Without Redis
the store's figures are still served, with `goalstore_redis_up 0`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from service import commands, metrics
from service.metrics import Spec, parse_sample_key
from service.runtime import Services

router = APIRouter()
log = logging.getLogger(__name__)


class GoalStoreCollector:
    """A prometheus_client collector computing every family at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        gs = self.services.goalstore
        now = commands.utcnow()
        figures = gs.store_figures(now)
        observed = gs.redis_figures()
        if observed is not None:
            yield from recorded_families(observed.recorded)

        yield _gauge(metrics.GOALS_TOTAL, {(c, s): n for (c, s), n in figures.goals.items()})
        yield _gauge(metrics.GOALS_BY_STATE, {(s,): n for s, n in figures.goals_by_state.items()})
        yield _gauge(metrics.TASKS, {(s,): n for s, n in figures.tasks.items()})
        yield _gauge(metrics.OUTBOX_PENDING, {(): figures.outbox_pending})
        yield _gauge(metrics.OUTBOX_LAG, {(): figures.outbox_lag_s})
        yield _gauge(metrics.REDIS_UP, {(): float(observed is not None)})
        if observed is not None:
            yield _gauge(metrics.QUEUE_DEPTH, {(q,): n for q, n in observed.queue_depths.items()})
            yield _gauge(metrics.CACHE_WARM, {(): float(observed.cache_warm)})
            staleness = observed.cache_staleness_s(now)
            if staleness is not None:
                yield _gauge(metrics.CACHE_STALENESS, {(): staleness})


def recorded_families(recorded: dict[str, float]) -> Iterator[Metric]:
    """The families of the counts kept in Redis. Unlabelled ones are always present
    (at zero before anything was counted), so a dashboard never sees them missing."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for key, value in recorded.items():
        parsed = parse_sample_key(key)
        if parsed is not None:
            samples[parsed[0]].append((parsed[1], value))
    for spec in metrics.RECORDED:
        if spec.kind == "counter":
            yield _counter(spec, samples[f"{spec.name}_total"])
        else:
            yield _histogram(spec, samples)


def _counter(spec: Spec, found: list[tuple[dict[str, str], float]]) -> Metric:
    family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    if not found and not spec.labels:
        found = [({}, 0.0)]
    for labels, value in sorted(found, key=lambda item: sorted(item[0].items())):
        family.add_metric([labels.get(name, "") for name in spec.labels], value)
    return family


def _histogram(spec: Spec, samples: dict[str, list[tuple[dict[str, str], float]]]) -> Metric:
    family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
    series: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = defaultdict(float)

    def key_of(labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in spec.labels)

    for labels, value in samples[f"{spec.name}_bucket"]:
        series[key_of(labels)][labels.get("le", "+Inf")] = value
    for labels, value in samples[f"{spec.name}_sum"]:
        sums[key_of(labels)] = value
    if not series and not spec.labels:
        series[()] = {}
    bounds = [metrics.le_text(b) for b in (*metrics.LATENCY_BUCKETS, float("inf"))]
    for key, buckets in sorted(series.items()):
        family.add_metric(
            list(key), [(b, buckets.get(b, 0.0)) for b in bounds], sum_value=sums[key]
        )
    return family


def _gauge(spec: Spec, values: dict[tuple[str, ...], float]) -> Metric:
    family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


def registry_for(services: Services) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GoalStoreCollector(services))
    return registry


@router.get("/metrics", tags=["health"], response_class=Response)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics (text format 0.0.4) of every GoalStore process; no auth."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
