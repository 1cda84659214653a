"""`toolkiln init`: write a commented example config that loads as-is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from credentials.keys import create_key_file
from credentials.settings import ENV_KEY, CredentialSettings

__all__ = ["EXAMPLE_CONFIG", "write_example"]

EXAMPLE_CONFIG = """\
# toolkiln configuration. Every key is optional; the values shown are the defaults.
# Read once at start-up; unknown keys are errors, so a typo never falls back silently.

[server]
# Name shown to MCP clients.
name = "toolkiln"
# Where state lives (SQLite database, keys, modules). Relative to the working directory.
data_dir = ".toolkiln"
# Every tool call is cancelled after this many seconds and reported as a timeout.
call_timeout_s = 60.0

[http]
# Used by `toolkiln serve --transport http|sse`. Binding anything but loopback exposes the
# server: set allowed_hosts / allowed_origins explicitly when you do.
host = "127.0.0.1"
port = 8765
# Streamable HTTP endpoint path.
path = "/mcp"
# Requests larger than this are refused with 413 before they are parsed.
max_body_bytes = 4194304
# Host and Origin headers accepted (DNS-rebinding protection). Empty = loopback only.
allowed_hosts = []
allowed_origins = []
# Answer POSTs with plain JSON instead of an SSE stream.
json_response = false

[stdio]
# Who a local stdio client is (hosts launching toolkiln over stdio are trusted locally).
principal = "local"
roles = ["admin"]
# The launching host may override both with TOOLKILN_PRINCIPAL and TOOLKILN_ROLES (comma-separated).

[auth]
# How HTTP/SSE callers authenticate. With neither api_tokens nor [auth.jwt], every HTTP caller is
# the local profile above: fine on loopback for development, refused on any other address.
# Bearer tokens made with `toolkiln tokens create --principal P --roles R`; stored hashed.
api_tokens = false
# A verified API token is trusted this long before the database is asked again (bounds how long
# a revoked token keeps working).
token_cache_s = 5.0
# Scopes every token must carry (403 insufficient_scope otherwise); API tokens carry them.
required_scopes = []
# Public URL of the MCP endpoint, advertised in protected-resource metadata; default: the first
# JWT audience if it is a URL.
# resource_url = "https://tools.example.com/mcp"

# OAuth 2.1 resource-server mode: accept JWT access tokens from one issuer.
# [auth.jwt]
# issuer = "https://login.example.com"
# audience = ["https://tools.example.com/mcp"]
# jwks_url = "https://login.example.com/.well-known/jwks.json"   # or jwks_file = "jwks.json"
# algorithms = ["RS256", "ES256"]   # public-key algorithms only
# principal_claim = "sub"
# roles_claim = "roles"             # a list, or a space-separated string
# leeway_s = 30.0

[policy]
# Built-in roles: readonly (read-only tools), agent (+ non-destructive mutating tools),
# developer (+ destructive tools not tagged "admin"), admin (everything). Anything not allowed
# is denied; a deny rule beats any allow; a tool you may not call is not listed either.
# A separate policy file (same shape as this table, without `file`), re-read when it changes;
# a bad edit keeps the last good policy. `toolkiln policy explain` shows which rule decides.
# file = "policy.toml"
reload_interval_s = 2.0

# Custom roles inherit from others:
# [policy.roles.support]
# inherits = ["readonly"]

# Roles granted to a principal whatever credential it uses:
# [policy.principals]
# alice = ["developer"]

# Rules: tools (name globs), sources, tags, exclude_tags, access (read | write | destructive)
# and a condition on the final arguments: equals, in, contains (lists), matches (full match,
# linear time), range, combined with all / any. `arg` is a key; ["a", "b"] is a path. A missing
# or mistyped argument fails the condition: no allow, and a deny applies.
# [[policy.rules]]
# id = "support-small-refunds"
# effect = "allow"
# roles = ["support"]
# tools = ["billing.refund*"]
# when = { all = [{ arg = "amount", range = { max = 100 } }, { arg = "currency", in = ["EUR", "USD"] }] }

[logging]
# JSON lines on stderr: debug, info, warning or error.
level = "info"
# Extra field names whose values are always redacted (secret-looking names already are).
redact_keys = []

[limits]
# Rate limits (GCRA). "sqlite" shares them between processes on this host (in the data dir);
# "memory" keeps them per process. No rules = no rate limits.
backend = "sqlite"
# Count and report what would be refused (metrics, audit), but refuse nothing.
shadow = false
# Each rule: `limit` calls per `period_s` (bursts up to `burst`, default `limit`), counted
# per principal_tool, principal, source or global; `tools` and `sources` are name globs.
# [[limits.rules]]
# name = "per-caller-tool"
# per = "principal_tool"
# tools = ["*"]
# limit = 60
# period_s = 60

[quotas]
# Cost budgets per principal per UTC day and month (unset = unlimited). A call's cost is
# reserved before it runs and charged once its executor was entered (refunded otherwise).
backend = "sqlite"
shadow = false
# daily = 1000
# monthly = 20000
# Per-tool costs (default: the tool's own, 1 unless its source says otherwise).
# [quotas.costs]
# "reports.generate" = 25
# Budgets for one principal instead of the defaults above.
# [quotas.principals.ci-bot]
# daily = 50

