"""How the credential feature fails, in the project's one exception tree (`tools.errors`).

    ToolFailure
    └── CredentialUnavailable   → a call's credential is missing, unreadable, or bound elsewhere:
                                  the tool error "credential unavailable: …"; nothing is sent
    SetupError
    ├── CredentialKeyMissing    → encrypted rows exist and no key is configured: no start
    └── CredentialSetupError    → a bad key file, a bad auth handle in the config

Messages name handles, owners and origins, never a value.
"""

from __future__ import annotations

from tools.errors import SetupError, ToolFailure

__all__ = ["CredentialKeyMissing", "CredentialSetupError", "CredentialUnavailable"]


class CredentialUnavailable(ToolFailure):
    """The credential a call needs cannot be used; the upstream is not contacted."""

    def __init__(self, handle: str, reason: str) -> None:
        super().__init__(f"credential unavailable: '{handle}' {reason}")
        self.handle = handle
        self.reason = reason


class CredentialKeyMissing(SetupError):
    """Encrypted credentials exist but no key is available; a fresh key would orphan them."""


class CredentialSetupError(SetupError):
    """A key file or an auth setting is unusable."""
