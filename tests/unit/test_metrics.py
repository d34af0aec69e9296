"""The metrics recorder (counts kept in a Redis hash) and how /metrics turns them into
Prometheus families."""

from __future__ import annotations

from typing import Any

import fakeredis
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service import metrics
from service.api.metrics import recorded_families
from service.metrics import (
    GOAL_BLOCKED_BY_BELIEF,
    GOALS_ADOPTED,
    SELECT_LATENCY,
    Recorder,
    parse_sample_key,
    sample_key,
)

KEY = "test:metrics"


def recorder_on(server: fakeredis.FakeServer) -> tuple[Recorder, fakeredis.FakeRedis]:
    redis = fakeredis.FakeRedis(server=server)
    recorder = Recorder()
    recorder.bind(redis, KEY)
    return recorder, redis


def exposed(recorded: dict[str, float]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples as a Prometheus server would read them from the /metrics text."""

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return recorded_families(recorded)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@given(st.text(min_size=0, max_size=20))
def test_a_sample_key_reads_back_whatever_the_label_value(value: str) -> None:
    """Quotes, backslashes and newlines in a label value survive the hash field."""
    key = sample_key("goal_blocked_by_belief_total", {"belief_id": value})

    assert ("goal_blocked_by_belief_total", {"belief_id": value}) == parse_sample_key(key)


def test_counts_from_two_processes_add_up_in_one_hash() -> None:
    """Two recorders (two processes) on one Redis: the hash holds the sum."""
    server = fakeredis.FakeServer()
    first, redis = recorder_on(server)
    second, _ = recorder_on(server)

    first.inc(GOALS_ADOPTED)
    second.inc(GOALS_ADOPTED)
    second.inc(GOAL_BLOCKED_BY_BELIEF, belief_id="safety.data")

    assert {
        b"goals_adopted_total": b"2",
        b'goal_blocked_by_belief_total{belief_id="safety.data"}': b"1",
    } == redis.hgetall(KEY)


def test_an_observation_lands_in_every_bucket_at_or_above_it() -> None:
    """Cumulative buckets, as Prometheus reads them: 3 ms counts in le=0.005 and up."""
    recorder, _ = recorder_on(fakeredis.FakeServer())

    recorder.observe(SELECT_LATENCY, 0.003)
    recorder.observe(SELECT_LATENCY, 0.2)
    samples = recorder.read()

    bucket = "goal_select_latency_seconds_bucket"
    assert 0 == samples.get(f'{bucket}{{le="0.0025"}}', 0)
    assert 1 == samples[f'{bucket}{{le="0.005"}}']
    assert 1 == samples[f'{bucket}{{le="0.1"}}']
    assert 2 == samples[f'{bucket}{{le="0.25"}}']
    assert 2 == samples[f'{bucket}{{le="+Inf"}}']
    assert 2 == samples["goal_select_latency_seconds_count"]
    assert abs(0.203 - samples["goal_select_latency_seconds_sum"]) < 1e-9


def test_counts_made_while_redis_is_away_are_sent_with_the_next_one() -> None:
    """Counting never fails the command; what Redis missed arrives later."""
    server = fakeredis.FakeServer()
    recorder, redis = recorder_on(server)
    recorder.retry_after_s = 0  # try Redis again at once
    server.connected = False

    recorder.inc(GOALS_ADOPTED)
    recorder.inc(GOALS_ADOPTED)
    server.connected = True
    recorder.inc(GOALS_ADOPTED)

    assert b"3" == redis.hget(KEY, "goals_adopted_total")


def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    """A Redis that hangs costs one timeout, not one per counted command."""
    server = fakeredis.FakeServer()
    recorder, redis = recorder_on(server)
    attempts = []
    real_evalsha = redis.evalsha  # what the recorder's script call sends

    def counting_evalsha(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return real_evalsha(*args, **kwargs)

    redis.evalsha = counting_evalsha  # type: ignore[method-assign]
    server.connected = False

    for _ in range(10):
        recorder.inc(GOALS_ADOPTED)

    assert 1 == len(attempts)
    assert {"goals_adopted_total": 10.0} == recorder._pending


def test_without_redis_counts_stay_in_the_process() -> None:
    """A recorder bound to no Redis keeps its counts in the process and reads them back."""
    recorder = Recorder()

    recorder.inc(GOALS_ADOPTED, by=2)

    assert {"goals_adopted_total": 2.0} == recorder.read()


def test_every_recorded_family_is_exposed_at_zero_before_anything_happened() -> None:
    """A fresh install shows the seed's counters at 0 rather than nothing."""
    samples = exposed({})

    assert 0 == samples[("goals_adopted_total", ())]
    assert 0 == samples[("goal_selected_total", ())]
    assert 0 == samples[("goal_prioritize_latency_seconds_count", ())]
    assert 0 == samples[("goal_prioritize_latency_seconds_bucket", (("le", "+Inf"),))]
    # Labelled counters have no series until a label value exists.
    assert not any(name == "goal_blocked_by_belief_total" for name, _ in samples)


def test_recorded_counts_are_exposed_with_their_labels() -> None:
    """Counts recorded with a label, and an observed latency, are exposed as samples carrying
    that label and the right histogram buckets."""
    recorder, _ = recorder_on(fakeredis.FakeServer())
    recorder.inc(GOAL_BLOCKED_BY_BELIEF, belief_id="b-1")
    recorder.inc(GOAL_BLOCKED_BY_BELIEF, belief_id="b-1")
    recorder.observe(SELECT_LATENCY, 0.003)

    samples = exposed(recorder.read())

    assert 2 == samples[("goal_blocked_by_belief_total", (("belief_id", "b-1"),))]
    assert 1 == samples[("goal_select_latency_seconds_bucket", (("le", "0.005"),))]
    assert 0 == samples[("goal_select_latency_seconds_bucket", (("le", "0.0025"),))]


def test_sample_names_cover_the_seed_metrics() -> None:
    """DESIGN §10's names, as users' dashboards expect them."""
    seed = {
        "goals_total", "goals_adopted_total", "goal_selected_total",
        "goal_blocked_by_belief_total", "goals_by_state",
        "goal_prioritize_latency_seconds_bucket",
    }  # fmt: skip
    assert seed <= metrics.SAMPLE_NAMES


def test_binding_another_redis_drops_counts_meant_for_the_previous_one() -> None:
    """Binding a Redis does not carry the counts kept before it into that Redis: it holds
    only what was counted after the binding."""
    recorder = Recorder()
    recorder.inc(GOALS_ADOPTED)  # no Redis yet: kept in the process
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())

    recorder.bind(redis, KEY)
    recorder.inc(GOALS_ADOPTED)

    assert b"1" == redis.hget(KEY, "goals_adopted_total")