[audit]
# Every call writes an intent before it runs and an outcome after, hash-chained, in
# <data_dir>/audit.db; the checkpoint key is <data_dir>/audit.key (0600, keep it apart from
# backups of the database). Check with `toolkiln audit verify`.
enabled = true
# "normal" survives a crash of the process; "full" also survives power loss (slower).
synchronous = "normal"
# Argument strings longer than this are stored cut, with their length and a digest.
max_string_chars = 256

[idempotency]
# A mutating call carrying a key (this argument, or this `_meta` key) that repeats within
# `ttl_s` gets the stored result instead of running again.
ttl_s = 86400
argument = "idempotency_key"
meta_key = "io.toolkiln/idempotency-key"
max_result_bytes = 1048576

[credentials]
# Upstream credentials (`toolkiln credentials set NAME --origin URL`, value from stdin) are
# encrypted in <data_dir>/credentials.db, bound to their origin and owner. The key is
# <data_dir>/credentials.key (0600, made by `toolkiln init`); TOOLKILN_CREDENTIALS_KEY
# (comma-separated keys, newest first) replaces it. Keep the key out of the database's backups.
# `toolkiln credentials rotate-key` re-encrypts everything under a new key; `toolkiln doctor`
# reports what is missing.
# path = "credentials.db"
# key_path = "credentials.key"

[modules]
# Sandboxed adapter modules live in <data_dir>/modules/<name>/<version>/ (manifest.toml, code,
# tests/). `toolkiln modules add|validate|approve|activate|disable|rollback` manages them; a
# running server picks changes up within poll_interval_s and re-hashes loaded modules as often,
# so a file edited after approval disables its module.
enabled = true
# Expose the modules_* management tools over MCP (list, status, validate, request approval,
# activate, disable, rollback, unload), to admins only.
management_tools = false
poll_interval_s = 1.0
# Failure points that disable a module: 1 per failed call (a success clears them), and
# violation_weight per sandbox violation (never cleared).
failure_threshold = 5
violation_weight = 5
# Also accept an approval given by the human at an MCP host (elicitation); false = CLI only.
approve_by_elicitation = true

# OpenAPI sources: each [[sources]] table serves one spec's operations as tools (tool names of
# all sources must differ). `toolkiln serve --spec FILE_OR_URL --base-url URL` adds one from the
# command line; `toolkiln inspect` reports what a spec converts to; docs/openapi.md has more.
# Below, one source with every key. spec, name, base_url, prefix, the filters and the credentials
# are examples; every other value shown is the default.
# [[sources]]
# kind = "openapi"                        # the only kind of source configured here
# spec = "petstore.yaml"                  # a file (relative to this file's folder) or an http(s) URL
# name = "petstore"                       # its id in logs and reports; default: from the spec's name
# base_url = "https://api.example.com/v1" # where calls go; default: the spec's first `servers` URL
# prefix = "pets_"                        # put before every tool name; default: none
# watch = true                            # rebuild when the spec file changes (`toolkiln reload`
#                                         # rebuilds every source, watched or not)
# Bounds on the document, which is untrusted input:
# max_spec_bytes = 33554432               # 32 MiB
# max_operations = 10000
# max_yaml_nodes = 5000000                # YAML nodes after expanding aliases, each use counted
# max_tool_schema_bytes = 262144          # a tool's inputSchema + outputSchema; past it the tool
#                                         # loses its outputSchema, then its nested unions
# max_description_chars = 1024
# max_schema_description_chars = 400      # descriptions inside schemas
# allow_external_refs = []                # files or http(s) origins an external $ref may reach
# fetch_timeout_s = 30.0                  # fetching a spec (or an allowed $ref) by URL
# max_list_bytes: unset by default, which means 8x the spec's own size and at least 1 MiB. Past
# it, the tools with the largest outputSchemas lose them until the source's tools/list fits.
# Upstream requests:
# connect_timeout_s = 10.0
# read_timeout_s = 30.0
# total_timeout_s = 60.0                  # the whole exchange: redirects and body included
# max_response_bytes = 10485760           # 10 MiB, counted after decompression
# follow_redirects = false                # when true, every hop is checked again
# allow_private_hosts = []                # private or loopback hosts calls may reach, such as
#                                         # ["127.0.0.1"] for an API on this machine
# Which operations become tools. Within a filter every criterion set must match, and any value
# of a criterion will do; include (default: every operation) keeps, exclude removes.
# [sources.include]
# tags = ["pets"]
# methods = ["GET", "POST"]
# [sources.exclude]
# operation_ids = ["deletePet"]
# paths = ["/admin/*"]                    # shell-style globs over the path template
# The stored credential each of the spec's security schemes uses:
# [sources.auth.api_key]                  # the scheme's name in the spec
# credential = "petstore-key"
# [sources.auth.oauth]
# credential = "petstore-oauth"           # stored with --kind oauth-client or oauth-refresh
# token_url = "https://login.example.com/oauth/token"
# scopes = ["pets:read"]
# per_principal = false                   # true: each caller's own (set with --principal P)
"""


def write_example(path: Path, *, force: bool = False) -> int:
    if path.exists() and not force:
        print(f"toolkiln: {path} exists; use --force to overwrite", file=sys.stderr)
        return 2
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    if not os.environ.get(ENV_KEY):
        key_file = CredentialSettings().key_file(path.parent / ".toolkiln")
        if create_key_file(key_file):
            print(f"created the credential key {key_file} (0600)", file=sys.stderr)
    return 0
