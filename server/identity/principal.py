"""Who is calling: the principal of each request, by transport.

- stdio: the local profile `[stdio]` (principal and roles). The host that launches toolkiln may
  override it with `TOOLKILN_PRINCIPAL` and `TOOLKILN_ROLES` (comma-separated): that host owns
  the process and its config anyway, so this grants nothing it could not already choose.
- HTTP and SSE with `[auth]` enabled: the identity the bearer token proved (API token or JWT).
  A request that somehow arrives without one is `anonymous` with no roles: denied everything.
- HTTP and SSE without `[auth]`: the local profile (loopback development only).

Roles never come from request headers or arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

from server.identity.verifier import IdentityToken
from tools.model import Principal

if TYPE_CHECKING:  # server.config imports the auth schema from this package
    from server.config import Settings

__all__ = ["ANONYMOUS", "ENV_PRINCIPAL", "ENV_ROLES", "PrincipalResolver"]

ENV_PRINCIPAL = "TOOLKILN_PRINCIPAL"
ENV_ROLES = "TOOLKILN_ROLES"
ANONYMOUS = "anonymous"


class PrincipalResolver:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.local_id = environ.get(ENV_PRINCIPAL, "").strip() or settings.stdio.principal
        override = environ.get(ENV_ROLES)
        if override is not None:
            self.local_roles = tuple(role.strip() for role in override.split(",") if role.strip())
        else:
            self.local_roles = tuple(settings.stdio.roles)
        self.http_authenticated = settings.auth.enabled
        self._local: dict[str, Principal] = {}
        self._anonymous = Principal(id=ANONYMOUS, roles=(), transport="http")

    def local(self, transport: str) -> Principal:
        principal = self._local.get(transport)
        if principal is None:
            principal = self._local[transport] = Principal(self.local_id, self.local_roles, transport)
        return principal

    def of_request(self, request: Any) -> Principal:
        """The principal for an SDK request context's `request` (None on stdio)."""
        if request is None:
            return self.local("stdio")
        scope = getattr(request, "scope", None)
        user = scope.get("user") if isinstance(scope, Mapping) else None
        if isinstance(user, AuthenticatedUser) and isinstance(user.access_token, IdentityToken):
            token = user.access_token
            return Principal(token.principal_id, token.roles, "http")
        if self.http_authenticated:
            return self._anonymous
        return self.local("http")
