"""`--spec PATH_OR_URL [--base-url URL]` (repeatable): OpenAPI sources from the command line.

Each `--base-url` applies to the `--spec` just before it, so several specs with their own
upstreams fit on one line. A base URL given here is the operator's own choice, so its host is
allowed even when it is private or loopback (an internal API, a local test server); hosts the
spec itself names get no such exception.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from tools.openapi.settings import OpenApiSourceSettings

__all__ = ["add_spec_options", "specs_from_args"]


class _SpecAction(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append({"spec": str(values), "base_url": None})
        setattr(namespace, self.dest, items)


class _BaseUrlAction(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        items = getattr(namespace, "specs", None) or []
        if not items:
            parser.error("--base-url must follow the --spec it applies to")
        if items[-1]["base_url"] is not None:
            parser.error(f"--spec {items[-1]['spec']} already has a --base-url")
        url = str(values)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            parser.error(f"--base-url {url!r}: must be an absolute http(s) URL")
        items[-1]["base_url"] = url


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spec",
        dest="specs",
        action=_SpecAction,
        metavar="PATH_OR_URL",
        help="serve this OpenAPI 2.0/3.0/3.1 document (JSON or YAML) as tools; repeatable",
    )
    parser.add_argument(
        "--base-url",
        action=_BaseUrlAction,
        metavar="URL",
        help="the upstream API's base URL for the preceding --spec (default: the spec's servers)",
    )


def specs_from_args(items: Sequence[dict[str, Any]] | None) -> list[OpenApiSourceSettings]:
    """Source settings for each `--spec`.

    Raises:
        ValueError: a value the settings model refuses (the message names it).
    """
    specs = []
    for item in items or ():
        base_url = item["base_url"]
        host = urlsplit(base_url).hostname if base_url else None
        try:
            specs.append(
                OpenApiSourceSettings(spec=item["spec"], base_url=base_url, allow_private_hosts=(host,) if host else ())
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"--spec {item['spec']}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return specs
