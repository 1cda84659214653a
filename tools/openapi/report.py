"""The conversion report: every operation, converted or skipped, and why. Nothing is silent.

`toolkiln inspect` prints it; `--json` gives `as_json()`, whose `operations` entries carry
`operation`, `status`, `tool`, `reason` and `schema_bytes` (plus `operation_id`, `notes`, `flags`).
A converted tool that had to be degraded to fit the schema budget has a `reason` saying how.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ConversionReport", "OperationReport", "Status"]

Status = Literal["converted", "skipped"]


@dataclass(frozen=True, slots=True)
class OperationReport:
    operation: str  # "GET /pets/{petId}"
    status: Status
    tool: str | None = None
    reason: str | None = None
    schema_bytes: int | None = None
    operation_id: str | None = None
    notes: tuple[str, ...] = ()
    # Why the operation's text deserves a human look (instruction-like, hidden-characters, …).
    flags: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "status": self.status,
            "tool": self.tool,
            "reason": self.reason,
            "schema_bytes": self.schema_bytes,
            "operation_id": self.operation_id,
            "notes": list(self.notes),
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class ConversionReport:
    source: str
    spec: str
    version: str
    title: str
    base_url: str | None
    base_url_from: str  # "config", "spec", or why there is none
    operations: tuple[OperationReport, ...]
    problems: tuple[str, ...] = ()

    @property
    def converted(self) -> int:
        return sum(1 for op in self.operations if op.status == "converted")

    @property
    def skipped(self) -> int:
        return len(self.operations) - self.converted

    @property
    def flagged(self) -> int:
        return sum(1 for op in self.operations if op.flags)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "spec": self.spec,
            "version": self.version,
            "title": self.title,
            "base_url": self.base_url,
            "base_url_from": self.base_url_from,
            "summary": {
                "operations": len(self.operations),
                "converted": self.converted,
                "skipped": self.skipped,
                "flagged": self.flagged,
            },
            "problems": list(self.problems),
            "operations": [op.as_json() for op in self.operations],
        }

    def render(self) -> str:
        """The human-readable form: a header, then one line per operation with its notes below."""
        version = f"Swagger {self.version}" if self.version == "2.0" else f"OpenAPI {self.version}"
        title = f' "{self.title}"' if self.title else ""
        base = self.base_url or "none"
        lines = [
            f"{self.spec}: {version}{title} — source '{self.source}', base URL {base} ({self.base_url_from})",
            f"{len(self.operations)} operations: {self.converted} converted, {self.skipped} skipped"
            + (f", {self.flagged} flagged for review" if self.flagged else ""),
        ]
        lines.extend(f"  ! {problem}" for problem in self.problems)
        lines.append("")
        width = max((len(op.operation) for op in self.operations), default=0)
        for op in self.operations:
            if op.status == "converted":
                size = f"{op.schema_bytes:,} B" if op.schema_bytes is not None else ""
                line = f"converted  {op.operation.ljust(width)}  → {op.tool}  {size}"
                if op.reason:
                    line += f"  ({op.reason})"
            else:
                line = f"skipped    {op.operation.ljust(width)}  {op.reason}"
            lines.append(line.rstrip())
            lines.extend(f"    flagged: {flag}" for flag in op.flags)
            lines.extend(f"    note: {note}" for note in op.notes)
        return "\n".join(lines)
