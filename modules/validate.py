"""Validation of one module version: every stage, each failure precise enough to act on.

Stages, in order; a stage that makes the next meaningless stops the run:

    manifest   the manifest parses and every value is valid (all problems at once)
    files      the directory can be pinned (no links or special files, within the size caps)
    lint       every .py file parses (file:line:column); risky constructs are *warnings* only:
               lint is fast feedback for the author, never the security boundary (the sandbox is)
    collision  no declared tool name is already served by another source or module (THREATS G5)
    import     the entry imports in the sandbox and the tools it declares in code are enumerated
    tools      code and manifest declare the same tools with the same definitions
    tests      the module's own tests run in the sandbox against canned HTTP answers

A problem is `{stage, where, what, fix}`: what failed, where (file:line, tool or test name), and
what the author can do about it.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modules.approval import FilesRefused, hash_files
from modules.manifest import ManifestInvalid, ModuleManifest, ModuleRef, load_manifest
from modules.sandbox.spec import ToolSpec
from server.config import ModulesSettings
from tools.errors import SetupError, ToolkilnError

__all__ = ["compare_tools", "lint_sources", "problem", "validate_module"]

Problem = dict[str, str]

# Names whose use the sandbox refuses anyway; flagged early so the author learns before a run.
_RISKY_MODULES = frozenset({"subprocess", "socket", "ctypes", "multiprocessing", "pty", "signal", "asyncio.subprocess"})
_RISKY_CALLS = frozenset({"eval", "exec", "compile", "__import__", "open"})
_MAX_WARNINGS = 50
TESTS_DIR = "tests"
# Annotation spellings a module may use in code, mapped to the manifest's keys.
_ANNOTATION_KEYS = {
    "title": "title",
    "read_only": "read_only",
    "readOnlyHint": "read_only",
    "destructive": "destructive",
    "destructiveHint": "destructive",
    "idempotent": "idempotent",
    "idempotentHint": "idempotent",
    "open_world": "open_world",
    "openWorldHint": "open_world",
}


def problem(stage: str, where: str, what: str, fix: str = "") -> Problem:
    return {"stage": stage, "where": where, "what": what[:2000], "fix": fix}


def lint_sources(directory: Path, files: Sequence[str]) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for every .py file: syntax errors are errors, risky constructs warnings."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for relative in sorted(name for name in files if name.endswith(".py")):
        try:
            source = (directory / relative).read_bytes()
            tree = ast.parse(source, filename=relative)
        except SyntaxError as exc:
            where = f"{relative}:{exc.lineno or 0}:{exc.offset or 0}"
            errors.append(problem("lint", where, f"SyntaxError: {exc.msg}", "fix the syntax so the file parses"))
            continue
        except (OSError, ValueError) as exc:
            errors.append(problem("lint", relative, f"cannot parse: {exc}", "make it a UTF-8 Python source file"))
            continue
        for node in ast.walk(tree):
            warning = _risky(node)
            if warning and len(warnings) < _MAX_WARNINGS:
                warnings.append(problem("lint", f"{relative}:{getattr(node, 'lineno', 0)}", warning, _SANDBOX_FIX))
    return errors, warnings


_SANDBOX_FIX = "the sandbox refuses this; reach the API through toolkiln_module.http"


def _risky(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names if alias.name.split(".")[0] in _RISKY_MODULES]
        return f"imports {', '.join(names)}" if names else None
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in _RISKY_MODULES:
        return f"imports from {node.module}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _RISKY_CALLS:
        return f"calls {node.func.id}()"
    if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "fork", "execv", "execve", "kill"):
        return f"uses .{node.attr}"
    return None


def _annotations(values: Mapping[str, Any]) -> dict[str, Any]:
    return {_ANNOTATION_KEYS[key]: value for key, value in values.items() if key in _ANNOTATION_KEYS}


def compare_tools(manifest: ModuleManifest, enumerated: Sequence[ToolSpec]) -> list[Problem]:
    """How the tools the code declares differ from the manifest's (name, text, schemas, hints)."""
    found: list[Problem] = []
    in_code = {spec.name: spec for spec in enumerated}
    declared = {tool.name: tool for tool in manifest.tools}
    for name in sorted(set(declared) - set(in_code)):
        found.append(problem("tools", name, "declared in the manifest but not defined in the code",
                             f"add @tool(name={name!r}) to a function in {manifest.entry}"))  # fmt: skip
    for name in sorted(set(in_code) - set(declared)):
        found.append(problem("tools", name, "defined in the code but not declared in the manifest",
                             "declare it under [[tools]] in manifest.toml, or remove it"))  # fmt: skip
    for name in sorted(set(in_code) & set(declared)):
        spec, tool = in_code[name], declared[name]
        for field, ours, theirs in (
            ("description", tool.description, spec.description),
            ("input_schema", tool.input_schema, spec.input_schema),
            ("output_schema", tool.output_schema, spec.output_schema),
        ):
            if ours != theirs:
                found.append(problem("tools", name, f"{field} in the code differs from the manifest",
                                     f"make the code's {field} equal to the manifest's"))  # fmt: skip
        pinned = {key: value for key, value in tool.annotations.model_dump().items() if value is not None}
        coded = _annotations(spec.annotations)
        for key in sorted(set(pinned) & set(coded)):
            if pinned[key] != coded[key]:
                found.append(problem("tools", name, f"annotation {key} is {coded[key]!r} in the code and "
                                     f"{pinned[key]!r} in the manifest", "make them agree"))  # fmt: skip
    return found


