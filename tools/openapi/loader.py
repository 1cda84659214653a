"""Reading an OpenAPI document from a file or URL into plain JSON data, within caps.

JSON is parsed with the stdlib (the fastest parser available for a 13 MB spec); YAML with the
bounded safe loader of `tools.openapi.yamlsafe`. Every failure is a `SpecInvalid` naming the
document and, when known, the line — never a parser's traceback.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tools.openapi.spec_errors import SpecInvalid, SpecTooLarge

__all__ = ["LoadedSpec", "fetch_bytes", "is_url", "load_spec", "parse_spec_bytes", "read_spec_bytes"]

_CHUNK = 64 * 1024
# `bytes.translate` table marking every non-ASCII byte as 0x80, so `find` can jump between them.
_NON_ASCII_MARKS = bytes(range(128)) + b"\x80" * 128
_NON_ASCII_RUN = re.compile(rb"[\x80-\xff]+")


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A parsed document and where it came from."""

    data: Any
    origin: str  # as shown to the operator: the path or URL given
    uri: str  # base URI for `$ref` resolution: file:///… or the URL
    path: Path | None  # the file, when it is one (watched for reload)
    size: int
    sha256: str


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def load_spec(
    location: str,
    *,
    base_dir: Path | None = None,
    max_bytes: int,
    max_yaml_nodes: int,
    fetch_timeout_s: float = 30.0,
    file_bytes: bytes | None = None,
) -> LoadedSpec:
    """Read and parse the document at `location` (a path, relative to `base_dir`, or a URL).

    `file_bytes` are the file's contents when the caller has just read them (not read twice).

    Raises:
        SpecInvalid: unreadable, not JSON/YAML, or not UTF-8.
        SpecTooLarge: more than `max_bytes`, or YAML aliases expanding past `max_yaml_nodes`.
    """
    data, origin, uri, path = read_spec_bytes(
        location, base_dir=base_dir, max_bytes=max_bytes, fetch_timeout_s=fetch_timeout_s, file_bytes=file_bytes
    )
    parsed = parse_spec_bytes(data, origin, max_yaml_nodes=max_yaml_nodes)
    return LoadedSpec(
        data=parsed, origin=origin, uri=uri, path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def read_spec_bytes(
    location: str,
    *,
    base_dir: Path | None,
    max_bytes: int,
    fetch_timeout_s: float = 30.0,
    file_bytes: bytes | None = None,
) -> tuple[bytes, str, str, Path | None]:
    """The raw bytes plus (origin, base URI, file path or None)."""
    if is_url(location):
        return fetch_bytes(location, max_bytes=max_bytes, timeout_s=fetch_timeout_s), location, location, None
    path = Path(location).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    path = path.resolve()
    origin = location
    data = file_bytes
    if data is None:
        try:
            with path.open("rb") as handle:
                # Read one byte past the cap so "exactly at the cap" and "over it" are told apart.
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise SpecInvalid(origin, f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise SpecTooLarge(origin, f"larger than the {max_bytes}-byte cap (max_spec_bytes)")
    return data, origin, path.as_uri(), path


def fetch_bytes(url: str, *, max_bytes: int, timeout_s: float) -> bytes:
    """GET `url` with a byte cap and a timeout; redirects are reported, not followed.

    Raises:
        SpecInvalid: a network error, a non-200 answer or a redirect.
        SpecTooLarge: the body (or its Content-Length) exceeds `max_bytes`.
    """
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise SpecInvalid(url, "credentials in the URL are not allowed")
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "application/json, application/yaml, */*"}) as response,
        ):
            if response.is_redirect:
                target = response.headers.get("location", "?")
                raise SpecInvalid(url, f"redirected ({response.status_code}) to {target}; use the final URL")
            if response.status_code != 200:
                raise SpecInvalid(url, f"HTTP {response.status_code} fetching the spec")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise SpecTooLarge(url, f"Content-Length {declared} exceeds the {max_bytes}-byte cap")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise SpecTooLarge(url, f"larger than the {max_bytes}-byte cap (max_spec_bytes)")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise SpecInvalid(url, f"cannot fetch the spec ({type(exc).__name__}: {exc})") from None
    return b"".join(chunks)


def _ascii_text(data: bytes) -> str | None:
    """The JSON text with each non-ASCII character written as a `\\u` escape; None when not exact.

    JSON allows raw non-ASCII characters only inside strings, where the escape means the same.
    It matters for memory and time: one emoji makes a decoded text 4 bytes per character (GitHub's
    13 MB spec: a 52 MB string, 45 ms to decode); the ASCII text is 13 MB and takes 7 ms. Not
    exact, so None, for other encodings, invalid UTF-8 and encoded surrogates (whose escapes could
    pair up differently); mostly non-ASCII text gains nothing, so None as well.
    """
    if json.detect_encoding(data) != "utf-8":
        return None
    if data.isascii():
        return data.decode("ascii")
    marks = data.translate(_NON_ASCII_MARKS)
    if marks.count(0x80) > len(data) // 64:
        return None
    parts: list[str] = []
    start, at = 0, marks.find(0x80)
    try:
        while at >= 0:
            run = _NON_ASCII_RUN.match(data, at)
            if run is None:  # cannot happen: `at` is a non-ASCII byte
                return None
            parts.append(data[start:at].decode("ascii"))
            parts.append(json.dumps(run.group().decode("utf-8"))[1:-1])
            start = run.end()
            at = marks.find(0x80, start)
    except UnicodeDecodeError:
        return None
    parts.append(data[start:].decode("ascii"))
    return "".join(parts)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_spec_bytes(data: bytes, origin: str, *, max_yaml_nodes: int) -> Any:
    """JSON when the text starts like JSON, else YAML (a superset that also covers the rest).

    Raises:
        SpecInvalid: not parseable, with line and column when known.
        SpecTooLarge: YAML aliases expanding past `max_yaml_nodes`.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head = data[:64].lstrip()
    if head.startswith((b"{", b"[")):
        return _parse_json(data, origin)
    # PyYAML is imported only when a document needs it: most large specs are JSON.
    from tools.openapi.yamlsafe import YamlError, load_yaml

    try:
        return load_yaml(data, max_nodes=max_yaml_nodes)
    except YamlError as exc:
        where = None if exc.line is None else f"line {exc.line}"
        if "expand" in exc.problem:
            raise SpecTooLarge(origin, exc.problem) from None
        raise SpecInvalid(origin, f"not valid YAML: {exc.problem}", where=where) from None


def _parse_json(data: bytes, origin: str) -> Any:
    text = _ascii_text(data)
    if text is not None:
        try:
            return json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            pass  # parsed again below as given, so the error names the original line and column
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SpecInvalid(
            origin, f"not valid JSON: {exc.msg}", where=f"line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise SpecInvalid(origin, "not usable JSON: nesting too deep") from None
    except UnicodeDecodeError:
        raise SpecInvalid(origin, "not UTF-8 text") from None
    except ValueError as exc:  # oversized integers, NaN/Infinity
        raise SpecInvalid(origin, f"not usable JSON: {exc}") from None
