"""`[sources.auth.<scheme>]`: which stored credential a source's security scheme uses.

The key is the scheme's name in the spec (`components.securitySchemes`, or Swagger 2.0's
`securityDefinitions`); the spec says where the credential goes. `type` (with `in`/`name`,
`scheme`, or `token_url`) defines the scheme here instead, for specs that do not declare it.
`token_url` set here is trusted; one taken from the spec is used only when it is on the
source's own origin, since the spec is untrusted text and the client secret goes there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AuthHandle"]


class AuthHandle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # The credential's name in the store (`toolkiln credentials set NAME`).
    credential: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Each principal's own credential (stored with --principal) instead of a shared one.
    per_principal: bool = False
    type: Literal["apiKey", "http", "oauth2"] | None = None
    location: Literal["header", "query", "cookie"] | None = Field(default=None, alias="in")
    name: str | None = None
    scheme: Literal["bearer", "basic"] | None = None
    token_url: str | None = None
    scopes: tuple[str, ...] = ()
    # How the client authenticates at the token endpoint: HTTP basic, or in the form body.
    client_auth: Literal["basic", "post"] = "basic"

    @field_validator("token_url")
    @classmethod
    def _https_or_http(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL")
        return value
