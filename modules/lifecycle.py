"""The module lifecycle as the registry sees it: validate, approve, activate, disable, roll back, unload.

These operations are the same from the CLI (no server running) and from the management tools
inside a server; they change the registry and record why. Loading tools into a running server
is `modules.loader`'s job: it follows the registry's `active` rows.

Every state change is written twice: as an event row in the registry (the operator's history and
the change feed a server polls) and, where an audit log is open, as an `event` record in the
audit chain, so approvals and disables are as tamper-evident as calls.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import structlog

from modules.approval import FilesRefused, Pins, drift, hash_files, hash_tools
from modules.manifest import ModuleManifest, ModuleRef, load_manifest, module_dir, modules_root
from modules.registry import ModuleRecord, ModuleRegistry, State, version_key
from modules.sandbox.spec import TestReport, ToolSpec, WorkerSpec
from server.config import ModulesSettings
from tools.errors import SetupError
from tools.model import ToolResult

__all__ = [
    "AuditSink",
    "ModuleLifecycle",
    "ModuleStateError",
    "StartWorker",
    "Worker",
    "why_not_loaded",
]

log = structlog.get_logger("toolkiln.modules")


class Worker(Protocol):
    """A running module version in its sandbox (`modules.sandbox`)."""

    async def tools(self) -> Sequence[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float | None = None) -> ToolResult: ...

    async def run_tests(self, timeout_s: float | None = None) -> TestReport: ...

    async def stop(self) -> None: ...


StartWorker = Callable[[WorkerSpec], Awaitable[Worker]]
# (event, module, actor, detail): appends one record to the audit chain.
AuditSink = Callable[[str, ModuleRef, str, dict[str, Any]], Awaitable[None]]


class ModuleStateError(SetupError):
    """The operation does not apply to the version in its current state; the message says what does."""


def why_not_loaded(record: ModuleRecord) -> str:
    """One line for an operator: why this version is not serving, and what to do about it."""
    ref = record.ref
    if record.state == "draft":
        if record.validation and not record.validation.get("passed"):
            count = len(record.validation.get("problems") or [])
            return f"validation failed ({count} problem(s)); fix them and run `toolkiln modules validate {ref}`"
        return f"not validated; run `toolkiln modules validate {ref}`"
    if record.state == "validated":
        return f"awaiting approval; run `toolkiln modules approve {ref}`"
    if record.state == "approved":
        return f"approved but not active; run `toolkiln modules activate {ref}`"
    if record.state == "disabled":
        return f"disabled: {record.reason or 'by an operator'}"
    return "active"


def spec_of(manifest: ModuleManifest, directory: Path) -> WorkerSpec:
    from modules.sandbox.spec import Limits

    return WorkerSpec(
        name=manifest.name,
        version=manifest.version,
        module_dir=directory,
        entry=manifest.entry,
        egress=manifest.egress,
        credentials=manifest.credentials,
        limits=Limits(**manifest.limits.given()),
    )


class ModuleLifecycle:
    """The registry-side operations on module versions found in `<data_dir>/modules/`."""

    def __init__(
        self,
        data_dir: Path,
        registry: ModuleRegistry,
        settings: ModulesSettings,
        *,
        start_worker: StartWorker | None = None,
        audit: AuditSink | None = None,
        taken_names: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.registry = registry
        self.settings = settings
        self.start_worker = start_worker
        self._audit = audit
        # Tool name → owning source for every tool outside the modules (collision checks).
        self._taken_names = taken_names or dict

    def directory(self, ref: ModuleRef) -> Path:
        return module_dir(self.data_dir, ref)

    async def record(self, ref: ModuleRef) -> ModuleRecord:
        """
        Raises:
            ModuleStateError: the version is neither registered nor on disk.
        """
        found = await self.registry.get(ref)
        if found is None and self.directory(ref).is_dir():
            found = await self.registry.register(ref, None, actor="scan")
        if found is None:
            raise ModuleStateError(f"no module {ref} (expected in {self.directory(ref)})")
        return found

    async def scan(self) -> list[ModuleRecord]:
        """Register every `<name>/<version>/` on disk that the registry does not know yet, as a draft."""
        root = modules_root(self.data_dir)
        for name_dir in sorted(root.iterdir()) if root.is_dir() else ():
            for version_dir in sorted(name_dir.iterdir()) if name_dir.is_dir() else ():
                try:
                    ref = ModuleRef(name_dir.name, version_dir.name)
                except ValueError as exc:
                    log.warning("module_dir_ignored", path=str(version_dir), why=str(exc))
                    continue
                if version_dir.is_dir() and await self.registry.get(ref) is None:
                    await self.registry.register(ref, None, actor="scan")
        return await self.registry.versions()

    async def note(self, event: str, ref: ModuleRef, actor: str, detail: dict[str, Any]) -> None:
        """Log and audit one lifecycle event (the registry row is written by the caller)."""
        log.info("module_" + event, module=str(ref), actor=actor, **{k: v for k, v in detail.items() if k != "event"})
        if self._audit is not None:
            try:
                await self._audit(event, ref, actor, detail)
            except Exception:  # the registry row is already durable; an audit outage must not undo it
                log.exception("module_audit_failed", module=str(ref), event=event)

    async def change(
        self,
        ref: ModuleRef,
        event: str,
        actor: str,
        *,
        state: State | None = None,
        expect: Sequence[State] | None = None,
        detail: dict[str, Any] | None = None,
        **columns: Any,
    ) -> bool:
        changed = await self.registry.update(
            ref, event=event, actor=actor, state=state, expect=expect, detail=detail, **columns
        )
        if changed:
            await self.note(event, ref, actor, {"state": state, **(detail or {})})
        return changed

    # -- validate -------------------------------------------------------------------------------

    async def validate(self, ref: ModuleRef, *, actor: str) -> dict[str, Any]:
        """Run every validation stage and store the report; `validated` if it passed, else `draft`.

        Raises:
            ModuleStateError: the version is approved or active (disable it first).
        """
        from modules.validate import validate_module

        record = await self.record(ref)
        if record.state in ("approved", "active"):
            raise ModuleStateError(f"{ref} is {record.state}; disable it before validating it again")
        report = await validate_module(
            self.directory(ref),
            ref,
            self.settings,
            start_worker=self.start_worker,
            taken=await self._taken_outside(ref.name),
        )
        state: State = "validated" if report["passed"] else "draft"
        manifest = report.pop("manifest", None)
        await self.change(
            ref,
            "validated" if report["passed"] else "validation_failed",
            actor,
            state=state,
            detail={"problems": len(report["problems"])},
            validation=report,
            manifest=manifest,
            reason=None,
        )
        return report

    async def _taken_outside(self, name: str) -> dict[str, str]:
        taken = dict(self._taken_names())
        for record in await self.registry.versions():
            if record.name != name and record.state == "active" and record.pins is not None:
                taken.update((tool, f"module:{record.name}") for tool in record.pins.tools)
        return {tool: source for tool, source in taken.items() if source != f"module:{name}"}

    # -- approve --------------------------------------------------------------------------------

    async def pins_for(self, ref: ModuleRef) -> Pins:
        """What approving `ref` now would pin, checked against what validation saw.

        Raises:
            ModuleStateError: not validated, or its files changed since validation.
        """
        record = await self.record(ref)
        if record.state != "validated" or not record.validation or record.manifest is None:
            raise ModuleStateError(f"{ref} is {record.state}; only a validated version can be approved")
        files = self._hash(ref, record)
        changed = drift(record.validation.get("files") or {}, files, "file")
        if changed:
            raise ModuleStateError(f"{ref} changed since it was validated ({'; '.join(changed)}); validate it again")
        manifest = ModuleManifest.stored(record.manifest)
        tools = hash_tools(tool.definition() for tool in manifest.tools)
        return Pins(
            files=files,
            tools=tools,
            meta={"egress": list(manifest.egress), "credentials": list(manifest.credentials)},
        )

    async def approve(self, ref: ModuleRef, *, actor: str, expect_digest: str | None = None) -> Pins:
        """Pin the hashes of every file and tool definition: a human's decision, recorded.

        `expect_digest` binds the approval to what the human was shown (an elicitation).

        Raises:
            ModuleStateError: not validated, changed since validation or since it was shown.
        """
        pins = await self.pins_for(ref)
        if expect_digest is not None and pins.digest != expect_digest:
            raise ModuleStateError(f"{ref} changed while approval was being asked; ask again")
        changed = await self.change(
            ref,
            "approved",
            actor,
            state="approved",
            expect=("validated",),
            detail={"digest": pins.digest, "files": len(pins.files), "tools": sorted(pins.tools)},
            pins=pins,
            approved_by=actor,
            approved_at=time.time(),
        )
        if not changed:
            raise ModuleStateError(f"{ref} is no longer validated")
        return pins

    # -- integrity ------------------------------------------------------------------------------

    def _hash(self, ref: ModuleRef, record: ModuleRecord) -> dict[str, str]:
        try:
            return hash_files(
                self.directory(ref), max_files=self.settings.max_files, max_file_bytes=self.settings.max_file_bytes
            )
        except FilesRefused as exc:
            raise ModuleStateError(f"{ref}: {exc.message}") from None
        except OSError as exc:
            raise ModuleStateError(f"{ref}: cannot read its files ({exc.strerror or exc})") from None

    def tampering(self, record: ModuleRecord) -> list[str]:
        """How the version's files and declared tools differ from its approval (empty: intact)."""
        if record.pins is None:
            return ["not approved"]
        try:
            files = self._hash(record.ref, record)
            manifest = load_manifest(self.directory(record.ref), expect=record.ref)
        except SetupError as exc:
            return [exc.message]
        return drift(record.pins.files, files, "file") + drift(
            record.pins.tools, hash_tools(tool.definition() for tool in manifest.tools), "tool definition"
        )

    async def disable_tampered(self, record: ModuleRecord, problems: list[str], *, actor: str) -> None:
        await self.change(
            record.ref,
            "tampered",
            actor,
            state="disabled",
            detail={"problems": problems[:20]},
            reason="changed after approval (" + "; ".join(problems[:5]) + "); validate and approve it again",
        )

    # -- activate, disable, roll back, unload ---------------------------------------------------

    async def activate(self, ref: ModuleRef, *, actor: str, event: str = "activated") -> None:
        """Make `ref` the version that serves its name (a running server hot-loads it).

        Raises:
            ModuleStateError: not approved, or changed since approval (it is disabled then).
        """
        record = await self.record(ref)
        if record.state not in ("approved", "active"):
            raise ModuleStateError(f"{ref} is {record.state}; only an approved version can be activated")
        problems = self.tampering(record)
        if problems:
            await self.disable_tampered(record, problems, actor=actor)
            raise ModuleStateError(f"{ref} changed after approval and is now disabled: {'; '.join(problems[:5])}")
        if await self.registry.activate(ref, actor=actor, event=event):
            await self.note(event, ref, actor, {"state": "active"})

    async def disable(self, ref: ModuleRef, *, actor: str, reason: str, event: str = "disabled") -> bool:
        await self.record(ref)
        return await self.change(
            ref,
            event,
            actor,
            state="disabled",
            expect=("draft", "validated", "approved", "active"),
            reason=reason,
            detail={"reason": reason},
        )

    async def unload(self, name: str, *, actor: str) -> ModuleRef:
        """Stop serving `name` (its active version goes back to approved).

        Raises:
            ModuleStateError: nothing of that name is active.
        """
        active = (await self.registry.active()).get(name)
        if active is None:
            raise ModuleStateError(f"no active version of module {name!r}")
        await self.change(active.ref, "unloaded", actor, state="approved", expect=("active",))
        return active.ref

    async def rollback(self, name: str, *, actor: str) -> ModuleRef:
        """Activate the newest approved version older than the current one (active or last approved).

        Raises:
            ModuleStateError: there is no earlier approved, intact version.
        """
        versions = await self.registry.versions(name)
        approved_ever = [r for r in versions if r.pins is not None]
        current = next((r for r in versions if r.state == "active"), None)
        if current is None and approved_ever:
            current = max(approved_ever, key=lambda r: r.approved_at or 0)
        if current is None:
            raise ModuleStateError(f"module {name!r} has no approved version to roll back from")
        older = [r for r in versions if r.state == "approved" and version_key(r.version) < version_key(current.version)]
        for candidate in sorted(older, key=lambda r: version_key(r.version), reverse=True):
            problems = self.tampering(candidate)
            if problems:
                await self.disable_tampered(candidate, problems, actor=actor)
                continue
            await self.activate(candidate.ref, actor=actor, event="rolled_back")
            return candidate.ref
        raise ModuleStateError(f"module {name!r} has no approved version older than {current.version}")
