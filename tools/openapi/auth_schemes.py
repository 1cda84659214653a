"""A spec's security schemes, reduced to the plain facts injection needs.

`read_security_schemes` reads `components.securitySchemes` (3.x) or `securityDefinitions`
(2.0) into JSON-ready dicts (they travel in the conversion cache): the type, where an API key
goes, the HTTP scheme, and OAuth token URLs. Anything malformed is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.openapi.refs import RefResolver, UnresolvableRef

__all__ = ["read_security_schemes"]

_MAX_SCHEMES = 64


def _text(value: Any, limit: int = 2048) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= limit else None


def read_security_schemes(root: Mapping[str, Any], dialect: str, uri: str, resolver: RefResolver) -> dict[str, Any]:
    raw = root.get("securityDefinitions") if dialect == "2.0" else (root.get("components") or {})
    if dialect != "2.0":
        raw = raw.get("securitySchemes") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        return {}
    schemes: dict[str, Any] = {}
    for name, entry in list(raw.items())[:_MAX_SCHEMES]:
        try:
            entry, _ = resolver.deref(entry, uri)
        except UnresolvableRef:
            continue
        if isinstance(name, str) and isinstance(entry, dict):
            scheme = _scheme(entry, dialect)
            if scheme is not None:
                schemes[name] = scheme
    return schemes


def _scheme(entry: Mapping[str, Any], dialect: str) -> dict[str, Any] | None:
    kind = entry.get("type")
    if kind == "apiKey":
        location, name = entry.get("in"), _text(entry.get("name"), 256)
        if location in ("header", "query", "cookie") and name:
            return {"type": "apiKey", "in": location, "name": name}
        return None
    if kind == "basic" and dialect == "2.0":
        return {"type": "http", "scheme": "basic"}
    if kind == "http":
        scheme = entry.get("scheme")
        return {"type": "http", "scheme": scheme.lower()} if isinstance(scheme, str) else None
    if kind == "oauth2":
        return {"type": "oauth2", **_token_urls(entry, dialect)}
    if isinstance(kind, str):
        return {"type": kind}
    return None


def _token_urls(entry: Mapping[str, Any], dialect: str) -> dict[str, str]:
    if dialect == "2.0":
        token = _text(entry.get("tokenUrl"))
        flow = entry.get("flow")
        if token is None:
            return {}
        return {"client_credentials": token} if flow == "application" else {"token": token}
    urls: dict[str, str] = {}
    flows = entry.get("flows")
    if not isinstance(flows, dict):
        return urls
    for flow_name, flow in flows.items():
        if not isinstance(flow, dict):
            continue
        token = _text(flow.get("tokenUrl"))
        refresh = _text(flow.get("refreshUrl"))
        if flow_name == "clientCredentials" and token:
            urls["client_credentials"] = token
        elif token:
            urls.setdefault("token", token)
        if refresh:
            urls.setdefault("refresh", refresh)
    return urls