def _report(
    started: float,
    problems: list[Problem],
    warnings: list[Problem],
    *,
    files: Mapping[str, str] | None = None,
    manifest: ModuleManifest | None = None,
    tools: Sequence[str] = (),
    tests: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "passed": not problems,
        "problems": problems,
        "warnings": warnings,
        "files": dict(files or {}),
        "tools": list(tools),
        "tests": list(tests),
        "seconds": round(time.monotonic() - started, 3),
        "at": time.time(),
        "manifest": None if manifest is None else manifest.model_dump(mode="json"),
    }


async def validate_module(
    directory: Path,
    ref: ModuleRef,
    settings: ModulesSettings,
    *,
    start_worker: Any,
    taken: Mapping[str, str],
) -> dict[str, Any]:
    """Run every stage on `directory`; returns the report the registry stores (never raises for
    a bad module: a bad module is a report with problems)."""
    from modules.lifecycle import spec_of

    started = time.monotonic()
    try:
        manifest = load_manifest(directory, expect=ref)
    except ManifestInvalid as exc:
        found = [problem("manifest", "manifest.toml", text, "fix this key in manifest.toml") for text in exc.problems]
        return _report(started, found, [])
    try:
        files = hash_files(directory, max_files=settings.max_files, max_file_bytes=settings.max_file_bytes)
    except FilesRefused as exc:
        found = [problem("files", "module directory", text, "keep only regular files") for text in exc.problems]
        return _report(started, found, [], manifest=manifest)
    errors, warnings = lint_sources(directory, list(files))
    for tool in manifest.tools:
        owner = taken.get(tool.name)
        if owner is not None:
            errors.append(problem("collision", tool.name, f"the name is already served by source '{owner}'",
                                  "rename the tool"))  # fmt: skip
    if errors:
        return _report(started, errors, warnings, files=files, manifest=manifest)
    if start_worker is None:
        found = [problem("import", manifest.entry, "no sandbox is available on this host",
                         "see `toolkiln doctor`; modules cannot be validated or run without one")]  # fmt: skip
        return _report(started, found, warnings, files=files, manifest=manifest)
    found, enumerated, cases = await _in_sandbox(start_worker, spec_of(manifest, directory), manifest)
    return _report(started, found, warnings, files=files, manifest=manifest, tools=enumerated, tests=cases)


async def _in_sandbox(
    start_worker: Any, spec: Any, manifest: ModuleManifest
) -> tuple[list[Problem], list[str], list[dict[str, Any]]]:
    try:
        worker = await start_worker(spec)
    except (SetupError, ToolkilnError) as exc:
        return [problem("import", manifest.entry, exc.message, "fix the error raised while importing")], [], []
    try:
        try:
            enumerated = list(await worker.tools())
        except ToolkilnError as exc:
            return [problem("import", manifest.entry, exc.message, "fix the tool declarations")], [], []
        found = compare_tools(manifest, enumerated)
        names = [spec.name for spec in enumerated]
        try:
            report = await worker.run_tests()
        except ToolkilnError as exc:
            found.append(problem("tests", TESTS_DIR, exc.message, "make the tests run in the sandbox"))
            return found, names, []
        cases = [{"name": case.name, "passed": case.passed, "message": case.message} for case in report.cases]
        if report.error:
            found.append(problem("tests", TESTS_DIR, report.error, "make the test files import and run"))
        elif not report.cases:
            found.append(problem("tests", TESTS_DIR, "no tests found",
                                 f"add {TESTS_DIR}/test_*.py with test_* functions"))  # fmt: skip
        for case in report.cases:
            if not case.passed:
                found.append(problem("tests", case.name, case.message or "failed", "fix the code or the test"))
        return found, names, cases
    finally:
        await worker.stop()
