"""Who is calling: API tokens, JWTs (OAuth 2.1 resource server) and the local stdio profile.

Only the settings schema is imported eagerly here: `server.config` imports it, and everything
else in this package builds on `server.config`.
"""

from server.identity.settings import HttpAuthSettings, JwtSettings

__all__ = ["HttpAuthSettings", "JwtSettings"]
