"""The store and its keys together: look up, decrypt and check a credential; save one.

`Vault.open` is the start-up gate: encrypted rows with no key available stop the server with a
clear message, and nothing here ever generates a key over existing data. Decrypted credentials
are cached per row and ciphertext, so a call costs one indexed read, and a row changed by the
CLI (set, rotate-key) is seen by a running server at its next call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from credentials.crypto.envelope import Binding, EnvelopeRefused, Opened, open_envelope, seal
from credentials.errors import CredentialKeyMissing, CredentialSetupError, CredentialUnavailable
from credentials.keys import KeyRing, create_key_file, load_keys
from credentials.masked import Secret
from credentials.settings import ENV_KEY, CredentialSettings
from credentials.store import CredentialRow, CredentialStore

__all__ = ["KINDS", "Credential", "Vault", "shown_owner"]

# Each kind's secret fields (sealed) and public attributes (sealed too, shown by `list`).
KINDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "token": (("value",), ()),
    "basic": (("password",), ("username",)),
    "oauth-client": (("client_secret",), ("client_id", "token_url")),
    "oauth-refresh": (("refresh_token",), ("client_id", "token_url")),
}


def shown_owner(owner: str) -> str:
    return owner or "(shared)"


@dataclass(frozen=True, slots=True)
class Credential:
    """A usable credential: where it may go and what it holds (values masked)."""

    name: str
    owner: str
    origin: str
    kind: str
    attrs: Mapping[str, str]
    secrets: Mapping[str, Secret]
    row_id: str

    def secret(self, field: str) -> Secret:
        try:
            return self.secrets[field]
        except KeyError:
            raise CredentialUnavailable(self.name, f"has no '{field}' (kind {self.kind})") from None


class Vault:
    """Credential access for the server and the CLI."""

    def __init__(self, db_path: Path, key_path: Path) -> None:
        self.db_path = db_path
        self.key_path = key_path
        self._store: CredentialStore | None = None
        self._ring: KeyRing | None = None
        self._ring_stamp: tuple[int, int] | None = None
        self._cache: dict[str, tuple[bytes, Credential]] = {}

    @classmethod
    def open(cls, settings: CredentialSettings, data_dir: Path) -> Vault:
        """The vault of a data directory, checked for start-up.

        Raises:
            CredentialKeyMissing: encrypted rows exist and no key is available.
            CredentialSetupError: the key file is unusable (not a key, or readable by others).
        """
        vault = cls(settings.db_path(data_dir), settings.key_file(data_dir))
        store = vault.store(create=False)
        if store is not None and store.count() and vault.ring() is None:
            raise CredentialKeyMissing(
                f"{vault.db_path} holds {store.count()} encrypted credential(s) but no key is available "
                f"(neither ${ENV_KEY} nor the key file {vault.key_path}); restore the key: a new key "
                "cannot read them, so none is generated"
            )
        return vault

    def store(self, *, create: bool) -> CredentialStore | None:
        if self._store is None and (create or self.db_path.exists()):
            self._store = CredentialStore(self.db_path)
        return self._store

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.key_path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def ring(self) -> KeyRing | None:
        """The keys, re-read when the key file changed (a rotation by the CLI while serving)."""
        stamp = self._stamp()
        if self._ring is None or stamp != self._ring_stamp:
            self._ring = load_keys(self.key_path)
            self._ring_stamp = stamp
        return self._ring

    def ensure_key(self) -> KeyRing:
        """The keys, creating the key file when there is no key and no encrypted row yet.

        Raises:
            CredentialKeyMissing: rows exist but their key is gone.
        """
        ring = self.ring()
        if ring is not None:
            return ring
        store = self.store(create=False)
        if store is not None and store.count():
            raise CredentialKeyMissing(
                f"{self.db_path} has encrypted credentials but their key {self.key_path} is gone"
            )
        create_key_file(self.key_path)
        ring = self.ring()
        if ring is None:
            raise CredentialSetupError(f"could not create the key file {self.key_path}")
        return ring

    def lookup(self, name: str, owner: str, origin: str) -> Credential:
        """The credential `name` of `owner` ("" = shared), usable for a request to `origin`.

        Raises:
            CredentialUnavailable: none stored, no key, cannot be decrypted, or bound elsewhere.
        """
        store = self.store(create=False)
        row = None if store is None else store.find(name, owner)
        if row is None:
            whose = f"for principal '{owner}'" if owner else "(shared)"
            raise CredentialUnavailable(name, f"is not stored {whose}")
        cached = self._cache.get(row.id)
        if cached is not None and cached[0] == row.ciphertext:
            credential = cached[1]
        else:
            credential = self._open(row)
            self._cache[row.id] = (row.ciphertext, credential)
        if credential.origin != origin:
            raise CredentialUnavailable(name, f"is bound to {credential.origin}, not to {origin}")
        return credential

    def _open(self, row: CredentialRow) -> Credential:
        try:
            ring = self.ring()
        except CredentialSetupError as exc:
            raise CredentialUnavailable(row.name, f"cannot be decrypted: {exc.message}") from None
        if ring is None:
            raise CredentialUnavailable(row.name, "cannot be decrypted: no key is configured")
        try:
            opened = open_envelope(ring.fernet, row.ciphertext, Binding(row.id, row.owner, row.origin))
        except EnvelopeRefused as exc:
            raise CredentialUnavailable(row.name, exc.reason) from None
        return _credential(row, opened)

    def put(
        self,
        name: str,
        owner: str,
        origin: str,
        kind: str,
        attrs: Mapping[str, str],
        secrets: Mapping[str, str],
    ) -> CredentialRow:
        """Seal and store a credential, replacing the value of an existing (name, owner)."""
        ring = self.ensure_key()
        store = self.store(create=True)
        assert store is not None
        existing = store.find(name, owner)
        now = store.now()
        row_id = existing.id if existing is not None else store.new_id()
        token = seal(ring.fernet, Binding(row_id, owner, origin), kind, attrs, secrets)
        created = existing.created_at if existing is not None else now
        row = CredentialRow(row_id, name, owner, origin, kind, ring.primary_id, token, created, now)
        return store.upsert(row)

    def replace_secrets(self, credential: Credential, secrets: Mapping[str, str]) -> None:
        """Store new secret values for `credential` (a refresh token the provider rotated)."""
        merged = {k: v.reveal() for k, v in credential.secrets.items()} | dict(secrets)
        self.put(credential.name, credential.owner, credential.origin, credential.kind, credential.attrs, merged)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._cache.clear()


def _credential(row: CredentialRow, opened: Opened) -> Credential:
    return Credential(
        name=row.name,
        owner=row.owner,
        origin=row.origin,
        kind=opened.kind,
        attrs=opened.attrs,
        secrets=opened.secrets,
        row_id=row.id,
    )
