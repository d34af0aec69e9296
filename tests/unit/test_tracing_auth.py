"""Unit tests for W3C trace context parsing and API-key authentication."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from service.auth import ApiKey, Scope, anonymous_exposure, authenticate, parse_api_keys
from service.tracing import TraceContext, continue_trace, new_trace, parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"

KEY_ALICE = "0123456789abcdef"
KEY_OPS = "fedcba9876543210-ops"
KEYS_SPEC = f"alice:read+write:{KEY_ALICE},ops:admin:{KEY_OPS}"


# --- traceparent -----------------------------------------------------------------------


def test_parse_valid_traceparent() -> None:
    """A well-formed traceparent gives its trace id, span id and sampled flag."""
    assert TraceContext(TRACE_ID, SPAN_ID, True) == parse_traceparent(VALID)


def test_parse_traceparent_unsampled_flag() -> None:
    """Flags 00 means not sampled."""
    parsed = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00")

    assert parsed is not None
    assert False is parsed.sampled


def test_parse_traceparent_reads_sampled_bit_only() -> None:
    """Only the lowest flag bit is 'sampled': 03 is sampled, 02 is not."""
    sampled = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-03")
    unsampled = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-02")

    assert sampled is not None and unsampled is not None
    assert (True, False) == (sampled.sampled, unsampled.sampled)


def test_parse_traceparent_tolerates_surrounding_whitespace() -> None:
    """Leading and trailing whitespace around the header is ignored."""
    assert TraceContext(TRACE_ID, SPAN_ID, True) == parse_traceparent(f"  {VALID}\t")


def test_traceparent_property_round_trips() -> None:
    """A context's traceparent parses back to the same context."""
    context = TraceContext(TRACE_ID, SPAN_ID, False)

    assert f"00-{TRACE_ID}-{SPAN_ID}-00" == context.traceparent
    assert context == parse_traceparent(context.traceparent)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE_ID}-{SPAN_ID}",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
        f"0-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00-{TRACE_ID}0-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID[:-1]}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"00-{TRACE_ID}-{SPAN_ID}-zz",
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "no-flags",
        "extra-field",
        "short-version",
        "short-trace",
        "long-trace",
        "short-span",
        "short-flags",
        "non-hex-trace",
        "underscores",
        "non-hex-flags",
    ],
)
def test_malformed_traceparent_is_ignored(header: str | None) -> None:
    """A missing or malformed traceparent parses to None."""
    assert None is parse_traceparent(header)


def test_all_zero_trace_id_is_invalid() -> None:
    """An all-zero trace id is invalid per the spec."""
    assert None is parse_traceparent(f"00-{'0' * 32}-{SPAN_ID}-01")


def test_all_zero_span_id_is_invalid() -> None:
    """An all-zero parent (span) id is invalid per the spec."""
    assert None is parse_traceparent(f"00-{TRACE_ID}-{'0' * 16}-01")


def test_version_ff_is_invalid() -> None:
    """Version ff is forbidden per the spec."""
    assert None is parse_traceparent(f"ff-{TRACE_ID}-{SPAN_ID}-01")


def test_continue_trace_keeps_trace_id_with_new_span() -> None:
    """Continuing a caller's trace keeps its trace id and sampling, with a fresh span id."""
    context = continue_trace(f"00-{TRACE_ID}-{SPAN_ID}-00")

    assert TRACE_ID == context.trace_id
    assert SPAN_ID != context.span_id
    assert re.fullmatch(r"[0-9a-f]{16}", context.span_id) is not None
    assert False is context.sampled


def test_continue_trace_spans_differ_per_call() -> None:
    """Two continuations of the same parent get different span ids."""
    spans = {continue_trace(VALID).span_id for _ in range(20)}

    assert 20 == len(spans)


@pytest.mark.parametrize("header", [None, "", "garbage", f"ff-{TRACE_ID}-{SPAN_ID}-01"])
def test_continue_trace_without_valid_parent_starts_a_new_trace(header: str | None) -> None:
    """Without a usable traceparent a new, sampled trace is started."""
    context = continue_trace(header)

    assert TRACE_ID != context.trace_id
    assert re.fullmatch(r"[0-9a-f]{32}", context.trace_id) is not None
    assert re.fullmatch(r"[0-9a-f]{16}", context.span_id) is not None
    assert True is context.sampled


def test_new_trace_ids_are_valid_and_parse() -> None:
    """A new trace's traceparent is one the parser accepts."""
    context = new_trace()

    assert context == parse_traceparent(context.traceparent)


def test_child_span_stays_in_trace() -> None:
    """child() keeps trace id and sampling but changes the span id."""
    parent = TraceContext(TRACE_ID, SPAN_ID, False)

    child = parent.child()

    assert (TRACE_ID, False) == (child.trace_id, child.sampled)
    assert SPAN_ID != child.span_id


