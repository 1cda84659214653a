"""Module credentials from the credential store: the broker's `Injector` for one module version.

For every request a module makes, the broker asks `ModuleInjector` for the request's origin:

- only the credentials declared for that origin apply (`modules.credentials_manifest`), so one
  declared for origin A is never even looked up for a request to origin B; and the vault refuses
  a credential stored for another origin than the request's (the ciphertext binds its origin);
- a shared credential, or with `per_principal` the calling principal's own: `calling_as` marks
  the principal of a module tool call and `serving` holds the module for that call, so the
  requests the worker makes meanwhile are that caller's;
- the values go through `credentials.injector.CallCredentials`, which registers them with the
  log scrubber (`server.logs.SECRETS`, shared by audit redaction) and removes their echoes from
  the answer before the module sees it (THREATS S8).

The module never holds a value. A request is refused (`EgressRefused`) when a credential it needs
cannot be used (reason `credential`: the module learns the handle, the log says why) or when the
module set a credential's header (`header`) or query parameter (`credential`) itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar

import httpx
import structlog

from credentials.errors import CredentialUnavailable
from credentials.injector import CallCredentials, Placement, basic_value
from credentials.masked import Secret
from credentials.store import normalize_origin
from credentials.vault import Vault
from modules.broker import EgressRefused, Injection
from modules.credentials_manifest import ModuleCredential
from modules.manifest import ManifestInvalid, ModuleRef, load_manifest
from modules.sandbox.errors import ModuleLoadFailed
from modules.sandbox.spec import WorkerSpec

__all__ = ["ModuleCredentials", "ModuleInjector", "calling_as", "no_credential_store"]

log = structlog.get_logger("toolkiln.modules")

# The stored kind each placement takes: a plain token everywhere but basic, which needs a user.
_KIND = {"header": "token", "query": "token", "cookie": "token", "bearer": "token", "basic": "basic"}
_caller: ContextVar[str | None] = ContextVar("toolkiln_module_caller", default=None)


@contextmanager
def calling_as(principal: str) -> Iterator[None]:
    """The principal of the module tool call running in this context (per-principal credentials)."""
    token = _caller.set(principal)
    try:
        yield
    finally:
        _caller.reset(token)


async def no_credential_store(origin: str, handles: tuple[str, ...]) -> Injection:
    """For a process without the store (the CLI validating a module, whose tests answer from mocks)."""
    raise EgressRefused("credential", f"no credential store is configured here for {', '.join(handles)}")


class ModuleCredentials:
    """The runtime's vault, as modules use it: one `ModuleInjector` per worker."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    async def injector(self, spec: WorkerSpec) -> ModuleInjector:
        """The injector for `spec`, from the manifest in its directory.

        The manifest is read where the worker's code is read from, after the loader checked both
        against the approval's pins; the handles must be those the loader started the worker for.

        Raises:
            ModuleLoadFailed: the manifest is unreadable or declares other credentials than `spec`.
        """
        ref = ModuleRef(spec.name, spec.version)
        try:
            manifest = await asyncio.to_thread(load_manifest, spec.module_dir, expect=ref)
        except ManifestInvalid as exc:
            raise ModuleLoadFailed(spec.label, f"its manifest cannot be read again: {exc.problems[0]}") from None
        if manifest.credentials != spec.credentials:
            raise ModuleLoadFailed(spec.label, "its manifest declares other credentials than the version being loaded")
        return ModuleInjector(self.vault, spec.label, manifest.declared_credentials, manifest.egress)


class ModuleInjector:
    """The broker's `Injector` for one module version (see the module docstring)."""

    def __init__(self, vault: Vault, module: str, declared: Sequence[ModuleCredential], egress: Sequence[str]) -> None:
        self.vault = vault
        self.module = module
        self._by_origin: dict[str, list[ModuleCredential]] = {}
        for credential in declared:
            self._by_origin.setdefault(normalize_origin(credential.origin_in(egress)), []).append(credential)
        self._lock = asyncio.Lock()
        self._caller: str | None = None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Hold the module for one tool call by the principal `calling_as` set (if any).

        The worker runs one call at a time; holding the module here as well keeps the caller
        that requests are made for from changing while a call is still running.
        """
        async with self._lock:
            self._caller = _caller.get()
            try:
                yield
            finally:
                self._caller = None

    def _placement(self, credential: ModuleCredential, origin: str) -> tuple[Placement, list[str]]:
        owner = ""
        if credential.per_principal:
            if self._caller is None:
                raise CredentialUnavailable(credential.handle, "is per principal and no principal is calling")
            owner = self._caller
        stored = self.vault.lookup(credential.handle, owner, origin)
        wanted = _KIND[credential.scheme or credential.location or ""]
        if stored.kind != wanted:
            raise CredentialUnavailable(credential.handle, f"is a '{stored.kind}' credential; it is used as {wanted}")
        if credential.scheme == "basic":
            value, packed = basic_value(stored.attrs.get("username", ""), stored.secret("password"))
            return Placement("header", "authorization", value), [stored.secret("password").reveal(), packed]
        token = stored.secret("value")
        if credential.scheme == "bearer":
            return Placement("header", "authorization", Secret(f"Bearer {token.reveal()}")), [token.reveal()]
        location, name = credential.target
        return Placement(location, name, token), [token.reveal()]

    async def __call__(self, origin: str, handles: tuple[str, ...]) -> Injection:
        """The credentials of one request to `origin` (`scheme://host:port`).

        Raises:
            EgressRefused: a credential declared for `origin` cannot be used (reason `credential`).
        """
        key = normalize_origin(origin)
        placements: list[Placement] = []
        secrets: list[str] = []
        for credential in self._by_origin.get(key, ()):
            try:
                placement, values = self._placement(credential, key)
            except CredentialUnavailable as exc:
                log.warning("module_credential_unavailable", module=self.module, origin=key, why=exc.message)
                why = f"credential '{credential.handle}' cannot be used for {key}"
                raise EgressRefused("credential", why) from None
            placements.append(placement)
            secrets += values
        return _ModuleInjection(CallCredentials(placements, secrets))


class _ModuleInjection:
    """`CallCredentials`, refusing a request in which the module filled a credential's place itself."""

    def __init__(self, credentials: CallCredentials) -> None:
        self._credentials = credentials

    async def inject(self, request: httpx.Request) -> None:
        for placement in self._credentials.placements:
            name, why = placement.name, "the server puts a credential there"
            if placement.location == "header" and name in request.headers:
                raise EgressRefused("header", f"the module may not set the {name} header ({why})")
            if placement.location == "query" and name in request.url.params:
                raise EgressRefused("credential", f"the module may not set the query parameter {name} ({why})")
        await self._credentials.inject(request)

    def scrub(self, text: str) -> str:
        return self._credentials.scrub(text)
