"""The encrypted payload of one credential row, bound to where it may be used.

The row's id, its owner (a principal id, or "" for shared) and the upstream origin it may be
sent to are sealed *inside* the Fernet token next to the secret. Opening checks them against the
row being read and the origin being called, so a ciphertext copied into another row (another
tenant's) or a credential used for a tool whose upstream is elsewhere is refused, even though
the key decrypts it (THREATS C4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.fernet import InvalidToken, MultiFernet

from credentials.masked import Secret

__all__ = ["Binding", "EnvelopeRefused", "Opened", "open_envelope", "seal"]

_VERSION = 1


@dataclass(frozen=True, slots=True)
class Binding:
    credential_id: str
    owner: str
    origin: str


@dataclass(frozen=True, slots=True)
class Opened:
    """A decrypted credential: its kind, public attributes (username, client id) and secrets."""

    kind: str
    attrs: Mapping[str, str]
    secrets: Mapping[str, Secret]


class EnvelopeRefused(Exception):
    """The token cannot be used here; `reason` is safe to show (it never holds the value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def seal(
    fernet: MultiFernet, binding: Binding, kind: str, attrs: Mapping[str, str], secrets: Mapping[str, str]
) -> bytes:
    payload = {
        "v": _VERSION,
        "id": binding.credential_id,
        "owner": binding.owner,
        "origin": binding.origin,
        "kind": kind,
        "attrs": dict(attrs),
        "secrets": dict(secrets),
    }
    return fernet.encrypt(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def open_envelope(fernet: MultiFernet, token: bytes, row: Binding, *, origin: str | None = None) -> Opened:
    """Decrypt `token` read from `row`, checking its binding (and `origin`, the call's upstream).

    Raises:
        EnvelopeRefused: wrong key or corrupted token, a payload sealed for another row or owner,
            or an origin other than the one the credential is bound to.
    """
    try:
        plain = fernet.decrypt(token)
    except InvalidToken:
        raise EnvelopeRefused("cannot be decrypted (wrong key or corrupted ciphertext)") from None
    try:
        data = json.loads(plain)
        sealed = Binding(str(data["id"]), str(data["owner"]), str(data["origin"]))
        kind, attrs, values = str(data["kind"]), data["attrs"], data["secrets"]
    except (ValueError, KeyError, TypeError):
        raise EnvelopeRefused("has an unreadable payload") from None
    if data.get("v") != _VERSION or not isinstance(attrs, dict) or not isinstance(values, dict):
        raise EnvelopeRefused("has an unreadable payload")
    if sealed.credential_id != row.credential_id or sealed.owner != row.owner:
        raise EnvelopeRefused("was sealed for another row (ciphertext moved)")
    if sealed.origin != row.origin:
        raise EnvelopeRefused("was sealed for another origin than its row says")
    if origin is not None and origin != sealed.origin:
        raise EnvelopeRefused(f"is bound to {sealed.origin}, not to {origin}")
    return Opened(
        kind=kind,
        attrs={str(k): str(v) for k, v in attrs.items()},
        secrets={str(k): Secret(str(v)) for k, v in values.items()},
    )