# --- API keys ----------------------------------------------------------------------------


def test_parse_api_keys_reads_actors_and_scopes() -> None:
    """Each entry gives an actor, its scopes, and the sha256 of its key."""
    keys = parse_api_keys(KEYS_SPEC)

    assert [
        ApiKey(
            "alice",
            frozenset({Scope.READ, Scope.WRITE}),
            hashlib.sha256(b"0123456789abcdef").digest(),
        ),
        ApiKey("ops", frozenset({Scope.ADMIN}), hashlib.sha256(b"fedcba9876543210-ops").digest()),
    ] == keys


def test_parse_api_keys_does_not_keep_the_key() -> None:
    """The parsed key keeps only a digest, never the key text."""
    (key,) = parse_api_keys(f"alice:read:{KEY_ALICE}")

    assert KEY_ALICE.encode() != key.digest
    assert KEY_ALICE not in repr(key)


@pytest.mark.parametrize("spec", [None, "", " ", ",", " , ,"])
def test_parse_api_keys_empty_spec_gives_no_keys(spec: str | None) -> None:
    """An unset or blank spec means no keys."""
    assert [] == parse_api_keys(spec)


def test_parse_api_keys_tolerates_spaces_and_trailing_comma() -> None:
    """Whitespace around entries and a trailing comma are ignored."""
    keys = parse_api_keys(f" alice:read:{KEY_ALICE} , ops:admin:{KEY_OPS} ,")

    assert ["alice", "ops"] == [key.actor for key in keys]


def test_parse_api_keys_key_may_contain_colons() -> None:
    """Everything after the second colon is the key, colons included."""
    (key,) = parse_api_keys("alice:read:abc:def:ghi:jkl:mnop")

    assert hashlib.sha256(b"abc:def:ghi:jkl:mnop").digest() == key.digest


@pytest.mark.parametrize(
    ("spec", "entry"),
    [
        (f":read:{KEY_ALICE}", 1),
        (f"alice::{KEY_ALICE}", 1),
        (f"alice:{KEY_ALICE}", 1),
        (f"alice:superuser:{KEY_ALICE}", 1),
        (f"alice:read+delete:{KEY_ALICE}", 1),
        (f"alice:READ:{KEY_ALICE}", 1),
        ("alice:read:short", 1),
        ("alice:read:", 1),
        ("alice", 1),
        (f"alice:read:{KEY_ALICE},ops:admin:0123456789abcde", 2),
        (f"alice:read:{KEY_ALICE},ops:root:{KEY_OPS}", 2),
    ],
)
def test_parse_api_keys_rejects_bad_entries(spec: str, entry: int) -> None:
    """A bad entry is a ValueError naming its position and the expected form."""
    with pytest.raises(ValueError) as caught:
        parse_api_keys(spec)

    message = str(caught.value)
    assert f"GOALSTORE_API_KEYS entry {entry} must be actor:scope[+scope]:key" in message
    assert "at least 16 characters" in message


def test_bad_entry_message_does_not_echo_the_key() -> None:
    """The error for a bad entry does not repeat the secret it contains."""
    with pytest.raises(ValueError) as caught:
        parse_api_keys("alice:sudo:a-secret-key-1234567890")

    assert "a-secret-key-1234567890" not in str(caught.value)


def test_key_of_exactly_16_characters_is_accepted() -> None:
    """16 characters is long enough for a key."""
    assert 1 == len(parse_api_keys("alice:read:0123456789abcdef"))


def test_authenticate_finds_the_matching_key() -> None:
    """The presented key selects its own entry."""
    keys = parse_api_keys(KEYS_SPEC)

    alice = authenticate(keys, KEY_ALICE)
    ops = authenticate(keys, KEY_OPS)

    assert alice is not None and ops is not None
    assert ("alice", "ops") == (alice.actor, ops.actor)


@pytest.mark.parametrize(
    "presented",
    [None, "", "wrong-key-000000000", KEY_ALICE.upper(), KEY_ALICE + " ", KEY_ALICE[:-1]],
)
def test_authenticate_unknown_or_missing_key_is_none(presented: str | None) -> None:
    """A wrong, near-miss or missing key authenticates no one."""
    assert None is authenticate(parse_api_keys(KEYS_SPEC), presented)


def test_authenticate_with_no_keys_is_none() -> None:
    """With no keys configured nothing authenticates."""
    assert None is authenticate([], KEY_ALICE)


FOUR_KEYS = [f"actor{n}:read:key-number-{n}-0123456789" for n in range(4)]


