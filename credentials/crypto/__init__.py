"""Sealing credential payloads (see `credentials.crypto.envelope`)."""

from credentials.crypto.envelope import Binding, Opened, open_envelope, seal

__all__ = ["Binding", "Opened", "open_envelope", "seal"]
