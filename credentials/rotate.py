"""`rotate-key`: re-encrypt every row under a new key, resumable after a crash at any point.

The state of a rotation lives in two places that each change atomically: the key file (the new
key first, the old ones after it, while a rotation is under way) and each row's `key_id`. So a
rotation killed half-way (even with SIGKILL) is finished by running it again: rows already under
the new key are skipped, the rest are resealed one transaction each, and only when no row is left
under an old key are the old keys dropped from the file. `MultiFernet.rotate` keeps each token's
original timestamp, and the rows keep their created/updated times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken

from credentials.errors import CredentialSetupError
from credentials.keys import KeyRing, write_key_file
from credentials.settings import ENV_KEY
from credentials.store import CredentialRow
from credentials.vault import Vault

__all__ = ["Rotation", "describe", "rotate_key"]


@dataclass
class Rotation:
    """What a rotation did: rows resealed, rows it could not read, whether old keys were dropped."""

    new_key_id: str
    resumed: bool
    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)
    old_keys_dropped: bool = False
    from_env: bool = False


def rotate_key(vault: Vault, *, on_row: Callable[[CredentialRow], None] | None = None) -> Rotation:
    """Start or resume a rotation and carry it to the end.

    `on_row` runs after each row is committed (progress output).

    Raises:
        CredentialSetupError: there is no key to rotate from.
    """
    ring = vault.ring()
    if ring is None:
        raise CredentialSetupError(f"there is no credential key to rotate ({vault.key_path} does not exist)")
    from_env = ring.origin.startswith("$")
    resumed = len(ring.keys) > 1
    if not from_env and not resumed:
        # Both keys are on disk before the first row changes: a crash now loses nothing.
        write_key_file(vault.key_path, (Fernet.generate_key(), *ring.keys))
        ring = vault.ring()
        assert ring is not None
    rotation = Rotation(new_key_id=ring.primary_id, resumed=resumed, from_env=from_env)
    store = vault.store(create=False)
    rows = [] if store is None else store.not_under(ring.primary_id)
    for row in rows:
        assert store is not None
        try:
            token = ring.fernet.rotate(row.ciphertext)
        except InvalidToken:
            rotation.unreadable.append(f"{row.name} ({row.owner or 'shared'})")
            continue
        if store.reseal(row, token, ring.primary_id):
            rotation.resealed += 1
        if on_row is not None:
            on_row(row)
    if not rotation.unreadable and not from_env and len(ring.keys) > 1:
        write_key_file(vault.key_path, ring.keys[:1])
        rotation.old_keys_dropped = True
    return rotation


def describe(rotation: Rotation, ring: KeyRing | None) -> str:
    """One paragraph for the operator."""
    lines = [
        f"{'resumed' if rotation.resumed else 'rotated'}: {rotation.resealed} credential(s) resealed under key "
        f"{rotation.new_key_id}"
    ]
    if rotation.unreadable:
        lines.append(
            "could not decrypt (left as they are; delete or set them again, then run rotate-key again): "
            + ", ".join(rotation.unreadable)
        )
    if rotation.old_keys_dropped:
        lines.append("the old key was removed from the key file")
    elif rotation.from_env and ring is not None and len(ring.keys) > 1:
        lines.append(f"every row is under the first key of ${ENV_KEY}: remove the others from it")
    return "\n".join(lines)
