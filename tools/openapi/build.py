"""One call from a source's settings to drafts and a report: load, check, resolve, convert."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from tools.openapi.convert import Conversion, convert_document, resolve_base_url
from tools.openapi.document import SpecDocument, parse_document
from tools.openapi.loader import LoadedSpec, load_spec
from tools.openapi.refs import RefResolver
from tools.openapi.settings import OpenApiSourceSettings

__all__ = ["BuiltSpec", "build_spec", "split_allowlist"]


@dataclass(frozen=True, slots=True)
class BuiltSpec:
    loaded: LoadedSpec
    document: SpecDocument
    conversion: Conversion
    base_url: str | None


def split_allowlist(entries: tuple[str, ...], base_dir: Path | None) -> tuple[list[Path], list[str]]:
    """`allow_external_refs` as (files, origins): URL entries allow their origin, others are paths."""
    files: list[Path] = []
    origins: list[str] = []
    for entry in entries:
        if entry.lower().startswith(("http://", "https://")):
            parts = urlsplit(entry)
            origins.append(f"{parts.scheme}://{parts.netloc}")
        else:
            path = Path(entry).expanduser()
            files.append(path if path.is_absolute() or base_dir is None else base_dir / path)
    return files, origins


def build_spec(
    settings: OpenApiSourceSettings, *, base_dir: Path | None = None, file_bytes: bytes | None = None
) -> BuiltSpec:
    """Load and convert the source's spec. Nothing is registered here.

    `file_bytes`: the spec file's contents, when the caller has read them already.

    Raises:
        SpecInvalid: the document cannot be read, parsed, or is structurally malformed.
        SpecTooLarge: a byte, operation or YAML-expansion cap was hit.
    """
    loaded = load_spec(
        settings.spec,
        base_dir=base_dir,
        max_bytes=settings.max_spec_bytes,
        max_yaml_nodes=settings.max_yaml_nodes,
        fetch_timeout_s=settings.fetch_timeout_s,
        file_bytes=file_bytes,
    )
    files, origins = split_allowlist(settings.allow_external_refs, base_dir)

    def load_external(uri: str) -> Any:
        parts = urlsplit(uri)
        location = url2pathname(parts.path) if parts.scheme == "file" else uri
        return load_spec(
            location,
            max_bytes=settings.max_spec_bytes,
            max_yaml_nodes=settings.max_yaml_nodes,
            fetch_timeout_s=settings.fetch_timeout_s,
        ).data

    resolver = RefResolver(
        loaded.data, loaded.uri, allowed_files=files, allowed_origins=origins, load_external=load_external
    )
    document = parse_document(
        loaded.data, origin=loaded.origin, uri=loaded.uri, resolver=resolver, max_operations=settings.max_operations
    )
    base_url, base_from = resolve_base_url(document, settings, loaded.uri)
    conversion = convert_document(
        document, resolver, settings, base_url=base_url, base_url_from=base_from, spec_bytes=loaded.size
    )
    return BuiltSpec(loaded=loaded, document=document, conversion=conversion, base_url=base_url)
