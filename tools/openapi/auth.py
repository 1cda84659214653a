"""Upstream auth for an OpenAPI source: security schemes → credential handles → injected requests.

At load, every `[sources.auth.<scheme>]` handle is matched with its scheme (from the spec, or
defined in the config) into a `SchemeUse`; a handle naming an unknown or unsupported scheme
fails the load. Per operation, the plan's `security` picks the first alternative whose schemes
all have handles (none declared anywhere = every configured scheme; `security: []` = none).
Per call, `AuthorizedExecutor`:

- refuses an argument that would set a header, query key or cookie a credential goes into;
- resolves the caller's credentials (per principal where configured, shared otherwise), bound
  to this source's origin, and hands them to the upstream as the call's `inject`, which runs
  last and only for the source's own origin (so never on a redirect elsewhere);
- retries once with a fresh token when an OAuth-authorized call gets 401;
- scrubs every secret it used from the result and from error text (THREATS S8).

The MCP client's own `Authorization` never reaches here: requests are built from arguments only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mcp_types as types

from credentials.errors import CredentialSetupError, CredentialUnavailable
from credentials.injector import CallCredentials, Location, Placement, basic_value
from credentials.masked import Secret
from credentials.oauth import CachedToken, TokenEndpoint, TokenSource
from credentials.store import normalize_origin
from credentials.vault import Vault
from tools.errors import ToolFailure
from tools.model import CallContext, Principal, ToolResult
from tools.openapi.auth_settings import AuthHandle
from tools.openapi.errors import RequestRefused, UpstreamError
from tools.openapi.executor import OperationExecutor
from tools.openapi.plan import OperationPlan
from tools.openapi.upstream import Upstream

__all__ = ["EXPECTED_KIND", "AuthorizedExecutor", "SchemeUse", "SourceAuth", "resolve_schemes"]

SchemeKind = Literal["apiKey", "bearer", "basic", "oauth2"]
EXPECTED_KIND: Mapping[SchemeKind, tuple[str, ...]] = {
    "apiKey": ("token",),
    "bearer": ("token",),
    "basic": ("basic",),
    "oauth2": ("oauth-client", "oauth-refresh"),
}


@dataclass(frozen=True, slots=True)
class SchemeUse:
    """One configured scheme: how its credential is placed and which handle supplies it."""

    scheme: str
    kind: SchemeKind
    location: Location
    param: str
    handle: AuthHandle
    # OAuth: a token URL the admin trusts (config, or the spec's on the source's own origin).
    token_url: str | None = None
    spec_token_url_refused: bool = False


def resolve_schemes(
    source: str, handles: Mapping[str, AuthHandle], spec: Mapping[str, Any], origin: str
) -> dict[str, SchemeUse]:
    """Match each handle with its scheme.

    Raises:
        CredentialSetupError: a handle names a scheme the spec lacks and does not define one, or
            the scheme is of a kind toolkiln cannot inject (openIdConnect, mutualTLS, digest…).
    """
    uses = {}
    for name, handle in handles.items():
        where = f"source '{source}': auth scheme '{name}'"
        declared: Mapping[str, Any] = {}
        if handle.type is not None:
            declared = {"type": handle.type, "in": handle.location, "name": handle.name, "scheme": handle.scheme}
        elif name in spec:
            declared = spec[name]
        else:
            raise CredentialSetupError(f"{where} is not in the spec; define it with type = ...")
        uses[name] = _use(where, name, declared, handle, origin)
    return uses


def _use(where: str, name: str, declared: Mapping[str, Any], handle: AuthHandle, origin: str) -> SchemeUse:
    kind = declared.get("type")
    if kind == "apiKey":
        location, param = declared.get("in"), declared.get("name")
        if location not in ("header", "query", "cookie") or not isinstance(param, str) or not param:
            raise CredentialSetupError(f"{where}: an apiKey scheme needs in = header|query|cookie and a name")
        return SchemeUse(name, "apiKey", location, param, handle)
    if kind == "http":
        scheme = str(declared.get("scheme") or "").lower()
        if scheme not in ("bearer", "basic"):
            raise CredentialSetupError(f"{where}: HTTP scheme {scheme or '(none)'!r} is not supported (bearer, basic)")
        return SchemeUse(name, "bearer" if scheme == "bearer" else "basic", "header", "authorization", handle)
    if kind == "oauth2":
        token_url, refused = handle.token_url, False
        spec_url = declared.get("client_credentials") or declared.get("token") or declared.get("refresh")
        if token_url is None and isinstance(spec_url, str):
            try:
                same = normalize_origin(spec_url) == origin
            except ValueError:
                same = False
            token_url, refused = (spec_url, False) if same else (None, True)
        return SchemeUse(name, "oauth2", "header", "authorization", handle, token_url, refused)
    raise CredentialSetupError(f"{where}: scheme type {kind!r} cannot be injected (apiKey, http, oauth2)")


class SourceAuth:
    """A source's configured schemes, its vault and its OAuth token cache."""

    def __init__(self, uses: Mapping[str, SchemeUse], vault: Vault, origin: str, tokens: TokenSource) -> None:
        self.uses = dict(uses)
        self.vault = vault
        self.origin = origin
        self.tokens = tokens

    @classmethod
    def build(
        cls,
        source: str,
        handles: Mapping[str, AuthHandle],
        spec: Mapping[str, Any],
        vault: Vault | None,
        upstream: Upstream,
        tokens: TokenSource | None,
    ) -> SourceAuth:
        """The auth of a source whose upstream is `upstream`.

        Raises:
            CredentialSetupError: no credential store was given, or a handle does not resolve.
        """
        if vault is None or tokens is None:
            raise CredentialSetupError(f"source '{source}' configures auth but the server has no credential store")
        origin = normalize_origin(upstream.origin)
        return cls(resolve_schemes(source, handles, spec, origin), vault, origin, tokens)

    def choose(self, security: Sequence[Mapping[str, Sequence[str]]] | None) -> tuple[SchemeUse, ...] | str:
        """The schemes a call of an operation with `security` uses, or why none can be used."""
        if security is None:
            return tuple(self.uses[name] for name in sorted(self.uses))
        anonymous = False
        for alternative in security:
            if not alternative:
                anonymous = True
            elif all(name in self.uses for name in alternative):
                return tuple(self.uses[name] for name in alternative)
        if anonymous or not security:
            return ()
        wanted = " or ".join("+".join(alt) for alt in security)
        return f"no credential is configured for the operation's security scheme(s) {wanted}"

    async def credentials(self, uses: Sequence[SchemeUse], principal: Principal) -> CallCredentials:
        """What `principal`'s call sends, resolved now.

        Raises:
            CredentialUnavailable: a credential is missing, unreadable, of the wrong kind or bound
                to another origin; or its OAuth token could not be had.
        """
        placements: list[Placement] = []
        secrets: list[str] = []
        tokens: list[CachedToken] = []
        for use in uses:
            handle = use.handle
            owner = principal.id if handle.per_principal else ""
            credential = self.vault.lookup(handle.credential, owner, self.origin)
            if credential.kind not in EXPECTED_KIND[use.kind]:
                expected = " or ".join(EXPECTED_KIND[use.kind])
                raise CredentialUnavailable(
                    handle.credential, f"is a '{credential.kind}' credential; scheme '{use.scheme}' needs {expected}"
                )
            secrets += [s.reveal() for s in credential.secrets.values()]
            if use.kind == "apiKey":
                value = credential.secret("value")
            elif use.kind == "bearer":
                value = Secret(f"Bearer {credential.secret('value').reveal()}")
            elif use.kind == "basic":
                value, packed = basic_value(credential.attrs.get("username", ""), credential.secret("password"))
                secrets.append(packed)
            else:
                url = use.token_url or credential.attrs.get("token_url")
                if not url:
                    why = "is on another origin than the API" if use.spec_token_url_refused else "is not set"
                    raise CredentialUnavailable(
                        handle.credential, f"has no trusted token URL (the spec's {why}): set token_url in the config"
                    )
                token = await self.tokens.token(credential, TokenEndpoint(url, handle.scopes, handle.client_auth))
                tokens.append(token)
                secrets.append(token.token.reveal())
                value = Secret(f"Bearer {token.token.reveal()}")
            placements.append(Placement(use.location, use.param, value))
        return CallCredentials(placements, secrets, tokens)

    def executor(self, plan: OperationPlan, upstream: Upstream) -> AuthorizedExecutor:
        return AuthorizedExecutor(self, plan, upstream)


