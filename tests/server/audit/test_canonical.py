"""Canonical JSON and redaction: hashes stay stable (golden vectors), secrets never reach a record."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from server.audit.canonical import _encode, canonical_json, chain_hash
from server.audit.redact import REDACTED, Redactor


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": [True, None, "x"]}, '{"a":[true,null,"x"],"b":1}', id="sorted-keys-no-space"),
        pytest.param({"n": 1e16}, '{"n":10000000000000000}', id="big-float-positional"),
        pytest.param({"n": 1e21}, '{"n":1e+21}', id="huge-float-exponent"),
        pytest.param({"n": 1e-7}, '{"n":1e-7}', id="tiny-float-exponent"),
        pytest.param({"n": 0.000001}, '{"n":0.000001}', id="small-float-positional"),
        pytest.param({"n": 3.0}, '{"n":3}', id="integral-float"),
        pytest.param({"n": -0.0}, '{"n":0}', id="negative-zero"),
        pytest.param({"n": 123.456}, '{"n":123.456}', id="plain-float"),
        pytest.param({"s": 'é\n\u2028"\\'}, '{"s":"é\\n\u2028\\"\\\\"}', id="utf8-and-escapes"),
        pytest.param({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}', id="utf16-key-order"),
    ],
)
def test_canonical_json_matches_golden_vectors(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected.encode("utf-8")
    assert "".join(_encode(value)).encode("utf-8") == expected.encode("utf-8")


def test_a_golden_record_hashes_to_the_same_value_forever() -> None:
    record = {"v": 1, "seq": 1, "kind": "outcome", "status": "allowed", "cost": 2.5, "latency_us": 812}
    body = canonical_json(record)
    assert body == b'{"cost":2.5,"kind":"outcome","latency_us":812,"seq":1,"status":"allowed","v":1}'
    assert chain_hash("0" * 64, body) == hashlib.sha256(b"0" * 64 + b"\n" + body).hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param({1: "x"}, id="non-string-key"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param(object(), id="object"),
    ],
)
def test_values_json_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json(value)


SCHEMA = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "pin": {"type": "string", "format": "password"},
        "nested": {"type": "object", "properties": {"otp": {"type": "string", "writeOnly": True}}},
        "list": {"type": "array", "items": {"type": "string", "format": "password"}},
    },
}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({"pin": "1234"}, {"pin": REDACTED}, id="format-password"),
        pytest.param({"nested": {"otp": "999"}}, {"nested": {"otp": REDACTED}}, id="write-only-nested"),
        pytest.param({"list": ["a", "b"]}, {"list": [REDACTED, REDACTED]}, id="password-items"),
        pytest.param({"api_key": "k", "Authorization": "Bearer x"}, {"api_key": REDACTED, "Authorization": REDACTED}),
        pytest.param({"user": "ann", "x": {"client_secret": "s"}}, {"user": "ann", "x": {"client_secret": REDACTED}}),
        pytest.param({"audit_tag": "t"}, {"audit_tag": REDACTED}, id="configured-name"),
    ],
)
def test_secrets_are_redacted_by_name_and_by_schema(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    redactor = Redactor(extra_names=["audit_tag"])
    assert redactor.arguments(arguments, SCHEMA) == expected


def test_injected_credential_values_are_scrubbed_wherever_they_appear() -> None:
    from server.logs import SECRETS

    SECRETS.add("canary-secret-value")
    try:
        stored = Redactor().arguments({"note": "token is canary-secret-value ok"}, None)
    finally:
        SECRETS.discard("canary-secret-value")
    assert stored == {"note": "token is [redacted] ok"}