@pytest.mark.parametrize(
    "presented",
    ["key-number-0-0123456789", "key-number-2-0123456789", "key-number-3-0123456789",
     "not-a-configured-key-01234"],
)  # fmt: skip
def test_authenticate_compares_against_every_key(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever key matches (the first, one between, the last) or none, every configured
    key is compared once with hmac.compare_digest: no early exit whose timing would tell
    how far down the list a key is, and no `==` on key material."""
    keys = parse_api_keys(",".join(FOUR_KEYS))
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    authenticate(keys, presented)

    assert [key.digest for key in keys] == compared


# --- scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "asked", "allowed"),
    [
        ({Scope.ADMIN}, Scope.ADMIN, True),
        ({Scope.ADMIN}, Scope.WRITE, True),
        ({Scope.ADMIN}, Scope.READ, True),
        ({Scope.WRITE}, Scope.WRITE, True),
        ({Scope.WRITE}, Scope.READ, True),
        ({Scope.WRITE}, Scope.ADMIN, False),
        ({Scope.READ}, Scope.READ, True),
        ({Scope.READ}, Scope.WRITE, False),
        ({Scope.READ}, Scope.ADMIN, False),
        ({Scope.READ, Scope.WRITE}, Scope.ADMIN, False),
        ({Scope.READ, Scope.WRITE}, Scope.WRITE, True),
        ({Scope.ADMIN}, Scope.EXECUTE, True),
        ({Scope.EXECUTE}, Scope.EXECUTE, True),
        ({Scope.EXECUTE}, Scope.READ, True),
        ({Scope.EXECUTE}, Scope.WRITE, False),
        ({Scope.EXECUTE}, Scope.ADMIN, False),
        ({Scope.WRITE}, Scope.EXECUTE, False),
        ({Scope.READ, Scope.WRITE}, Scope.EXECUTE, False),
        ({Scope.READ}, Scope.EXECUTE, False),
    ],
)
def test_scope_implication(held: set[Scope], asked: Scope, allowed: bool) -> None:
    """admin implies every scope; write and execute each imply read and not each other;
    read implies only read."""
    key = ApiKey("someone", frozenset(held), b"")

    assert allowed == key.allows(asked)


def test_only_an_admin_key_acts_as_admin() -> None:
    """A key acts with admin rights (any goal, whoever owns it) only with the admin scope."""
    keys = parse_api_keys(
        f"ops:admin:{KEY_OPS},alice:read+write+execute:{KEY_ALICE},v:read:viewer-key-0123456"
    )

    assert [True, False, False] == [key.admin for key in keys]


def test_parse_api_keys_reads_the_execute_scope() -> None:
    """`execute`, the scheduler's scope, is a scope of its own."""
    (key,) = parse_api_keys(f"scheduler:execute:{KEY_ALICE}")

    assert frozenset({Scope.EXECUTE}) == key.scopes


def test_parsed_read_only_key_cannot_write() -> None:
    """A key parsed with only read may read but not write."""
    (key,) = parse_api_keys(f"viewer:read:{KEY_ALICE}")

    assert (True, False) == (key.allows(Scope.READ), key.allows(Scope.WRITE))


def test_uppercase_ids_are_not_a_valid_traceparent() -> None:
    """W3C ids are lowercase hex; an uppercase header is ignored, as the spec says."""
    header = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"

    assert parse_traceparent(header) is None


def test_a_future_version_with_more_fields_is_understood() -> None:
    """A later traceparent version may append fields; the known ones are still read."""
    header = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"

    parsed = parse_traceparent(header)

    assert parsed is not None
    assert "4bf92f3577b34da6a3ce929d0e0e4736" == parsed.trace_id


def test_version_00_with_extra_fields_is_invalid() -> None:
    """Version 00 has exactly four fields."""
    assert parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x") is None


def test_the_same_key_for_two_actors_is_refused() -> None:
    """One key naming two actors would make the ledger's actor ambiguous."""
    with pytest.raises(ValueError, match="entry 2 repeats an earlier key"):
        parse_api_keys("alice:read:same-key-0123456789,bob:admin:same-key-0123456789")


@pytest.mark.parametrize(
    ("host", "keys", "allow", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("127.0.0.2", False, False, False),
        ("::1", False, False, False),
        ("[::1]", False, False, False),
        ("localhost", False, False, False),
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("10.1.2.3", False, False, True),
        ("goalstore.internal", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_a_keyless_server_is_refused_beyond_loopback(
    host: str, keys: bool, allow: bool, refused: bool
) -> None:
    """Without keys only loopback serves anonymously, unless anonymity is asked for; a
    host name counts as the network (it may resolve anywhere)."""
    configured = parse_api_keys(f"ops:admin:{'k' * 20}") if keys else []
    refusal = anonymous_exposure(host, configured, allow)
    assert refused == (refusal is not None)
    if refusal is not None:
        assert "GOALSTORE_API_KEYS" in refusal and "GOALSTORE_ALLOW_ANONYMOUS" in refusal
