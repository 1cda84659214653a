"""The assembled server state: settings, registry, catalog, pipeline, notifier and storage.

Built once per process from frozen settings; transports and the CLI only talk to this.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from credentials.vault import Vault
from server.audit.ledger import Ledger
from server.config import Settings
from server.identity.principal import PrincipalResolver
from server.notify import ChangeNotifier
from server.pipeline import Pipeline, Step, build_pipeline
from server.policy import Authorize, PolicyHolder
from server.storage import Storage
from tools.catalog import Catalog
from tools.model import Principal
from tools.registry import ToolRegistry

__all__ = ["Runtime", "SourceHook"]

# A tool source plugs in by registering its tools (and, optionally, extra MCP handlers) on start.
SourceHook = Callable[["Runtime"], None]


@dataclass
class Runtime:
    settings: Settings
    registry: ToolRegistry = field(default_factory=ToolRegistry)
    catalog: Catalog = field(default_factory=Catalog)
    notifier: ChangeNotifier = field(default_factory=ChangeNotifier)
    extra_steps: Sequence[Step] = ()
    # (method, params model, handler) triples a source adds to the MCP server (resources, prompts…).
    extra_handlers: list[tuple[str, type[Any], Any]] = field(default_factory=list)
    storage: Storage | None = None
    # Run when the server stops (newest first): sources close their connection pools, watchers.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Run once storage and the ledger are open, in order: sources that need the event loop or the
    # database (module workers, registry watchers) start here; they add their own closers.
    starters: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    pipeline: Pipeline = field(init=False)
    # The policy in force (refuses to start on a bad policy) and who each request's caller is.
    policy: PolicyHolder = field(init=False)
    identity: PrincipalResolver = field(init=False)
    # Limits, quotas, idempotency, the audit log and metrics (the durable side of the chain).
    ledger: Ledger = field(init=False)
    # The encrypted upstream credentials; refuses to start when rows exist and no key does.
    credentials: Vault = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.settings)
        self.credentials = Vault.open(self.settings.credentials, self.settings.server.data_dir)
        self.policy = PolicyHolder.from_settings(self.settings)
        self.identity = PrincipalResolver(self.settings)
        self.pipeline = build_pipeline(
            self.registry,
            call_timeout_s=self.settings.server.call_timeout_s,
            authorize=Authorize(self.policy, self.registry),
            after_validation=self.extra_steps,
            outer=self.ledger.outer_steps,
            before_execute=self.ledger.inner_steps,
        )
        # A reloaded policy can change what each caller sees.
        self.policy.subscribe(lambda _: self.notifier.tools_changed())
        self.registry.subscribe(self.notifier.tools_changed)
        self.catalog.subscribe(self.notifier.catalog_changed)

    def local_principal(self, transport: str) -> Principal:
        """The local profile (stdio; HTTP without `[auth]`), with the launching host's overrides."""
        return self.identity.local(transport)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Open storage and bind the notifier to this event loop for the server's lifetime."""
        self.notifier.bind_loop(asyncio.get_running_loop())
        data_dir = self.settings.server.data_dir
        self.storage = await Storage.open(data_dir / "toolkiln.db")
        try:
            # Opened now so a missing audit key or an unwritable store stops start-up, not a call.
            self.ledger.open()
            for start in self.starters:
                await start()
            yield self
        finally:
            for close in reversed(self.closers):
                await close()
            await self.notifier.drain()
            await self.storage.close()
            self.storage = None
            self.ledger.close()
            self.credentials.close()