class AuthorizedExecutor:
    """An OpenAPI operation's executor with the source's credentials injected."""

    __slots__ = ("_inner", "_shadowed", "_uses", "auth", "upstream")

    def __init__(self, auth: SourceAuth, plan: OperationPlan, upstream: Upstream) -> None:
        self.auth = auth
        self.upstream = upstream
        self._inner = OperationExecutor(plan, upstream)
        self._uses = auth.choose(plan.security)
        targets = {} if isinstance(self._uses, str) else {_target(u.location, u.param): u for u in self._uses}
        self._shadowed = tuple(
            (p.arg, f"{p.location} '{p.name}'") for p in plan.params if _target(p.location, p.name) in targets
        )

    async def __call__(self, arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        uses = self._uses
        if isinstance(uses, str):
            raise CredentialUnavailable("-", uses)
        for arg, what in self._shadowed:
            if arg in arguments:
                raise RequestRefused(f"Argument '{arg}' would set the credential {what}; the server sets it")
        used = [await self.auth.credentials(uses, context.principal)]
        try:
            try:
                result = await self.upstream.exchange(self._inner.build(arguments), inject=used[-1].inject)
            except UpstreamError as exc:
                if exc.status != 401 or not used[-1].refreshable:
                    raise
                for token in used[-1].refreshable:
                    self.auth.tokens.invalidate(token)
                used.append(await self.auth.credentials(uses, context.principal))
                result = await self.upstream.exchange(self._inner.build(arguments), inject=used[-1].inject)
        except ToolFailure as exc:
            for credentials in used:
                exc.message = credentials.scrub(exc.message)
            exc.args = (exc.message,)
            raise
        for credentials in used:
            result = _scrubbed(result, credentials)
        return result


def _target(location: str, name: str) -> tuple[str, str]:
    # Header names are case-insensitive on the wire; query keys and cookie names are not.
    return (location, name.lower() if location == "header" else name)


def _scrubbed(result: ToolResult, credentials: CallCredentials) -> ToolResult:
    content = [_scrub_block(block, credentials) for block in result.content]
    structured = None if result.structured is None else credentials.scrub_json(result.structured)
    return ToolResult(content=content, structured=structured, is_error=result.is_error)


def _scrub_block(block: types.ContentBlock, credentials: CallCredentials) -> types.ContentBlock:
    if isinstance(block, types.TextContent):
        return block.model_copy(update={"text": credentials.scrub(block.text)})
    if isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
        resource = block.resource.model_copy(update={"text": credentials.scrub(block.resource.text)})
        return block.model_copy(update={"resource": resource})
    return block
